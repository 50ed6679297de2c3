"""`recsys.paths`: each programme's age rules, hand-checked at the bounds (`programme_answers`),
and where a path goes on after an application (`continuation`)."""

from __future__ import annotations

import pytest

from recsys.paths import MissingFact, NoPath, continuation, programme_answers

SC, SNU, BEN, SP, RES = (
    "volontariat_service_civique",
    "snu",
    "benevolat",
    "volontariat_sapeurs_pompiers",
    "volontariat_reserve_operationnelle",
)


def eligible(age: int | None, disability: bool = False) -> dict[str, bool]:
    return {a.programme: a.eligible for a in programme_answers(age, disability)}


@pytest.mark.parametrize(
    ("age", "disability", "expected"),
    [
        (14, False, {SC: False, SNU: False, BEN: False, SP: False, RES: False}),
        (15, False, {SC: False, SNU: True, BEN: False, SP: False, RES: False}),
        (16, False, {SC: True, SNU: True, BEN: True, SP: True, RES: False}),
        (17, False, {SC: True, SNU: True, BEN: True, SP: True, RES: True}),
        (18, False, {SC: True, SNU: False, BEN: True, SP: True, RES: True}),
        (25, False, {SC: True, SNU: False, BEN: True, SP: True, RES: True}),
        (26, False, {SC: False, SNU: False, BEN: True, SP: True, RES: True}),
        (30, True, {SC: True, SNU: False, BEN: True, SP: True, RES: True}),
        (31, True, {SC: False, SNU: False, BEN: True, SP: True, RES: True}),
        (68, False, {SC: False, SNU: False, BEN: True, SP: False, RES: True}),
        (73, False, {SC: False, SNU: False, BEN: True, SP: False, RES: False}),
    ],
)
def test_programmes_follow_the_age_rules(age: int, disability: bool, expected: dict) -> None:
    assert eligible(age, disability) == expected


def test_reasons_and_notes_say_why_in_french() -> None:
    answers = {a.programme: a for a in programme_answers(27)}
    sc = answers[SC]
    assert (sc.code, sc.eligible) == ("too_old", False)
    assert "jusqu" not in sc.reason and "16 à 25 ans" in sc.reason and "27 ans" in sc.reason
    assert "30 ans avec un handicap" in sc.reason
    assert "nationalité française" in " ".join(answers[RES].notes)
    young = {a.programme: a for a in programme_answers(16)}
    assert "accord d’un parent" in " ".join(young[SC].notes)
    assert "ouvertes aux mineurs" in " ".join(young[BEN].notes)
    assert young[RES].code == "too_young" and "1 an" in young[RES].reason
    unknown = programme_answers(None)
    assert {a.code for a in unknown} == {"unknown_age"}


@pytest.mark.parametrize(
    ("outcome", "programme", "domain", "snu", "types", "domains", "expected"),
    [
        ("refused", SC, "sport", False, None, None, {"types": [BEN, SP, RES]}),
        ("too_old", SC, None, False, [SC, BEN], None, {"types": [BEN]}),
        ("finished", BEN, "sport", True, None, None, {"snu": False}),
        ("full", None, "sport", False, None, None, {"domains": ["sport"]}),
        ("expired", SC, "sport", False, None, ["sport", "culture-loisirs"], {"domains": ["sport"]}),
    ],
)
def test_continuation_narrows_the_filters(
    outcome: str,
    programme: str | None,
    domain: str | None,
    snu: bool,
    types: list[str] | None,
    domains: list[str] | None,
    expected: dict,
) -> None:
    assert continuation(outcome, programme, domain, snu, types, domains) == expected


def test_continuation_refuses_what_it_cannot_continue() -> None:
    with pytest.raises(NoPath, match=r"^filters\.types: "):
        continuation("refused", SC, None, False, [SC])
    with pytest.raises(NoPath, match=r"^filters\.domains: "):
        continuation("full", None, "sport", False, None, ["culture-loisirs"])
    with pytest.raises(MissingFact) as missing:
        continuation("refused", None, "sport", False)
    assert missing.value.fact == "programme"
    with pytest.raises(MissingFact) as missing:
        continuation("expired", SC, None, False)
    assert missing.value.fact == "domain"
    with pytest.raises(ValueError, match="outcome"):
        continuation("vanished", SC, "sport", False)

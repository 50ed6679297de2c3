"""`recsys.paths.programme_answers`: each programme's age rules, hand-checked at the bounds."""

from __future__ import annotations

import pytest

from recsys.paths import programme_answers

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

"""Paths between programmes: who may join which programme, said in plain French.

A person's question ("may I join the Service Civique?") is about a programme, not an offer.
Each programme is asked as the offers that stand for it (`KINDS`: a Service Civique offer,
a bénévolat offer open to minors, an SNU general-interest mission: what an SNU-flagged offer
admits beyond the same offer unflagged) and answered by the age rules of
`recsys.eligibility` (`admits_age`), the one owner of those rules; the French texts only say
what `recsys.taxonomy`'s bounds are. Nationality is a note, not a rule: the service does not
ask it.

Where a person goes on after an application (DOMAIN.md section 4, `continuation`): someone
refused, too old for a programme or done with a mission goes on in the other programmes they
may join; a full or expired offer leads to offers of the same domain in any programme they
may join. The continuation is a narrowing of the list's filters (`recsys.filters`), so
eligibility still decides who may join what. The service's `after` (`serving.paths`) and the
evaluation's redirect segment (`recsys.redirects`) both narrow through it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from recsys import taxonomy
from recsys.arrays import OfferArrays
from recsys.eligibility import admits_age

SNU: Final = "snu"
# An application's outcomes, and those after which the person goes on in other programmes
# (the others, full and expired, stay in the offer's domain).
OUTCOMES: Final[tuple[str, ...]] = ("refused", "full", "expired", "too_old", "finished")
OTHER_PROGRAMMES: Final[tuple[str, ...]] = ("refused", "too_old", "finished")


@dataclass(frozen=True)
class Kind:
    """A programme as a person asks about it, and the offer that stands for it."""

    key: str  # a `taxonomy.PROGRAMMES` value, or "snu"
    label: str
    programme: str
    snu: bool = False
    open_to_minors: int = -1  # 1 yes, 0 no, -1 unsaid (`OfferArrays.open_to_minors`)
    nationality: bool = False  # French nationality required


KINDS: Final[tuple[Kind, ...]] = (
    Kind(
        taxonomy.SERVICE_CIVIQUE,
        taxonomy.PROGRAMME_LABELS_FR[taxonomy.SERVICE_CIVIQUE],
        taxonomy.SERVICE_CIVIQUE,
    ),
    Kind(SNU, "Mission d’intérêt général du SNU", taxonomy.BENEVOLAT, snu=True, nationality=True),
    Kind(
        taxonomy.BENEVOLAT,
        taxonomy.PROGRAMME_LABELS_FR[taxonomy.BENEVOLAT],
        taxonomy.BENEVOLAT,
        open_to_minors=1,
    ),
    Kind(
        taxonomy.SAPEURS_POMPIERS,
        taxonomy.PROGRAMME_LABELS_FR[taxonomy.SAPEURS_POMPIERS],
        taxonomy.SAPEURS_POMPIERS,
    ),
    Kind(
        taxonomy.RESERVE,
        taxonomy.PROGRAMME_LABELS_FR[taxonomy.RESERVE],
        taxonomy.RESERVE,
        nationality=True,
    ),
)


@dataclass(frozen=True)
class Answer:
    """Whether a person may join a programme, why (French), and notes worth knowing."""

    programme: str
    label: str
    eligible: bool
    code: str  # eligible, too_young, too_old, unknown_age
    reason: str
    notes: tuple[str, ...]


def _offers(kinds: tuple[Kind, ...]) -> OfferArrays:
    """One offer per kind: only what the age rules read is set."""
    n = len(kinds)
    values = {
        "programme": np.array([taxonomy.PROGRAMMES.index(k.programme) for k in kinds], np.int16),
        "snu": np.array([k.snu for k in kinds]),
        "open_to_minors": np.array([k.open_to_minors for k in kinds], np.int8),
        "ids": np.array([k.key for k in kinds], dtype=object),
    }
    shapes = {
        "quiz_domains": (n, len(taxonomy.QUIZ_DOMAINS)),
        "quiz_activities": (n, len(taxonomy.QUIZ_ACTIVITIES)),
    }
    fields = {}
    for field in dataclasses.fields(OfferArrays):
        fields[field.name] = values.get(field.name, np.zeros(shapes.get(field.name, n)))
    return OfferArrays(**fields)


def _bounds(kind: Kind, disability: bool) -> tuple[int, int]:
    if kind.snu:
        return taxonomy.SNU_AGE_BOUNDS
    low, high = taxonomy.PROGRAMME_AGE_BOUNDS[kind.programme]
    if disability and kind.programme == taxonomy.SERVICE_CIVIQUE:
        high = taxonomy.SERVICE_CIVIQUE_DISABILITY_MAX_AGE
    return low, high


def _range(kind: Kind) -> str:
    low, high = _bounds(kind, False)
    if kind.programme == taxonomy.BENEVOLAT and not kind.snu:
        return f"ouvert aux adultes, et dès {low} ans sur les missions ouvertes aux mineurs"
    text = f"ouvert de {low} à {high} ans"
    if kind.programme == taxonomy.SERVICE_CIVIQUE:
        text += f" ({taxonomy.SERVICE_CIVIQUE_DISABILITY_MAX_AGE} ans avec un handicap)"
    return text


def _notes(kind: Kind, years: float | None) -> tuple[str, ...]:
    notes = []
    minor = years is not None and years < taxonomy.ADULT_AGE
    if kind.nationality:
        notes.append("réservé aux personnes de nationalité française")
    if minor and kind.programme == taxonomy.SERVICE_CIVIQUE:
        notes.append("avant 18 ans, l’accord d’un parent est nécessaire")
    if minor and kind.programme == taxonomy.BENEVOLAT and not kind.snu:
        notes.append("seulement les missions ouvertes aux mineurs")
    return tuple(notes)


def programme_answers(age: float | None, disability: bool = False) -> list[Answer]:
    """Every programme of `KINDS`, in that order: may a person of `age` (completed years;
    None: unknown) join it, and why."""
    plain = Kind("plain", "", taxonomy.BENEVOLAT)  # the SNU offer without its flag
    admitted = admits_age(_offers((*KINDS, plain)), age, disability)
    # The SNU flag opens a bénévolat offer to 15-17 year-olds without closing it to adults:
    # the SNU mission itself is what the flag adds.
    snu = [kind.snu for kind in KINDS]
    admitted = np.where(snu, admitted[:-1] & ~admitted[-1], admitted[:-1]).tolist()
    years = None if age is None or math.isnan(age) else math.floor(age)
    out = []
    for kind, ok in zip(KINDS, admitted, strict=True):
        low, high = _bounds(kind, disability)
        rule = _range(kind)
        if years is None:
            code, reason = "unknown_age", f"{kind.label} : {rule} ; précisez votre âge"
        elif ok:
            code, reason = "eligible", f"{kind.label} : {rule}, vous pouvez vous engager"
            if disability and kind.programme == taxonomy.SERVICE_CIVIQUE and years > 25:
                reason = (
                    f"{kind.label} : ouvert jusqu’à {high} ans avec un handicap, "
                    "vous pouvez vous engager"
                )
        elif years < low:
            code, reason = "too_young", f"{kind.label} : {rule}, possible dans {low - years} an(s)"
        else:
            code, reason = "too_old", f"{kind.label} : {rule}, plus accessible à {years} ans"
        out.append(Answer(kind.key, kind.label, bool(ok), code, reason, _notes(kind, years)))
    return out


class NoPath(ValueError):
    """The list's own filters leave nothing a continuation may propose."""


class MissingFact(LookupError):
    """The continuation needs the offer's programme or domain, and it is not known."""

    def __init__(self, fact: str) -> None:
        super().__init__(fact)
        self.fact = fact


def continuation(
    outcome: str,
    programme: str | None,
    domain: str | None,
    snu: bool,
    types: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The filters that continue a person's path after an application's `outcome`, as
    updates of the `recsys.filters.OfferFilters` fields (the service's `RankFilters` has the
    same names): they only narrow what `types` and `domains` (the list's own filters; None:
    any) already allow.

    - refused, too_old, finished: the other programmes (`types` without the offer's); after
      an SNU mission, anything but another SNU mission (`snu` false);
    - full, expired: the offer's domain (`domains`).

    Raises:
        ValueError: an outcome outside `OUTCOMES`.
        MissingFact: `programme` (other programmes) or `domain` (same domain) is None.
        NoPath: `types` names only the offer's programme, or `domains` leaves out its domain;
            the message names the filter.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome: expected one of {OUTCOMES}, got {outcome!r}")
    if outcome in OTHER_PROGRAMMES:
        if programme is None:
            raise MissingFact("programme")
        if snu:
            return {"snu": False}
        allowed = [p for p in (types or taxonomy.PROGRAMMES) if p != programme]
        if not allowed:
            raise NoPath(f"filters.types: only {programme}, which after.outcome leaves out")
        return {"types": allowed}
    if domain is None:
        raise MissingFact("domain")
    if domains and domain not in domains:
        raise NoPath(f"filters.domains: {domain}, the offer's domain, is not among them")
    return {"domains": [domain]}

"""Why an offer is in a person's list: short French reasons, each with a stable code.

The front shows the texts; the codes (`REASONS`) do not change when a text is reworded, so
analyses and tests read the codes. Labels of the vocabularies come from `recsys.taxonomy`.
Tests run in numpy over the listed offers only; strings are made in one loop.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from recsys import taxonomy
from recsys.arrays import ProfileArrays
from serving.catalog import Catalog

NEW_OFFER_DAYS = 14
LIKED_Z = 0.5  # model score this many deviations above the candidates' mean: "apprécié..."
MAX_REASONS = 4

# Stable code -> French text (a template where a value is filled in), most telling first.
REASONS: Final[dict[str, str]] = {
    "near": "près de chez vous : {distance}",
    "remote_full": "mission à distance",
    "remote_possible": "télétravail possible",
    "domain": "correspond à votre intérêt : {label}",
    "activity": "activité qui vous correspond : {label}",
    "liked": "apprécié par des profils proches",
    "rhythm": "au rythme que vous cherchez",
    "service_civique": "Service Civique indemnisé",
    "paid": "mission indemnisée",
    "new": "nouvelle mission",
    "in_domain": "dans le domaine : {label}",  # when nothing above holds: every item says why
    "open_to_you": "ouverte à votre profil",  # ... and, without a domain, that it is open
}

_ON_SITE = taxonomy.REMOTE_VALUES.index("no")
_FULL_REMOTE = taxonomy.REMOTE_VALUES.index("full")
_POSSIBLE_REMOTE = taxonomy.REMOTE_VALUES.index("possible")
_SERVICE_CIVIQUE = taxonomy.PROGRAMMES.index(taxonomy.SERVICE_CIVIQUE)
_ACTIVITY_LABELS = [taxonomy.QUIZ_ACTIVITY_LABELS_FR[name] for name in taxonomy.QUIZ_ACTIVITIES]
_DOMAIN_LABELS = {name: label.lower() for name, label in taxonomy.DOMAIN_LABELS_FR.items()}


def _distance(km: float) -> str:
    return "moins d’1 km" if km < 1 else f"{km:.0f} km"


def reasons(
    catalog: Catalog,
    rows: np.ndarray,
    people: ProfileArrays,
    owner: np.ndarray,
    distances: np.ndarray,
    liked: np.ndarray,
    at: int,
) -> list[list[tuple[str, str]]]:
    """(code, text) reasons for showing offer `rows[i]` to person `owner[i]` of `people`,
    most telling first, at least one, at most MAX_REASONS.

    Args:
        catalog: the live catalog `rows` index.
        rows: catalog rows of the listed offers.
        people: the batch's people; `owner[i]` is the person of item i.
        distances: km from the person to the offer, NaN when unknown.
        liked: the model rates the offer well above the person's other candidates.
        at: the instant of the request (epoch seconds): what counts as a new offer.
    """
    a = catalog.arrays
    remote = a.remote[rows]
    known = ~np.isnan(distances)
    with np.errstate(invalid="ignore"):
        near = known & ((remote == _ON_SITE) | (distances <= people.radius_km[owner]))
    activities = a.quiz_activities[rows] & people.quiz_activities[owner]
    rhythm = people.rhythm[owner]
    age_seconds = at - a.posted_at[rows]
    columns = zip(
        near.tolist(),
        np.where(known, distances, 0.0).tolist(),
        remote.tolist(),
        catalog.domain[rows].tolist(),
        (a.quiz_domains[rows] & people.quiz_domains[owner]).any(axis=1).tolist(),
        np.where(activities.any(axis=1), activities.argmax(axis=1), -1).tolist(),
        liked.tolist(),
        ((rhythm >= 0) & (a.rhythm[rows] == rhythm)).tolist(),
        (a.programme[rows] == _SERVICE_CIVIQUE).tolist(),
        a.paid[rows].tolist(),
        ((age_seconds >= 0) & (age_seconds <= NEW_OFFER_DAYS * 86_400)).tolist(),
        strict=True,
    )
    out = []
    for (
        near_,
        km,
        remote_,
        domain,
        likes_domain,
        activity,
        liked_,
        rhythm_,
        sc,
        paid,
        new,
    ) in columns:
        said: list[tuple[str, str]] = []
        if near_:
            said.append(("near", REASONS["near"].format(distance=_distance(km))))
        elif remote_ == _FULL_REMOTE:
            said.append(("remote_full", REASONS["remote_full"]))
        elif remote_ == _POSSIBLE_REMOTE:
            said.append(("remote_possible", REASONS["remote_possible"]))
        if domain is not None and likes_domain:
            said.append(("domain", REASONS["domain"].format(label=_DOMAIN_LABELS[domain])))
        if activity >= 0:
            said.append(("activity", REASONS["activity"].format(label=_ACTIVITY_LABELS[activity])))
        if liked_:
            said.append(("liked", REASONS["liked"]))
        if rhythm_:
            said.append(("rhythm", REASONS["rhythm"]))
        if sc:
            said.append(("service_civique", REASONS["service_civique"]))
        elif paid:
            said.append(("paid", REASONS["paid"]))
        if new:
            said.append(("new", REASONS["new"]))
        if not said and domain is not None:
            said.append(("in_domain", REASONS["in_domain"].format(label=_DOMAIN_LABELS[domain])))
        elif not said:
            said.append(("open_to_you", REASONS["open_to_you"]))
        out.append(said[:MAX_REASONS])
    return out

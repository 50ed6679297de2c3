"""Simulated people: who they are (age, place, mobility), what they want (hidden interests,
aspiration, rhythm), what they told the quiz (a noisy reading of it), when they arrive and
whether they agreed to be contacted for a mobilisation (from their arrival on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys import taxonomy
from recsys.simulation import vocabulary as vocab
from recsys.simulation.config import SimulationConfig
from recsys.simulation.ids import hex_ids
from recsys.simulation.offers import DAY, day_weights
from recsys.simulation.truth import PeopleTruth

_MOBILITIES = ("walking", "public_transport", "bike", "car")
_ASPIRATION = {name: i for i, name in enumerate(taxonomy.ASPIRATIONS)}
_RHYTHM = {name: i for i, name in enumerate(taxonomy.RHYTHMS)}

# Aspiration shares by age band (<18, 18-25, 26+), columns in taxonomy.ASPIRATIONS order:
# orientation, insertion, remobilisation, accomplissement, utilite.
_ASPIRATION_BY_AGE = np.array(
    [
        [0.35, 0.10, 0.10, 0.25, 0.20],
        [0.25, 0.30, 0.15, 0.15, 0.15],
        [0.05, 0.15, 0.10, 0.20, 0.50],
    ]
)
# Domains an aspiration pulls towards (multiplier of the prior interest).
_ASPIRATION_DOMAINS: dict[str, dict[str, float]] = {
    "orientation": {"education": 2, "sante": 2, "numerique": 2, "recherche": 2, "communication": 2},
    "insertion": {"emploi": 3, "solidarite-insertion": 1.5, "batiment-industrie-logistique": 2},
    "remobilisation": {
        "sport": 1.5,
        "culture-loisirs": 2,
        "vivre-ensemble": 2,
        "environnement": 1.5,
    },
    "accomplissement": {
        "sport": 3,
        "prevention-protection": 3,
        "service-public-defense-securite": 3,
    },
    "utilite": {"solidarite-insertion": 2, "humanitaire": 2, "environnement": 1.5, "animaux": 1.5},
}
# Preferred rhythm by aspiration, columns in taxonomy.RHYTHMS order: un-jour,
# quelques-heures-par-semaine, plusieurs-jours-par-semaine, quelques-jours-dans-l-annee,
# temps-plein-plusieurs-mois.
_RHYTHM_BY_ASPIRATION = np.array(
    [
        [0.10, 0.20, 0.10, 0.15, 0.45],
        [0.05, 0.15, 0.15, 0.05, 0.60],
        [0.20, 0.30, 0.15, 0.10, 0.25],
        [0.10, 0.40, 0.10, 0.30, 0.10],
        [0.30, 0.40, 0.05, 0.20, 0.05],
    ]
)
# Probability of ticking each motivation, by aspiration; columns in taxonomy.MOTIVATIONS order:
# indemnisation, a-distance, experience-pro, rencontrer-des-gens, etre-utile, decouvrir-un-metier.
_MOTIVATION_BY_ASPIRATION = np.array(
    [
        [0.30, 0.10, 0.50, 0.20, 0.20, 0.70],
        [0.85, 0.10, 0.50, 0.15, 0.15, 0.30],
        [0.30, 0.05, 0.15, 0.70, 0.30, 0.15],
        [0.20, 0.05, 0.20, 0.40, 0.60, 0.20],
        [0.05, 0.15, 0.10, 0.40, 0.85, 0.05],
    ]
)
# Mobility shares for people under 26 and from 26, columns as _MOBILITIES.
_MOBILITY_BY_AGE = np.array([[0.15, 0.40, 0.12, 0.33], [0.10, 0.25, 0.10, 0.55]])


@dataclass(frozen=True)
class SimulatedPeople:
    """The profiles table, the people's truth, and what diffusion needs."""

    frame: pd.DataFrame  # canonical profiles table (schema.PROFILE_SCHEMA)
    truth: PeopleTruth
    city: np.ndarray  # int32 row of the cities table
    observed_age: np.ndarray  # float64, NaN where the profile does not give it
    arrival: np.ndarray  # int64 epoch seconds of the first session
    devices: np.ndarray  # int8 number of devices (1-3): each has its own `user` hash


def simulate_people(
    config: SimulationConfig,
    cities: pd.DataFrame,
    rng: np.random.Generator,
    start: pd.Timestamp,
    salt: int,
) -> SimulatedPeople:
    """Draw `config.n_people` people arriving over the year starting at `start`."""
    n = config.n_people
    young = rng.random(n) < 0.78
    age = np.where(
        young,
        15 + np.floor(rng.beta(2.2, 3.5, n) * 16),
        np.minimum(31 + np.floor(rng.exponential(12.0, n)), 70),
    ).astype(np.int16)
    band = np.searchsorted([18, 26], age, side="right")
    aspiration = choice_per_row(_ASPIRATION_BY_AGE[band], rng)
    population = cities["population"].to_numpy(dtype=float)
    city = rng.choice(len(cities), size=n, p=population / population.sum()).astype(np.int32)
    lat = cities["lat"].to_numpy()[city] + rng.normal(0.0, 3.0, n) / 111.2
    lon = cities["lon"].to_numpy()[city] + rng.normal(0.0, 3.0, n) / (
        111.2 * np.cos(np.radians(lat))
    )
    mobility = choice_per_row(_MOBILITY_BY_AGE[(age >= 26).astype(int)], rng)
    base_radius = np.array([taxonomy.MOBILITY_RADIUS_KM[m] for m in _MOBILITIES])[mobility]
    radius = np.round(base_radius * rng.lognormal(0.0, 0.25, n) * 2) / 2
    disability = rng.random(n) < config.disability_share
    domain_interest = _domain_interest(aspiration, rng)
    activity_interest = _normalise(rng.gamma(0.7, size=(n, len(taxonomy.QUIZ_ACTIVITIES))))
    rhythm = choice_per_row(_RHYTHM_BY_ASPIRATION[aspiration], rng).astype(np.int8)
    activity_level = rng.lognormal(0.0, 1.1, n)
    activity_level *= (config.sessions_per_person - 1) / activity_level.mean()

    weights = day_weights(config.days, start)
    arrival_day = rng.choice(config.days, size=n, p=weights)
    arrival = (
        int(start.timestamp()) + arrival_day * DAY + rng.integers(8 * 3600, 23 * 3600, n)
    ).astype(np.int64)
    devices = rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1]).astype(np.int8)

    ids = hex_ids(np.arange(n), salt, prefix="usr_", width=16)
    has_quiz = rng.random(n) < np.where(young, config.quiz_share + 0.08, config.quiz_share - 0.28)
    knows_mobility = has_quiz | (rng.random(n) < 0.4)
    observed_age = np.where(rng.random(n) < config.unknown_age_share, np.nan, age.astype(float))
    quiz = _quiz(domain_interest, activity_interest, rhythm, aspiration, has_quiz, rng)
    # Drawn last, so that consent leaves every other draw (and the events) as they were.
    consent = rng.random(n) < config.consent_share
    consent_at = pd.Series(pd.to_datetime(arrival, unit="s", utc=True)).dt.as_unit("ms")
    city_rows = cities.iloc[city]
    frame = pd.DataFrame(
        {
            "userId": pd.arrays.ArrowExtensionArray(ids),
            "age": pd.array(observed_age, dtype="Float64").astype("Int16"),
            "lat": lat,
            "lon": lon,
            "postalCode": city_rows["postal_code"].to_numpy(dtype=object),
            "departmentCode": city_rows["department_code"].to_numpy(dtype=object),
            "region": city_rows["region_name"].to_numpy(dtype=object),
            "mobility": np.where(
                knows_mobility, np.array(_MOBILITIES, dtype=object)[mobility], None
            ),
            "radiusKm": np.where(knows_mobility, radius, np.nan),
            "disability": disability,
            "hasQuiz": has_quiz,
            "quizDomains": pd.arrays.ArrowExtensionArray(quiz["domains"]),
            "quizActivities": pd.arrays.ArrowExtensionArray(quiz["activities"]),
            "quizRhythm": quiz["rhythm"],
            "quizMotivations": pd.arrays.ArrowExtensionArray(quiz["motivations"]),
            "contactConsent": consent,
            "consentAt": consent_at.where(consent),
        }
    )
    truth = PeopleTruth(
        ids=ids.to_numpy(zero_copy_only=False).astype(str),
        age=age,
        lat=lat,
        lon=lon,
        radius_km=radius,
        disability=disability,
        aspiration=aspiration.astype(np.int8),
        domain_interest=domain_interest,
        activity_interest=activity_interest,
        rhythm=rhythm,
        activity_level=activity_level,
    )
    return SimulatedPeople(
        frame=frame,
        truth=truth,
        city=city,
        observed_age=observed_age,
        arrival=arrival,
        devices=devices,
    )


def choice_per_row(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix (inverse CDF)."""
    cumulative = np.cumsum(probabilities, axis=1)
    draw = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((cumulative < draw).sum(axis=1), probabilities.shape[1] - 1)


def _normalise(weights: np.ndarray) -> np.ndarray:
    weights = weights + 1e-12  # a row of gamma underflows to zeros now and then
    return weights / weights.sum(axis=1, keepdims=True)


def _domain_interest(aspiration: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sparse Dirichlet interests around the catalogue's domain mix, tilted by aspiration."""
    prior = np.array([vocab.DOMAIN_WEIGHTS[d] for d in taxonomy.DOMAINS])
    prior = prior / prior.sum()
    tilt = np.ones((len(taxonomy.ASPIRATIONS), len(taxonomy.DOMAINS)))
    for name, domains in _ASPIRATION_DOMAINS.items():
        for domain, factor in domains.items():
            tilt[_ASPIRATION[name], taxonomy.DOMAINS.index(domain)] = factor
    alpha = tilt * prior
    alpha = 3.0 * alpha / alpha.sum(axis=1, keepdims=True)  # total concentration 3: sparse
    # Gamma draws normalised per row: a Dirichlet whose parameters vary by person.
    return _normalise(rng.gamma(alpha[aspiration]))


def _quiz(
    domain_interest: np.ndarray,
    activity_interest: np.ndarray,
    rhythm: np.ndarray,
    aspiration: np.ndarray,
    has_quiz: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, object]:
    """Quiz answers: noisy top interests, the rhythm most of the time, aspiration-driven
    motivations; "je ne sais pas encore" now and then. Null for people without a quiz."""
    n = len(has_quiz)
    to_quiz = np.zeros((len(taxonomy.DOMAINS), len(taxonomy.QUIZ_DOMAINS)))
    for d, domain in enumerate(taxonomy.DOMAINS):
        targets = taxonomy.DOMAIN_TO_QUIZ[domain]
        for target in targets:
            to_quiz[d, taxonomy.QUIZ_DOMAINS.index(target)] = 1.0 / len(targets)
    quiz_mass = domain_interest @ to_quiz
    domains = _top_k(
        quiz_mass * rng.lognormal(0.0, 0.5, quiz_mass.shape), 1 + rng.binomial(2, 0.4, n)
    )
    domains_dk = rng.random(n) < 0.08
    activities = _top_k(
        activity_interest * rng.lognormal(0.0, 0.5, activity_interest.shape),
        1 + rng.binomial(1, 0.5, n),
    )
    activities_dk = rng.random(n) < 0.1
    motivations = rng.random((n, len(taxonomy.MOTIVATIONS))) < _MOTIVATION_BY_ASPIRATION[aspiration]
    motivations_dk = ~motivations.any(axis=1)

    draw = rng.random(n)
    random_rhythm = rng.integers(0, len(taxonomy.RHYTHMS), n)
    stated = np.where(draw < 0.75, rhythm, random_rhythm)
    rhythm_names = np.array(taxonomy.RHYTHMS, dtype=object)[stated]
    rhythm_names[draw >= 0.9] = taxonomy.DONT_KNOW
    rhythm_names[~has_quiz] = None
    return {
        "domains": _lists(domains, domains_dk, taxonomy.QUIZ_DOMAINS, has_quiz),
        "activities": _lists(activities, activities_dk, taxonomy.QUIZ_ACTIVITIES, has_quiz),
        "rhythm": rhythm_names,
        "motivations": _lists(motivations, motivations_dk, taxonomy.MOTIVATIONS, has_quiz),
    }


def _top_k(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Boolean mask of each row's k[i] highest scores."""
    rank = np.argsort(np.argsort(-scores, axis=1), axis=1)
    return rank < k[:, None]


def _lists(
    chosen: np.ndarray, dont_know: np.ndarray, names: tuple[str, ...], present: np.ndarray
) -> pa.ListArray:
    """Arrow list<string> per row: the chosen names, or [DONT_KNOW]; null where not present.

    Built from offsets rather than one Python list per row: the large preset has 250k quizzes.
    """
    vocabulary = np.array([*names, taxonomy.DONT_KNOW], dtype=object)
    marks = np.concatenate([chosen & ~dont_know[:, None], dont_know[:, None]], axis=1)
    marks &= present[:, None]
    _, columns = np.nonzero(marks)
    offsets = np.concatenate([[0], np.cumsum(marks.sum(axis=1))]).astype(np.int32)
    values = pa.array(vocabulary[columns], type=pa.string())
    mask = pa.array(~present)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)

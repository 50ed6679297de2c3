"""Ground truth of a simulated dataset: latent traits, the true utility and the oracle.

The simulator draws hidden traits for every person (interests, aspiration, preferred rhythm,
true age and radius) and every offer (quality); a shown offer is clicked and applied to with
probabilities rising with `utility`, the deterministic part of a person's taste for an offer,
plus a persistent pair noise that no model can know. The traits are written apart from the
training data, under `truth/`, so that evaluation can rank by `expected_utility` (the oracle)
without any model ever reading them.

Utility of person p for offer o (weights in `UtilityWeights`, tables below):

    U = w_domain   · log(20 · θ[p, domain(o)] + 0.2)
      + w_activity · Σ_k a[o, k] · log(6 · ψ[p, k] + 0.2)       (a: the offer's quiz activity mix)
      + distance term: −w_distance · log(1 + d(p, o) / radius[p]) on site,
                       that times `remote_possible_share` when remote is possible,
                       `remote_full` when fully remote
      + w_programme · PROGRAMME_FIT[aspiration[p], programme(o)]
      + w_age       · AGE_FIT[age band(p), programme(o)]
      + w_pay       · pay_pref[p] · paid(o)
      + w_rhythm    · [rhythm[p] = rhythm(o)]
      + w_quality   · quality[o]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from recsys import taxonomy
from recsys.config import TRUTH_DIR
from recsys.geo import haversine_km
from recsys.simulation.config import GENERATOR_VERSION, UtilityWeights

N_DOMAINS = len(taxonomy.DOMAINS)
N_QUIZ_ACTIVITIES = len(taxonomy.QUIZ_ACTIVITIES)
INTEREST_FLOOR = 0.2  # keeps log-interest finite: an unloved domain scores log(0.2), not -inf

# Rows: taxonomy.ASPIRATIONS; columns: taxonomy.PROGRAMMES (benevolat, SC, pompiers, reserve).
PROGRAMME_FIT = np.array(
    [
        [0.0, 0.8, 0.2, 0.5],  # orientation: Service Civique and reserves
        [-0.3, 1.0, 0.2, 0.4],  # insertion: paid Service Civique
        [0.3, 0.6, 0.0, 0.0],  # remobilisation
        [0.0, 0.2, 1.0, 0.7],  # accomplissement: firefighters, reserves, sport
        [0.8, 0.0, 0.2, 0.0],  # utilite: bénévolat
    ]
)
# Age bands: [..18), [18..26), [26..36), [36..); columns as above.
AGE_BAND_EDGES = np.array([18, 26, 36])
AGE_FIT = np.array(
    [
        [0.2, 0.2, 0.3, 0.0],
        [0.0, 0.4, 0.1, 0.1],
        [0.2, -0.2, 0.0, 0.0],
        [0.4, -0.5, -0.3, -0.2],
    ]
)
PAY_PREFERENCE = np.array([0.5, 1.0, 0.5, 0.3, 0.0])  # per aspiration

_REMOTE_POSSIBLE = taxonomy.REMOTE_VALUES.index("possible")
_REMOTE_FULL = taxonomy.REMOTE_VALUES.index("full")
_PEOPLE_FILE = "people.npz"
_OFFERS_FILE = "offers.npz"
_MODEL_FILE = "utility.json"


@dataclass(frozen=True)
class PeopleTruth:
    """Hidden traits of every simulated person, rows aligned with `ids`."""

    ids: np.ndarray  # unicode userId
    age: np.ndarray  # int16 true age in years
    lat: np.ndarray  # float64 home
    lon: np.ndarray  # float64
    radius_km: np.ndarray  # float64 true reach (from mobility)
    disability: np.ndarray  # bool
    aspiration: np.ndarray  # int8 index into taxonomy.ASPIRATIONS
    domain_interest: np.ndarray  # float64 (n, 20), rows sum to 1 (θ)
    activity_interest: np.ndarray  # float64 (n, 6) over QUIZ_ACTIVITIES, rows sum to 1 (ψ)
    rhythm: np.ndarray  # int8 preferred rhythm, index into taxonomy.RHYTHMS
    activity_level: np.ndarray  # float64 mean extra sessions (heavy tail)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class OffersTruth:
    """What the utility needs of every offer, rows aligned with `ids`."""

    ids: np.ndarray  # unicode offer id
    programme: np.ndarray  # int8 index into taxonomy.PROGRAMMES
    domain: np.ndarray  # int8 index into taxonomy.DOMAINS
    activity_mix: np.ndarray  # float64 (n, 6): share of the offer's activities per quiz type
    remote: np.ndarray  # int8 index into taxonomy.REMOTE_VALUES
    lat: np.ndarray  # float64, NaN for a fully remote offer without address
    lon: np.ndarray  # float64
    paid: np.ndarray  # bool
    rhythm: np.ndarray  # int8 index into taxonomy.RHYTHMS (arrays.offer_rhythm)
    quality: np.ndarray  # float64 latent quality, standard normal

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Truth:
    """Everything needed to recompute the deterministic utility of any (person, offer) pair."""

    people: PeopleTruth
    offers: OffersTruth
    weights: UtilityWeights
    noise_salt: int  # key of the persistent pair noise (ids.pair_normal), for replays

    def person_index(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each user id in `people`.

        Raises:
            ValueError: naming up to five ids the simulation never drew.
        """
        return _index(self.people.ids, self._people_order, user_ids, "user_ids")

    def offer_index(self, offer_ids: np.ndarray) -> np.ndarray:
        """Row of each offer id in `offers`.

        Raises:
            ValueError: naming up to five unknown offer ids.
        """
        return _index(self.offers.ids, self._offers_order, offer_ids, "offer_ids")

    @cached_property
    def _people_order(self) -> np.ndarray:
        return np.argsort(self.people.ids)

    @cached_property
    def _offers_order(self) -> np.ndarray:
        return np.argsort(self.offers.ids)


def utility(truth: Truth, people: np.ndarray, offers: np.ndarray) -> np.ndarray:
    """Deterministic utility of people rows × offer rows, broadcast like numpy.

    Pairs: two 1-d index arrays of equal length. Matrix: `people[:, None]`, `offers[None, :]`.
    Both shapes go through the same elementwise arithmetic, so the simulator (pairs) and the
    oracle (matrices) compute the same numbers. It is `preference` plus `distance_term` from
    the person's home and true radius.
    """
    p = truth.people
    people = np.asarray(people)
    return preference(truth, people, offers) + distance_term(
        truth, p.lat[people], p.lon[people], p.radius_km[people], offers
    )


@dataclass(frozen=True)
class PersonTerms:
    """Per person, the vectors the preference is linear in, rows aligned with some people:
    read from the hidden traits (`person_terms`), or estimated from what a profile says of
    them (the replay's profile oracle), and combined with the offers by `preference_of`."""

    log_domain: np.ndarray  # (n, N_DOMAINS) log(20 θ + floor)
    log_activity: np.ndarray  # (n, N_QUIZ_ACTIVITIES) log(6 ψ + floor)
    programme: np.ndarray  # (n, programmes) w_programme · PROGRAMME_FIT + w_age · AGE_FIT
    pay: np.ndarray  # (n,) PAY_PREFERENCE of the aspiration
    rhythm: np.ndarray  # (n, rhythms) one-hot preferred rhythm

    def matrix(self) -> np.ndarray:
        """The terms side by side, (n, width): what `from_matrix` reads back."""
        return np.column_stack(
            [self.log_domain, self.log_activity, self.programme, self.pay, self.rhythm]
        )

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> PersonTerms:
        """Terms from `matrix`'s columns, in `matrix`'s order."""
        widths = np.cumsum([N_DOMAINS, N_QUIZ_ACTIVITIES, len(taxonomy.PROGRAMMES), 1])
        return cls(
            log_domain=matrix[:, : widths[0]],
            log_activity=matrix[:, widths[0] : widths[1]],
            programme=matrix[:, widths[1] : widths[2]],
            pay=matrix[:, widths[2]],
            rhythm=matrix[:, widths[3] :],
        )


def person_terms(truth: Truth, people: np.ndarray) -> PersonTerms:
    """The preference's person terms of the `people` rows (1-d), from their hidden traits."""
    p, w = truth.people, truth.weights
    people = np.asarray(people)
    band = np.searchsorted(AGE_BAND_EDGES, p.age[people], side="right")
    rhythm = np.zeros((len(people), len(taxonomy.RHYTHMS)))
    rhythm[np.arange(len(people)), p.rhythm[people]] = 1.0
    return PersonTerms(
        log_domain=np.log(N_DOMAINS * p.domain_interest[people] + INTEREST_FLOOR),
        log_activity=np.log(N_QUIZ_ACTIVITIES * p.activity_interest[people] + INTEREST_FLOOR),
        programme=w.programme * PROGRAMME_FIT[p.aspiration[people]] + w.age * AGE_FIT[band],
        pay=PAY_PREFERENCE[p.aspiration[people]],
        rhythm=rhythm,
    )


def preference(truth: Truth, people: np.ndarray, offers: np.ndarray) -> np.ndarray:
    """Every term of the utility but the distance one, broadcast as in `utility`: what the
    person's hidden traits and the offer's quality say, wherever the person stands."""
    people = np.asarray(people)
    # Terms (logs) of each distinct person, then gathered: never a log per cell.
    rows, inverse = np.unique(people, return_inverse=True)
    return preference_of(truth, person_terms(truth, rows), inverse.reshape(people.shape), offers)


def preference_of(
    truth: Truth, terms: PersonTerms, people: np.ndarray, offers: np.ndarray
) -> np.ndarray:
    """The preference of `terms`' rows `people` for the `offers` rows, broadcast as in
    `utility`: the module's formula, with the person's side given as `PersonTerms`."""
    o, w = truth.offers, truth.weights
    people, offers = np.asarray(people), np.asarray(offers)
    activity_term = np.zeros(np.broadcast_shapes(people.shape, offers.shape))
    for k in range(N_QUIZ_ACTIVITIES):
        activity_term = activity_term + o.activity_mix[offers, k] * terms.log_activity[people, k]
    return (
        w.domain * terms.log_domain[people, o.domain[offers]]
        + w.activity * activity_term
        + terms.programme[people, o.programme[offers]]
        + w.pay * terms.pay[people] * o.paid[offers]
        + w.rhythm * terms.rhythm[people, o.rhythm[offers]]
        + w.quality * o.quality[offers]
    )


def distance_term(
    truth: Truth, lat: np.ndarray, lon: np.ndarray, radius_km: np.ndarray, offers: np.ndarray
) -> np.ndarray:
    """The distance term of the utility for someone at (lat, lon) reaching `radius_km`,
    broadcast against `offers` rows: −w_distance · log(1 + d / radius) on site, that times
    `remote_possible_share` where remote is possible, `remote_full` for a fully remote offer
    (NaN on site where either place is unknown)."""
    o, w = truth.offers, truth.weights
    offers = np.asarray(offers)
    distance = haversine_km(lat, lon, o.lat[offers], o.lon[offers])
    on_site = -w.distance * np.log1p(distance / radius_km)
    remote = o.remote[offers]
    return np.where(
        remote == _REMOTE_FULL,
        w.remote_full,
        np.where(remote == _REMOTE_POSSIBLE, w.remote_possible_share * on_site, on_site),
    )


def population_quantiles(
    truth: Truth, levels: np.ndarray, sample: int = 5_000, seed: int = 0, block: int = 1_000
) -> tuple[np.ndarray, np.ndarray]:
    """Per offer, the quantiles at `levels` of its `preference` and of its whole `utility`
    over the simulated people (`sample` of them drawn without replacement with `seed`, or
    all when fewer): (n_offers, len(levels)) each, what knowing every offer and nobody in
    particular tells of it, with and without a place to measure the distance from. A sample
    bounds the time and memory (people × `block` offers at a time)."""
    n_people, n_offers = len(truth.people), len(truth.offers)
    rng = np.random.default_rng(seed)
    people = np.sort(rng.choice(n_people, size=min(sample, n_people), replace=False))
    p = truth.people
    lat, lon, radius = (values[people, None] for values in (p.lat, p.lon, p.radius_km))
    preference_q = np.empty((n_offers, len(levels)))
    utility_q = np.empty((n_offers, len(levels)))
    for start in range(0, n_offers, block):
        offers = np.arange(start, min(start + block, n_offers))[None, :]
        preferences = preference(truth, people[:, None], offers)
        utilities = preferences + distance_term(truth, lat, lon, radius, offers)
        preference_q[offers[0]] = np.quantile(preferences, levels, axis=0).T
        utility_q[offers[0]] = np.quantile(utilities, levels, axis=0).T
    return preference_q, utility_q


def expected_utility(
    truth: Truth, user_ids: np.ndarray, offer_ids: np.ndarray, block: int = 2048
) -> np.ndarray:
    """(n_users, n_offers) deterministic utility: what the oracle ranks by.

    Exactly the utility the simulator drew clicks and applies from, minus the pair noise.
    Hard eligibility is not applied here: candidate selection does that for every model.

    Raises:
        ValueError: when an id is not part of the simulation.
    """
    people = truth.person_index(np.asarray(user_ids))
    offers = truth.offer_index(np.asarray(offer_ids))
    out = np.empty((len(people), len(offers)))
    for start in range(0, len(people), block):
        rows = people[start : start + block]
        out[start : start + len(rows)] = utility(truth, rows[:, None], offers[None, :])
    return out


def save_truth(truth: Truth, directory: Path) -> None:
    """Write `truth/` (npz arrays loadable with allow_pickle=False, plus utility.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / _PEOPLE_FILE, **_arrays(truth.people))
    np.savez(directory / _OFFERS_FILE, **_arrays(truth.offers))
    model = {
        "generator_version": GENERATOR_VERSION,
        "weights": asdict(truth.weights),
        "noise_salt": truth.noise_salt,
        "interest_floor": INTEREST_FLOOR,
        "programme_fit": PROGRAMME_FIT.tolist(),
        "age_band_edges": AGE_BAND_EDGES.tolist(),
        "age_fit": AGE_FIT.tolist(),
        "pay_preference": PAY_PREFERENCE.tolist(),
        "aspirations": list(taxonomy.ASPIRATIONS),
        "programmes": list(taxonomy.PROGRAMMES),
        "domains": list(taxonomy.DOMAINS),
        "quiz_activities": list(taxonomy.QUIZ_ACTIVITIES),
        "rhythms": list(taxonomy.RHYTHMS),
        "remote_values": list(taxonomy.REMOTE_VALUES),
    }
    (directory / _MODEL_FILE).write_text(json.dumps(model, indent=2, ensure_ascii=False) + "\n")


def load_truth(directory: str | Path) -> Truth:
    """Load the ground truth of a simulated dataset (its folder or its `truth/` folder).

    Raises:
        ValueError: when the folder holds no truth, or one written by another generator
            version (its utility tables may differ from this code's).
    """
    directory = Path(directory)
    if (directory / TRUTH_DIR / _MODEL_FILE).exists():
        directory = directory / TRUTH_DIR
    model_path = directory / _MODEL_FILE
    if not model_path.exists():
        raise ValueError(f"truth: no {_MODEL_FILE} under {directory}; simulate the dataset first")
    model = json.loads(model_path.read_text())
    if model.get("generator_version") != GENERATOR_VERSION:
        raise ValueError(
            f"truth: written by generator version {model.get('generator_version')!r}, this "
            f"code is {GENERATOR_VERSION!r}; simulate the dataset again"
        )
    with np.load(directory / _PEOPLE_FILE, allow_pickle=False) as data:
        people = PeopleTruth(**{f.name: data[f.name] for f in fields(PeopleTruth)})
    with np.load(directory / _OFFERS_FILE, allow_pickle=False) as data:
        offers = OffersTruth(**{f.name: data[f.name] for f in fields(OffersTruth)})
    return Truth(
        people=people,
        offers=offers,
        weights=UtilityWeights(**model["weights"]),
        noise_salt=int(model["noise_salt"]),
    )


def _arrays(record: PeopleTruth | OffersTruth) -> dict[str, np.ndarray]:
    return {f.name: np.asarray(getattr(record, f.name)) for f in fields(record)}


def _index(known: np.ndarray, order: np.ndarray, wanted: np.ndarray, name: str) -> np.ndarray:
    """Rows of `wanted` ids in `known`, by binary search over `known[order]` (sorted)."""
    sorted_known = known[order]
    wanted = np.asarray(wanted).astype(str)
    position = np.searchsorted(sorted_known, wanted)
    position = np.minimum(position, len(sorted_known) - 1)
    found = sorted_known[position] == wanted
    if not np.all(found):
        missing = [str(v) for v in wanted[~found][:5]]
        raise ValueError(f"{name}: {int((~found).sum())} unknown id(s), e.g. {missing}")
    return order[position]

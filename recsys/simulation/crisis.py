"""The crisis scenario: a sudden need in one department, and the people who answer it.

Added on top of an ordinary simulated year (`recsys simulate --scenario crisis`). Near the
end of the year a flood strikes one department (drawn among the ten with the most people,
weighted by them): the coordinators post `CrisisConfig.domains` bénévolat offers there, one
per domain, at the department's largest simulated city, for adults, open for a month.

Who answers: every adult living within `reach_km` of the place considers the offer of the
crisis they like best (highest utility, `truth.utility`, plus a Gumbel draw) and applies with
probability

    sigmoid(intercept + utility(p, o) + log(activity_level_p))

so that people who come often to the platform, live near and care about the domain answer
most; `intercept` is solved so that `responder_share` of the people within reach answer on
average. Each answer is a print, a click and an apply (status PENDING) from the crisis
campaign, under the person's stable id (a mobilisation runs through accounts), some days
after the posting. The crisis offers join the offers table and the ground truth (the oracle
scores them like any offer), and the manifest records the scenario, the department, the place
and the offers' ids (`recsys audience evaluate --offers crisis` reads them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from recsys import geo, schema, taxonomy
from recsys.arrays import offer_rhythm
from recsys.config import EVENTS_FILE, OFFERS_FILE, PROFILES_FILE, TRUTH_DIR
from recsys.simulation.ids import hex_ids
from recsys.simulation.offers import DAY
from recsys.simulation.simulator import MANIFEST_FILE
from recsys.simulation.truth import OffersTruth, load_truth, save_truth, utility

SCENARIOS = ("base", "crisis")
_CAMPAIGN = "crisis"


@dataclass(frozen=True)
class CrisisConfig:
    """Knobs of the crisis: what is posted, when, and how many answer."""

    domains: tuple[str, ...] = (
        "prevention-protection",
        "solidarite-insertion",
        "humanitaire",
        "environnement",
    )
    activities: tuple[tuple[str, ...], ...] = (
        ("securite-civile", "secourisme"),
        ("distribution", "aide-alimentaire"),
        ("collecte", "logistique"),
        ("nettoyage-nature", "ramassage-dechets"),
    )
    days_before_end: int = 20  # the posting, counted back from the end of the simulated year
    open_days: int = 30
    places: int = 80
    reach_km: float = 60.0
    responder_share: float = 0.15  # of the adults within reach, on average
    answer_days: float = 3.0  # mean delay between posting and answer (exponential)
    quality: float = 1.0  # latent quality of the crisis offers (urgent causes draw)


def add_crisis(out: Path, seed: int, config: CrisisConfig | None = None) -> dict[str, Any]:
    """Add the crisis to the simulated dataset in `out`; returns the updated manifest.

    Raises:
        ValueError: when `out` holds no finished simulation.
    """
    config = config or CrisisConfig()
    out = Path(out)
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(f"crisis: no finished simulation in {out}")
    manifest = json.loads(manifest_path.read_text())
    rng = np.random.default_rng([seed, 2026])
    salt = int(rng.integers(1, 2**62))
    truth = load_truth(out / TRUTH_DIR)
    profiles = pd.read_parquet(out / PROFILES_FILE)
    offers = pd.read_parquet(out / OFFERS_FILE)
    events = pd.read_parquet(out / EVENTS_FILE)

    department, city = _place(profiles, manifest, rng)
    t_end = int(pd.Timestamp(manifest["end"], tz="UTC").timestamp()) + DAY
    posted = t_end - config.days_before_end * DAY
    new_offers = _offers(config, city, department, posted, salt)
    truth = replace(truth, offers=_with_truth(truth.offers, new_offers, config.quality))
    first_crisis_row = len(truth.offers) - len(new_offers)

    answers = _answers(truth, config, city, first_crisis_row, posted, t_end, rng)
    new_events = _events(answers, truth, new_offers, events, manifest, salt)
    offers = pd.concat([offers, new_offers], ignore_index=True)
    events = pd.concat([events, new_events], ignore_index=True).sort_values(
        "createdAt", kind="stable"
    )
    manifest_path.unlink()
    schema.write_table(offers, "offers", out / OFFERS_FILE)
    schema.write_table(events.reset_index(drop=True), "events", out / EVENTS_FILE)
    save_truth(truth, out / TRUTH_DIR)
    manifest["scenario"] = "crisis"
    manifest["crisis"] = {
        "department": department,
        "city": city["name"],
        "lat": city["lat"],
        "lon": city["lon"],
        "posted_at": pd.Timestamp(posted, unit="s", tz="UTC").isoformat(),
        "offers": new_offers["id"].tolist(),
        "applies": len(answers),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
    }
    manifest["counts"]["offers"] = len(offers)
    manifest["counts"]["events"] = len(events)
    manifest["counts"]["applies"] = manifest["counts"].get("applies", 0) + len(answers)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _place(
    profiles: pd.DataFrame, manifest: dict[str, Any], rng: np.random.Generator
) -> tuple[str, dict[str, Any]]:
    """The department struck (weighted among the ten most peopled) and its largest city."""
    top = profiles["departmentCode"].value_counts().head(10)
    department = str(rng.choice(top.index.to_numpy(), p=(top / top.sum()).to_numpy()))
    cities = geo.cities().head(manifest["config"]["n_cities"])
    local = cities.loc[cities["department_code"] == department]
    row = local.iloc[0]
    return department, {
        "name": str(row["name"]),
        "postal_code": str(row["postal_code"]),
        "lat": float(row["lat"]),
        "lon": float(row["lon"]),
    }


def _offers(
    config: CrisisConfig, city: dict[str, Any], department: str, posted: int, salt: int
) -> pd.DataFrame:
    """The crisis offers as canonical rows, one per domain."""
    departments = geo.departments().set_index("code")
    n = len(config.domains)
    ids = hex_ids(np.arange(n), salt).to_pylist()
    when = pd.Timestamp(posted, unit="s", tz="UTC")
    rows = []
    for i, (domain, activities) in enumerate(zip(config.domains, config.activities, strict=True)):
        row: dict[str, Any] = dict.fromkeys(schema.OFFER_SCHEMA.names)
        row.update(
            id=ids[i],
            clientId=f"crisis-{i}",
            publisherId="pub_crisis",
            publisherName="Réserve civique",
            organizationName=f"Cellule de crise {departments.loc[department, 'name']}",
            title=f"Urgence inondations à {city['name']} : {domain}",
            description=f"Inondations : besoin de bénévoles à {city['name']}.",
            schedule="une journée ou plus, ponctuel",
            domain=domain,
            activities=list(activities),
            type=taxonomy.BENEVOLAT,
            snu=False,
            places=config.places,
            remote="no",
            openToMinors=False,
            startAt=when + pd.Timedelta(days=1),
            endAt=when + pd.Timedelta(days=config.open_days),
            postedAt=when,
            createdAt=when,
            updatedAt=when,
            statusCode=taxonomy.STATUS_ACCEPTED,
            city=city["name"],
            postalCode=city["postal_code"],
            departmentCode=department,
            departmentName=str(departments.loc[department, "name"]),
            region=str(departments.loc[department, "region_name"]),
            lat=city["lat"],
            lon=city["lon"],
            tags=["urgence", "inondations"],
        )
        rows.append(row)
    return schema.conform(pd.DataFrame(rows), "offers").to_pandas()


def _with_truth(known: OffersTruth, offers: pd.DataFrame, quality: float) -> OffersTruth:
    """The ground truth with the crisis offers appended."""
    n = len(offers)
    mix = np.zeros((n, len(taxonomy.QUIZ_ACTIVITIES)))
    for i, activities in enumerate(offers["activities"]):
        for activity in activities:
            mix[i, taxonomy.QUIZ_ACTIVITIES.index(taxonomy.ACTIVITY_TO_QUIZ[activity])] += 1
    mix /= mix.sum(axis=1, keepdims=True)
    added = {
        "ids": offers["id"].to_numpy(dtype=str),
        "programme": np.full(n, taxonomy.PROGRAMMES.index(taxonomy.BENEVOLAT), np.int8),
        "domain": offers["domain"].map(taxonomy.DOMAINS.index).to_numpy(np.int8),
        "activity_mix": mix,
        "remote": np.full(n, taxonomy.REMOTE_VALUES.index("no"), np.int8),
        "lat": offers["lat"].to_numpy(float),
        "lon": offers["lon"].to_numpy(float),
        "paid": np.zeros(n, bool),
        "rhythm": np.array(
            [offer_rhythm(t, s) for t, s in zip(offers["type"], offers["schedule"], strict=True)],
            np.int8,
        ),
        "quality": np.full(n, quality),
    }
    return OffersTruth(
        **{
            name: np.concatenate([np.asarray(getattr(known, name)), value]).astype(
                np.asarray(getattr(known, name)).dtype
            )
            for name, value in added.items()
        }
    )


@dataclass(frozen=True)
class _Answers:
    person: np.ndarray  # rows of truth.people
    offer: np.ndarray  # rows of truth.offers
    time: np.ndarray  # epoch seconds

    def __len__(self) -> int:
        return len(self.person)


def _answers(
    truth: Any,
    config: CrisisConfig,
    city: dict[str, Any],
    first_row: int,
    posted: int,
    t_end: int,
    rng: np.random.Generator,
) -> _Answers:
    """Who answers which crisis offer, and when (module docstring)."""
    people = truth.people
    distance = geo.haversine_km(people.lat, people.lon, city["lat"], city["lon"])
    near = np.flatnonzero((distance <= config.reach_km) & (people.age >= taxonomy.ADULT_AGE))
    crisis = np.arange(first_row, len(truth.offers))
    value = utility(truth, near[:, None], crisis[None, :])
    choice = np.argmax(value + rng.gumbel(size=value.shape), axis=1)
    drive = value[np.arange(len(near)), choice] + np.log(people.activity_level[near])
    target = config.responder_share * len(near)
    intercept = brentq(lambda b: expit(b + drive).sum() - target, -60.0, 60.0)
    answers = rng.random(len(near)) < expit(intercept + drive)
    delay = rng.exponential(config.answer_days * DAY, len(near)).astype(np.int64)
    time = np.minimum(posted + 3600 + delay, t_end - 3600)
    return _Answers(near[answers], crisis[choice[answers]], time[answers])


def answer_probability(
    truth: Any, record: dict[str, Any], people: np.ndarray, offers: np.ndarray
) -> np.ndarray:
    """P(person answers crisis offer) for rows `people` × crisis rows `offers` of the truth, in
    expectation over `_answers`' draws: the choice's Gumbel gives the softmax of the
    utilities, then sigmoid(b + utility + log activity level); b is solved, as there, so that
    `responder_share` of the adults within reach answer (on average over the choice). Zero
    for a minor or a person out of reach.

    Args:
        truth: the dataset's truth (with the crisis offers).
        record: the manifest's `crisis` record (place, offer ids, knobs).
    """
    config = CrisisConfig(**{**asdict(CrisisConfig()), **record["config"]})
    crisis = truth.offer_index(np.asarray(record["offers"]))
    everyone = truth.people
    distance = geo.haversine_km(everyone.lat, everyone.lon, record["lat"], record["lon"])
    reached = (distance <= config.reach_km) & (everyone.age >= taxonomy.ADULT_AGE)

    def parts(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = utility(truth, rows[:, None], crisis[None, :])
        choice = np.exp(value - value.max(axis=1, keepdims=True))
        choice /= choice.sum(axis=1, keepdims=True)
        return choice, value + np.log(everyone.activity_level[rows])[:, None]

    near = np.flatnonzero(reached)
    choice, drive = parts(near)
    target = config.responder_share * len(near)
    intercept = brentq(lambda b: (choice * expit(b + drive)).sum() - target, -60.0, 60.0)
    choice, drive = parts(np.asarray(people))
    column = np.array([list(crisis).index(row) for row in offers], dtype=np.int64)
    answer = choice[:, column] * expit(intercept + drive[:, column])
    return np.where(reached[np.asarray(people)][:, None], answer, 0.0)


def _events(
    answers: _Answers,
    truth: Any,
    offers: pd.DataFrame,
    known_events: pd.DataFrame,
    manifest: dict[str, Any],
    salt: int,
) -> pd.DataFrame:
    """A print, a click and an apply per answer, chained by requestId and clickId."""
    n = len(answers)
    offer_ids = truth.offers.ids[answers.offer]
    user_ids = truth.people.ids[answers.person]
    publisher = offers.set_index("id")["publisherId"].reindex(offer_ids).to_numpy(dtype=object)
    platform = _platform_publisher(known_events)
    request = hex_ids(np.arange(n), salt + 1).to_numpy(zero_copy_only=False)
    click = hex_ids(np.arange(n), salt + 2).to_numpy(zero_copy_only=False)
    device = hex_ids(answers.person, salt + 3).to_numpy(zero_copy_only=False)
    frames = []
    for step, (kind, offset) in enumerate((("print", -120), ("click", -60), ("apply", 0))):
        frame = pd.DataFrame(
            {
                "id": hex_ids(np.arange(n) + step * n, salt + 4).to_numpy(zero_copy_only=False),
                "type": kind,
                "createdAt": pd.to_datetime(answers.time + offset, unit="s", utc=True),
                "missionId": offer_ids,
                "toPublisherId": publisher,
                "fromPublisherId": platform,
                "source": "campaign",
                "sourceId": _CAMPAIGN,
                "user": device,
                "userId": user_ids,
                "clickId": None if kind == "print" else click,
                "requestId": request,
                "clientEventId": hex_ids(np.arange(n) + step * n, salt + 5).to_numpy(
                    zero_copy_only=False
                ),
                "isBot": False,
                "status": "PENDING" if kind == "apply" else None,
                "position": 1 if kind != "apply" else None,
                "candidateAge": None,
                "candidatePostalCode": None,
            }
        )
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["createdAt"] = out["createdAt"].dt.as_unit("ms")
    return schema.conform(out, "events").to_pandas(types_mapper=pd.ArrowDtype)


def _platform_publisher(events: pd.DataFrame) -> str | None:
    """The platform's own publisher id (the site that shows campaign lists)."""
    sources = events.loc[events["source"] == "campaign", "fromPublisherId"]
    return str(sources.mode().iloc[0]) if len(sources) else None

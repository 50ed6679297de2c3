"""Simulated catalogue: offers of the four programmes posted, started, ended and deleted over
the year, placed by population, described in French, each with a hidden quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys import taxonomy
from recsys.arrays import offer_rhythm
from recsys.simulation import vocabulary as vocab
from recsys.simulation.config import PROGRAMME_SHARES, SimulationConfig
from recsys.simulation.ids import hex_ids
from recsys.simulation.truth import N_QUIZ_ACTIVITIES, OffersTruth

DAY = 86_400
# Monthly weights of new offers and new visitors, September first (the school year).
MONTH_WEIGHTS = np.array([1.35, 1.2, 1.0, 0.75, 1.15, 1.0, 1.05, 0.95, 0.9, 0.9, 0.85, 0.8])
_QUIZ_ACTIVITY_INDEX = {name: i for i, name in enumerate(taxonomy.QUIZ_ACTIVITIES)}
_BENEVOLAT, _SERVICE_CIVIQUE, _POMPIERS, _RESERVE = range(4)
_TECH_DOMAINS = frozenset(
    {"numerique", "communication", "benevolat-competences", "recherche", "gestion-finance-droit"}
)


@dataclass(frozen=True)
class SimulatedOffers:
    """The offers table, its truth, and what diffusion needs (times in seconds since epoch)."""

    frame: pd.DataFrame  # canonical offers table (schema.OFFER_SCHEMA)
    truth: OffersTruth
    publisher: np.ndarray  # int16 index into vocabulary.PUBLISHERS
    posted_at: np.ndarray  # int64
    start_at: np.ndarray  # int64
    active_from: np.ndarray  # int64: diffused from (posting)
    active_to: np.ndarray  # int64: diffused strictly before (end, deletion or simulation end)
    snu: np.ndarray  # bool
    open_to_minors: np.ndarray  # int8 1 yes, 0 no, -1 missing
    places: np.ndarray  # float64, NaN unknown
    publisher_ids: list[str]  # publisherId per vocabulary.PUBLISHERS row


def day_weights(days: int, start: pd.Timestamp) -> np.ndarray:
    """Probability of each simulated day, following `MONTH_WEIGHTS` (normalised)."""
    dates = pd.date_range(start, periods=days, freq="D")
    weights = MONTH_WEIGHTS[(dates.month.to_numpy() - 9) % 12]
    return weights / weights.sum()


def simulate_offers(
    config: SimulationConfig,
    cities: pd.DataFrame,
    rng: np.random.Generator,
    start: pd.Timestamp,
    salt: int,
) -> SimulatedOffers:
    """Draw `config.n_offers` offers over the year starting at `start`."""
    n = config.n_offers
    t0 = int(start.timestamp())
    t_end = t0 + config.days * DAY
    programme = rng.choice(4, size=n, p=list(PROGRAMME_SHARES.values()))
    publisher = _publishers(programme, rng)
    domain = _domains(programme, publisher, rng)
    activities = _activities(programme, domain, rng)
    city = rng.choice(len(cities), size=n, p=_population_weights(cities))
    remote = _remote(programme, domain, rng)
    lat, lon = _jitter(cities, city, 2.0, rng)
    no_address = (remote == taxonomy.REMOTE_VALUES.index("full")) & (rng.random(n) < 0.4)
    lat[no_address] = np.nan
    lon[no_address] = np.nan

    schedule, kind, months = _schedules(programme, rng)
    times = _lifecycle(programme, kind, months, config, rng, t0, t_end)
    accepted = rng.random(n) >= 0.03
    snu = np.where(programme == _SERVICE_CIVIQUE, rng.random(n) < 0.12, rng.random(n) < 0.03)
    snu &= programme <= _SERVICE_CIVIQUE
    open_to_minors = _open_to_minors(programme, snu, rng)
    places = _places(programme, rng)
    amount, amount_max, unit = _compensation(programme, rng)
    quality = rng.normal(size=n) + rng.normal(0.0, 0.3, len(vocab.PUBLISHERS))[publisher]

    publisher_ids = hex_ids(np.arange(len(vocab.PUBLISHERS)), salt + 1, width=16).to_pylist()
    ids = hex_ids(np.arange(n), salt, width=16).to_numpy(zero_copy_only=False).astype(str)
    client_ids = pd.Series(publisher).groupby(publisher).cumcount().to_numpy() + 100_000
    text = _texts(
        programme, domain, activities, schedule, snu, open_to_minors, remote, cities, city, rng
    )
    city_rows = cities.iloc[city]
    stamp = _timestamps
    frame = pd.DataFrame(
        {
            "id": ids,
            "clientId": client_ids.astype(str),
            "publisherId": np.array(publisher_ids, dtype=object)[publisher],
            "publisherName": np.array([p for p, _ in vocab.PUBLISHERS], dtype=object)[publisher],
            "organizationName": text["organization"],
            "title": text["title"],
            "description": text["description"],
            "schedule": schedule,
            "domain": np.array(taxonomy.DOMAINS, dtype=object)[domain],
            "activities": activities,
            "type": np.array(taxonomy.PROGRAMMES, dtype=object)[programme],
            "snu": snu,
            "snuPlaces": pd.Series(rng.integers(1, 5, n), dtype="Int32").where(snu),
            "places": pd.array(places, dtype="Float64").astype("Int32"),
            "remote": np.array(taxonomy.REMOTE_VALUES, dtype=object)[remote],
            "openToMinors": _tristate(open_to_minors),
            "reducedMobilityAccessible": _tristate(rng.choice([1, 0, -1], n, p=[0.3, 0.3, 0.4])),
            "closeToTransport": _tristate(rng.choice([1, 0, -1], n, p=[0.5, 0.15, 0.35])),
            "startAt": stamp(times["start"]),
            "endAt": stamp(times["end"]),
            "postedAt": stamp(times["posted"]),
            "createdAt": stamp(times["created"]),
            "updatedAt": stamp(times["updated"]),
            "deletedAt": stamp(times["deleted"]),
            "compensationAmount": amount,
            "compensationAmountMax": amount_max,
            "compensationUnit": unit,
            "compensationType": np.where(np.isnan(amount), None, "net"),
            "statusCode": np.where(accepted, taxonomy.STATUS_CODES[0], taxonomy.STATUS_CODES[1]),
            "city": np.where(no_address, None, city_rows["name"].to_numpy(dtype=object)),
            "postalCode": np.where(
                no_address, None, city_rows["postal_code"].to_numpy(dtype=object)
            ),
            "departmentCode": np.where(
                no_address, None, city_rows["department_code"].to_numpy(dtype=object)
            ),
            "departmentName": np.where(
                no_address, None, city_rows["department_name"].to_numpy(dtype=object)
            ),
            "region": np.where(no_address, None, city_rows["region_name"].to_numpy(dtype=object)),
            "lat": lat,
            "lon": lon,
            "tags": text["tags"],
        }
    )
    rhythm = np.array(
        [offer_rhythm(taxonomy.PROGRAMMES[p], s) for p, s in zip(programme, schedule, strict=True)],
        dtype=np.int8,
    )
    truth = OffersTruth(
        ids=ids,
        programme=programme.astype(np.int8),
        domain=domain.astype(np.int8),
        activity_mix=_activity_mix(activities),
        remote=remote.astype(np.int8),
        lat=lat,
        lon=lon,
        paid=~np.isnan(amount),
        rhythm=rhythm,
        quality=quality,
    )
    ends = np.where(times["end"] >= 0, times["end"] + 1, np.iinfo(np.int64).max)
    deleted = np.where(times["deleted"] >= 0, times["deleted"], np.iinfo(np.int64).max)
    active_to = np.minimum(np.minimum(ends, deleted), t_end)
    active_to = np.where(accepted, active_to, times["posted"])  # refused: never diffused
    return SimulatedOffers(
        frame=frame,
        truth=truth,
        publisher=publisher.astype(np.int16),
        posted_at=times["posted"],
        start_at=times["start"],
        active_from=times["posted"],
        active_to=active_to,
        snu=snu,
        open_to_minors=open_to_minors,
        places=places,
        publisher_ids=publisher_ids,
    )


def _population_weights(cities: pd.DataFrame) -> np.ndarray:
    weights = cities["population"].to_numpy(dtype=float)
    return weights / weights.sum()


def _jitter(
    cities: pd.DataFrame, city: np.ndarray, km: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """City centre plus a normal offset of `km` per axis, so that places are not all equal."""
    lat = cities["lat"].to_numpy()[city] + rng.normal(0.0, km, len(city)) / 111.2
    lon = cities["lon"].to_numpy()[city] + rng.normal(0.0, km, len(city)) / (
        111.2 * np.cos(np.radians(lat))
    )
    return lat, lon


def _publishers(programme: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Programme operators publish most of their programme; associations share the rest by a
    Zipf law, so a few publishers carry most of the catalogue."""
    n = len(programme)
    index = vocab.PUBLISHER_INDEX
    associations = np.arange(5, len(vocab.PUBLISHERS))
    zipf = 1.0 / np.arange(1, len(associations) + 1) ** 1.1
    association = associations[rng.choice(len(associations), size=n, p=zipf / zipf.sum())]
    draw = rng.random(n)
    publisher = association.copy()
    benevolat = programme == _BENEVOLAT
    publisher[benevolat & (draw < 0.45)] = index["JeVeuxAider.gouv.fr"]
    civique = programme == _SERVICE_CIVIQUE
    publisher[civique & (draw < 0.6)] = index["Service Civique"]
    publisher[programme == _POMPIERS] = index["Sapeurs-pompiers de France"]
    reserve = programme == _RESERVE
    publisher[reserve] = np.where(
        draw[reserve] < 0.75, index["Réserve opérationnelle"], index["Garde nationale"]
    )
    return publisher


def _domains(programme: np.ndarray, publisher: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Skewed domains; an association's offers lean to its own domain; uniformed programmes
    stay in security and protection."""
    n = len(programme)
    weights = np.array([vocab.DOMAIN_WEIGHTS[d] for d in taxonomy.DOMAINS])
    domain = rng.choice(len(weights), size=n, p=weights / weights.sum())
    primary = np.array([taxonomy.DOMAINS.index(d) if d else -1 for _, d in vocab.PUBLISHERS])[
        publisher
    ]
    lean = (primary >= 0) & (rng.random(n) < 0.6)
    domain = np.where(lean, primary, domain)
    for code, shares in ((_POMPIERS, taxonomy.SAPEURS_POMPIERS), (_RESERVE, taxonomy.RESERVE)):
        rows = programme == code
        table = vocab.PROGRAMME_DOMAINS[shares]
        choices = np.array([taxonomy.DOMAINS.index(d) for d in table])
        domain[rows] = rng.choice(choices, size=int(rows.sum()), p=list(table.values()))
    return domain


def _activities(
    programme: np.ndarray, domain: np.ndarray, rng: np.random.Generator
) -> list[list[str]]:
    """1 to 3 activities, mostly from the domain's typical ones (the programme's for uniforms)."""
    count = rng.choice([1, 2, 3], size=len(domain), p=[0.45, 0.4, 0.15])
    typical = rng.random((len(domain), 3)) < 0.85
    picks = rng.random((len(domain), 3))
    out: list[list[str]] = []
    for i in range(len(domain)):
        name = taxonomy.PROGRAMMES[programme[i]]
        pool = (
            vocab.PROGRAMME_ACTIVITIES.get(name)
            or vocab.DOMAIN_ACTIVITIES[taxonomy.DOMAINS[domain[i]]]
        )
        chosen: list[str] = []
        for j in range(count[i]):
            source = pool if typical[i, j] else taxonomy.ACTIVITIES
            value = source[int(picks[i, j] * len(source))]
            if value not in chosen:
                chosen.append(value)
        out.append(chosen)
    return out


def _activity_mix(activities: list[list[str]]) -> np.ndarray:
    """Share of each offer's activities per quiz activity type (rows sum to 1)."""
    mix = np.zeros((len(activities), N_QUIZ_ACTIVITIES))
    for row, values in enumerate(activities):
        for value in values:
            mix[row, _QUIZ_ACTIVITY_INDEX[taxonomy.ACTIVITY_TO_QUIZ[value]]] += 1.0 / len(values)
    return mix


def _remote(programme: np.ndarray, domain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tech = np.isin(domain, [taxonomy.DOMAINS.index(d) for d in _TECH_DOMAINS])
    draw = rng.random(len(domain))
    # no, possible, full, local
    tech_cut = np.array([0.5, 0.75, 0.95])
    other_cut = np.array([0.9, 0.95, 0.97])
    remote = np.where(
        tech, np.searchsorted(tech_cut, draw, "right"), np.searchsorted(other_cut, draw, "right")
    )
    return np.where(programme >= _POMPIERS, 0, remote)


def _schedules(
    programme: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Schedule text per programme, the lifecycle kind it implies and Service Civique months."""
    n = len(programme)
    texts = np.empty(n, dtype=object)
    kind = np.full(n, "regular", dtype=object)
    duration = np.zeros(n, dtype=np.int64)
    benevolat = np.flatnonzero(programme == _BENEVOLAT)
    weights = np.array([w for _, _, w in vocab.BENEVOLAT_SCHEDULES])
    pick = rng.choice(len(weights), size=len(benevolat), p=weights / weights.sum())
    texts[benevolat] = np.array([s for s, _, _ in vocab.BENEVOLAT_SCHEDULES], dtype=object)[pick]
    kind[benevolat] = np.array([k for _, k, _ in vocab.BENEVOLAT_SCHEDULES], dtype=object)[pick]
    civique = np.flatnonzero(programme == _SERVICE_CIVIQUE)
    hours = rng.choice([24, 26, 28, 30, 35], size=len(civique))
    months = rng.choice(
        [6, 7, 8, 9, 10, 12], size=len(civique), p=[0.15, 0.15, 0.3, 0.15, 0.15, 0.1]
    )
    texts[civique] = [
        vocab.SERVICE_CIVIQUE_SCHEDULE.format(hours=h, months=m)
        for h, m in zip(hours, months, strict=True)
    ]
    kind[civique] = "civique"
    duration[civique] = months
    for code, options in (
        (_POMPIERS, vocab.FIREFIGHTER_SCHEDULES),
        (_RESERVE, vocab.RESERVE_SCHEDULES),
    ):
        rows = np.flatnonzero(programme == code)
        texts[rows] = np.array(options, dtype=object)[rng.integers(0, len(options), len(rows))]
    return texts, kind, duration


def _lifecycle(
    programme: np.ndarray,
    kind: np.ndarray,
    months: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
    t0: int,
    t_end: int,
) -> dict[str, np.ndarray]:
    """postedAt, startAt, endAt, deletedAt, createdAt, updatedAt in epoch seconds (-1 = null).

    Service Civique is posted weeks before it starts and often withdrawn soon after (filled);
    one-day bénévolat ends the day it starts; regular bénévolat and firefighters are often
    open-ended; a share of everything is deleted early. Offers posted before the simulation
    are kept only in a shape where they are still open when it starts.
    """
    n = len(programme)
    u = rng.random((n, 6))
    before = rng.random(n) < config.offers_before_start
    weights = day_weights(config.days, pd.Timestamp(t0, unit="s"))
    posted_day = rng.choice(config.days, size=n, p=weights)
    posted = t0 + posted_day * DAY + (u[:, 0] * DAY).astype(np.int64)
    posted = np.where(before, t0 - (u[:, 0] * 150 * DAY).astype(np.int64) - 1, posted)
    start = posted.copy()
    end = np.full(n, -1, dtype=np.int64)
    deleted = np.full(n, -1, dtype=np.int64)

    def days(values: np.ndarray) -> np.ndarray:
        return (values * DAY).astype(np.int64)

    civique = programme == _SERVICE_CIVIQUE
    start[civique] = posted[civique] + days(14 + 56 * u[civique, 1])
    end[civique] = start[civique] + days(30.44 * months[civique])
    filled = civique & (u[:, 2] < 0.75)
    deleted[filled] = start[filled] + days(30 * u[filled, 3])

    one_day = kind == "one_day"
    start[one_day] = posted[one_day] + days(5 + 40 * u[one_day, 1])
    end[one_day] = start[one_day] + DAY
    regular = (programme == _BENEVOLAT) & (kind == "regular")
    start[regular] = posted[regular] + days(21 * u[regular, 1])
    bounded = regular & (u[:, 2] >= 0.3)
    end[bounded] = start[bounded] + days(30 + 150 * u[bounded, 3])
    yearly = kind == "yearly"
    start[yearly] = posted[yearly] + days(30 * u[yearly, 1])
    bounded_year = yearly & (u[:, 2] < 0.5)
    end[bounded_year] = start[bounded_year] + days(90 + 275 * u[bounded_year, 3])

    pompiers = programme == _POMPIERS
    start[pompiers] = posted[pompiers] + days(30 * u[pompiers, 1])
    bounded_p = pompiers & (u[:, 2] < 0.5)
    end[bounded_p] = start[bounded_p] + 365 * DAY
    reserve = programme == _RESERVE
    start[reserve] = posted[reserve] + days(7 + 53 * u[reserve, 1])
    end[reserve] = start[reserve] + days(180 + 185 * u[reserve, 3])

    open_ended = (end < 0) & ~civique
    early = ~civique & (u[:, 4] < np.where(open_ended, 0.7, 0.1))
    horizon = np.where(end >= 0, end - posted, 240 * DAY)
    deleted[early] = posted[early] + (u[early, 5] * horizon[early]).astype(np.int64) + DAY

    # Offers posted before the simulation: shift those already closed so they are still open.
    closes = np.minimum(
        np.where(end >= 0, end, t_end * 2), np.where(deleted >= 0, deleted, t_end * 2)
    )
    stale = before & (closes < t0 + 7 * DAY)
    shift = (t0 + days(7 + 50 * u[:, 5]) - closes) * stale
    posted, start = posted + shift, start + shift
    end = np.where(end >= 0, end + shift, -1)
    deleted = np.where(deleted >= 0, deleted + shift, -1)
    deleted = np.where(deleted >= t_end, -1, deleted)  # not deleted yet when exported

    created = posted - days(5 * u[:, 3])
    touched = np.minimum(created + days(60 * u[:, 4]), t_end - 1)
    updated = np.where(deleted >= 0, deleted, np.maximum(touched, posted))
    return {
        "posted": posted,
        "start": start,
        "end": end,
        "deleted": deleted,
        "created": created,
        "updated": updated,
    }


def _open_to_minors(programme: np.ndarray, snu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shares = {  # yes, no, missing
        _BENEVOLAT: [0.25, 0.4, 0.35],
        _SERVICE_CIVIQUE: [0.5, 0.15, 0.35],
        _POMPIERS: [0.6, 0.0, 0.4],
        _RESERVE: [0.0, 0.5, 0.5],
    }
    out = np.empty(len(programme), dtype=np.int8)
    for code, p in shares.items():
        rows = programme == code
        out[rows] = rng.choice([1, 0, -1], size=int(rows.sum()), p=p)
    out[snu] = 1  # an SNU mission hosts 15-17 year-olds
    return out


def _places(programme: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(programme)
    draws = {
        _BENEVOLAT: (0.35, 1 + rng.geometric(0.15, n)),
        _SERVICE_CIVIQUE: (0.1, rng.choice([1, 1, 1, 2, 2, 3, 4, 6], n)),
        _POMPIERS: (0.6, rng.integers(5, 31, n)),
        _RESERVE: (0.5, rng.integers(10, 81, n)),
    }
    places = np.full(n, np.nan)
    missing = rng.random(n)
    for code, (share_missing, values) in draws.items():
        rows = (programme == code) & (missing >= share_missing)
        places[rows] = np.minimum(values[rows], 200)
    return places


def _compensation(
    programme: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Service Civique's monthly allowance, firefighters' hourly one, reservists' paid days."""
    n = len(programme)
    amount = np.full(n, np.nan)
    amount_max = np.full(n, np.nan)
    unit = np.full(n, None, dtype=object)
    civique = programme == _SERVICE_CIVIQUE
    amount[civique] = 620.0
    extra = civique & (rng.random(n) < 0.15)
    amount_max[extra] = 731.0
    unit[civique] = "month"
    pompiers = programme == _POMPIERS
    amount[pompiers] = np.round(rng.uniform(8.5, 12.0, n), 2)[pompiers]
    unit[pompiers] = "hour"
    reserve = programme == _RESERVE
    amount[reserve] = np.round(rng.uniform(50.0, 120.0, n), 0)[reserve]
    unit[reserve] = "day"
    return amount, amount_max, unit


def _tristate(codes: np.ndarray) -> pd.arrays.BooleanArray:
    return pd.array(np.where(codes < 0, None, codes == 1), dtype="boolean")


def _timestamps(seconds: np.ndarray) -> pd.Series:
    values = pd.to_datetime(np.where(seconds >= 0, seconds, 0), unit="s", utc=True)
    return pd.Series(values).where(seconds >= 0).dt.as_unit("ms")


def _texts(
    programme: np.ndarray,
    domain: np.ndarray,
    activities: list[list[str]],
    schedule: np.ndarray,
    snu: np.ndarray,
    open_to_minors: np.ndarray,
    remote: np.ndarray,
    cities: pd.DataFrame,
    city: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, list]:
    """French titles, descriptions, organisation names and tags from the vocabularies.

    A Python loop over offers (string formatting has no vectorised form worth the name); it
    costs a few microseconds per offer.
    """
    names = cities["name"].to_numpy(dtype=object)
    departments = cities["department_name"].to_numpy(dtype=object)
    choice = rng.random((len(domain), 6))
    titles, descriptions, organizations, tags = [], [], [], []
    for i in range(len(domain)):
        programme_name = taxonomy.PROGRAMMES[programme[i]]
        domain_name = taxonomy.DOMAINS[domain[i]]
        place = {"city": names[city[i]], "department": departments[city[i]]}
        patterns = vocab.PROGRAMME_ORGANISATIONS.get(
            programme_name, vocab.ORGANISATION_PATTERNS[domain_name]
        )
        organization = _pick(patterns, choice[i, 0]).format(**place)
        lead = vocab.ACTIVITY_PHRASES[activities[i][0]][0]
        audiences = vocab.DOMAIN_AUDIENCES.get(domain_name, ())
        if programme_name == taxonomy.SAPEURS_POMPIERS:
            title = f"Sapeur-pompier volontaire à {place['city']} : {lead.lower()}"
        elif programme_name == taxonomy.RESERVE:
            title = f"Réserve opérationnelle : {lead.lower()} ({place['department']})"
        elif choice[i, 1] < 0.4:
            title = f"{lead} à {place['city']}"
        elif audiences and choice[i, 1] < 0.7:
            title = f"{lead} auprès {_pick(audiences, choice[i, 2])}"  # "des enfants"
        else:
            title = f"{lead} – {taxonomy.DOMAIN_LABELS_FR[domain_name].lower()}"
        sentences = [
            f"{organization} recherche des volontaires.",
            _pick(vocab.DOMAIN_SENTENCES[domain_name], choice[i, 3]),
            *(vocab.ACTIVITY_PHRASES[a][1] for a in activities[i]),
            vocab.PROGRAMME_SENTENCES[programme_name],
        ]
        if snu[i]:
            sentences.append(vocab.SNU_SENTENCE)
        if open_to_minors[i] == 1:
            sentences.append(vocab.MINORS_SENTENCE)
        keywords = vocab.DOMAIN_KEYWORDS[domain_name]
        sentences.append(f"Thèmes : {', '.join(keywords[:3])}.")
        sentences.append(f"Rythme : {schedule[i]}.")
        if remote[i] == taxonomy.REMOTE_VALUES.index("full"):
            sentences.append("Mission réalisable entièrement à distance.")
        else:
            sentences.append(f"Lieu : {place['city']} ({place['department']}).")
        offer_tags = [vocab.PROGRAMME_TAGS[programme_name], _pick(keywords, choice[i, 4])]
        if choice[i, 5] < 0.5:
            offer_tags.append(_pick(keywords, choice[i, 5] * 2))
        titles.append(title)
        descriptions.append(" ".join(sentences))
        organizations.append(organization)
        tags.append(list(dict.fromkeys(offer_tags)))
    return {
        "title": titles,
        "description": descriptions,
        "organization": organizations,
        "tags": tags,
    }


def _pick(options: tuple[str, ...], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]

"""Run a whole simulation and write the dataset: tables, ground truth and manifest.

Output folder:
    offers.parquet, events.parquet, profiles.parquet   canonical tables (recsys.schema)
    truth/people.npz, truth/offers.npz, truth/utility.json   hidden traits and utility model
    truth/diffusion.json   widgets and campaigns, for analysis
    manifest.json   preset, seed, generator version, counts, dates (written last: a folder
                    without it is an interrupted run)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys import geo, taxonomy
from recsys.arrays import (
    offer_arrays,
    profile_arrays,
)
from recsys.config import EVENTS_FILE, OFFERS_FILE, PROFILES_FILE, TRUTH_DIR
from recsys.schema import read_table, write_table
from recsys.simulation import diffusion
from recsys.simulation.applications import Applications
from recsys.simulation.config import GENERATOR_VERSION, SimulationConfig
from recsys.simulation.diffusion import Interactions, Sessions, Vocabularies
from recsys.simulation.ids import hex_ids
from recsys.simulation.offers import DAY, SimulatedOffers, simulate_offers
from recsys.simulation.people import SimulatedPeople, simulate_people
from recsys.simulation.truth import Truth, save_truth

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
_PRINT, _CLICK, _APPLY, _ACCOUNT = (
    taxonomy.EVENT_TYPES.index(t) for t in ("print", "click", "apply", "account")
)
_PLURAL = {"print": "prints", "click": "clicks", "apply": "applies", "account": "accounts"}


def simulate(
    config: SimulationConfig,
    seed: int,
    out: Path,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Simulate a dataset into `out` and return its manifest.

    Deterministic: the same (config, seed) writes the same files.
    """
    say = progress or logger.info
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    world = build_world(config, seed, say)
    offers, people, sessions, widgets, cities = (
        world.offers,
        world.people,
        world.sessions,
        world.widgets,
        world.cities,
    )
    # Profiles first: eligibility reads them exactly as evaluation will, from the file.
    write_table(people.frame, "profiles", out / PROFILES_FILE)
    applications = world.applications(read_table(out / PROFILES_FILE))
    interactions = diffusion.diffuse(
        config,
        cities,
        sessions,
        offers,
        world.truth,
        applications,
        world.rng_diffusion,
        world.start,
        say,
    )
    _withdraw_filled(offers.frame, applications.filled_at, world.t_end)
    write_table(offers.frame, "offers", out / OFFERS_FILE)
    say(f"events: assembling ({len(interactions.print_session):,} prints)")
    events = _events(
        interactions,
        sessions,
        offers,
        people,
        world.vocabularies,
        world.rng_events,
        world.salts[6],
        config.rates.account_share,
    )
    write_table(events, "events", out / EVENTS_FILE)
    save_truth(world.truth, out / TRUTH_DIR)
    (out / TRUTH_DIR / "diffusion.json").write_text(
        json.dumps(
            {
                "widgets": [
                    {
                        "sourceId": widgets.ids[i],
                        "fromPublisherId": widgets.host_ids[i],
                        "host": widgets.host_names[i],
                        "city": str(cities["name"].iloc[widgets.city[i]]),
                        "radiusKm": float(widgets.radius[i]),
                        "programme": _name(taxonomy.PROGRAMMES, widgets.programme[i]),
                        "domain": _name(taxonomy.DOMAINS, widgets.domain[i]),
                        "sort": ["distance", "recent"][int(widgets.sort[i])],
                        "size": int(widgets.size[i]),
                        "traffic": float(widgets.traffic[i]),
                    }
                    for i in range(len(widgets.ids))
                ],
                "platformPublisherId": world.vocabularies.from_publishers[
                    len(offers.publisher_ids)
                ],
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    manifest = _manifest(config, seed, world.start, offers, people, sessions, events)
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"done: {manifest['counts']['events']:,} events in {out}")
    return manifest


@dataclass
class World:
    """Everything a simulation draws before diffusion, and the random streams diffusion uses.

    `simulate` diffuses it once with the incumbent's lists; `recsys.simulation.replay` rebuilds
    the same world from a dataset's manifest and diffuses it again with other lists.
    """

    config: SimulationConfig
    start: pd.Timestamp
    t_end: int
    cities: pd.DataFrame
    offers: SimulatedOffers
    people: SimulatedPeople
    truth: Truth
    widgets: diffusion.Widgets
    sessions: Sessions
    vocabularies: Vocabularies
    rng_diffusion: np.random.Generator
    rng_applies: np.random.Generator
    rng_events: np.random.Generator
    salts: list[int]

    def applications(self, profiles: pd.DataFrame) -> Applications:
        """The applications state, starting empty, judged on the profiles as written."""
        return Applications(
            self.config,
            self.offers,
            offer_arrays(self.offers.frame),
            profile_arrays(profiles),
            self.people.truth.age,
            self.rng_applies,
            self.t_end,
        )


def build_world(
    config: SimulationConfig, seed: int, say: Callable[[str], None] = logger.info
) -> World:
    """Draw offers, people, widgets and sessions of (config, seed), as `simulate` does."""
    sequence = np.random.SeedSequence(seed)
    rng_offers, rng_people, rng_widgets, rng_sessions, rng_diffusion, rng_applies, rng_events = (
        np.random.default_rng(s) for s in sequence.spawn(7)
    )
    salts = [int(x) for x in sequence.generate_state(8, dtype=np.uint64)]
    start = pd.Timestamp(config.start, tz="UTC")
    cities = geo.cities().head(config.n_cities).reset_index(drop=True)

    say(f"offers: drawing {config.n_offers:,}")
    offers = simulate_offers(config, cities, rng_offers, start, salts[0])
    say(f"people: drawing {config.n_people:,}")
    people = simulate_people(config, cities, rng_people, start, salts[1])
    truth = Truth(people.truth, offers.truth, config.weights, noise_salt=salts[2])
    widgets = diffusion.make_widgets(config, cities, rng_widgets, salts[3])
    sessions, vocabularies = diffusion.make_sessions(
        config, cities, people, offers, widgets, rng_sessions, start, salts[4]
    )
    say(f"sessions: {len(sessions):,} ({int(sessions.bot.sum()):,} by bots)")
    return World(
        config=config,
        start=start,
        t_end=int(start.timestamp()) + config.days * DAY,
        cities=cities,
        offers=offers,
        people=people,
        truth=truth,
        widgets=widgets,
        sessions=sessions,
        vocabularies=vocabularies,
        rng_diffusion=rng_diffusion,
        rng_applies=rng_applies,
        rng_events=rng_events,
        salts=salts,
    )


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a simulated dataset, or None when the folder holds no finished run."""
    path = Path(directory) / MANIFEST_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _name(names: tuple[str, ...], code: int) -> str | None:
    return names[int(code)] if code >= 0 else None


def _withdraw_filled(frame: pd.DataFrame, filled_at: np.ndarray, t_end: int) -> None:
    """Record in the offers table the withdrawal of offers whose places were all taken."""
    filled = (filled_at >= 0) & (filled_at < t_end)
    when = pd.Series(pd.to_datetime(filled_at[filled], unit="s", utc=True)).dt.as_unit("ms")
    rows = np.flatnonzero(filled)
    deleted = frame["deletedAt"].iloc[rows].reset_index(drop=True)
    deleted = deleted.where(deleted.notna() & (deleted < when), when)
    frame.loc[frame.index[rows], "deletedAt"] = deleted.to_numpy()
    updated = frame["updatedAt"].iloc[rows].reset_index(drop=True)
    frame.loc[frame.index[rows], "updatedAt"] = updated.where(updated > deleted, deleted).to_numpy()


def _events(
    interactions: Interactions,
    sessions: Sessions,
    offers: SimulatedOffers,
    people: SimulatedPeople,
    vocabularies: Vocabularies,
    rng: np.random.Generator,
    salt: int,
    account_share: float,
) -> pd.DataFrame:
    """The events table: prints, clicks, account creations and applies, sorted by time."""
    it = interactions
    n_print, n_click, n_apply = len(it.print_session), len(it.click_session), len(it.apply_click)
    with_account = rng.random(n_apply) < account_share
    account_click = it.apply_click[with_account]
    click_t = it.click_time[account_click]
    account_time = click_t + (
        (it.apply_time[with_account] - click_t) * rng.uniform(0.2, 0.8, len(account_click))
    ).astype(np.int64)
    n_account = len(account_click)

    kind = np.repeat([_PRINT, _CLICK, _ACCOUNT, _APPLY], [n_print, n_click, n_account, n_apply])
    click_of = np.concatenate([account_click, it.apply_click])
    session = np.concatenate([it.print_session, it.click_session, it.click_session[click_of]])
    offer = np.concatenate([it.print_offer, it.click_offer, it.click_offer[click_of]])
    time_ms = np.concatenate(
        [
            sessions.time[it.print_session] * 1000 + it.print_position,
            it.click_time * 1000 + 500,
            account_time * 1000 + 600,
            it.apply_time * 1000 + 700,
        ]
    )
    position = np.concatenate(
        [it.print_position, it.click_position, np.full(n_account + n_apply, -1)]
    )
    counter = np.arange(len(kind))
    click_ref = np.concatenate(
        [np.full(n_print, -1), n_print + np.arange(n_click), n_print + click_of]
    )
    status = np.concatenate([np.full(n_print + n_click + n_account, -1), it.apply_status])

    person = sessions.person[session]
    human = person >= 0
    age = np.where(human, people.observed_age[np.maximum(person, 0)], np.nan)
    gives_age = (kind == _APPLY) & ~np.isnan(age) & (rng.random(len(kind)) < 0.85)
    gives_postal = (kind == _APPLY) & human & (rng.random(len(kind)) < 0.85)

    # Sort the index arrays, not the finished table: one copy of ten million strings is enough.
    order = np.lexsort((counter, time_ms))
    kind, session, offer, time_ms, position = (
        a[order] for a in (kind, session, offer, time_ms, position)
    )
    counter, click_ref, status, person, human = (
        a[order] for a in (counter, click_ref, status, person, human)
    )
    age, gives_age, gives_postal = age[order], gives_age[order], gives_postal[order]
    source_id = sessions.source_id[session]
    identified = sessions.identified[session]
    safe_person = np.maximum(person, 0)

    def take(
        values: list[str] | pa.Array, index: np.ndarray, present: np.ndarray | None = None
    ) -> pa.Array:
        array = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
        return array.take(pa.array(index, mask=None if present is None else ~present))

    click_ids = hex_ids(n_print + np.arange(n_click), salt)  # = the clicks' own ids
    columns = {
        "id": hex_ids(counter, salt),
        "type": take(list(taxonomy.EVENT_TYPES), kind),
        "createdAt": pa.array(time_ms, type=pa.timestamp("ms", tz="UTC")),
        "missionId": take(offers.frame["id"].to_numpy(dtype=object).tolist(), offer),
        "toPublisherId": take(offers.publisher_ids, offers.publisher[offer]),
        "fromPublisherId": take(vocabularies.from_publishers, sessions.from_publisher[session]),
        "source": take(list(diffusion.SOURCES), sessions.source[session]),
        "sourceId": take(vocabularies.source_ids, np.maximum(source_id, 0), source_id >= 0),
        "user": take(vocabularies.users, sessions.device[session]),
        "userId": take(pa.array(people.frame["userId"].array), safe_person, human & identified),
        "clickId": take(click_ids, np.maximum(click_ref - n_print, 0), click_ref >= 0),
        "requestId": hex_ids(session, salt + 1),
        "clientEventId": hex_ids(counter, salt + 2),
        "isBot": pa.array(sessions.bot[session]),
        "status": take(list(taxonomy.APPLY_STATUSES), np.maximum(status, 0), status >= 0),
        "position": pa.array(position.astype(np.int16), mask=position < 0),
        "candidateAge": pa.array(np.nan_to_num(age).astype(np.int16), mask=~gives_age),
        "candidatePostalCode": take(
            people.frame["postalCode"].to_numpy(dtype=object).tolist(), safe_person, gives_postal
        ),
    }
    return pa.table(columns).to_pandas(types_mapper=pd.ArrowDtype)


def _manifest(
    config: SimulationConfig,
    seed: int,
    start: pd.Timestamp,
    offers: SimulatedOffers,
    people: SimulatedPeople,
    sessions: Sessions,
    events: pd.DataFrame,
) -> dict[str, Any]:
    kinds = events["type"].value_counts()
    return {
        "preset": config.name,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "start": start.date().isoformat(),
        "end": (start.date() + timedelta(days=config.days - 1)).isoformat(),
        "counts": {
            "offers": len(offers.frame),
            "people": len(people.frame),
            "sessions": len(sessions),
            "bot_sessions": int(sessions.bot.sum()),
            "events": len(events),
            **{_PLURAL[kind]: int(kinds.get(kind, 0)) for kind in taxonomy.EVENT_TYPES},
        },
        "config": config.to_dict(),
        "files": [OFFERS_FILE, EVENTS_FILE, PROFILES_FILE, TRUTH_DIR],
    }

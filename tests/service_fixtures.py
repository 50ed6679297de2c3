"""A tiny world for the ranking service: catalog, profiles, a trained bundle, a live server.

Offers and dates are relative to the moment the fixture is built, because the service ranks
at the real current time. Layout:

* 16 regular offers: Paris and Lyon × sport and culture × 4, programmes alternating
  bénévolat / Service Civique, publishers p0..p3 (ids `paris-sport-0` ... `lyon-culture-3`);
* special offers that eligibility must keep out (or in): `ended` (ended yesterday), `future`
  (posted in five days), `refused`, `full` (no places left), `marseille-onsite` (far away),
  `marseille-remote` (full remote: anywhere), `paris-adults` (bénévolat closed to minors),
  `paris-reserve` (réserve opérationnelle, 17-72);
* 12 training users (`sport-paris-0` ... `culture-lyon-2`): sport fans interacted with every
  sport offer of their city and one of the other city, culture fans likewise with culture.
  Their stored profiles carry no quiz answers, so only what the model learned from their
  history can tell a sport fan from a culture fan.

`write_bundle` trains a model on that history (features from the real encoders) and writes
a ranker bundle with `recsys.bundle.save_bundle`, as training does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import taxonomy
from recsys.bundle import save_bundle
from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.encoding import OfferEncoder, OfferEncoderConfig, UserEncoder
from recsys.models import create_model
from recsys.models.base import Recommender
from tests.fixtures import LYON, PARIS, make_offers_frame, make_profiles_frame

MARSEILLE = (43.2965, 5.3698)
CITIES = {
    "paris": (PARIS, "75001", "75", "Île-de-France"),
    "lyon": (LYON, "69001", "69", "Auvergne-Rhône-Alpes"),
}
TOPICS = {
    "sport": ("sport", ["animation-sportive"], "Initiation au football pour les enfants"),
    "culture": ("culture-loisirs", ["atelier-creatif"], "Atelier de peinture et de théâtre"),
}
PER_CELL = 4
LIGHTFM_PARAMS = {"embedding_size": 8, "epochs": 100, "learning_rate": 0.1, "seed": 7}
HYBRID_PARAMS = {"learned_params": LIGHTFM_PARAMS, "seed": 7}


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("s")


def regular_offers(now: pd.Timestamp | None = None) -> pd.DataFrame:
    """The 16 regular offers (see the module docstring)."""
    now = _now() if now is None else now
    rows = []
    for city, ((lat, lon), postal, department, region) in CITIES.items():
        for topic, (domain, activities, title) in TOPICS.items():
            for i in range(PER_CELL):
                rows.append(
                    {
                        "id": f"{city}-{topic}-{i}",
                        "domain": domain,
                        "activities": activities,
                        "title": f"{title} ({city} {i})",
                        "description": f"{title}. Mission {topic} à {city}.",
                        "type": taxonomy.SERVICE_CIVIQUE if i % 2 else taxonomy.BENEVOLAT,
                        "publisherId": f"p{i}",
                        "publisherName": f"Publisher {i}",
                        "lat": lat + 0.01 * (i + 1),
                        "lon": lon + 0.01 * (i + 1),
                        "city": city.title(),
                        "postalCode": postal,
                        "departmentCode": department,
                        "region": region,
                        "compensationAmount": 620.0 if i % 2 else None,
                    }
                )
    return _offers(rows, now)


def _offers(rows: list[dict[str, Any]], now: pd.Timestamp) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    columns = {name: frame[name].tolist() for name in frame.columns}
    n = len(frame)
    columns.setdefault("postedAt", [now - pd.Timedelta(days=30)] * n)
    columns.setdefault("createdAt", columns["postedAt"])
    columns.setdefault("updatedAt", columns["postedAt"])
    columns.setdefault("startAt", [now + pd.Timedelta(days=30)] * n)
    columns.setdefault("endAt", [now + pd.Timedelta(days=120)] * n)
    columns["clientId"] = [f"c-{offer_id}" for offer_id in frame["id"]]
    return make_offers_frame(n, **columns)


def special_offers(now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Offers that test eligibility (see the module docstring)."""
    now = _now() if now is None else now
    (plat, plon), _, _, _ = CITIES["paris"]
    base = {
        "domain": "sport",
        "activities": ["animation-sportive"],
        "title": "Mission sport",
        "description": "Mission sport spéciale.",
        "type": taxonomy.BENEVOLAT,
        "publisherId": "p9",
        "publisherName": "Publisher 9",
        "lat": plat + 0.02,
        "lon": plon + 0.02,
        "postedAt": now - pd.Timedelta(days=30),
        "endAt": now + pd.Timedelta(days=120),
        "statusCode": taxonomy.STATUS_ACCEPTED,
        "places": 5,
        "remote": "no",
        "openToMinors": True,
    }
    specials = [
        {"id": "ended", "endAt": now - pd.Timedelta(days=1)},
        {"id": "future", "postedAt": now + pd.Timedelta(days=5)},
        {"id": "refused", "statusCode": "REFUSED"},
        {"id": "full", "places": 0},
        {"id": "marseille-onsite", "lat": MARSEILLE[0], "lon": MARSEILLE[1]},
        {"id": "marseille-remote", "lat": MARSEILLE[0], "lon": MARSEILLE[1], "remote": "full"},
        {"id": "paris-adults", "openToMinors": False},
        {"id": "paris-reserve", "type": taxonomy.RESERVE, "domain": "prevention-protection"},
    ]
    return _offers([{**base, **special} for special in specials], now)


def catalog_offers(now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Regular and special offers together: the served catalog."""
    now = _now() if now is None else now
    return pd.concat([regular_offers(now), special_offers(now)], ignore_index=True)


def new_offer(offer_id: str = "lyon-sport-new", now: pd.Timestamp | None = None) -> pd.DataFrame:
    """An offer posted a minute ago that no model saw: sport, in Lyon, bénévolat."""
    now = _now() if now is None else now
    (lat, lon), postal, department, region = CITIES["lyon"]
    title = TOPICS["sport"][2]
    row = {
        "id": offer_id,
        "domain": "sport",
        "activities": ["animation-sportive"],
        "title": f"{title} (nouvelle)",
        "description": f"{title}. Mission sport à lyon.",
        "type": taxonomy.BENEVOLAT,
        "publisherId": "p8",
        "publisherName": "Publisher 8",
        "lat": lat + 0.005,
        "lon": lon + 0.005,
        "city": "Lyon",
        "postalCode": postal,
        "departmentCode": department,
        "region": region,
        "postedAt": now - pd.Timedelta(minutes=1),
    }
    return _offers([row], now)


def training_profiles() -> pd.DataFrame:
    """The 12 training users' stored profiles: age 20, a place, no quiz."""
    ids, lat, lon, postal, department, region = [], [], [], [], [], []
    for topic in TOPICS:
        for city, ((clat, clon), code, dep, reg) in CITIES.items():
            for i in range(3):
                ids.append(f"{topic}-{city}-{i}")
                lat.append(clat)
                lon.append(clon)
                postal.append(code)
                department.append(dep)
                region.append(reg)
    return make_profiles_frame(
        len(ids),
        userId=ids,
        lat=lat,
        lon=lon,
        postalCode=postal,
        departmentCode=department,
        region=region,
        hasQuiz=False,
        quizDomains=[],
        quizActivities=[],
    )


def applied_elsewhere(users: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
    """Each user's one offer of their topic in the other city (`user-topic-city-i` applied
    to `<other city>-topic-<i mod PER_CELL>`): what the bundle says they applied to."""
    out = np.zeros((len(users), len(offers)))
    for u, user_id in enumerate(users["userId"]):
        topic, city, i = user_id.split("-")
        other = f"{'lyon' if city == 'paris' else 'paris'}-{topic}-{int(i) % PER_CELL}"
        out[u, offers["id"].to_numpy() == other] = 1.0
    return out


def interactions(users: pd.DataFrame, offers: pd.DataFrame) -> np.ndarray:
    """Each user: every offer of their topic in their city, plus one of the other city."""
    out = applied_elsewhere(users, offers)
    topic_of_offer = offers["id"].str.split("-").str[1].to_numpy()
    city_of_offer = offers["id"].str.split("-").str[0].to_numpy()
    for u, user_id in enumerate(users["userId"]):
        topic, city, _ = user_id.split("-")
        out[u, (topic_of_offer == topic) & (city_of_offer == city)] = 1.0
    return out


def train(model_name: str, params: dict[str, Any]) -> tuple[Recommender, SimpleNamespace]:
    """A model trained on the regular offers' history, and a feature-set stand-in for
    `recsys.bundle.save_bundle` (encoders, offers, manifest)."""
    offers = regular_offers()
    profiles = training_profiles()
    offer_encoder = OfferEncoder(OfferEncoderConfig(text_min_df=1)).fit(offers)
    user_encoder = UserEncoder().fit(profiles)
    weights = interactions(profiles, offers)
    data = TrainingData(
        users=UserBatch.encode(profiles, user_encoder),
        offers=OfferBatch.encode(offers, offer_encoder),
        interactions=sp.csr_matrix(weights),
        applies=sp.csr_matrix(weights),
        cutoff=_now(),
    )
    model = create_model(model_name, params)
    model.train(data)
    feature_set = SimpleNamespace(
        offer_encoder=offer_encoder,
        user_encoder=user_encoder,
        applies=sp.csr_matrix(applied_elsewhere(profiles, offers)),
        user_ids=profiles["userId"].to_numpy(dtype=object),
        offer_ids=offers["id"].to_numpy(dtype=object),
        offers=catalog_offers(),
        manifest={
            "data_fingerprint": f"tiny-{model_name}",
            "window": {"name": "test", "start": str(_now()), "end": str(_now())},
        },
    )
    return model, feature_set


def write_bundle(folder: Path, model_name: str = "hybrid", params: dict | None = None) -> Path:
    """Train and save a ranker bundle into `folder` (returned)."""
    if params is None:
        params = {"hybrid": HYBRID_PARAMS, "lightfm": LIGHTFM_PARAMS}.get(model_name, {})
    model, feature_set = train(model_name, params)
    return save_bundle(model, feature_set, folder)  # type: ignore[arg-type]


def write_world(folder: Path, model_name: str = "hybrid") -> dict[str, Path]:
    """Bundle, catalog and profiles files under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "bundle": write_bundle(folder / "bundle", model_name),
        "catalog": folder / "offers.parquet",
        "profiles": folder / "profiles.parquet",
    }
    catalog_offers().to_parquet(paths["catalog"], index=False)
    training_profiles().to_parquet(paths["profiles"], index=False)
    return paths


# --- PostgreSQL -----------------------------------------------------------------------------------

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_available() -> bool:
    """Whether the PostgreSQL server of the `postgres` tests answers."""
    import psycopg

    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database (unique per call), dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    name = f"recsys_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        yield name
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()

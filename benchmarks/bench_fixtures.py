"""The synthetic world the serving benchmarks rank: offers, profiles and a trained bundle.

Shared by `serving_bench.py` (in process and over HTTP) and `load_test.py` (many clients), so
neither benchmark imports the other.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import schema, taxonomy
from recsys.bundle import save_bundle
from recsys.dataset import OfferBatch, TrainingData, UserBatch
from recsys.encoding import OfferEncoder, UserEncoder
from recsys.models import create_model

TRAIN_OFFERS = 2000
TRAIN_USERS = 3000
WORDS = [
    "aide",
    "accompagnement",
    "enfants",
    "sport",
    "football",
    "jardin",
    "nature",
    "culture",
    "musique",
    "theatre",
    "solidarite",
    "personnes",
    "agees",
    "numerique",
    "formation",
    "secours",
    "pompiers",
    "animation",
    "quartier",
    "environnement",
    "dechets",
    "recyclage",
    "education",
    "soutien",
    "scolaire",
    "sante",
    "prevention",
    "lecture",
]
LAT, LON = (42.5, 50.8), (-4.5, 7.8)  # metropolitan France, roughly


def synthetic_offers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n open offers spread over France: programmes, domains, remote mix, ~n/20 publishers."""
    now = pd.Timestamp.now(tz="UTC").floor("s")
    domains = rng.choice(taxonomy.DOMAINS, n)
    activities = rng.choice(taxonomy.ACTIVITIES, (n, 2))
    titles = [" ".join(rng.choice(WORDS, 5)) for _ in range(n)]
    frame = pd.DataFrame(
        {
            "id": [f"o{i}" for i in range(n)],
            "clientId": [f"c{i}" for i in range(n)],
            "publisherId": [f"p{i}" for i in rng.integers(0, max(1, n // 20), n)],
            "publisherName": "publisher",
            "organizationName": "association",
            "title": titles,
            "description": titles,
            "schedule": "2 heures par semaine",
            "domain": domains,
            "activities": [list(pair) for pair in activities],
            "type": rng.choice(taxonomy.PROGRAMMES, n, p=[0.5, 0.3, 0.1, 0.1]),
            "snu": rng.random(n) < 0.05,
            "snuPlaces": None,
            "places": rng.integers(1, 10, n),
            "remote": rng.choice(taxonomy.REMOTE_VALUES, n, p=[0.8, 0.1, 0.05, 0.05]),
            "openToMinors": rng.random(n) < 0.5,
            "reducedMobilityAccessible": None,
            "closeToTransport": None,
            "startAt": now + pd.Timedelta(days=30),
            "endAt": now + pd.Timedelta(days=200),
            "postedAt": now - pd.to_timedelta(rng.integers(1, 90, n), unit="D"),
            "createdAt": now - pd.Timedelta(days=90),
            "updatedAt": now - pd.Timedelta(days=1),
            "deletedAt": pd.NaT,
            "compensationAmount": np.where(rng.random(n) < 0.3, 620.0, np.nan),
            "compensationAmountMax": np.nan,
            "compensationUnit": None,
            "compensationType": None,
            "statusCode": "ACCEPTED",
            "city": "ville",
            "postalCode": None,
            "departmentCode": None,
            "departmentName": None,
            "region": None,
            "lat": rng.uniform(*LAT, n),
            "lon": rng.uniform(*LON, n),
            "tags": [[] for _ in range(n)],
        }
    )
    return schema.conform(frame, "offers").to_pandas()


def synthetic_profiles(n: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "userId": [f"u{i}" for i in range(n)],
            "age": rng.integers(16, 30, n),
            "lat": rng.uniform(*LAT, n),
            "lon": rng.uniform(*LON, n),
            "postalCode": None,
            "departmentCode": None,
            "region": None,
            "mobility": None,
            "radiusKm": 30.0,
            "disability": False,
            "hasQuiz": True,
            "quizDomains": [list(rng.choice(taxonomy.QUIZ_DOMAINS, 2)) for _ in range(n)],
            "quizActivities": [[rng.choice(taxonomy.QUIZ_ACTIVITIES)] for _ in range(n)],
            "quizRhythm": None,
            "quizMotivations": [[] for _ in range(n)],
        }
    )
    return schema.conform(frame, "profiles").to_pandas()


def write_bundle(folder: Path, model_name: str, rng: np.random.Generator) -> Path:
    """A model trained on TRAIN_USERS people × TRAIN_OFFERS offers (5 interactions each)."""
    offers = synthetic_offers(TRAIN_OFFERS, rng)
    profiles = synthetic_profiles(TRAIN_USERS, rng)
    offer_encoder = OfferEncoder().fit(offers)
    user_encoder = UserEncoder().fit(profiles)
    rows = np.repeat(np.arange(TRAIN_USERS), 5)
    cols = rng.integers(0, TRAIN_OFFERS, len(rows))
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(TRAIN_USERS, TRAIN_OFFERS))
    matrix.data[:] = 1.0
    data = TrainingData(
        users=UserBatch.encode(profiles, user_encoder),
        offers=OfferBatch.encode(offers, offer_encoder),
        interactions=matrix,
        applies=matrix,
        cutoff=pd.Timestamp.now(tz="UTC"),
    )
    learned = {"embedding_size": 32, "epochs": 5}
    params = {"learned_params": learned} if model_name == "hybrid" else learned
    model = create_model(model_name, params)
    model.train(data)
    stand_in = SimpleNamespace(
        offer_encoder=offer_encoder,
        user_encoder=user_encoder,
        offers=offers,
        applies=matrix,
        user_ids=profiles["userId"].to_numpy(dtype=object),
        offer_ids=offers["id"].to_numpy(dtype=object),
        manifest={"data_fingerprint": "bench", "window": {"start": str(pd.Timestamp.now())}},
    )
    profiles.to_parquet(folder / "profiles.parquet", index=False)
    return save_bundle(model, stand_in, folder / "bundle")  # type: ignore[arg-type]

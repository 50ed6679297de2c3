"""Paths, defaults and environment variables, in one place.

Every stage reads its locations from here so that the embedded defaults (local files, a
SQLite MLflow store) and the production settings (PostgreSQL URLs) are switched by
environment variables only, never by editing code.

What commands write and read at run time (data, `mlflow.db`, its artifacts, experiment files,
the event store) lives under `HOME`: `RECSYS_HOME`, else the working directory, so an
installed package (a wheel, a Bento) never writes beside its own code. `PROJECT_ROOT` is where
the code is: the git commit of a run and the folder `bentoml serve` imports the service from.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("RECSYS_HOME") or Path.cwd()).resolve()
DATA_DIR = Path(os.environ.get("RECSYS_DATA_DIR") or HOME / "data")
RAW_DIR = DATA_DIR / "raw"
SIMULATED_DIR = DATA_DIR / "simulated"
FEATURES_DIR = DATA_DIR / "features"
EXPERIMENTS_DIR = HOME / "experiments"

MLFLOW_TRACKING_URI = os.environ.get(
    "MLFLOW_TRACKING_URI", f"sqlite:///{(HOME / 'mlflow.db').as_posix()}"
)
REGISTERED_MODEL_NAME = os.environ.get("RECSYS_MODEL_NAME", "engagement-ranker")

DEFAULT_SEED = 42

# Canonical table file names inside a dataset folder (raw ingest or simulation output).
OFFERS_FILE = "offers.parquet"
EVENTS_FILE = "events.parquet"
PROFILES_FILE = "profiles.parquet"
TRUTH_DIR = "truth"
REJECTS_SUFFIX = ".rejects.jsonl"

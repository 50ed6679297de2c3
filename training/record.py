"""Names of what a training run records in MLflow.

Written by `training.jobs` and read by the registry, `recsys runs` and `recsys report`: one
place for the names so the writer and its readers cannot drift. No MLflow import here, so the
command line stays quick to start.
"""

from __future__ import annotations

EXPERIMENT_TAG = "recsys.experiment"
FINGERPRINT_PARAM = "data.fingerprint"
DATA_DIR_PARAM = "data.dir"
EVALUATION_ARTIFACT_DIR = "evaluation"
EVALUATION_FILE = "evaluation.json"
FEATURE_MANIFEST_FILE = "feature_manifest.json"
EVALUATION_ARTIFACT = f"{EVALUATION_ARTIFACT_DIR}/{EVALUATION_FILE}"
MANIFEST_ARTIFACT = f"{EVALUATION_ARTIFACT_DIR}/{FEATURE_MANIFEST_FILE}"

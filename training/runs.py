"""What `recsys runs` shows: recent training runs and the registered versions with aliases."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow import MlflowClient

from recsys import config
from training.record import EXPERIMENT_TAG, FINGERPRINT_PARAM
from training.tracking import KIND_TAG, TRAINING_EXPERIMENT, metric_key

RUN_METRICS: tuple[str, ...] = (
    "ndcg@10",
    "recall@10",
    "hit_rate@10",
    "coverage@10",
    "ineligible_rate@10",
    "baseline.incumbent.ndcg@10",
)


def recent_runs(limit: int = 10, experiment: str = TRAINING_EXPERIMENT) -> pd.DataFrame:
    """The latest training runs, newest first: model, headline metrics, data fingerprint."""
    columns = ["run_id", "started", "experiment", "model", *RUN_METRICS, "fingerprint"]
    found = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.`{KIND_TAG}` = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
        output_format="list",
    )
    rows = []
    for run in found:
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        row = {
            "run_id": run.info.run_id[:8],
            "started": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").strftime(
                "%Y-%m-%d %H:%M"
            ),
            "experiment": tags.get(EXPERIMENT_TAG, ""),
            "model": params.get("model.name", ""),
            "fingerprint": (params.get(FINGERPRINT_PARAM) or "")[:12],
        }
        row.update({name: metrics.get(metric_key(name)) for name in RUN_METRICS})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def registered_versions(name: str | None = None) -> pd.DataFrame:
    """Every version of the registered model, newest first, with its aliases and run."""
    name = name or config.REGISTERED_MODEL_NAME
    columns = ["version", "aliases", "run_id", "created", "promotion"]
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return pd.DataFrame(columns=columns)
    # Search results do not carry aliases on every store; the registered model does.
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = [
        {
            "version": int(version.version),
            "aliases": ",".join(sorted(aliases.get(str(version.version), []))),
            "run_id": (version.run_id or "")[:8],
            "created": pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC").strftime(
                "%Y-%m-%d %H:%M"
            ),
            "promotion": version.tags.get("promotion.decision", ""),
        }
        for version in versions
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("version", ascending=False).reset_index(drop=True)

"""The registered model's MLflow pyfunc, logged as code (no pickle) around the ranker bundle.

MLflow copies this file next to the model and runs it at load time (models from code), so it
imports only the core (`recsys`) and MLflow; the model carries a copy of the core
(`code_paths`) and the locked requirements (`training.jobs.pyfunc_files`), so it loads where
the project is not installed.

Input: a DataFrame, one row per person, with any of the canonical profile columns
(`recsys.schema.PROFILE_SCHEMA`: userId, age, lat, lon, postalCode, departmentCode, region,
mobility, radiusKm, disability, hasQuiz, quizDomains, quizActivities, quizRhythm,
quizMotivations) and an optional `k` (list length, default 10). A known `userId` is scored
with what the model learned about it; any other row from its profile alone.
Params: `at`, an ISO timestamp of the request (default: the cutoff of the catalog snapshot).
Output: a DataFrame with `userId` and `offerIds`, the ranked offer ids of the snapshot's
eligible offers, best first: the list the service serves (`recsys.policy`, default knobs).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from recsys.bundle import load_bundle

DEFAULT_K = 10
BUNDLE_ARTIFACT = "bundle"


class RankerModel(mlflow.pyfunc.PythonModel):
    """Ranks the bundle's catalog snapshot for each input row."""

    def load_context(self, context: Any) -> None:
        self.bundle = load_bundle(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = pd.DataFrame(model_input).reset_index(drop=True)
        if "k" in frame.columns:
            ks = pd.to_numeric(frame["k"], errors="coerce").fillna(DEFAULT_K).astype(int)
        else:
            ks = pd.Series(DEFAULT_K, index=frame.index)
        if (ks < 1).any():
            raise ValueError(f"k: expected positive integers, got {sorted(set(ks[ks < 1]))}")
        at = (params or {}).get("at") or None
        lists: list[list[str]] = [[] for _ in range(len(frame))]
        for k in sorted(set(ks.tolist())):  # the caps depend on k: one list length at a time
            rows = np.flatnonzero(ks.to_numpy() == k)
            ranked = self.bundle.recommend(frame.iloc[rows], int(k), at=at)
            for row, offers in zip(rows.tolist(), ranked, strict=True):
                lists[row] = offers
        user_ids = frame["userId"] if "userId" in frame.columns else pd.Series([None] * len(frame))
        return pd.DataFrame(
            {
                "userId": user_ids.to_numpy(dtype=object),
                "offerIds": lists,
            }
        )


mlflow.models.set_model(RankerModel())

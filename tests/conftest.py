"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_mlflow_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give every test MLflow's process-wide client settings back as they were.

    `mlflow.set_experiment`, `set_tracking_uri` and `set_registry_uri` change module globals
    (and MLFLOW_EXPERIMENT_ID); a later test on another store would otherwise write to an
    experiment id or a server that does not exist there.
    """
    import os

    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    monkeypatch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # set_*_uri export them too
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])  # restored as it is now after the test
        else:
            monkeypatch.delenv(name, raising=False)

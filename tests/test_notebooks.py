"""Both notebooks run top to bottom on the tiny preset (a failing cell fails the test).

The fixture simulates the tiny dataset, builds its feature set, evaluates three cheap models
with the shared harness and logs two runs the way `recsys train` lays them out (params,
`evaluation/evaluation.json`), in a temporary SQLite store. The notebooks read their inputs
from environment variables, which the kernel inherits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SEED = 3


def _log_run(result: Any, candidate: str, feature_manifest: dict[str, Any]) -> str:
    import mlflow

    from training import tracking

    experiment = tracking.ensure_experiment(tracking.TRAINING_EXPERIMENT)
    tags = {tracking.KIND_TAG: "train", "recsys.experiment": candidate}
    evaluation = result.to_json()
    evaluation["models"] = {  # the trained model first, its baselines after, as training does
        candidate: evaluation["models"][candidate],
        **{name: values for name, values in evaluation["models"].items() if name != candidate},
    }
    with mlflow.start_run(experiment_id=experiment, run_name=candidate, tags=tags) as run:
        mlflow.log_params(
            {
                "model.name": candidate,
                "data.fingerprint": feature_manifest["data_fingerprint"],
                "data.dir": feature_manifest["data_dir"],
                **{f"split.{key}": value for key, value in evaluation["split"].items()},
            }
        )
        mlflow.log_dict(evaluation, "evaluation/evaluation.json")
        mlflow.log_dict(feature_manifest, "evaluation/feature_manifest.json")
    return run.info.run_id


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from features.build import build_feature_set
    from recsys.evaluation import evaluate
    from recsys.featureset import load_feature_set
    from recsys.models import create_model
    from recsys.simulation import get_preset, simulate
    from training import tracking

    root = tmp_path_factory.mktemp("notebooks")
    data = root / "tiny"
    simulate(get_preset("tiny"), SEED, data)
    build_feature_set(data, root / "features")
    feature_set = load_feature_set(root / "features")
    models = {
        "popularity_raw": create_model("popularity", {"shrinkage": 0.0}),
        "popularity": create_model("popularity"),
        "incumbent": create_model("incumbent"),
    }
    training_data = feature_set.training_data()
    for model in models.values():
        model.train(training_data)
    result = evaluate(feature_set, models)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.configure(uri)
    for candidate in ("popularity_raw", "incumbent"):
        _log_run(result, candidate, feature_set.manifest)
    return {"RECSYS_DATASET": str(data), "MLFLOW_TRACKING_URI": uri, "cwd": str(root)}


def _execute(name: str, inputs: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    import nbformat
    from nbclient import NotebookClient

    for key, value in inputs.items():
        if key != "cwd":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": inputs["cwd"]}},
    )
    return client.execute()  # raises CellExecutionError naming the cell on any error


def _text(notebook: Any) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _images(notebook: Any) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def test_data_tour_runs_on_the_tiny_preset(
    inputs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = _execute("01_data_tour.ipynb", inputs, monkeypatch)
    text = _text(notebook)
    assert "tiny: 300 offers" in text
    assert f"simulated: preset tiny, seed {SEED}" in text
    assert "Service Civique" in text and "click_rate" in text and "relative_ctr" in text
    assert _images(notebook) >= 4  # programmes/domains, map, position bias, distance


def test_compare_models_runs_on_logged_runs(
    inputs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECSYS_RUNS", raising=False)
    notebook = _execute("02_compare_models.ipynb", inputs, monkeypatch)
    text = _text(notebook)
    assert "2 run(s) loaded" in text
    assert "popularity_raw" in text and "incumbent" in text
    assert "WARNING" not in text  # both runs share one holdout
    assert _images(notebook) >= 5  # runs, at k, three segment groups, exposure

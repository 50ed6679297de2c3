"""The registered model is self-contained: it loads and ranks in a fresh virtual environment
that holds only its own requirements (the model lock), not the project."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.service_fixtures import write_bundle
from training.jobs import pyfunc_files

pytestmark = pytest.mark.slow

PEOPLE = pd.DataFrame(
    {
        "userId": ["sport-paris-0", "culture-lyon-1", None],
        "age": [20.0, 22.0, 19.0],
        "lat": [48.85, 45.76, 48.86],
        "lon": [2.35, 4.83, 2.34],
        "k": [5, 5, 3],
    }
)
SCRIPT = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
import recsys
assert recsys.__file__.startswith(sys.argv[1]), recsys.__file__  # the model's own copy
answer = model.predict(pd.read_json(sys.argv[2], orient="records"))
print(json.dumps([list(ids) for ids in answer["offerIds"]]))
"""


def test_the_model_loads_in_a_fresh_environment_and_ranks_alike(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", "hybrid")
    model = tmp_path / "model"
    (tmp_path / "scratch").mkdir()
    mlflow.pyfunc.save_model(str(model), **pyfunc_files(bundle, tmp_path / "scratch"))
    expected = [
        list(ids) for ids in mlflow.pyfunc.load_model(str(model)).predict(PEOPLE)["offerIds"]
    ]
    assert any(expected)

    environment = tmp_path / "env"
    venv.create(environment, with_pip=True)
    python = str(environment / "bin" / "python")
    # --no-deps: the requirements must be complete by themselves (the lock's closure);
    # --no-compile: no bytecode of every installed module written ahead, only what is run.
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "-r"]
    subprocess.run([*install, str(model / "requirements.txt")], check=True, timeout=900)
    people = tmp_path / "people.json"
    PEOPLE.to_json(people, orient="records")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    answer = subprocess.run(
        [python, "-c", SCRIPT, str(model), str(people)],
        cwd=tmp_path,  # not the checkout: `recsys` must come from the model
        env={**env, "OPENBLAS_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == expected

"""Packaging: the locks cover pyproject.toml, the serving image's packages, runtime paths, logging,
the one postal-code type."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from packaging.requirements import Requirement
from pydantic import ValidationError

from recsys import config
from recsys.audience import NeedPlace
from recsys.loaders import load_profiles
from recsys.loaders.values import as_postal_code
from recsys.schema import Profile

ROOT = config.PROJECT_ROOT
LOCKS = ROOT / "requirements"
OTHER_DIGITS = "٦٩٠٠٣"  # 69003 in Arabic-Indic digits


def _pins(name: str) -> dict[str, str]:
    """normalised name → version of a lock's `name==version` lines."""
    pins = {}
    for line in (LOCKS / name).read_text().splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in requirement:
            package, version = requirement.split("==", 1)
            pins[_normal(package)] = version.strip()
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def _declared() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {
        group: [Requirement(text) for text in texts if not text.startswith(project["name"])]
        for group, texts in groups.items()
    }


def test_the_dev_lock_satisfies_every_declared_requirement() -> None:
    pins = _pins("dev.txt")
    for group, requirements in _declared().items():
        for requirement in requirements:
            name = _normal(requirement.name)
            assert name in pins, f"{group}: {requirement} not in requirements/dev.txt"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{group}: {requirement} but the lock pins {pins[name]} (run `make lock`)"
            )


def test_the_serve_and_model_locks_are_the_dev_resolution_without_training_packages() -> None:
    dev, serve, model = _pins("dev.txt"), _pins("serve.txt"), _pins("model.txt")
    for lock in (serve, model):
        assert {name: dev[name] for name in lock} == lock
    assert not {"matplotlib", "optuna", "optuna-integration", "mlflow", "jupyter-core"} & set(serve)
    assert {"bentoml", "mlflow-skinny", "uvloop", "httptools", "prometheus-client"} <= set(serve)
    for requirement in _declared()["core"] + _declared()["serve"]:
        assert _normal(requirement.name) in serve
    assert "bentoml" not in model and "mlflow-skinny" in model
    for requirement in _declared()["core"]:
        assert _normal(requirement.name) in model


def test_the_service_imports_only_what_the_serve_lock_installs() -> None:
    """Every distribution that `serving.service` imports, transitively, is in serve.txt."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "before = set(sys.modules)\n"
        "import serving.service\n"
        "owners = m.packages_distributions()\n"
        "print(json.dumps(sorted({d for name in set(sys.modules) - before"
        " for d in owners.get(name.split('.')[0], [])})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    imported = {_normal(name) for name in json.loads(done.stdout.splitlines()[-1])}
    imported.discard("engagement-recsys")
    serve = set(_pins("serve.txt"))
    assert imported - serve == set(), "imported by the service but not in requirements/serve.txt"
    assert not {"matplotlib", "optuna"} & imported


def test_the_makefile_installs_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK := requirements/dev.txt" in makefile
    assert "pip install --quiet -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps -e ." in makefile
    assert "deptry ." in makefile.split("test:", 1)[1].split("\n\n", 1)[0]


# --- Runtime paths ----------------------------------------------------------------------------


def _paths(cwd: Path, home: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "MLFLOW_"))}
    if home is not None:
        env["RECSYS_HOME"] = home
    script = (
        "import json; from recsys import config as c; print(json.dumps({'home': str(c.HOME), "
        "'data': str(c.DATA_DIR), 'experiments': str(c.EXPERIMENTS_DIR), "
        "'mlflow': c.MLFLOW_TRACKING_URI}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_runtime_paths_are_under_recsys_home_or_the_working_directory(tmp_path: Path) -> None:
    here = _paths(tmp_path, None)
    assert here["home"] == str(tmp_path.resolve())
    assert here["data"] == str(tmp_path.resolve() / "data")
    assert here["mlflow"] == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    home = tmp_path / "elsewhere"
    there = _paths(tmp_path, str(home))
    assert there["data"] == str(home / "data") and there["experiments"] == str(home / "experiments")
    assert str(ROOT) not in json.dumps(there)  # nothing beside the package


# --- Logging ----------------------------------------------------------------------------------


def test_the_command_line_logs_json_lines_with_the_loaders_fields(tmp_path: Path) -> None:
    recsys = Path(sys.executable).with_name("recsys")
    command = [str(recsys), "--log-level", "info", "--log-format", "json", "ingest", "offers"]
    command += [str(ROOT / "tests" / "data" / "offers.json"), "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=tmp_path)
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    loaded = next(record for record in records if record["message"] == "offers loaded")
    assert loaded["level"] == "INFO" and loaded["logger"] == "recsys.loaders.offers"
    assert loaded["loaded"] == 7 and loaded["source"].endswith("offers.json")
    quiet = subprocess.run(command[:1] + command[5:], capture_output=True, text=True, cwd=tmp_path)
    assert "offers loaded" not in quiet.stderr  # WARNING by default


def test_a_bad_log_level_is_refused_naming_the_option(tmp_path: Path) -> None:
    recsys = str(Path(sys.executable).with_name("recsys"))
    done = subprocess.run([recsys, "--log-level", "loud", "runs"], capture_output=True, text=True)
    assert done.returncode == 2 and "--log-level: expected one of DEBUG" in done.stderr
    env = {**os.environ, "RECSYS_LOG_FORMAT": "xml"}
    done = subprocess.run([recsys, "runs"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "RECSYS_LOG_FORMAT: expected one of text, json" in done.stderr
    assert "Traceback" not in done.stderr


# --- One postal-code type ---------------------------------------------------------------------


def test_postal_codes_are_ascii_digits_everywhere() -> None:
    with pytest.raises(ValidationError) as refused:
        Profile(postal_code=OTHER_DIGITS)
    assert refused.value.errors()[0]["loc"] == ("postal_code",)
    assert Profile(postal_code="2A004").postal_code == "2A004"
    with pytest.raises(ValidationError) as refused:
        NeedPlace(postal_code=OTHER_DIGITS)  # a coordinator's need (audiences)
    assert refused.value.errors()[0]["loc"] == ("postal_code",)
    parsed, bad = as_postal_code(pd.Series([OTHER_DIGITS, "69003", "1000", "٦٩٠٠"]))
    assert bad.tolist() == [True, False, False, True]
    assert parsed.tolist()[1:3] == ["69003", "01000"]


def test_the_profiles_loader_rejects_other_digits_naming_the_field(tmp_path: Path) -> None:
    export = tmp_path / "profiles.csv"
    export.write_text(f"userId,age,postalCode\nu-1,19,{OTHER_DIGITS}\nu-2,20,69003\n", "utf-8")
    result = load_profiles(export)
    assert result.table["userId"].tolist() == ["u-2"]
    assert "postalCode" in result.rejects["reason"].iloc[0]

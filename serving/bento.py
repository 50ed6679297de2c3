"""The Bento of the ranking service, with the registry's champion baked in (`recsys bento`).

`build` exports the model (the champion by default) into `BAKED_DIR` of the project folder,
which `bentofile.yaml` includes, then runs `bentoml build` with the build argument
`baked_model` naming that folder: a server of the Bento serves it by default
(`serving.service.baked_model`), with the registry's version label, and `/admin/reload` with a
registry URI still swaps it. The Bento's packages are the serve lock
(`requirements/serve.txt`); `bentoml containerize <tag>` makes its image where a container
engine runs (docs/operations.md).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from recsys import config
from serving.loading import export_model

BAKED_DIR: Final = Path("build") / "champion"  # bentofile.yaml includes it
BAKED_MODEL_ARGUMENT: Final = "baked_model"  # read by serving.service.baked_model
TAG_PREFIX: Final = "__tag__:"  # how `bentoml build --output tag` prints the tag


class BentoBuildError(RuntimeError):
    """`bentoml build` failed; the message carries its output."""


@dataclass(frozen=True)
class BuiltBento:
    tag: str
    model_version: str


def build(
    model_uri: str, tracking_uri: str | None, env: dict[str, str] | None = None
) -> BuiltBento:
    """Bake `model_uri` into the project's `BAKED_DIR` and build the Bento.

    Args:
        model_uri: the model to bake (a registry URI such as `models:/name@champion`).
        tracking_uri: the MLflow tracking store holding the registry.
        env: the environment of `bentoml build` (BENTOML_HOME chooses the Bento store).

    Raises:
        serving.loading.ModelLoadError: the model cannot be exported.
        BentoBuildError: `bentoml build` failed.
    """
    version = export_model(model_uri, tracking_uri, config.PROJECT_ROOT / BAKED_DIR)
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "build",
        str(config.PROJECT_ROOT),
        "--output",
        "tag",
        "--arg",
        f"{BAKED_MODEL_ARGUMENT}={BAKED_DIR.as_posix()}",
    ]
    done = subprocess.run(
        command, cwd=config.PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    tags = [line for line in done.stdout.splitlines() if line.startswith(TAG_PREFIX)]
    if done.returncode != 0 or not tags:
        raise BentoBuildError(f"bentoml build failed ({done.returncode}):\n{done.stderr}")
    return BuiltBento(tag=tags[-1].removeprefix(TAG_PREFIX), model_version=version)

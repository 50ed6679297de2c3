"""Finding the ranker bundle to serve: in the MLflow registry, or in a folder.

Training registers the bundle inside an MLflow pyfunc model (artifact `bundle`, see
`recsys.bundle`); serving only needs the bundle, so it downloads the model's files and loads
the bundle folder with `recsys.bundle.load_bundle`, without importing the training stage.
A `models:/name@alias` URI is first resolved to its version number, then that exact version
is downloaded, so the version reported is the one served even if the alias moves meanwhile.

The registry is read by a short-lived child process (`fetch`, `python -m serving.loading`):
the MLflow client, and for a SQLite registry SQLAlchemy's store and its migrations, take
about 70 MB that every worker would otherwise hold for its whole life (docs/benchmarks.md,
"Memory per worker").
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from recsys import config
from recsys.bundle import BUNDLE_FILE, RankerBundle, load_bundle

logger = logging.getLogger(__name__)

VERSION_FILE = "model_version.txt"  # written by `export_model` beside a bundle
_MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "gs://", "http")
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


class ModelLoadError(RuntimeError):
    """The model could not be found or loaded; the message names the URI and the cause."""


@dataclass(frozen=True)
class LoadedModel:
    """A bundle and what to call it in answers (`model_version`)."""

    bundle: RankerBundle
    version: str
    uri: str


def find_bundle(folder: Path) -> Path:
    """The bundle folder inside `folder`: itself, or the first `bundle.json` below it.

    Raises:
        ModelLoadError: when there is none.
    """
    if (folder / BUNDLE_FILE).is_file():
        return folder
    found = sorted(folder.rglob(BUNDLE_FILE))
    if not found:
        raise ModelLoadError(f"no ranker bundle ({BUNDLE_FILE}) under {folder}")
    return found[0].parent


def _resolve_version(uri: str) -> tuple[str, str]:
    """(URI of an exact version, version label) for a registry URI; other URIs unchanged."""
    from mlflow import MlflowClient

    alias = _ALIAS_URI.match(uri)
    if alias:
        version = MlflowClient().get_model_version_by_alias(alias["name"], alias["alias"])
        return f"models:/{alias['name']}/{version.version}", f"{alias['name']}/v{version.version}"
    exact = _VERSION_URI.match(uri)
    if exact:
        return uri, f"{exact['name']}/v{exact['version']}"
    return uri, uri


def _download(uri: str, tracking_uri: str | None, scratch: str) -> tuple[Path, str]:
    """(bundle folder, version label) of a registry or run URI, downloaded into `scratch`."""
    import mlflow

    if tracking_uri:
        # The registry lives with the tracking store (as training.tracking sets it); an
        # inherited MLFLOW_REGISTRY_URI must not send the lookup elsewhere.
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    exact, version = _resolve_version(uri)
    local = mlflow.artifacts.download_artifacts(artifact_uri=exact, dst_path=scratch)
    return find_bundle(Path(local)), version


def _fetch_here(uri: str, tracking_uri: str | None, destination: Path) -> str:
    """What the child process of `fetch` does (in this process)."""
    with tempfile.TemporaryDirectory(prefix="recsys-model-") as scratch:
        folder, version = _download(uri, tracking_uri, scratch)
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(folder, destination)
    (destination / VERSION_FILE).write_text(version, "utf-8")
    return version


def fetch(uri: str, tracking_uri: str | None, destination: Path) -> str:
    """Download the bundle behind a registry or run URI into `destination` (replaced), with
    its version label in `VERSION_FILE`, from a child process; returns the label.

    Raises:
        ModelLoadError: naming the URI and why it could not be fetched.
    """
    command = [sys.executable, "-m", "serving.loading", uri, str(destination)]
    paths = [str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path for path in paths if path),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    if tracking_uri:
        command.append(tracking_uri)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
        raise ModelLoadError(f"model {uri}: {lines[-1]}")
    return (destination / VERSION_FILE).read_text("utf-8").strip()


def export_model(uri: str, tracking_uri: str | None, destination: Path) -> str:
    """Copy the bundle behind a registry or run URI into `destination` (replaced), with its
    version label, so that serving the folder reports the registry's version; returns it.

    Raises:
        ModelLoadError: naming the URI and why it could not be exported or loaded.
    """
    version = fetch(uri, tracking_uri, destination)
    try:
        load_bundle(destination)  # what cannot be served is not exported
    except Exception as error:
        shutil.rmtree(destination, ignore_errors=True)
        raise ModelLoadError(f"model {uri}: {type(error).__name__}: {error}") from error
    return version


def load_model(uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """Load the bundle behind `uri`: a registry or run URI, an MLflow model folder, a bundle.

    Raises:
        ModelLoadError: naming the URI and why it could not be loaded.
    """
    try:
        if uri.startswith(_MLFLOW_SCHEMES):
            with tempfile.TemporaryDirectory(prefix="recsys-model-") as scratch:
                version = fetch(uri, tracking_uri, Path(scratch) / "bundle")
                bundle = load_bundle(Path(scratch) / "bundle")
        else:
            folder = Path(uri.removeprefix("file://"))
            if not folder.exists():
                raise ModelLoadError(f"model {uri}: no such file or folder")
            found = find_bundle(folder)
            bundle = load_bundle(found)
            # The registry's label when `export_model` wrote the folder, else the folder's name.
            written = found / VERSION_FILE
            version = (
                written.read_text("utf-8").strip() if written.is_file() else f"local:{folder.name}"
            )
    except ModelLoadError:
        raise
    except Exception as error:  # MLflow, file and format errors all mean "cannot serve it"
        raise ModelLoadError(f"model {uri}: {type(error).__name__}: {error}") from error
    logger.info("model loaded: %s (%s) from %s", version, bundle.model_name, uri)
    return LoadedModel(bundle=bundle, version=version, uri=uri)


def _main(arguments: list[str]) -> int:
    """`python -m serving.loading URI DESTINATION [TRACKING_URI]`: `fetch`'s child process."""
    uri, destination = arguments[0], Path(arguments[1])
    tracking_uri = arguments[2] if len(arguments) > 2 else None
    try:
        _fetch_here(uri, tracking_uri, destination)
    except Exception as error:  # reported to the parent on the last line of stderr
        print(f"{type(error).__name__}: {error}".replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

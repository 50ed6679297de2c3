"""Finding the ranker bundle to serve: in the MLflow registry, or in a folder.

Training registers the bundle inside an MLflow pyfunc model (artifact `bundle`, see
`recsys.bundle`); serving only needs the bundle, so it downloads the model's files and loads
the bundle folder with `recsys.bundle.load_bundle`, without importing the training stage.
A `models:/name@alias` URI is first resolved to its version number, then that exact version
is downloaded, so the version reported is the one served even if the alias moves meanwhile.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

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


def export_model(uri: str, tracking_uri: str | None, destination: Path) -> str:
    """Copy the bundle behind a registry or run URI into `destination` (replaced), with its
    version label, so that serving the folder reports the registry's version; returns it.

    Raises:
        ModelLoadError: naming the URI and why it could not be exported.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="recsys-model-") as scratch:
            folder, version = _download(uri, tracking_uri, scratch)
            load_bundle(folder)  # what cannot be served is not exported
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(folder, destination)
    except ModelLoadError:
        raise
    except Exception as error:
        raise ModelLoadError(f"model {uri}: {type(error).__name__}: {error}") from error
    (destination / VERSION_FILE).write_text(version, "utf-8")
    return version


def load_model(uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """Load the bundle behind `uri`: a registry or run URI, an MLflow model folder, a bundle.

    Raises:
        ModelLoadError: naming the URI and why it could not be loaded.
    """
    try:
        if uri.startswith(_MLFLOW_SCHEMES):
            with tempfile.TemporaryDirectory(prefix="recsys-model-") as scratch:
                folder, version = _download(uri, tracking_uri, scratch)
                bundle = load_bundle(folder)
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

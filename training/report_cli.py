"""`recsys report`: the offline evaluation of a training run as one self-contained HTML file.

This module fetches from MLflow (the run's params, its `evaluation/evaluation.json`, the
figures it logged, the runs it is compared with) and reads the run's data folder for the
catalog and application shares; `recsys.report.render_report` does the rendering, pure.
Every expected failure (unknown run or alias, a run without evaluation, unreachable store)
ends with a one-line message and exit code 1, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import pandas as pd
import typer

from recsys import config
from training.record import (
    DATA_DIR_PARAM,
    EVALUATION_ARTIFACT,
    EXPERIMENT_TAG,
    FINGERPRINT_PARAM,
    MANIFEST_ARTIFACT,
)

app = typer.Typer(no_args_is_help=True)

FIGURE_ARTIFACTS = ("plots/exposure.png", "plots/distance_km.png")
REPORT_ARTIFACT_DIR = "report"
REPORT_FILE = "report.html"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class ReportError(ValueError):
    """The report cannot be made; the message says which run or file and why."""


@dataclass(frozen=True)
class Report:
    """A rendered report and what the command line should tell about it."""

    html: str
    warnings: list[str] = field(default_factory=list)  # comparability, missing data
    notes: list[str] = field(default_factory=list)  # informational


def _client(tracking_uri: str | None = None):  # -> MlflowClient, imported lazily
    from mlflow import MlflowClient

    from training import tracking

    resolved = tracking.configure(tracking_uri)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def safe_uri(uri: str) -> str:
    """A tracking URI fit to print: any password in it replaced by `***`."""
    parsed = urlparse(uri)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return uri


def resolve_run(reference: str, client: Any) -> str:
    """A run id from a run id or a registry alias (`champion`, `challenger`) of the ranker.

    Raises:
        ReportError: no version carries the alias.
    """
    if _RUN_ID.match(reference):
        return reference
    from mlflow.exceptions import MlflowException

    name = config.REGISTERED_MODEL_NAME
    try:
        version = client.get_model_version_by_alias(name, reference)
    except MlflowException:
        raise ReportError(
            f"--against {reference}: not a run id, and no version of {name} has the alias "
            f"{reference!r}"
        ) from None
    if not version.run_id:
        raise ReportError(f"{name} version {version.version} ({reference}) has no training run")
    return str(version.run_id)


def _artifact_json(client: Any, run_id: str, path: str, folder: Path) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(run_id, path, str(folder))
    except (MlflowException, OSError):
        return None
    return json.loads(Path(local).read_text("utf-8"))


def _artifact_bytes(client: Any, run_id: str, path: str, folder: Path) -> bytes | None:
    from mlflow.exceptions import MlflowException

    try:
        return Path(client.download_artifacts(run_id, path, str(folder))).read_bytes()
    except (MlflowException, OSError):
        return None


def load_run(run_id: str, label: str = "", client: Any = None) -> dict[str, Any]:
    """A training run as the report reads it: id, label, name, start, params, evaluation,
    feature manifest, logged figures and the trained model's row (`candidate`).

    Raises:
        ReportError: the run does not exist, or it logged no `evaluation/evaluation.json`.
    """
    from mlflow.exceptions import MlflowException

    client = client or _client()
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ReportError(
                f"run {run_id} does not exist in the tracking store {safe_uri(client.tracking_uri)}"
            ) from None
        raise
    with tempfile.TemporaryDirectory(prefix="recsys-report-") as scratch:
        folder = Path(scratch)
        evaluation = _artifact_json(client, run_id, EVALUATION_ARTIFACT, folder)
        if evaluation is None:
            raise ReportError(
                f"run {run_id} has no {EVALUATION_ARTIFACT} artifact: not a training run "
                "(recsys train logs one)"
            )
        manifest = _artifact_json(client, run_id, MANIFEST_ARTIFACT, folder)
        figures = {
            Path(path).name: png
            for path in FIGURE_ARTIFACTS
            if (png := _artifact_bytes(client, run_id, path, folder)) is not None
        }
    experiment = run.data.tags.get(EXPERIMENT_TAG)
    return {
        "run_id": run_id,
        "label": label,
        "run_name": run.info.run_name or "",
        "started": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "params": dict(run.data.params),
        "evaluation": evaluation,
        "manifest": manifest,
        "figures": figures,
        "candidate": experiment if experiment in evaluation.get("models", {}) else None,
    }


def latest_runs(limit: int = 10, client: Any = None) -> list[str]:
    """Ids of the most recent training runs, newest first."""
    from training.tracking import KIND_TAG, TRAINING_EXPERIMENT

    client = client or _client()
    experiment = client.get_experiment_by_name(TRAINING_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    return [run.info.run_id for run in runs]


def _tables_fingerprint(folder: Path) -> str:
    """The data fingerprint of a dataset folder, computed as the feature stage records it.

    Repeated here (sha256 of each table file, combined over sorted `name:sha256` lines)
    because a stage imports the core only, never another stage.
    """
    lines = []
    for name in sorted((config.EVENTS_FILE, config.OFFERS_FILE, config.PROFILES_FILE)):
        digest = hashlib.sha256()
        with (folder / name).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        lines.append(f"{name}:{digest.hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def dataset_facts(
    loaded: dict[str, Any], data: Path | None = None
) -> tuple[dict[str, Any] | None, str]:
    """The dataset summary of a run's data folder, or None and the reason it is missing.

    The folder is `data`, else the one the run recorded. Its tables must still hash to the
    run's data fingerprint: shares from other data would be silently wrong.
    """
    from recsys import analysis

    manifest = loaded.get("manifest") or {}
    recorded = loaded["params"].get(DATA_DIR_PARAM) or manifest.get("data_dir")
    folder = Path(data) if data is not None else Path(recorded) if recorded else None
    if folder is None:
        return None, "the run records no data folder; pass --data to add these figures."
    try:
        found = _tables_fingerprint(folder)
    except OSError:
        return None, f"data folder {folder} is not readable here; pass --data to add them."
    expected = loaded["evaluation"].get("data", {}).get("fingerprint") or loaded["params"].get(
        FINGERPRINT_PARAM
    )
    if expected and found != expected:
        return None, (
            f"the tables in {folder} no longer match the run's data fingerprint "
            f"({found[:12]}… against {expected[:12]}…): figures left out rather than wrong."
        )
    window = loaded["evaluation"].get("data", {})
    if not window.get("window_start") or not window.get("window_end"):
        return None, "the evaluation records no window dates."
    dataset = analysis.read_dataset(folder)
    start, end = pd.Timestamp(window["window_start"]), pd.Timestamp(window["window_end"])
    return analysis.dataset_summary(dataset, start, end), ""


def build_report(
    run_id: str,
    against: list[str] | None = None,
    data: Path | None = None,
    client: Any = None,
) -> Report:
    """The HTML report of a run compared with `against` (run ids or aliases), with the
    warnings the caller should print (differing data, missing data folder).

    Raises:
        ReportError: an unknown run or alias, or a run without evaluation.
    """
    from recsys.report import render_report
    from recsys.report.tables import holdout_warnings

    client = client or _client()
    loaded = load_run(run_id, client=client)
    comparisons = []
    notes = []
    for reference in against or []:
        other_id = resolve_run(reference, client)
        if other_id == run_id:
            notes.append(f"{reference} is the run under review itself: not compared")
            continue
        label = reference if not _RUN_ID.match(reference) else "run"
        comparisons.append(load_run(other_id, label=label, client=client))
    dataset, note = dataset_facts(loaded, data)
    run_info = {
        "run_id": run_id,
        "run_name": loaded["run_name"],
        "candidate": loaded["candidate"],
        "started": loaded["started"],
        "params": loaded["params"],
        "dataset": dataset,
        "dataset_note": note,
        "figures": loaded["figures"],
        "manifest": loaded["manifest"],
    }
    html = render_report(loaded["evaluation"], run_info, comparisons)
    warnings = holdout_warnings(loaded["evaluation"], loaded["params"], comparisons)
    if dataset is None:
        warnings.append(f"catalog and application shares left out: {note}")
    return Report(html, warnings, notes)


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Expected errors as one message on stderr and exit code 1."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (ReportError, FileNotFoundError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except MlflowException as error:
        typer.secho(f"error: {error.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except ConnectionError as error:
        typer.secho(f"error: cannot reach the tracking server: {error}", fg="red", err=True)
        raise typer.Exit(1) from None


def _log_report(client: Any, run_id: str, html_path: Path) -> str:
    """Attach the report to the run as `report/report.html` whatever the output's name."""
    with tempfile.TemporaryDirectory(prefix="recsys-report-") as scratch:
        copy = Path(scratch) / REPORT_FILE
        shutil.copyfile(html_path, copy)
        client.log_artifact(run_id, str(copy), REPORT_ARTIFACT_DIR)
    return f"{REPORT_ARTIFACT_DIR}/{REPORT_FILE}"


@app.command("report")
def report(
    run: Annotated[str, typer.Option("--run", help="Id of the training run to report on.")],
    against: Annotated[
        list[str] | None,
        typer.Option(
            "--against",
            help="Run to compare with: a run id or a registry alias (champion); repeatable.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(REPORT_FILE),
    data: Annotated[
        Path | None,
        typer.Option(help="Dataset folder of the run (default: the folder the run recorded)."),
    ] = None,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Also attach the report to the run in MLflow.")
    ] = True,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else mlflow.db)."),
    ] = None,
) -> None:
    """Write the offline evaluation of a training run as one self-contained HTML file."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with _clean_errors():
        client = _client(tracking_uri)
        made = build_report(run, against, data, client)
        for note in made.notes:
            typer.echo(f"note: {note}")
        for warning in made.warnings:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(made.html, "utf-8")
        typer.echo(f"report written to {out}")
        if log:
            artifact = _log_report(client, run, out)
            typer.echo(f"attached to run {run} as {artifact}")

"""`recsys` console script: assembles each stage's sub-commands and the cross-stage jobs.

Each stage keeps its commands next to its code (`recsys/cli.py`, `features/cli.py`,
`training/cli.py`, ...); this module only stitches them together and holds the commands that
chain stages (`evaluate`, `run`), so the core never imports a stage and no stage imports a
later one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from features.cli import app as features_app
from recsys import config as paths
from recsys import logs
from recsys.cli import app as core_app
from recsys.generic_cli import app as generic_app
from serving.audience_cli import app as audience_app
from serving.cli import app as serving_app
from training.audience_cli import evaluate as audience_evaluate
from training.audience_cli import tune as audience_tune
from training.cli import app as training_app
from training.replay_cli import app as replay_app
from training.report_cli import app as report_app

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns (and slows) without it

ALL_MODELS = "popularity,itemknn,incumbent,incumbent_local,content,ease,als,bpr,lightfm,hybrid"

app = typer.Typer(
    help="Engagement offer recommendations: simulate or ingest, build features, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(core_app)
app.add_typer(generic_app)
app.add_typer(features_app)
app.add_typer(training_app)
app.add_typer(report_app)
app.add_typer(replay_app)
app.add_typer(serving_app)
# `recsys audience`: drawing and auditing (serving), evaluating (training) in one group.
audience_app.command("evaluate")(audience_evaluate)
audience_app.command("tune")(audience_tune)
app.add_typer(audience_app, name="audience")


@app.callback()
def main(
    log_level: Annotated[
        str | None,
        typer.Option(help="DEBUG, INFO, WARNING (default), ERROR; overrides RECSYS_LOG_LEVEL."),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="text (default) or json; overrides RECSYS_LOG_FORMAT.")
    ] = None,
) -> None:
    """Engagement offer recommendations: simulate or ingest, build features, train, serve."""
    try:
        logs.configure(log_level, log_format)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    # Processes this command starts (the server, tuning workers) log alike.
    for name, value in ((logs.LEVEL_ENV, log_level), (logs.FORMAT_ENV, log_format)):
        if value:
            os.environ[name] = value


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (canonical tables).")],
    models: Annotated[str, typer.Option(help="Comma-separated model names.")] = ALL_MODELS,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here.")
    ] = None,
    features_dir: Annotated[
        Path | None, typer.Option("--features", help="Feature set folder (built if missing).")
    ] = None,
    feature_config: Annotated[
        Path | None, typer.Option("--feature-config", help="YAML of feature options.")
    ] = None,
    window: Annotated[str, typer.Option(help="Evaluated window: test or validation.")] = "test",
    oracle: Annotated[
        bool, typer.Option(help="Add the oracle row when the data folder holds truth/.")
    ] = True,
    split: Annotated[
        str,
        typer.Option(help="temporal (this domain's protocol) or random (public benchmarks only)."),
    ] = "temporal",
    test_frac: Annotated[
        float, typer.Option(help="Random split: share of the applies held out.")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Random split: seed of the holdout.")] = 42,
    policy: Annotated[
        str,
        typer.Option(
            help="served: the lists the service makes (cold-start blend, caps); "
            "raw: each model's own top-k, for diagnosis."
        ),
    ] = "served",
    lists_path: Annotated[
        Path | None,
        typer.Option(
            "--lists", help="Also write every evaluated person's list here (CSV or Parquet)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="Rank everyone at this one instant (ISO time, UTC when no offset) instead of "
            "over the evaluated window: the offers open then, as the service offers them."
        ),
    ] = None,
    experiments: Annotated[
        list[Path] | None,
        typer.Option(
            "--experiment",
            help="Experiment file whose model is evaluated with its params (e.g. a tuned "
            "one); repeat for several. Its model joins --models.",
        ),
    ] = None,
    estimate_applications: Annotated[
        bool,
        typer.Option(
            help="Also estimate each model's applications from the window's logged lists "
            "(IPS and self-normalised IPS under a position-based model)."
        ),
    ] = True,
) -> None:
    """Fit every model on the same split and print one comparison table."""
    import pandas as pd

    from features.build import build_feature_set
    from features.config import FeatureConfig, load_config
    from recsys.featureset import load_feature_set
    from recsys.models import MODEL_CLASSES
    from recsys.policy import POLICIES, RAW, ListPolicy
    from training.compare import compare, format_tables
    from training.experiment import ExperimentError, load_experiment

    names = [name.strip() for name in models.split(",") if name.strip()]
    params: dict[str, dict[str, object]] = {}
    for path in experiments or []:
        try:
            spec = load_experiment(path)
        except ExperimentError as error:
            raise _fail(f"--experiment: {error}") from None
        params[spec.model] = spec.model_params()
        if spec.model not in names:
            names.append(spec.model)
    unknown = [name for name in names if name not in MODEL_CLASSES]
    if not names or unknown:
        raise _fail(f"--models: unknown {unknown or 'empty list'}; known: {sorted(MODEL_CLASSES)}")
    if not data.is_dir():
        raise _fail(f"--data: folder {data} does not exist")
    if split not in ("temporal", "random"):
        raise _fail(f"--split: expected temporal or random, got {split!r}")
    if policy not in POLICIES:
        raise _fail(f"--policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    if lists_path is not None and lists_path.suffix not in (".csv", ".parquet"):
        raise _fail(f"--lists: expected a .csv or .parquet path, got {lists_path}")
    instant = None
    if at is not None:
        try:
            stamp = pd.Timestamp(at)
        except ValueError:
            raise _fail(f"--at: expected an ISO date or time, got {at!r}") from None
        instant = int((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp())
    suffix = "" if split == "temporal" else f"-random-{test_frac:g}-{seed}"
    destination = features_dir or paths.FEATURES_DIR / f"{data.resolve().name}{suffix}"
    try:
        options = load_config(feature_config).to_dict()
        options.update(split=split, test_frac=test_frac, split_seed=seed)
        build_feature_set(
            data, destination, FeatureConfig.from_dict(options), reuse=True, progress=typer.echo
        )
        feature_set = load_feature_set(destination, window)
    except (FileNotFoundError, ValueError) as error:
        raise _fail(str(error)) from None
    truth_dir = data / paths.TRUTH_DIR
    result = compare(
        feature_set,
        names,
        params=params,
        truth_dir=truth_dir if oracle and truth_dir.is_dir() else None,
        report=typer.echo,
        policy=None if policy == RAW else ListPolicy(),
        at=instant,
        estimate_applications=estimate_applications,
    )
    if split == "random":
        typer.echo(
            "WARNING: random per-interaction split, for comparison with published results on "
            "public data only: it lets the future leak into training and is unfit for this "
            "domain, whose protocol is the temporal split."
        )
    typer.echo(format_tables(result))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result.to_json(), indent=2, default=float))
        typer.echo(f"results written to {json_path}")
    if lists_path is not None:
        lists_path.parent.mkdir(parents=True, exist_ok=True)
        frame = result.lists()
        if lists_path.suffix == ".csv":
            frame.to_csv(lists_path, index=False)
        else:
            frame.to_parquet(lists_path, index=False)
        typer.echo(f"{len(frame):,} listed offers written to {lists_path}")


@app.command()
def run(
    preset: Annotated[str, typer.Option(help="Simulator preset (data made once).")] = "demo",
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = paths.DEFAULT_SEED,
    experiment: Annotated[
        Path, typer.Option(help="Experiment file of the model to train.")
    ] = paths.EXPERIMENTS_DIR / "response.yaml",
    serve: Annotated[bool, typer.Option(help="End by serving the champion.")] = True,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the service.")] = 3000,
    sync_from_mock: Annotated[
        bool,
        typer.Option(
            "--sync-from-mock",
            help="Serve the catalog synced (recsys sync) from a mock of the national API "
            "serving the simulated offers, instead of the model's snapshot.",
        ),
    ] = False,
) -> None:
    """The main job on embedded defaults: simulate, build features, train, register, serve.

    Every step reuses what an earlier run left when its inputs did not change (the dataset,
    the feature set); training always logs a new MLflow run and registry version, and the
    version becomes champion only if it beats the current one (or, first, every baseline).
    """
    from features.build import build_feature_set
    from features.config import FeatureConfig
    from recsys.cli import simulate_and_summarise
    from training.compare import format_tables
    from training.experiment import load_experiment
    from training.jobs import train_experiment

    simulate_and_summarise(preset=preset, seed=seed)
    data = paths.SIMULATED_DIR / preset
    try:
        spec = load_experiment(experiment)
        folder = paths.FEATURES_DIR / preset
        typer.echo(f"\n== features: {folder}")
        build_feature_set(
            data,
            folder,
            FeatureConfig.from_dict(spec.features.config),
            reuse=True,
            progress=typer.echo,
        )
        typer.echo(f"\n== training {spec.name} ({spec.model})")
        outcome = train_experiment(spec, features=folder, promote=True, report=typer.echo)
    except (FileNotFoundError, ValueError) as error:
        raise _fail(str(error)) from None
    typer.echo(format_tables(outcome.evaluation))
    if outcome.decision is not None:
        typer.echo(outcome.decision.message())
    typer.echo(
        f"\nMLflow run {outcome.run_id}, registered version {outcome.version}.\n"
        f"Look at it with: .venv/bin/mlflow ui --backend-store-uri {paths.MLFLOW_TRACKING_URI}"
    )
    catalog = _sync_from_mock(data, folder) if sync_from_mock else None
    if serve:
        from serving.cli import serve as serve_command

        typer.echo(f"\n== serving the champion on http://127.0.0.1:{port} (Ctrl-C to stop)")
        serve_command(port=port, catalog=catalog)


def _sync_from_mock(data: Path, features: Path) -> Path:
    """Sync the simulated offers through the mock API into `data/catalog/<dataset>`, and
    rank them at the feature set's cutoff (RECSYS_AS_OF, unless set): simulated offers are
    open then, not today."""
    from recsys.mock_api import MockAPI, running
    from recsys.split import SplitDates
    from recsys.sync import SyncConfig, SyncError, sync
    from recsys.sync_cli import summary

    store = paths.DATA_DIR / "catalog" / data.name
    typer.echo(f"\n== syncing {data.name}'s offers from a mock of the national API into {store}")
    try:
        with running(MockAPI.from_dir(data)) as url:
            report = sync(SyncConfig(api=url, out=store))
    except (SyncError, OSError, ValueError) as error:
        raise _fail(f"sync from the mock failed: {error}") from None
    typer.echo(summary(report, store))
    manifest = json.loads((features / "test" / "manifest.json").read_text(encoding="utf-8"))
    cutoff = SplitDates.from_dict(manifest["split"]).cutoff
    os.environ.setdefault("RECSYS_AS_OF", cutoff.isoformat())
    return store / paths.OFFERS_FILE

"""Sub-commands of the `training` stage: `train`, `promote`, `tune`, `runs`.

Every expected failure (bad experiment file, missing feature set, unknown version,
unreachable tracking server) ends with a one-paragraph message and exit code 1, never a
traceback. A refused promotion is not a failure: it prints "not promoted: <why>" and exits 0,
so `make run` goes on with the current champion; scripts read the decision from the output
or from the version's `promotion.decision` tag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

app = typer.Typer(no_args_is_help=True)

SUMMARY_METRICS = (
    "ndcg@10",
    "recall@10",
    "precision@10",
    "hit_rate@10",
    "coverage@10",
    "mean_distance_km@10",
    "ineligible_rate@10",
)


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Expected errors as a message on stderr and exit code 1."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (ValueError, FileNotFoundError, MlflowException) as error:
        message = error.message if isinstance(error, MlflowException) else str(error)
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except ConnectionError as error:
        typer.secho(f"error: cannot reach the tracking server: {error}", fg="red", err=True)
        raise typer.Exit(1) from None


def _reporter(quiet: bool) -> Callable[[str], None]:
    return (lambda message: None) if quiet else typer.echo


def _table(frame: pd.DataFrame) -> str:
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        return frame.to_string()


@app.command("train")
def train(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Experiment file (experiments/*.yaml).")
    ],
    features: Annotated[
        Path | None,
        typer.Option(help="Feature set folder (holding test/); default the experiment's."),
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Try to make the new version champion.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or step lines.")
    ] = False,
) -> None:
    """Fit a model, evaluate it next to its baselines, log it to MLflow and register it."""
    with _clean_errors():
        from training.experiment import load_experiment
        from training.jobs import train_experiment

        experiment = load_experiment(config)
        outcome = train_experiment(
            experiment, features=features, promote=promote, quiet=quiet, report=_reporter(quiet)
        )
    table = outcome.evaluation.table(SUMMARY_METRICS).round(4)
    typer.echo(_table(table))
    typer.echo(f"run {outcome.run_id}, registered version {outcome.version} (challenger)")
    if outcome.decision is not None:
        typer.echo(outcome.decision.message())


@app.command("promote")
def promote(
    version: Annotated[
        str | None, typer.Option(help="Version to judge; default the challenger.")
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Gain of the run's promotion metric required over the champion; "
            "default the run's.",
        ),
    ] = None,
    new_holdout: Annotated[
        bool,
        typer.Option(
            "--new-holdout",
            help="The champion was evaluated on other data: judge against the baselines instead.",
        ),
    ] = False,
) -> None:
    """Make a version champion if it beats the current one on the same holdout."""
    with _clean_errors():
        from training import registry, tracking

        tracking.configure()
        decision = registry.promote(version, margin=margin, new_holdout=new_holdout)
    typer.echo(decision.message())


@app.command("tune")
def tune(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Experiment file with a `tuning` section.")
    ],
    trials: Annotated[
        int | None, typer.Option(min=1, help="Trials to run now; default the file's n_trials.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes sharing the study.")] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Study storage: a journal file path, or postgresql://... "
            "(default $OPTUNA_STORAGE, else data/optuna/<name>.journal)."
        ),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(help="Feature set folder (holding validation/); default the experiment's."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name; default <name>-<data fingerprint>.")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or step lines.")
    ] = False,
) -> None:
    """Search hyper-parameters on the validation window; write experiments/<name>-tuned.yaml."""
    with _clean_errors():
        from training.tuning import tune as run_tuning

        outcome = run_tuning(
            config,
            trials=trials,
            workers=workers,
            storage=storage,
            features=features,
            study_name=study,
            quiet=quiet,
            report=_reporter(quiet),
        )
    typer.echo(
        f"study {outcome.study_name}: {outcome.trials_total} trials ({outcome.trials_run} now); "
        f"best {outcome.best_value:.4f} with {outcome.best_params}"
    )
    typer.echo(f"tuned experiment: {outcome.tuned_file}")


@app.command("runs")
def runs(
    limit: Annotated[int, typer.Option(min=1, help="Most recent runs to list.")] = 10,
) -> None:
    """Recent training runs and the registered versions with their aliases."""
    with _clean_errors():
        from training import tracking
        from training.runs import recent_runs, registered_versions

        tracking.configure()
        recent = recent_runs(limit)
        versions = registered_versions()
    typer.echo(_table(recent.round(4)) if len(recent) else "no training run yet")
    typer.echo("")
    typer.echo(_table(versions) if len(versions) else "no registered version yet")

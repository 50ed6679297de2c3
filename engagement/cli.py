"""`recsys` console script: assembles each stage's sub-commands and the end-to-end `run`.

Each stage keeps its commands next to its code (`recsys/cli.py`, `features/cli.py`,
`training/cli.py`, `serving/cli.py`); this module only stitches them together, so the core
never imports a stage.
"""

from __future__ import annotations

import typer

from features.cli import app as features_app
from recsys.cli import app as core_app
from training.cli import app as training_app

app = typer.Typer(
    help="Engagement offer recommendations: simulate or ingest, build features, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(core_app)
app.add_typer(features_app)
app.add_typer(training_app)


@app.command()
def run(
    preset: str = typer.Option("demo", help="Simulator preset used when no data exists yet."),
    seed: int = typer.Option(42, help="Seed of the simulation."),
) -> None:
    """The main job on embedded defaults: simulate the dataset (if missing) and summarise it."""
    from recsys.cli import simulate_and_summarise

    simulate_and_summarise(preset=preset, seed=seed)

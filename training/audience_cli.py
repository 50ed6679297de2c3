"""`recsys audience evaluate`: the offline evaluation of audiences (`recsys.audience_evaluation`).

Trains the experiment's model on the feature set's window, then ranks the consenting known
people for the window's offers and prints recall and NDCG next to the baselines (and the
oracle on simulated data). `--offers crisis` evaluates the crisis scenario's offers only,
drawn as the coordinator's need would be: inside the crisis area.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from recsys.featureset import TEST_WINDOW, WINDOWS


def evaluate(
    features: Annotated[Path, typer.Option(help="Feature set folder (recsys features --out).")],
    experiment: Annotated[Path, typer.Option(help="Experiment whose model scores people.")] = Path(
        "experiments/hybrid.yaml"
    ),
    window: Annotated[str, typer.Option(help="test or validation (tuning).")] = TEST_WINDOW,
    offers: Annotated[
        str, typer.Option(help="all: the window's offers; crisis: the crisis scenario's.")
    ] = "all",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON.")
    ] = None,
) -> None:
    """Rank consenting known people for the window's offers; recall@100/1000, NDCG@100."""
    from recsys.audience import Area, AudienceConfig
    from recsys.audience_evaluation import evaluate_audiences
    from recsys.featureset import load_feature_set
    from recsys.models import create_model
    from training.experiment import ExperimentError, load_experiment

    if window not in WINDOWS:
        raise _fail(f"--window: expected one of {', '.join(WINDOWS)}, got {window!r}", 2)
    if offers not in ("all", "crisis"):
        raise _fail(f"--offers: expected all or crisis, got {offers!r}", 2)
    try:
        spec = load_experiment(experiment)
        feature_set = load_feature_set(features, window)
    except (ExperimentError, FileNotFoundError, ValueError) as error:
        raise _fail(str(error), 2) from None
    data_dir = Path(feature_set.manifest["data_dir"])
    offer_ids, area = None, None
    if offers == "crisis":
        manifest_path = data_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        crisis = manifest.get("crisis")
        if crisis is None:
            raise _fail(f"--offers crisis: {data_dir} holds no crisis scenario", 2)
        offer_ids = crisis["offers"]
        area = Area(lat=crisis["lat"], lon=crisis["lon"], radius_km=crisis["config"]["reach_km"])
    started = time.perf_counter()
    model = create_model(spec.model, spec.params)
    model.train(feature_set.training_data())
    typer.echo(f"trained {spec.model} in {time.perf_counter() - started:.1f} s")
    truth = data_dir / "truth"
    result = evaluate_audiences(
        feature_set,
        model,
        AudienceConfig(),
        truth_dir=truth if truth.is_dir() else None,
        offer_ids=offer_ids,
        area=area,
    )
    typer.echo(result.table().round(4).to_string())
    typer.echo(
        f"{result.data['offers']} offers, {result.data['relevant_people']} relevant people, "
        f"{result.data['people_consenting']} consenting; audience / best baseline recall@100: "
        f"{result.ratio_to_best_baseline():.2f}"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"methods": result.methods, "data": result.data}
        json_out.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)

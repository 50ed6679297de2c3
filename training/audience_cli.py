"""`recsys audience evaluate` and `recsys audience tune`: audiences offline
(`recsys.audience_evaluation`).

`evaluate` trains the experiment's model on the feature set's window, then ranks the
consenting known people for the window's offers and prints recall and NDCG next to the
baselines (and the oracle on simulated data). `--offers crisis` evaluates the crisis
scenario's offers only, drawn as the coordinator's need would be: inside the crisis area.
`--config` reads `AudienceConfig` weights from a YAML file (default: the code's defaults).

`tune` fits the weights on the validation window only (`recsys.audience_evaluation.fit_weights`:
a conditional logit of who applied to which offer among the eligible people) and writes them
as a YAML for `--config`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

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
    config: Annotated[
        Path | None, typer.Option(help="YAML of AudienceConfig weights (recsys audience tune).")
    ] = None,
) -> None:
    """Rank consenting known people for the window's offers; recall@100/1000, NDCG@100."""
    from recsys.audience import Area
    from recsys.audience_evaluation import evaluate_audiences
    from recsys.featureset import load_feature_set
    from recsys.models import create_model
    from training.experiment import ExperimentError, load_experiment

    weights = _weights(config)
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
        weights,
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


def tune(
    features: Annotated[Path, typer.Option(help="Feature set folder (recsys features --out).")],
    experiment: Annotated[Path, typer.Option(help="Experiment whose model scores people.")] = Path(
        "experiments/hybrid.yaml"
    ),
    l2: Annotated[
        float, typer.Option(min=0.0, help="Ridge penalty on the standardised terms.")
    ] = 1.0,
    out: Annotated[Path, typer.Option(help="YAML of the fitted weights.")] = Path(
        "experiments/audience-tuned.yaml"
    ),
) -> None:
    """Fit the audience weights on the validation window (conditional logit); write a YAML."""
    import yaml

    from recsys.audience import TERM_WEIGHTS, AudienceConfig
    from recsys.audience_evaluation import evaluate_audiences, fit_weights, panel
    from recsys.featureset import VALIDATION_WINDOW, load_feature_set
    from recsys.models import create_model
    from training.experiment import ExperimentError, load_experiment

    try:
        spec = load_experiment(experiment)
        feature_set = load_feature_set(features, VALIDATION_WINDOW)
    except (ExperimentError, FileNotFoundError, ValueError) as error:
        raise _fail(str(error), 2) from None
    model = create_model(spec.model, spec.params)
    model.train(feature_set.training_data())
    people = panel(feature_set, AudienceConfig())  # the weights do not change it
    try:
        fitted = fit_weights(feature_set, model, AudienceConfig(), people=people, l2=l2)
    except ValueError as error:
        raise _fail(str(error)) from None
    result = evaluate_audiences(feature_set, model, fitted, people=people, baselines=False)
    weights = {name: getattr(fitted, name) for name in TERM_WEIGHTS.values()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(weights, sort_keys=False))
    metrics = result.methods["audience"]
    typer.echo(
        f"validation window: recall@100 {metrics['recall@100']:.4f}, "
        f"NDCG@100 {metrics['ndcg@100']:.4f} -> {out}"
    )
    typer.echo(yaml.safe_dump(weights, sort_keys=False).rstrip())


def _weights(path: Path | None) -> Any:
    """`AudienceConfig` from a YAML file of its fields; the defaults without one."""
    import yaml

    from recsys.audience import AudienceConfig

    if path is None:
        return AudienceConfig()
    if not path.is_file():
        raise _fail(f"--config: {path} does not exist", 2)
    try:
        return AudienceConfig.from_dict(yaml.safe_load(path.read_text("utf-8")) or {})
    except (yaml.YAMLError, ValueError, TypeError) as error:
        raise _fail(f"--config {path}: {error}", 2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)

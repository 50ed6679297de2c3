"""Choosing the response model's hyperparameters on the validation window of logged data.

The response model (`recsys.models.response`) is trained on the feature set's validation
window (events before `validation_start`) and judged on the prints of the validation window
itself ([validation_start, cutoff), never the test window, never the replay): the held-out
log loss of each print's application under the position-based model,
P(apply | print at r) = e(r) · P(click | examined) · P(apply | click), with e the model's
own position-bias estimate, and the same for clicks. Search-engine landings are left out,
as in training.

    .venv/bin/python benchmarks/response_validation.py --data DIR [--features DIR] \\
        --grid l2=1e-4,1e-3 offer_l2=1e-3,1e-2
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def held_out_prints(features: Path):
    """The test window's impressions inside the validation window, as rows of the
    validation set's users and offers."""
    import numpy as np
    import pandas as pd

    from recsys.featureset import IMPRESSIONS_FILE, load_feature_set

    validation = load_feature_set(features, "validation")
    test_folder = features / "test"
    frame = pd.read_parquet(test_folder / IMPRESSIONS_FILE)
    inside = (frame["createdAt"] >= validation.window_start) & (
        frame["createdAt"] < validation.window_end
    )
    frame = frame[inside & (frame["source"] != "seo")]
    users = pd.Index(validation.user_ids).get_indexer(frame["user_key"].to_numpy(dtype=object))
    offers = pd.Index(validation.offer_ids).get_indexer(frame["offer_id"].to_numpy(dtype=object))
    keep = (offers >= 0) & frame["position"].notna().to_numpy()
    frame = frame[keep].assign(offer_row=offers[keep], user_row=users[keep])
    return validation, frame.reset_index(drop=True), np.asarray(users[keep])


def log_loss(p, y) -> float:
    import numpy as np

    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def evaluate(params: dict[str, float], validation, frame) -> dict[str, float]:
    """Held-out click and apply log loss of a response model trained with `params`."""
    import numpy as np

    from recsys.models import create_model

    model = create_model("response", params)
    started = time.perf_counter()
    model.train(validation.training_data())
    seconds = time.perf_counter() - started
    keys = frame["user_key"].to_numpy(dtype=object)
    user_ids = np.unique(keys)
    users = validation.user_batch(user_ids)
    offer_rows = np.unique(frame["offer_row"].to_numpy())
    offers = validation.offer_batch(validation.offer_ids[offer_rows])
    prepared = model.prepare_offers(offers)
    row_of_user = np.searchsorted(user_ids, keys)
    col_of_offer = np.searchsorted(offer_rows, frame["offer_row"].to_numpy())
    log_apply = np.empty(len(frame))
    log_click = np.empty(len(frame))
    for start in range(0, len(user_ids), 2000):
        block = np.arange(start, min(start + 2000, len(user_ids)))
        click, apply = model.logits(users.take(block), prepared)
        mine = (row_of_user >= start) & (row_of_user < block[-1] + 1)
        c = click[row_of_user[mine] - start, col_of_offer[mine]]
        a = apply[row_of_user[mine] - start, col_of_offer[mine]]
        log_click[mine] = -np.logaddexp(0.0, -c)
        log_apply[mine] = log_click[mine] - np.logaddexp(0.0, -a)
    examined = model.examination(frame["position"].to_numpy(dtype=np.int64))
    clicked = frame["clicked"].to_numpy(dtype=float)
    applied = frame["applied"].to_numpy(dtype=float)
    return {
        "seconds": seconds,
        "click_log_loss": log_loss(examined * np.exp(log_click), clicked),
        "apply_log_loss": log_loss(examined * np.exp(log_apply), applied),
        "base_apply_log_loss": log_loss(np.full(len(applied), applied.mean()), applied),
        "prints": len(frame),
        "applies": int(applied.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a simulated dataset")
    parser.add_argument("--features", type=Path, help="feature set (built here if absent)")
    parser.add_argument("--grid", nargs="*", default=[], help="name=v1,v2 ... per parameter")
    args = parser.parse_args()

    from features.build import build_feature_set
    from features.config import FeatureConfig

    features = args.features or args.data.parent / (args.data.name + "-features")
    build_feature_set(args.data, features, FeatureConfig())
    validation, frame, _ = held_out_prints(features)
    names = [item.split("=")[0] for item in args.grid]
    values = [[float(v) for v in item.split("=")[1].split(",")] for item in args.grid]
    for combo in itertools.product(*values) if values else [()]:
        params = dict(zip(names, combo, strict=True))
        figures = evaluate(params, validation, frame)
        print(params, {k: round(v, 5) if isinstance(v, float) else v for k, v in figures.items()})


if __name__ == "__main__":
    main()

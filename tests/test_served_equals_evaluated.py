"""What is evaluated is what is served: `recsys evaluate --lists` against `/rank` over HTTP
and against the registered model's lists (`RankerBundle.recommend`).

On the tiny preset, one model is evaluated at one instant (the cutoff, `--at`) and the same
model, trained the same way on the same feature set, is served from a bundle by a real
`bentoml serve` (its catalog the bundle's snapshot, ranked at the cutoff). For people the
model knows, people with a profile it does not know (cold start: the rules blended in) and
anonymous visitors, the list `/rank` returns is the list evaluation wrote: same candidates,
exclusions, caps and order. LightFM knows its training users by their identity column and
does not blend the rules itself, so the three kinds of people take the policy's three paths.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engagement.cli import app
from recsys.bundle import load_bundle, save_bundle
from recsys.featureset import load_feature_set
from recsys.models import create_model
from serving.process import running_servers

pytest_plugins = ["tests.training_fixtures"]
pytestmark = [pytest.mark.service, pytest.mark.slow]

MODEL = "lightfm"
K = 20  # the longest cut-off of the evaluation: its lists are the ones written
PER_KIND = 6


def test_evaluated_lists_are_the_served_lists(
    tiny_dataset: Path, tiny_features: Path, tmp_path: Path
) -> None:
    feature_set = load_feature_set(tiny_features)
    cutoff = pd.Timestamp(feature_set.window_start)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
    lists_path = tmp_path / "lists.csv"
    outcome = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--data",
            str(tiny_dataset),
            "--features",
            str(tiny_features),
            "--models",
            MODEL,
            "--no-oracle",
            "--lists",
            str(lists_path),
            "--at",
            cutoff.isoformat(),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    evaluated = pd.read_csv(lists_path, dtype={"person": str, "offer": str})
    assert list(evaluated.columns) == ["person", "rank", "offer", "score", "model"]

    model = create_model(MODEL)
    model.train(feature_set.training_data())
    bundle = save_bundle(model, feature_set, tmp_path / "bundle")

    people = evaluated["person"].unique()
    profiled = np.isin(people, np.asarray(feature_set.user_ids).astype(str))
    known = model.knows(people.astype(object))
    kinds = {
        "personalized": people[known][:PER_KIND],
        "cold_start": people[profiled & ~known][:PER_KIND],
        "anonymous": people[~profiled][:PER_KIND],
    }
    assert all(len(chosen) > 0 for chosen in kinds.values()), kinds
    lengths = evaluated[evaluated["person"].isin(np.concatenate(list(kinds.values())))]
    assert (lengths.groupby("person").size() == K).mean() > 0.5  # full lists, caps at work

    env = {
        "RECSYS_MODEL_URI": str(bundle),
        "RECSYS_PROFILES": str(tiny_dataset / "profiles.parquet"),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    with running_servers([(env, tmp_path / "server.log")]) as (base,), httpx.Client() as client:
        for kind, chosen in kinds.items():
            for person in chosen.tolist():
                answer = client.post(f"{base}/rank", json={"user_id": person, "k": K}, timeout=30)
                assert answer.status_code == 200, answer.text
                body = answer.json()
                strategy = "cold_start" if kind == "anonymous" else kind
                assert body["strategy"] == strategy, (kind, person)
                expected = evaluated[evaluated["person"] == person].sort_values("rank")
                served = [item["offer_id"] for item in body["items"]]
                assert served == expected["offer"].tolist(), (kind, person)
                np.testing.assert_allclose(
                    [item["score"] for item in body["items"]],
                    expected["score"].to_numpy(),
                    rtol=1e-5,
                    atol=1e-5,
                )

    # The registered model (the MLflow pyfunc ranks with `RankerBundle.recommend`): the same
    # lists from each person's stored profile, or their id alone when they have none.
    stored = pd.read_parquet(tiny_dataset / "profiles.parquet")
    registered = load_bundle(bundle)
    for kind, chosen in kinds.items():
        rows = [
            stored[stored["userId"] == person].iloc[:1]
            if (stored["userId"] == person).any()
            else pd.DataFrame({"userId": [person]})
            for person in chosen.tolist()
        ]
        lists = registered.recommend(pd.concat(rows, ignore_index=True), K, at=cutoff)
        for person, listed in zip(chosen.tolist(), lists, strict=True):
            expected = evaluated[evaluated["person"] == person].sort_values("rank")
            assert listed == expected["offer"].tolist(), (kind, person)

"""The short form of benchmarks/load_test.py: 500 mixed /rank requests at 32 clients against a
real server on the tiny world, with no error (timing is the benchmark's business)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.load_test import drive, rank_bodies
from serving.process import running_servers
from tests.service_fixtures import CITIES, catalog_offers, training_profiles, write_world

pytestmark = pytest.mark.service


def test_500_mixed_requests_at_32_clients_without_error(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(world["catalog"]),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    bodies = rank_bodies(
        500,
        np.random.default_rng(0),
        training_profiles()["userId"].tolist(),
        [place for place, *_ in CITIES.values()],
        catalog_offers()["id"].tolist(),
    )
    assert {frozenset(body) for body in bodies} >= {
        frozenset({"user_id", "k"}),
        frozenset({"profile", "k"}),
        frozenset({"profile", "k", "filters", "exclude_offer_ids"}),
    }
    with running_servers([(env, tmp_path / "server.log")]) as (base,):
        result = asyncio.run(drive(base, bodies, 32))
        status = httpx.get(f"{base}/status", timeout=30).json()
    assert result.requests == 500 and sum(result.kinds.values()) == 500
    assert result.errors == 0, dict(result.kinds)
    assert status["rank_log_dropped"] == 0

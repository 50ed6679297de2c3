"""What operations watch, over a real `bentoml serve`: JSON log lines and business metrics.

One server for the module, on the tiny world of `tests.service_fixtures` (its catalog as a
JSON export, so that the offers loader reads it), with RECSYS_LOG_FORMAT=json and its events
in a SQLite file the tests can break.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from recsys.loaders import load_offers
from serving.process import running_servers
from tests.service_fixtures import catalog_offers, write_world

pytestmark = pytest.mark.service

KNOWN = {"user_id": "sport-paris-1", "k": 3}
ANONYMOUS = {"profile": {"age": 20, "postal_code": "75011", "radius_km": 30}, "k": 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    folder = tmp_path_factory.mktemp("operations")
    world = write_world(folder)
    catalog_offers().to_json(folder / "offers.json", orient="records", date_format="iso")
    env = {
        "RECSYS_MODEL_URI": str(world["bundle"]),
        "RECSYS_CATALOG": str(folder / "offers.json"),
        "RECSYS_PROFILES": str(world["profiles"]),
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{folder / 'events.db'}",
        "RECSYS_LOG_FORMAT": "json",
        "RECSYS_LOG_LEVEL": "INFO",
        "RECSYS_ACCESS_LOG_ALL": "true",
    }
    log = folder / "server.log"
    with running_servers([(env, log)]) as (base,), httpx.Client(base_url=base, timeout=30) as c:
        yield c, folder


def _samples(client: httpx.Client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics by (name, labels)."""
    text = client.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _json_lines(log: Path, until: Any) -> list[dict]:
    """The server log's JSON objects, read again until `until(objects)` holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        objects = []
        for line in log.read_text().splitlines():
            if line.startswith("{"):
                objects.append(json.loads(line))
        if until(objects) or time.monotonic() > deadline:
            return objects
        time.sleep(0.1)


def test_logs_are_json_lines_with_the_loaders_fields(server: tuple[httpx.Client, Path]) -> None:
    client, folder = server
    assert client.post("/rank", json={"k": 0}).status_code == 400
    objects = _json_lines(
        folder / "server.log",
        lambda found: any(o["logger"] == "bentoml.access" for o in found),
    )
    loaded = [o for o in objects if o["message"] == "offers loaded"]
    assert loaded and loaded[0]["loaded"] == len(load_offers(folder / "offers.json").table)
    assert loaded[0]["source"].endswith("offers.json") and loaded[0]["level"] == "INFO"
    assert not any(o["logger"] == "uvicorn.access" for o in objects)  # it names the client
    assert any(o["message"].startswith("model loaded") for o in objects)
    access = [o for o in objects if o["logger"] == "bentoml.access"]
    assert any("path=/rank" in o["message"] and "status=400" in o["message"] for o in access)


def test_business_metrics(server: tuple[httpx.Client, Path]) -> None:
    client, folder = server
    before = _samples(client)
    for body in (KNOWN, KNOWN, KNOWN, ANONYMOUS, ANONYMOUS):
        client.post("/rank", json=body).raise_for_status()
    after = _samples(client)
    for strategy, count in (("personalized", 3), ("cold_start", 2)):
        name = "recsys_lists_total"
        labels = {"strategy": strategy, "arm": "none"}  # no experiment runs here
        grown = _value(after, name, **labels) - _value(before, name, **labels)
        assert grown == count
    assert _value(after, "recsys_model_info", model_version="local:bundle", model_name="hybrid")
    size = client.get("/status").json()["catalog_size"]
    assert size > 0 and _value(after, "recsys_catalog_offers") == size
    loaded_at = _value(after, "recsys_catalog_loaded_timestamp_seconds")
    assert 0 <= time.time() - loaded_at < 600
    assert ("recsys_rank_log_pending", frozenset()) in after
    assert _value(after, "recsys_rank_log_dropped_total") == 0
    assert _value(after, "recsys_event_store_errors_total", operation="events") == 0

    # The events table gone, /events fails (503) and the failure is counted.
    engine = sa.create_engine(f"sqlite:///{folder / 'events.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE events"))
    engine.dispose()
    event = {"id": "e-1", "type": "click", "mission_id": "paris-sport-0"}
    assert client.post("/events", json={"events": [event]}).status_code == 503
    errors = _value(_samples(client), "recsys_event_store_errors_total", operation="events")
    assert errors == 1


def test_postal_codes_in_other_scripts_are_refused(server: tuple[httpx.Client, Path]) -> None:
    """'٦٩٠٠٣' (69003 in Arabic-Indic digits) is a 400 naming the field, in /rank and /events."""
    client, _ = server
    profile = {"age": 20, "postal_code": "٦٩٠٠٣"}
    answer = client.post("/rank", json={"profile": profile})
    assert answer.status_code == 400 and "postal_code" in answer.text
    event = {"id": "e-2", "type": "apply", "mission_id": "x", "candidate_postal_code": "٦٩٠٠٣"}
    answer = client.post("/events", json={"events": [event]})
    assert answer.status_code == 400 and "candidate_postal_code" in answer.text

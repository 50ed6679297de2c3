"""`recsys sync` against the mock of the national API, over real HTTP (uvicorn on a free port)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engagement.cli import app
from recsys import config, schema
from recsys.mock_api import Faults, MockAPI, missions_from_offers, running
from recsys.schema import Profile
from recsys.sync import (
    PAGES_DIR,
    STATE_FILE,
    SyncConfig,
    SyncError,
    merge_perimeter,
    parse_duration,
    read_state,
    sync,
)
from serving.engine import Engine
from serving.process import free_port, running_servers, terminate
from serving.schemas import RankRequest
from serving.settings import Settings

pytest_plugins = ["tests.training_fixtures"]  # tiny_dataset, tiny_features

KEY = "partner-key"
SLOW = 0.3  # seconds of a slow page
NOW = pd.Timestamp.now(tz="UTC").floor("s")
ARLES = (43.5469, 4.6622)
pytestmark = pytest.mark.service


def mission(mission_id: str, updated_days_ago: int = 5, **fields: Any) -> dict[str, Any]:
    """An open bénévolat mission in Arles as the API exports it."""
    stamp = (NOW - pd.Timedelta(days=updated_days_ago)).isoformat()
    return {
        "id": mission_id,
        "publisherId": "pub",
        "title": f"Mission {mission_id}",
        "domain": "solidarite-insertion",
        "type": "benevolat",
        "statusCode": "ACCEPTED",
        "remote": "no",
        "createdAt": (NOW - pd.Timedelta(days=30)).isoformat(),
        "postedAt": (NOW - pd.Timedelta(days=30)).isoformat(),
        "updatedAt": stamp,
        "startAt": (NOW + pd.Timedelta(days=3)).isoformat(),
        "city": "Arles",
        "postalCode": "13200",
        "location": {"lat": ARLES[0], "lon": ARLES[1]},
        **fields,
    }


class _Server:
    """A MockAPI and the URL it is served at."""

    def __init__(self, api: MockAPI, url: str) -> None:
        self.api = api
        self.url = url


@pytest.fixture
def mock() -> Iterator[_Server]:
    api = MockAPI([mission(f"m{i}") for i in range(7)], key=KEY)
    with running(api) as url:
        yield _Server(api, url)


def _settings(server: _Server, out: Path, **overrides: Any) -> SyncConfig:
    values = {"api": server.url, "out": out, "key": KEY, "page_size": 2, "backoff_seconds": 0.0}
    return SyncConfig(**(values | overrides))


def _stored(out: Path) -> pd.DataFrame:
    return schema.read_table(out / config.OFFERS_FILE).set_index("id")


# --- The mock ----------------------------------------------------------------------------------


def test_mock_pages_with_limit_skip_and_their_aliases(mock: _Server) -> None:
    headers = {"apikey": KEY}
    url = mock.url + "/v0/mission"
    page = httpx.get(url, params={"limit": 3, "skip": 5}, headers=headers).json()
    assert (page["ok"], page["total"], page["limit"], page["skip"]) == (True, 7, 3, 5)
    assert [m["id"] for m in page["data"]] == ["m5", "m6"]
    aliased = httpx.get(url, params={"size": 3, "from": 5}, headers={"x-api-key": KEY}).json()
    assert aliased["data"] == page["data"]
    default = httpx.get(url, headers=headers).json()
    assert (default["limit"], default["skip"], len(default["data"])) == (25, 0, 7)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 10_001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"skip": -1}, "skip"),
        ({"size": "ten"}, "size"),
        ({"limit": 2, "size": 3}, "limit and size"),
    ],
)
def test_mock_refuses_bad_queries_with_400(
    mock: _Server, params: dict[str, Any], field: str
) -> None:
    response = httpx.get(mock.url + "/v0/mission", params=params, headers={"apikey": KEY})
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["code"] == "INVALID_QUERY"
    assert body["message"].startswith(field)


def test_mock_requires_the_key(mock: _Server) -> None:
    for headers in ({}, {"apikey": "wrong"}):
        response = httpx.get(mock.url + "/v0/mission", headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


def test_mock_slows_down_every_nth_request(mock: _Server) -> None:
    """Request n waits `slow_seconds` when n is a multiple of `slow_every`, and only then: the
    odd requests are asked under a 10 s delay, and answer well within it."""
    url, headers = mock.url + "/v0/mission", {"apikey": KEY}

    def timed(slow_seconds: float) -> tuple[float, dict[str, Any]]:
        mock.api.faults = Faults(slow_every=2, slow_seconds=slow_seconds)
        began = time.monotonic()
        body = httpx.get(url, params={"limit": 7}, headers=headers, timeout=30).json()
        return time.monotonic() - began, body

    for number in range(1, 5):
        seconds, body = timed(SLOW if number % 2 == 0 else 10.0)
        if number % 2 == 0:
            assert seconds >= SLOW, f"request {number}: {seconds:.3f}s"
        else:
            assert seconds < 5.0, f"request {number}: {seconds:.3f}s"
        assert body["ok"] is True and [m["id"] for m in body["data"]] == [f"m{i}" for i in range(7)]
    assert mock.api.requests == 4


def test_mock_serves_a_canonical_table_back_in_the_api_format(tmp_path: Path) -> None:
    """A dataset's offers, turned into missions and loaded again, are the same offers."""
    from recsys.loaders import load_offers

    export = tmp_path / "export.json"
    export.write_text(json.dumps([mission("a"), mission("b", remote="full", location=None)]))
    table = load_offers(export).table
    schema.write_table(table, "offers", tmp_path / config.OFFERS_FILE)
    again = tmp_path / "again.json"
    again.write_text(
        json.dumps(missions_from_offers(schema.read_table(tmp_path / "offers.parquet")))
    )
    reloaded = load_offers(again).table
    columns = ["id", "domain", "type", "remote", "lat", "lon", "updatedAt", "startAt", "city"]
    pd.testing.assert_frame_equal(reloaded[columns], table[columns])


# --- Sync --------------------------------------------------------------------------------------


def test_first_sync_pages_through_everything(mock: _Server, tmp_path: Path) -> None:
    report = sync(_settings(mock, tmp_path))
    assert (report.fetched, report.added, report.pages, report.total) == (7, 7, 4, 7)
    assert mock.api.pages == [(2, 0), (2, 2), (2, 4), (2, 6)]
    assert sorted(_stored(tmp_path).index) == [f"m{i}" for i in range(7)]
    state = read_state(tmp_path)
    assert "run" not in state and state["last_complete"]["added"] == 7
    assert not (tmp_path / PAGES_DIR).exists()


def test_incremental_sync_updates_closes_deletes_and_rejects(mock: _Server, tmp_path: Path) -> None:
    sync(_settings(mock, tmp_path))
    api = mock.api
    api.upsert(mission("m1", updated_days_ago=1, title="Changed"))  # updated
    api.upsert(mission("m2", updated_days_ago=5, title="Same date"))  # not later: unchanged
    api.upsert(mission("m3", updated_days_ago=1, deletedAt=NOW.isoformat()))  # deleted
    api.remove("m4")  # gone from the perimeter
    api.upsert(mission("m7"))  # new
    api.upsert(mission("bad", domain="astrologie"))  # rejected
    report = sync(_settings(mock, tmp_path))
    assert (report.added, report.updated, report.closed, report.deleted) == (1, 2, 1, 1)
    assert report.unchanged == 4 and report.rejected == 1  # m0 m2 m5 m6
    assert report.reject_reasons == {"unknown_domain": 1}
    stored = _stored(tmp_path)
    assert stored.loc["m1", "title"] == "Changed"
    assert stored.loc["m2", "title"] == "Mission m2"
    assert stored.loc["m3", "deletedAt"] == pd.Timestamp(NOW)
    started = pd.Timestamp(report.started_at)
    assert stored.loc["m4", "deletedAt"] == started.floor("ms")
    assert stored["deletedAt"].isna().sum() == 6  # m0 m1 m2 m5 m6 m7
    rejects = [json.loads(line) for line in (tmp_path / "offers.rejects.jsonl").open()]
    assert [(r["id"], r["reason"]) for r in rejects] == [("bad", "unknown_domain")]
    # Back in the perimeter, unchanged: open again. The reject, unchanged, is not logged again.
    api.upsert(mission("m4"))
    again = sync(_settings(mock, tmp_path))
    assert again.updated == 1 and pd.isna(_stored(tmp_path).loc["m4", "deletedAt"])
    assert (again.rejected, again.still_rejected, again.unchanged) == (0, 1, 7)
    assert len((tmp_path / "offers.rejects.jsonl").read_text().splitlines()) == 1
    quiet = sync(_settings(mock, tmp_path))
    assert (quiet.added, quiet.updated, quiet.closed, quiet.unchanged) == (0, 0, 0, 8)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_sync_retries_with_backoff(mock: _Server, tmp_path: Path, status: int) -> None:
    mock.api.faults = Faults(fail_every=2, fail_status=status)
    waits: list[float] = []
    settings = _settings(mock, tmp_path, backoff_seconds=0.01)
    report = sync(settings, sleep=waits.append)
    # Requests 2, 4 and 6 fail: pages 2, 3 and 4 are retried once each, then succeed.
    assert report.total == 7 and report.retries == 3
    assert waits == [0.01] * 3


def test_backoff_doubles_and_exhausted_retries_fail(mock: _Server, tmp_path: Path) -> None:
    mock.api.faults = Faults(fail_every=1, fail_status=429)
    waits: list[float] = []
    settings = _settings(mock, tmp_path, backoff_seconds=0.01, retries=3, max_backoff_seconds=0.03)
    with pytest.raises(SyncError, match="failed 4 times"):
        sync(settings, sleep=waits.append)
    assert waits == [0.01, 0.02, 0.03]
    assert not (tmp_path / config.OFFERS_FILE).exists()


def test_a_refused_key_fails_without_retrying(mock: _Server, tmp_path: Path) -> None:
    with pytest.raises(SyncError, match="401 UNAUTHORIZED"):
        sync(_settings(mock, tmp_path, key="stolen"), sleep=lambda _: pytest.fail("retried"))


def test_sync_completes_through_slow_pages(mock: _Server, tmp_path: Path) -> None:
    """Slow pages are waited for; a page slower than the request timeout is abandoned and
    asked again (the retry, request n + 1, is not slow)."""
    mock.api.faults = Faults(slow_every=2, slow_seconds=SLOW)  # pages 2 and 4
    report = sync(_settings(mock, tmp_path / "patient"))
    assert (report.pages, report.retries, report.total) == (4, 0, 7)
    assert report.seconds >= 2 * SLOW
    assert sorted(_stored(tmp_path / "patient").index) == [f"m{i}" for i in range(7)]

    mock.api.faults = Faults(slow_every=2, slow_seconds=2.0)
    mock.api.requests = 0
    impatient = sync(_settings(mock, tmp_path / "impatient", timeout_seconds=0.5))
    # Every even request times out and the 4 pages succeed on odd ones: 3 retries at least.
    assert impatient.total == 7 and impatient.retries >= 3
    assert sorted(_stored(tmp_path / "impatient").index) == [f"m{i}" for i in range(7)]


def test_an_interrupted_sync_resumes_at_the_next_page(mock: _Server, tmp_path: Path) -> None:
    mock.api.faults = Faults(fail_every=3, fail_status=500)  # the third request fails
    with pytest.raises(SyncError, match="skip=4"):
        sync(_settings(mock, tmp_path, retries=0))
    run = read_state(tmp_path)["run"]
    assert (run["next_skip"], run["pages"], run["complete"]) == (4, 2, False)
    assert not (tmp_path / config.OFFERS_FILE).exists()  # nothing merged yet
    mock.api.faults = Faults()
    mock.api.pages.clear()
    report = sync(_settings(mock, tmp_path))
    assert report.resumed and report.pages == 2 and mock.api.pages == [(2, 4), (2, 6)]
    assert report.added == report.total == 7
    fresh = tmp_path / "fresh"
    sync(_settings(mock, fresh))
    resumed, whole = _stored(tmp_path).sort_index(), _stored(fresh).sort_index()
    pd.testing.assert_frame_equal(
        resumed.drop(columns="addresses"), whole.drop(columns="addresses")
    )


def test_an_offer_created_in_the_api_is_recommendable_after_one_sync(
    mock: _Server, tmp_path: Path
) -> None:
    sync(_settings(mock, tmp_path))
    engine = Engine.start(
        Settings(model_uri=str(tmp_path / "no-model"), catalog=tmp_path / config.OFFERS_FILE)
    )
    person = RankRequest(profile=Profile(age=20, postal_code="13200", radius_km=10), k=20)
    before = {item.offer_id for item in engine.rank(person).response.items}
    assert before == {f"m{i}" for i in range(7)}
    mock.api.upsert(mission("fresh", updated_days_ago=0))
    mock.api.remove("m0")
    report = sync(_settings(mock, tmp_path))
    assert (report.added, report.closed) == (1, 1)
    result = engine.update_catalog(str(tmp_path / config.OFFERS_FILE), "replace")
    assert result.ok, result.message
    response = engine.rank(person).response
    after = {item.offer_id for item in response.items}
    assert after == before - {"m0"} | {"fresh"}
    assert response.location is not None and response.location.commune == "Arles"


def test_merge_perimeter_by_hand() -> None:
    at = pd.Timestamp("2025-06-01", tz="UTC")
    stored = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "updatedAt": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-01-01"], utc=True),
            "deletedAt": pd.to_datetime([None, None, "2025-02-01"], utc=True),
            "title": ["a", "b", "c"],
        }
    )
    new = stored.iloc[[0, 2]].assign(title=["a2", "c2"], deletedAt=pd.NaT)
    merged, counts = merge_perimeter(stored, new, {"a", "c"}, at)
    assert counts == {"added": 0, "updated": 1, "unchanged": 1, "closed": 1, "deleted": 0}
    merged = merged.set_index("id")
    assert merged.loc["a", "title"] == "a" and merged.loc["c", "title"] == "c2"  # reopened
    assert merged.loc["b", "deletedAt"] == at


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "2h", "1d")] == [
        90,
        90,
        900,
        7200,
        86400,
    ]
    for bad in ("", "0s", "-5m", "soon", "5w"):
        with pytest.raises(ValueError, match="--every"):
            parse_duration(bad)


def test_command_line(mock: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    out = tmp_path / "store"
    arguments = ["sync", "--api", mock.url, "--out", str(out), "--page-size", "3"]
    monkeypatch.delenv("PARTNER_KEY", raising=False)
    missing = runner.invoke(app, [*arguments, "--key-env", "PARTNER_KEY"])
    assert missing.exit_code == 2 and "PARTNER_KEY is not set" in missing.output
    refused = runner.invoke(app, arguments)
    assert refused.exit_code == 1 and "401 UNAUTHORIZED" in refused.output
    monkeypatch.setenv("PARTNER_KEY", KEY)
    done = runner.invoke(app, [*arguments, "--key-env", "PARTNER_KEY"])
    assert done.exit_code == 0, done.output
    assert "added      7" in done.output and "stored     7 offers" in done.output
    bad = runner.invoke(app, [*arguments, "--key-env", "PARTNER_KEY", "--every", "often"])
    assert bad.exit_code == 2 and "--every" in bad.output
    assert (out / STATE_FILE).is_file()
    assert np.array_equal(sorted(_stored(out).index), [f"m{i}" for i in range(7)])


# --- --notify, end to end: `recsys mock-api`, `recsys sync`, `bentoml serve` -------------------

RECSYS = Path(sys.executable).with_name("recsys")  # the console script of this environment
ADMIN_TOKEN = "admin-token"
SYNC_ENV = {"PARTNER_KEY": KEY, "RECSYS_ADMIN_TOKEN": ADMIN_TOKEN}


def _write_missions(folder: Path, missions: list[dict[str, Any]]) -> None:
    """The mock's data, replaced whole (written then renamed, as the mock may read it)."""
    temporary = folder / "missions.json.tmp"
    temporary.write_text(json.dumps(missions), encoding="utf-8")
    temporary.replace(folder / "missions.json")


def _recsys(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RECSYS), *arguments],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@contextmanager
def _mock_api_process(data: Path, log: Path) -> Iterator[str]:
    """`recsys mock-api --data DATA --key-env PARTNER_KEY` on a free port; its base URL once
    it answers."""
    port = free_port()
    command = [str(RECSYS), "mock-api", "--data", str(data), "--port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--key-env", "PARTNER_KEY"],
            env={**os.environ, **SYNC_ENV},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(base + "/v0/mission", headers={"apikey": KEY}, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield base
    finally:
        terminate([process])


def _listed(client: httpx.Client) -> set[str]:
    """The offers `/rank` lists for someone in Arles."""
    body = {"profile": {"age": 20, "postal_code": "13200", "radius_km": 10}, "k": 20}
    response = client.post("/rank", json=body)
    assert response.status_code == 200, response.text
    return {item["offer_id"] for item in response.json()["items"]}


def test_sync_notify_swaps_the_service_to_each_change(tmp_path: Path) -> None:
    """A change synced with --notify is served at once; a sync without change calls nothing;
    a refused call exits 1, the service keeps its catalog, and the next sync delivers the
    change although it changed nothing; a service down exits 1."""
    data, store = tmp_path / "api", tmp_path / "store"
    data.mkdir()
    _write_missions(data, [mission("m0"), mission("m1"), mission("m2")])
    service_env = {
        "RECSYS_MODEL_URI": str(tmp_path / "no-model"),  # the rules alone: the fastest start
        "RECSYS_CATALOG": str(store / config.OFFERS_FILE),
        "RECSYS_ADMIN_TOKEN": ADMIN_TOKEN,
        "RECSYS_EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.db'}",
    }
    with _mock_api_process(data, tmp_path / "mock.log") as api:
        arguments = ["sync", "--api", api, "--key-env", "PARTNER_KEY", "--out", str(store)]
        first = _recsys(*arguments, env=SYNC_ENV)  # the store the service starts on
        assert first.returncode == 0, first.stderr
        with (
            running_servers([(service_env, tmp_path / "server.log")]) as (base,),
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            notifying = [*arguments, "--notify", base]
            assert _listed(client) == {"m0", "m1", "m2"}
            _write_missions(data, [mission("m0"), mission("m1"), mission("new", 0)])
            changed = _recsys(*notifying, env=SYNC_ENV)
            assert changed.returncode == 0, changed.stderr
            assert "added      1" in changed.stdout and "closed     1" in changed.stdout
            assert f"service {base}: " in changed.stdout
            assert _listed(client) == {"m0", "m1", "new"}

            quiet = _recsys(*notifying, env=SYNC_ENV)
            assert quiet.returncode == 0, quiet.stderr
            assert "unchanged  3" in quiet.stdout and f"service {base}" not in quiet.stdout

            _write_missions(data, [mission("m0"), mission("new", 0)])
            refused = _recsys(*notifying, env={**SYNC_ENV, "RECSYS_ADMIN_TOKEN": "stolen"})
            assert refused.returncode == 1
            assert "the service kept its catalog" in refused.stderr and "403" in refused.stderr
            assert "closed     1" in refused.stdout  # the store did change
            assert _listed(client) == {"m0", "m1", "new"}
            pending = _recsys(*notifying, env=SYNC_ENV)
            assert pending.returncode == 0, pending.stderr
            assert "closed     0" in pending.stdout and f"service {base}: " in pending.stdout
            assert _listed(client) == {"m0", "new"}
            assert read_state(store)["notified"] == {base: read_state(store)["last_change"]}

        _write_missions(data, [mission("m0")])
        down = _recsys(*notifying, env=SYNC_ENV)
        assert down.returncode == 1 and "the service kept its catalog" in down.stderr
        assert "ConnectError" in down.stderr


# --- `recsys sync --every`, `recsys run --sync-from-mock` ------------------------------------


def _until(condition: Callable[[], bool], process: subprocess.Popen, log: Path) -> None:
    """Wait (60 s at most) until `condition()` holds while `process` runs."""
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_sync_every_syncs_again_each_period_until_interrupted(
    mock: _Server, tmp_path: Path
) -> None:
    """`recsys sync --every`: a change made in the API between two rounds reaches the store
    at the next round; a failed round is reported and the loop goes on; Ctrl-C (SIGINT) ends
    it with exit 130."""
    store, out, err = tmp_path / "store", tmp_path / "sync.out", tmp_path / "sync.err"
    arguments = ["sync", "--api", mock.url, "--key-env", "PARTNER_KEY", "--out", str(store)]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [str(RECSYS), *arguments, "--every", "0.2s", "--retries", "0"],
            env={**os.environ, **SYNC_ENV, "PYTHONUNBUFFERED": "1"},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        _until(lambda: "last_complete" in read_state(store), process, err)
        assert sorted(_stored(store).index) == [f"m{i}" for i in range(7)]

        mock.api.faults = Faults(fail_every=1, fail_status=500)  # every request fails
        _until(lambda: "error: sync failed" in err.read_text(), process, err)

        mock.api.upsert(mission("fresh", updated_days_ago=0))
        mock.api.remove("m0")
        mock.api.faults = Faults()

        def changed() -> list[str]:
            """The summaries, printed whole, of the rounds that added an offer."""
            rounds = out.read_text().split("sync into ")
            return [r for r in rounds if "added      1" in r and "stored     8 offers" in r]

        _until(lambda: bool(changed()), process, err)
        (summary,) = changed()  # the first round after the failed ones, which it resumed
        assert "(resumed)" in summary and "closed     1" in summary
        stored = _stored(store)
        assert "fresh" in stored.index and pd.notna(stored.loc["m0", "deletedAt"])

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert "interrupted: the next sync resumes where this one stopped" in err.read_text()
    finally:
        terminate([process])


def test_run_sync_from_mock_stores_the_simulated_offers(
    tiny_dataset: Path,
    tiny_features: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`recsys run --sync-from-mock` (`make run RUN_FLAGS=--sync-from-mock`): the simulated
    offers go through the mock API and `recsys sync` into data/catalog/<dataset>, ranked at
    the feature set's cutoff, when they are open."""
    from engagement.cli import _sync_from_mock
    from recsys.analysis import open_offers
    from recsys.split import SplitDates

    monkeypatch.setattr(config, "DATA_DIR", tmp_path)
    monkeypatch.setenv("RECSYS_AS_OF", "")  # restored (unset) after the test
    monkeypatch.delenv("RECSYS_AS_OF")
    catalog = _sync_from_mock(tiny_dataset, tiny_features)

    assert catalog == tmp_path / "catalog" / tiny_dataset.name / config.OFFERS_FILE
    manifest = json.loads((tiny_features / "test" / "manifest.json").read_text())
    cutoff = SplitDates.from_dict(manifest["split"]).cutoff
    assert os.environ["RECSYS_AS_OF"] == cutoff.isoformat()
    simulated = schema.read_table(tiny_dataset / config.OFFERS_FILE)
    stored = schema.read_table(catalog)
    assert sorted(stored["id"]) == sorted(simulated["id"])

    def open_ids(offers: pd.DataFrame) -> set[str]:
        return set(offers["id"][open_offers(offers, cutoff, cutoff + pd.Timedelta(seconds=1))])

    assert open_ids(simulated) and open_ids(stored) == open_ids(simulated)
    output = capsys.readouterr().out
    assert f"added      {len(simulated)}" in output and "rejected   0" in output
    assert read_state(catalog.parent)["last_complete"]["total"] == len(simulated)

"""Online experiments in the service, in process: configuration, sticky assignment, the arms'
engines, the rank log's experiment columns (SQLite and PostgreSQL, with the upgrade of an
older store), stopping."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recsys.policy import ListPolicy
from serving.cli import app
from serving.engine import Engine
from serving.events import EventStore
from serving.experiments import (
    STOP_ACTION,
    ArmOverrides,
    Experiment,
    ExperimentConfig,
    ExperimentError,
    assign,
    load_experiment,
    stop_experiment,
)
from serving.schemas import RankRequest
from serving.settings import Settings
from tests.service_fixtures import (
    POSTGRES_URL,
    postgres_available,
    postgres_schema,
    write_world,
)

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TWO_ARMS = {
    "name": "hybrid-vs-rules",
    "arms": [
        {"name": "hybrid", "share": 0.5},
        {"name": "rules", "share": 0.5, "policy": "rules"},
    ],
}


def _config(**changes: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**TWO_ARMS, **changes})


# --- Configuration -----------------------------------------------------------------------------


def test_configuration_from_a_yaml_file_or_inline_json(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "name: spring\nstart: 2027-03-01T00:00:00\nend: 2027-04-01T00:00:00+02:00\narms:\n"
        "  - {name: a, share: 0.25, model_uri: models:/m/3}\n"
        "  - {name: b, share: 0.75, policy: rules, overrides: {rules_remote_overrides: true}}\n"
    )
    config = load_experiment(str(path))
    assert config is not None and config.shares == {"a": 0.25, "b": 0.75}
    assert config.start == datetime(2027, 3, 1, tzinfo=UTC)  # UTC when no offset
    assert config.end == datetime(2027, 3, 31, 22, tzinfo=UTC)
    assert config.arms[1].overrides.given() == {"rules_remote_overrides": True}
    assert load_experiment(json.dumps(TWO_ARMS)) == _config()
    assert load_experiment(None) is None and load_experiment(" ") is None


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]}, "arms: shares"),
        ({"arms": [{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}]}, "a repeated"),
        ({"arms": [{"name": "a", "share": 1.0}]}, "arms: List should have at least 2"),
        ({"arms": [{"name": "a", "share": 0}, {"name": "b", "share": 1}]}, "arms.0.share"),
        (
            {"arms": [{"name": "a", "share": 0.5, "policy": "rules", "model_uri": "x"}, {}]},
            "arms.0",
        ),
        ({"arms": [{"name": "a b", "share": 0.5}, {"name": "b", "share": 0.5}]}, "arms.0.name"),
        ({"arms": [{"name": "a", "share": 0.5, "colour": "red"}]}, "arms.0.colour"),
        ({"overrides": {}}, "overrides: Extra inputs"),
        ({"start": "2027-03-02", "end": "2027-03-01"}, "end: must come after start"),
        ({"start": "yesterday"}, "start: Input should be a valid datetime"),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(values: dict, field: str) -> None:
    with pytest.raises(ExperimentError, match=f"^RECSYS_EXPERIMENT: .*{field}"):
        load_experiment(json.dumps({**TWO_ARMS, **values}))


def test_unreadable_or_shapeless_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="RECSYS_EXPERIMENT: cannot read"):
        load_experiment(str(tmp_path / "missing.yaml"))
    with pytest.raises(ExperimentError, match="RECSYS_EXPERIMENT: not YAML or JSON"):
        load_experiment('{"name": ')
    with pytest.raises(ExperimentError, match="expected a mapping"):
        (tmp_path / "list.yaml").write_text("- a\n- b\n")
        load_experiment(str(tmp_path / "list.yaml"))


def test_serve_refuses_a_bad_experiment_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_EXPERIMENT", json.dumps({**TWO_ARMS, "name": "bad name!"}))
    with pytest.raises(ValueError, match="RECSYS_EXPERIMENT: name"):
        Settings.from_env()
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "RECSYS_EXPERIMENT: name" in result.output


# --- Assignment ----------------------------------------------------------------------------------


def test_assignment_is_in_proportion_to_the_shares() -> None:
    """20,000 visitors over shares 0.2 / 0.3 / 0.5: each count within 4.5 binomial standard
    deviations of n·p (a fair hash fails that with probability below 1e-5 per arm)."""
    config = ExperimentConfig.model_validate(
        {
            "name": "three",
            "arms": [
                {"name": "a", "share": 0.2},
                {"name": "b", "share": 0.3},
                {"name": "c", "share": 0.5},
            ],
        }
    )
    n = 20_000
    counts = Counter(assign(config, f"visitor-{i}") for i in range(n))
    for arm, share in config.shares.items():
        assert abs(counts[arm] - n * share) <= 4.5 * math.sqrt(n * share * (1 - share)), counts


@settings(max_examples=200, deadline=None)
@given(visitor=st.text(min_size=1, max_size=40))
def test_assignment_is_sticky_and_keyed_by_the_salt(visitor: str) -> None:
    config = _config()
    arm = assign(config, visitor)
    assert arm in ("hybrid", "rules") and assign(_config(), visitor) == arm
    assert assign(config, None) is None


def test_salts_and_names_reshuffle_visitors() -> None:
    visitors = [f"v{i}" for i in range(2000)]
    base = [assign(_config(), v) for v in visitors]
    salted = [assign(_config(salt="other"), v) for v in visitors]
    renamed = [assign(_config(name="other"), v) for v in visitors]
    for other in (salted, renamed):  # independent halves: about half the visitors move
        moved = sum(a != b for a, b in zip(base, other, strict=True))
        assert abs(moved - 1000) <= 4.5 * math.sqrt(2000 * 0.25)


# --- Arms served in process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_world(tmp_path_factory.mktemp("experiment-world"))


@pytest.fixture(scope="module")
def main(world: dict[str, Path]) -> Engine:
    settings = Settings(
        model_uri=str(world["bundle"]), catalog=world["catalog"], profiles=world["profiles"]
    )
    return Engine.start(settings)


def _visitors(config: ExperimentConfig) -> dict[str, str]:
    """A visitor id of each arm."""
    found: dict[str, str] = {}
    for i in range(100):
        found.setdefault(assign(config, f"visitor-{i}") or "", f"visitor-{i}")
    return found


def test_each_arm_ranks_with_its_engine_and_is_tagged(main: Engine) -> None:
    config = _config()
    experiment = Experiment.start(config, main)
    assert experiment.error is None and experiment.engines["hybrid"] is main
    visitors = _visitors(config)
    profile = {"age": 20, "postal_code": "75001", "radius_km": 20}
    requests = [
        RankRequest(user_id=visitors["hybrid"], profile=profile, k=5),
        RankRequest(user_id=visitors["rules"], profile=profile, k=5),
        RankRequest(profile=profile, k=5),  # anonymous without an id: unassigned
    ]
    ranked = experiment.rank_batch(requests, main)
    tags = [
        (a.response.experiment, a.response.arm, a.ranking.experiment, a.ranking.arm) for a in ranked
    ]
    assert tags == [
        ("hybrid-vs-rules", "hybrid", "hybrid-vs-rules", "hybrid"),
        ("hybrid-vs-rules", "rules", "hybrid-vs-rules", "rules"),
        (None, None, None, None),
    ]
    assert [a.response.strategy for a in ranked] == ["cold_start", "rules_fallback", "cold_start"]
    rules_alone = experiment.engines["rules"].rank(requests[1]).response
    assert [i.offer_id for i in ranked[1].response.items] == [i.offer_id for i in rules_alone.items]
    status = experiment.status()
    assert status.state == "running" and status.arms == {"hybrid": 0.5, "rules": 0.5}
    assert status.arm_models == {"hybrid": main.state.model_version, "rules": "rules"}

    assert experiment.stop(WHEN) and not experiment.stop()
    after = experiment.rank_batch(requests[:2], main)
    assert [(a.response.arm, a.ranking.arm) for a in after] == [(None, None), (None, None)]
    assert all(a.response.strategy == "cold_start" for a in after)  # the service's own model
    assert experiment.status().state == "stopped"


def test_arms_may_set_every_knob_of_the_list_policy() -> None:
    assert set(ArmOverrides.model_fields) == {f.name for f in fields(ListPolicy)}


def test_dates_bound_the_experiment(main: Engine) -> None:
    experiment = Experiment.start(_config(start=WHEN, end=WHEN + timedelta(days=7)), main)
    visitor = _visitors(experiment.config)["rules"]
    assert experiment.arm_for(visitor, WHEN - timedelta(seconds=1)) is None
    assert experiment.arm_for(visitor, WHEN) == "rules"
    assert experiment.arm_for(visitor, WHEN + timedelta(days=7)) is None
    assert experiment.state(WHEN - timedelta(days=1)) == "scheduled"
    assert experiment.state(WHEN + timedelta(days=8)) == "ended"


def test_a_request_carrying_its_instant_is_assigned_at_it(main: Engine) -> None:
    """On the request's clock (RECSYS_CLOCK=request), the experiment's dates are read at the
    request's `at`: assigned within [start, end), unassigned before and after."""
    config = _config(start=WHEN, end=WHEN + timedelta(days=7))
    experiment = Experiment.start(config, main)
    visitor = _visitors(config)["rules"]
    profile = {"age": 20, "postal_code": "75001", "radius_km": 20}
    instants = [WHEN - timedelta(seconds=1), WHEN, WHEN + timedelta(days=7)]
    ranked = experiment.rank_batch(
        [RankRequest(user_id=visitor, profile=profile, k=5, at=at) for at in instants], main
    )
    assert [(a.response.arm, a.ranking.arm) for a in ranked] == [
        (None, None),
        ("rules", "rules"),
        (None, None),
    ]
    assert [a.ranking.created_at for a in ranked] == instants


def test_an_arm_with_its_own_model_and_one_that_cannot_load(
    main: Engine, world: dict[str, Path], tmp_path: Path
) -> None:
    arms = [
        {"name": "own", "share": 0.5, "model_uri": str(world["bundle"])},
        {"name": "capped", "share": 0.5, "overrides": {"max_per_programme": 0.2}},
    ]
    experiment = Experiment.start(_config(arms=arms), main)
    assert experiment.error is None
    own, capped = experiment.engines["own"], experiment.engines["capped"]
    assert own is not main and own.state.catalog is main.state.catalog
    assert own.state.model_version == main.state.model_version and own.applied is main.applied
    assert capped.settings.policy.max_per_programme == 0.2
    assert capped.state.model is main.state.model
    broken = [{**arms[0], "model_uri": str(tmp_path / "nothing")}, arms[1]]
    failed = Experiment.start(_config(arms=broken), main)
    assert failed.error is not None and failed.error.startswith(
        "RECSYS_EXPERIMENT: arms.0.model_uri:"
    )
    assert failed.status().state == "failed" and failed.arm_for("anyone") is None


# --- The event store ------------------------------------------------------------------------------


def _old_rank_requests(url: str, db_schema: str | None) -> None:
    """A rank_requests table as written before the experiments, holding one list."""
    metadata = sa.MetaData(schema=db_schema)
    table = sa.Table(
        "rank_requests",
        metadata,
        sa.Column("requestId", sa.String(), primary_key=True),
        sa.Column("createdAt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modelVersion", sa.String(), nullable=False),
        sa.Column("catalogVersion", sa.String(), nullable=False),
        sa.Column("strategy", sa.String(), nullable=False),
        sa.Column("userId", sa.String()),
        sa.Column("nItems", sa.Integer(), nullable=False),
    )
    items = sa.Table(
        "rank_items",
        metadata,
        sa.Column("requestId", sa.String(), primary_key=True),
        sa.Column("position", sa.SmallInteger(), primary_key=True),
        sa.Column("missionId", sa.String(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
    )
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            table.insert(),
            [
                {
                    "requestId": "old",
                    "createdAt": WHEN,
                    "modelVersion": "m/1",
                    "catalogVersion": "c1",
                    "strategy": "cold_start",
                    "nItems": 1,
                }
            ],
        )
        connection.execute(
            items.insert(), [{"requestId": "old", "position": 1, "missionId": "o1", "score": 1.0}]
        )
    engine.dispose()


def _check_store(url: str, db_schema: str | None, main: Engine) -> None:
    _old_rank_requests(url, db_schema)
    old = EventStore(url, db_schema=db_schema, create=False)  # an export reads it as it is
    assert old.read_rankings()[["requestId", "experiment", "arm"]].values.tolist() == [
        ["old", None, None]
    ]
    old.close()
    for _ in range(2):  # the second opening finds nothing left to do
        store = EventStore(url, db_schema=db_schema, id_salt="salt")
        store.close()
    store = EventStore(url, db_schema=db_schema, id_salt="salt")
    experiment = Experiment.start(_config(), main)
    experiment.attach(store)
    assert store.read_experiments() == {"hybrid-vs-rules": _config().model_dump(mode="json")}
    visitors = _visitors(experiment.config)
    ranked = experiment.rank_batch(
        [RankRequest(user_id=visitors[arm], k=3) for arm in ("hybrid", "rules")], main
    )
    store.log_rankings([a.ranking for a in ranked])
    lists = store.read_rankings().drop_duplicates("requestId").set_index("requestId")
    assert lists.loc["old", ["experiment", "arm"]].isna().all()
    logged = lists.loc[[a.ranking.request_id for a in ranked], ["experiment", "arm"]]
    assert logged.values.tolist() == [["hybrid-vs-rules", "hybrid"], ["hybrid-vs-rules", "rules"]]

    store.record_admin(STOP_ACTION, {"name": "hybrid-vs-rules", "at": WHEN.isoformat()})
    restarted = Experiment.start(_config(), main)
    restarted.attach(store)  # a worker started after the stop: stays stopped
    assert restarted.stopped_at == WHEN and restarted.arm_for(visitors["rules"]) is None
    redesigned = Experiment.start(_config(salt="new"), main)
    redesigned.attach(store)
    assert redesigned.error is not None and "already ran with other arms" in redesigned.error
    extended = Experiment.start(_config(end=WHEN + timedelta(days=30)), main)
    extended.attach(store)  # new dates only: accepted
    assert extended.error is None
    store.close()


def test_sqlite_store_logs_arms_and_upgrades_an_older_store(tmp_path: Path, main: Engine) -> None:
    _check_store(f"sqlite:///{tmp_path / 'events.db'}", None, main)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    with postgres_schema() as name:
        yield name


@pytest.mark.postgres
def test_postgres_store_logs_arms_and_upgrades_an_older_store(pg_schema: str, main: Engine) -> None:
    _check_store(POSTGRES_URL, pg_schema, main)


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "docs" / "serving.md").read_text("utf-8")
    section = text.split("## Online experiments", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "experiment.yaml").write_text(example)
    config = load_experiment(str(tmp_path / "experiment.yaml"))
    assert config is not None and [arm.policy for arm in config.arms] == ["rules", "model"]


def test_a_stop_names_the_experiment(main: Engine) -> None:
    at = {"at": WHEN.isoformat()}
    assert stop_experiment(None, {"name": "x", **at}) == (
        False,
        "no experiment configured (RECSYS_EXPERIMENT)",
    )
    experiment = Experiment.start(_config(), main)
    assert stop_experiment(experiment, {"name": "other", **at}) == (
        False,
        "name: the experiment is 'hybrid-vs-rules'",
    )
    assert experiment.stopped_at is None
    stop = {"name": "hybrid-vs-rules", **at}
    assert stop_experiment(experiment, stop) == (True, "experiment hybrid-vs-rules stopped")
    assert stop_experiment(experiment, stop)[1] == "experiment hybrid-vs-rules already stopped"
    assert experiment.stopped_at == WHEN

"""Feature-set building and reading on a tiny hand-made dataset (canonical schemas).

Calendar of the dataset (config: 10 test days, 10 validation days): the last event is on
2024-03-20, so test_end = 2024-03-21, cutoff = 2024-03-11, validation_start = 2024-03-01.
Every expected weight below is computed by hand from the event list in `_events`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from features.build import build_feature_set, data_fingerprint, is_reusable
from features.cli import app as features_app
from features.config import FeatureConfig, load_config
from recsys import schema
from recsys.encoding import OfferEncoder, OfferEncoderConfig
from recsys.featureset import load_feature_set, read_manifest

UTC = "UTC"
CUTOFF = pd.Timestamp("2024-03-11", tz=UTC)
VALIDATION_START = pd.Timestamp("2024-03-01", tz=UTC)
TEST_END = pd.Timestamp("2024-03-21", tz=UTC)
CONFIG = FeatureConfig(
    test_days=10,
    validation_days=10,
    offer_encoder=OfferEncoderConfig(text_min_df=1, text_max_df=1.0),
)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def _offer(offer_id: str, posted: str, title: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schema.OFFER_SCHEMA.names}
    row.update(
        id=offer_id,
        publisherId="pub",
        title=title,
        description="Une mission pour les jeunes avec une association.",
        domain="education",
        activities=["animation"],
        type="benevolat",
        snu=False,
        remote="no",
        statusCode="ACCEPTED",
        departmentCode="75",
        postedAt=_ts(posted),
        createdAt=_ts(posted),
        startAt=_ts(posted) + pd.Timedelta(days=30),
        updatedAt=_ts(posted),
        schedule="2 heures par semaine",
        tags=[],
    )
    row.update(fields)
    return row


def _offers() -> pd.DataFrame:
    rows = [
        _offer("o1", "2023-12-01", "Soutien scolaire quokka", domain="education"),
        _offer("o2", "2023-12-01", "Animation sportive", domain="sport", departmentCode="13"),
        _offer("o3", "2024-02-15", "Nettoyage de plage", domain="environnement"),
        _offer("o4", "2024-03-05", "Accueil du public", domain="culture-loisirs"),
        _offer("o5", "2024-03-15", "Atelier zorglub", domain="numerique"),
        _offer("o6", "2024-03-16", "Zorglub et robots", domain="numerique", departmentCode="2A"),
        _offer("o7", "2024-04-10", "Après la fin", domain="sport"),
    ]
    return pd.DataFrame(rows)


def _profile(user_id: str, age: int | None, region: str, department: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schema.PROFILE_SCHEMA.names}
    row.update(
        userId=user_id,
        age=age,
        region=region,
        departmentCode=department,
        disability=False,
        hasQuiz=True,
        quizDomains=["sport"],
        quizActivities=["transmettre-animer"],
        quizMotivations=[],
        quizRhythm="un-jour",
    )
    return row


def _profiles() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _profile("u1", 17, "11", "75"),
            _profile("u2", 22, "93", "13"),
            _profile("u3", 19, "11", "75"),  # cold: only a bot event
            _profile("u4", 24, "94", "2A"),  # active only after the cutoff
        ]
    )


def _event(
    when: str,
    kind: str,
    offer: str,
    *,
    user_id: str | None = None,
    user: str = "h0",
    click_id: str | None = None,
    request_id: str | None = None,
    status: str | None = None,
    position: int | None = None,
    bot: bool = False,
    source: str | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in schema.EVENT_SCHEMA.names}
    row.update(
        id=f"e-{when}-{kind}-{offer}-{user_id}-{user}-{click_id}",
        type=kind,
        createdAt=_ts(when),
        missionId=offer,
        user=user,
        userId=user_id,
        clickId=click_id,
        requestId=request_id,
        isBot=bot,
        status=status,
        position=position,
        source=source,
    )
    return row


def _events() -> list[dict[str, Any]]:
    return [
        # u1 sees o1 (request r2) and o2 (request r1), clicks o1 and applies (resent once).
        _event("2024-02-01", "print", "o1", user_id="u1", request_id="r2", position=1),
        _event("2024-02-01", "print", "o2", user_id="u1", request_id="r1", position=3),
        _event("2024-02-01", "click", "o1", user_id="u1", click_id="c1", request_id="r2"),
        _event("2024-02-01", "apply", "o1", user_id="u1", click_id="c1", status="PENDING"),
        _event("2024-02-02", "apply", "o1", user_id="u1", click_id="c1", status="PENDING"),
        # A bot applies as u3: excluded everywhere.
        _event(
            "2024-02-10", "apply", "o2", user_id="u3", click_id="cb", status="PENDING", bot=True
        ),
        # A hash-only visitor clicks o3; another only sees it.
        _event("2024-02-20", "click", "o3", user="h1", click_id="c3"),
        _event("2024-02-20", "print", "o3", user="h2", request_id="r3", position=2),
        _event("2024-02-21", "account", "o3", user="h2"),
        # u2's apply is refused, inside the validation window.
        _event("2024-03-05", "apply", "o2", user_id="u2", click_id="c2", status="REFUSED"),
        # Test window.
        _event("2024-03-15", "apply", "o5", user_id="u4", click_id="c5", status="PENDING"),
        _event("2024-03-20T10:00", "apply", "o4", user_id="u1", click_id="c4", status="PENDING"),
    ]


def _write_dataset(folder: Path, events: list[dict[str, Any]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    schema.write_table(_offers(), "offers", folder / "offers.parquet")
    schema.write_table(
        pd.DataFrame(events if events is not None else _events()),
        "events",
        folder / "events.parquet",
    )
    schema.write_table(_profiles(), "profiles", folder / "profiles.parquet")
    return folder


def _decay(days: float) -> float:
    return 2.0 ** (-days / 60.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("features")
    data = _write_dataset(root / "tiny")
    return data, build_feature_set(data, root / "out", CONFIG)


def _entry(feature_set: Any, user: str, offer: str, matrix: str = "interactions") -> float:
    row = list(feature_set.user_ids).index(user)
    column = list(feature_set.offer_ids).index(offer)
    return float(getattr(feature_set, matrix)[row, column])


def test_split_dates_and_windows(built: tuple[Path, Path]) -> None:
    _, out = built
    test = load_feature_set(out, "test")
    validation = load_feature_set(out, "validation")
    assert test.split.cutoff == CUTOFF
    assert test.split.validation_start == VALIDATION_START
    assert test.split.test_end == TEST_END
    assert (test.window_start, test.window_end) == (CUTOFF, TEST_END)
    assert (validation.window_start, validation.window_end) == (VALIDATION_START, CUTOFF)


def test_users_are_profiles_then_keys_with_signal(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1])
    # h2 only saw a print: no signal, not a user. u3 (bot event only) and u4 stay, cold.
    assert list(test.user_ids) == ["u1", "u2", "u3", "u4", "anon:h1"]
    assert test.interactions[2].nnz == 0 and test.interactions[3].nnz == 0
    assert test.manifest["counts"]["cold_profile_users"] == 2


def test_weights_decay_dedup_and_refused_applies(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1])
    # Click (1) + apply (5, resent copy with the same clickId dropped), 39 days before cutoff
    # (2024 is a leap year).
    assert _entry(test, "u1", "o1") == pytest.approx(6 * _decay(39), rel=1e-6)
    # Refused apply counts 2, 6 days before cutoff.
    assert _entry(test, "u2", "o2") == pytest.approx(2 * _decay(6), rel=1e-6)
    assert _entry(test, "anon:h1", "o3") == pytest.approx(_decay(20), rel=1e-6)
    # Prints weigh nothing; the bot's apply is gone.
    assert _entry(test, "u1", "o2") == 0.0
    assert _entry(test, "u3", "o2") == 0.0
    assert test.interactions.nnz == 3
    # Applies: binary, every status, dedup'd.
    assert test.applies.nnz == 2
    assert _entry(test, "u1", "o1", "applies") == 1.0
    assert _entry(test, "u2", "o2", "applies") == 1.0
    counts = test.manifest["event_counts"]
    assert counts["bot_events_excluded"] == 1
    assert counts["duplicate_click_ids_dropped"] == 1
    assert counts["other_type_events_dropped"] == 1


def test_history_keeps_the_applies_learned_from_with_status_and_age(
    built: tuple[Path, Path],
) -> None:
    history = load_feature_set(built[1]).history()
    assert history[["user_key", "offer_id", "status"]].values.tolist() == [
        ["u1", "o1", "PENDING"],  # the resent copy (same clickId) dropped
        ["u2", "o2", "REFUSED"],
    ]
    assert history["candidateAge"].isna().all()  # the events give no age
    assert history["createdAt"].lt(CUTOFF).all()
    assert load_feature_set(built[1], "validation").history()["offer_id"].tolist() == ["o1"]


def test_a_set_of_an_older_format_is_rebuilt_not_read(tmp_path: Path, built: tuple) -> None:
    data, out = built
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for window in ("test", "validation"):
        path = old / window / "manifest.json"
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps({**manifest, "format": 1}))
    with pytest.raises(ValueError, match=r"format 1, expected 2: build it again with: recsys"):
        load_feature_set(old)
    assert not is_reusable(old, data_fingerprint(data), CONFIG)


def test_config_changes_weights(tmp_path: Path, built: tuple[Path, Path]) -> None:
    data, _ = built
    config = FeatureConfig.from_dict(
        {**CONFIG.to_dict(), "half_life_days": 0, "unsuccessful_apply_weight": 0.0}
    )
    test = load_feature_set(build_feature_set(data, tmp_path / "out", config))
    assert _entry(test, "u1", "o1") == pytest.approx(6.0)
    assert _entry(test, "u2", "o2") == 0.0  # weight 0: no signal, still an apply
    assert _entry(test, "u2", "o2", "applies") == 1.0


def test_targets_and_exposures(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1], "test")
    targets = test.targets
    assert targets[["user_key", "offer_id", "status"]].values.tolist() == [
        ["u4", "o5", "PENDING"],
        ["u1", "o4", "PENDING"],
    ]
    validation = load_feature_set(built[1], "validation")
    assert validation.targets[["user_key", "offer_id", "status"]].values.tolist() == [
        ["u2", "o2", "REFUSED"]
    ]
    assert (validation.targets["createdAt"] < validation.window_end).all()
    shown = test.exposures()
    # u1's print of o1 was clicked (same request); o2's was not; h2's print of o3 was not.
    pairs = sorted(zip(shown["user_key"].astype(str), shown["offer_id"].astype(str), strict=True))
    assert pairs == [("anon:h2", "o3"), ("u1", "o2")]
    assert shown.set_index("offer_id").loc["o2", "position"] == 3


def test_offers_catalog_and_new_offers(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1], "test")
    assert list(test.offer_ids) == ["o1", "o2", "o3", "o4", "o5", "o6"]  # o7 after test_end
    assert test.is_new_offer.tolist() == [False, False, False, False, True, True]
    assert list(test.offers["id"]) == list(test.offer_ids)
    validation = load_feature_set(built[1], "validation")
    assert list(validation.offer_ids) == ["o1", "o2", "o3", "o4"]
    assert validation.is_new_offer.tolist() == [False, False, False, True]


def test_no_text_or_category_from_after_the_cutoff(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1], "test")
    terms = test.offer_encoder.text_terms
    assert "quokka" in terms  # control: a word of an offer posted before the cutoff
    assert "zorglub" not in terms  # only in offers posted after the cutoff
    assert "department=2A" not in test.offer_encoder.feature_names  # only o6, after the cutoff
    names = test.user_encoder.feature_names
    assert "region=11" in names and "region=93" in names
    assert "region=94" not in names  # u4 is active only after the cutoff
    validation = load_feature_set(built[1], "validation")
    assert "region=93" not in validation.user_encoder.feature_names  # u2 active from 03-05
    assert "accueil" not in validation.offer_encoder.text_terms  # o4 posted after 03-01
    assert "accueil" in terms


def test_events_after_the_cutoff_change_nothing_learned(tmp_path: Path) -> None:
    later = [
        _event("2024-03-12", "click", "o2", user_id="u1", click_id="x1"),
        _event("2024-03-12", "apply", "o2", user_id="u1", click_id="x1", status="PENDING"),
        _event("2024-03-13", "click", "o1", user="h9", click_id="x2"),
        _event("2024-03-14", "apply", "o3", user_id="u3", click_id="x3", status="VALIDATED"),
    ]
    base = load_feature_set(
        build_feature_set(_write_dataset(tmp_path / "a"), tmp_path / "fa", CONFIG)
    )
    more = load_feature_set(
        build_feature_set(
            _write_dataset(tmp_path / "b", _events() + later), tmp_path / "fb", CONFIG
        )
    )
    assert more.split == base.split
    assert list(more.user_ids) == list(base.user_ids)
    assert (more.interactions != base.interactions).nnz == 0
    assert (more.applies != base.applies).nnz == 0
    assert (more.user_features != base.user_features).nnz == 0
    assert more.offer_encoder.feature_names == base.offer_encoder.feature_names
    assert len(more.targets) == len(base.targets) + 2  # the later applies are targets only


def test_profiles_aligned_and_training_data(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1])
    profiles = test.profiles
    assert list(profiles["userId"]) == list(test.user_ids)
    anon = profiles.iloc[4]
    assert not anon["hasQuiz"] and not anon["disability"]
    assert list(anon["quizDomains"]) == [] and pd.isna(anon["age"])
    assert test.user_features[4, test.user_encoder.feature_names.index("age=unknown")] == 1.0
    data = test.training_data()
    assert data.interactions.shape == (5, 6)
    assert data.cutoff == CUTOFF
    assert data.users.arrays.has_quiz.tolist() == [True, True, True, True, False]
    assert data.offers.features.shape == (6, test.offer_encoder.n_features)


def test_batches(built: tuple[Path, Path]) -> None:
    test = load_feature_set(built[1])
    batch = test.user_batch(["u2", "stranger"])
    assert list(batch.ids) == ["u2", "stranger"]
    assert (batch.features[0] != test.user_features[1]).nnz == 0
    unknown = np.flatnonzero(batch.features[1].toarray()[0])
    assert [test.user_encoder.feature_names[i] for i in unknown] == ["age=unknown"]
    offers = test.offer_batch(["o5", "o1"])
    assert list(offers.ids) == ["o5", "o1"]
    assert (offers.features[1] != test.offer_features[0]).nnz == 0
    with pytest.raises(ValueError, match="not in the feature set"):
        test.offer_batch(["nope"])


def test_manifest_records_provenance(built: tuple[Path, Path]) -> None:
    data, out = built
    manifest = read_manifest(out, "validation")
    assert manifest["window"]["name"] == "validation"
    assert manifest["data_dir"] == str(data.resolve())
    assert manifest["data_fingerprint"] == data_fingerprint(data)["sha256"]
    assert manifest["config"] == CONFIG.to_dict()
    assert set(manifest["code_version"]) == {"git_commit", "package_version"}
    assert manifest["counts"]["targets"] == 1


def test_reuse_only_on_same_fingerprint_and_config(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "d")
    out = build_feature_set(data, tmp_path / "out", CONFIG)
    created = read_manifest(out)["created_at"]
    messages: list[str] = []
    build_feature_set(data, out, CONFIG, reuse=True, progress=messages.append)
    assert messages[0].startswith("reusing")
    assert read_manifest(out)["created_at"] == created
    other = FeatureConfig.from_dict({**CONFIG.to_dict(), "click_weight": 2.0})
    assert not is_reusable(out, data_fingerprint(data), other)
    _write_dataset(data, [*_events(), _event("2024-03-19", "click", "o1", user="h5")])
    assert not is_reusable(out, data_fingerprint(data), CONFIG)


def test_config_round_trip_and_errors(tmp_path: Path) -> None:
    assert FeatureConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG
    with pytest.raises(ValueError, match="unknown parameter"):
        FeatureConfig.from_dict({"apply_wieght": 3})
    with pytest.raises(ValueError, match="click_weight: expected a number"):
        FeatureConfig.from_dict({"click_weight": "lots"})
    with pytest.raises(ValueError, match="unknown status"):
        FeatureConfig(unsuccessful_apply_statuses=("LOST",))
    path = tmp_path / "features.yaml"
    path.write_text("half_life_days: 30\noffer_encoder:\n  text_max_features: 50\n")
    loaded = load_config(path)
    assert loaded.half_life_days == 30.0 and loaded.offer_encoder.text_max_features == 50


def test_build_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        build_feature_set(tmp_path / "nowhere", tmp_path / "out")
    data = _write_dataset(tmp_path / "d")
    (data / "events.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing events\.parquet"):
        build_feature_set(data, tmp_path / "out")


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(features_app)
    root.command("noop")(lambda: None)  # two commands keep `features` a named sub-command
    return root


def test_cli_builds_reuses_and_fails_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    data = _write_dataset(tmp_path / "d")
    config = tmp_path / "features.yaml"
    config.write_text("test_days: 10\nvalidation_days: 10\n")
    args = [
        "features",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--config",
        str(config),
    ]
    first = runner.invoke(_cli(), args)
    assert first.exit_code == 0, first.output
    assert "feature set written" in first.output
    second = runner.invoke(_cli(), args)
    assert second.exit_code == 0 and "reusing" in second.output
    missing = runner.invoke(_cli(), ["features", "--data", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1
    assert "data folder" in missing.output and "Traceback" not in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("test_dayz: 3\n")
    wrong = runner.invoke(_cli(), ["features", "--data", str(data), "--config", str(bad)])
    assert wrong.exit_code == 1 and "unknown parameter" in wrong.output


def test_until_builds_as_of_a_date(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "d")
    until = pd.Timestamp("2024-03-16", tz=UTC)
    test = load_feature_set(build_feature_set(data, tmp_path / "out", CONFIG, until=until))
    # Last event kept: u4's apply on 03-15, so test_end = 03-16 and cutoff = 03-06.
    assert test.split.test_end == until
    assert test.split.cutoff == pd.Timestamp("2024-03-06", tz=UTC)
    assert list(test.offer_ids) == ["o1", "o2", "o3", "o4", "o5"]  # o6 posted on 03-16
    assert test.targets[["user_key", "offer_id"]].values.tolist() == [["u4", "o5"]]
    assert test.manifest["until"] == until.isoformat()


# --- The simulator's tiny preset, checked against a plain pandas re-computation ---------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from recsys.simulation import get_preset, simulate

    root = tmp_path_factory.mktemp("simulated")
    simulate(get_preset("tiny"), 3, root / "tiny")
    return root / "tiny", build_feature_set(root / "tiny", root / "features")


def _reference_events(data: Path) -> pd.DataFrame:
    """Non-bot prints/clicks/applies with user keys, first copy per (type, clickId) only."""
    events = pd.read_parquet(data / "events.parquet")
    events = events[~events["isBot"].fillna(False).astype(bool)]
    events = events[events["type"].isin(["print", "click", "apply"])].copy()
    events["key"] = events["userId"].fillna("anon:" + events["user"])
    chained = events[events["type"].isin(["click", "apply"]) & events["clickId"].notna()]
    first = chained.sort_values("createdAt", kind="stable").drop_duplicates(["type", "clickId"])
    return pd.concat([events.drop(chained.index), first])


def test_simulated_interactions_match_a_plain_recomputation(simulated: tuple[Path, Path]) -> None:
    data, out = simulated
    test = load_feature_set(out)
    events = _reference_events(data)
    train = events[(events["createdAt"] < test.cutoff) & (events["type"] != "print")].copy()
    weight = train["type"].map({"click": 1.0, "apply": 5.0})
    weight[train["status"].isin(["REFUSED", "CANCEL", "CANCELED"])] = 2.0
    age_days = (test.cutoff - train["createdAt"]).dt.total_seconds() / 86400
    train["w"] = weight * 2.0 ** (-age_days / 60.0)
    expected = train.groupby(["key", "missionId"])["w"].sum()
    assert len(expected) == test.interactions.nnz > 0
    rows = pd.Index(test.user_ids).get_indexer(expected.index.get_level_values(0))
    cols = pd.Index(test.offer_ids).get_indexer(expected.index.get_level_values(1))
    found = np.asarray(test.interactions[rows, cols]).ravel()
    np.testing.assert_allclose(found, expected.to_numpy(), rtol=1e-5)

    window = events[
        (events["type"] == "apply")
        & (events["createdAt"] >= test.cutoff)
        & (events["createdAt"] < test.window_end)
    ]
    assert sorted(zip(window["key"], window["missionId"], strict=True)) == sorted(
        zip(test.targets["user_key"], test.targets["offer_id"], strict=True)
    )


def test_simulated_exposures_match_a_plain_recomputation(simulated: tuple[Path, Path]) -> None:
    data, out = simulated
    test = load_feature_set(out)
    events = _reference_events(data)
    before = events[events["createdAt"] < test.cutoff]
    clicked = before[before["type"] == "click"][["key", "missionId", "requestId"]]
    prints = before[before["type"] == "print"].merge(
        clicked.drop_duplicates(), how="left", indicator=True
    )
    expected = prints[prints["_merge"] == "left_only"]
    assert 0 < len(test.exposures()) == len(expected) < len(prints)


def test_simulated_offer_encoder_is_fitted_before_the_cutoff(
    simulated: tuple[Path, Path],
) -> None:
    """The stored encoder equals one fitted on the offers posted before the cutoff, and
    differs from one fitted on the window's whole catalog (idf counts every document)."""
    data, out = simulated
    offers = pd.read_parquet(data / "offers.parquet")
    for window in ("test", "validation"):
        feature_set = load_feature_set(out, window)
        catalog = feature_set.offers
        stored = feature_set.offer_features.toarray()
        honest = OfferEncoder().fit(offers[offers["postedAt"] < feature_set.cutoff])
        assert honest.feature_names == feature_set.offer_encoder.feature_names
        np.testing.assert_array_equal(honest.transform(catalog).toarray(), stored)
        leaky = OfferEncoder().fit(catalog)
        assert leaky.feature_names != honest.feature_names or not np.array_equal(
            leaky.transform(catalog).toarray(), stored
        )
        assert feature_set.is_new_offer.sum() == (
            offers["postedAt"].between(feature_set.cutoff, feature_set.window_end, "left").sum()
        )


def test_logged_prints_of_the_window_carry_their_outcome(tmp_path: Path) -> None:
    """The window's prints on the platform's surfaces, tied to clicks and applies by request."""
    api = {"user_id": "u1", "source": "api"}
    window = [
        _event("2024-03-12", "print", "o4", request_id="r9", position=1, **api),
        _event("2024-03-12", "print", "o3", request_id="r9", position=2, **api),
        _event("2024-03-12", "click", "o4", request_id="r9", click_id="k9", **api),
        _event("2024-03-12T01:00", "apply", "o4", request_id="r9", click_id="k9", **api),
        # Clicked under another list: not this print's outcome.
        _event("2024-03-13", "print", "o3", request_id="r10", position=1, **api),
        _event("2024-03-13", "click", "o3", request_id="r9", click_id="k10", **api),
        _event(
            "2024-03-13", "print", "o1", user="h7", request_id="r11", position=4, source="widget"
        ),
        # Not the platform's lists, a bot's, without a request, before the window: left out.
        _event("2024-03-14", "print", "o1", user="h8", request_id="r12", position=1, source="seo"),
        _event("2024-03-14", "print", "o2", user="h6", request_id="r13", position=1, bot=True),
        _event("2024-03-14", "print", "o2", user="h6", position=2, source="api"),
        _event("2024-03-08", "print", "o2", user="h6", request_id="r14", position=1, source="api"),
    ]
    data = _write_dataset(tmp_path / "data", _events() + window)
    logged = load_feature_set(build_feature_set(data, tmp_path / "out", CONFIG)).logged()
    columns = ["user_key", "offer_id", "requestId", "position", "source", "clicked", "applied"]
    assert logged[columns].values.tolist() == [
        ["u1", "o4", "r9", 1, "api", True, True],
        ["u1", "o3", "r9", 2, "api", True, False],
        ["u1", "o3", "r10", 1, "api", False, False],
        ["anon:h7", "o1", "r11", 4, "widget", False, False],
    ]

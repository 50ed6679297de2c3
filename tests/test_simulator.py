"""The simulator: deterministic, schema-valid, and shaped like the real thing.

Statistical checks run on `study`, a seed-fixed preset a few times bigger than `tiny` (still
seconds), so that rates per bucket rest on hundreds of events rather than a handful.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from recsys import schema, taxonomy
from recsys.arrays import offer_arrays, to_epoch_seconds
from recsys.eligibility import eligible
from recsys.geo import haversine_km
from recsys.simulation import commands, expected_utility, get_preset, load_truth, simulate
from recsys.simulation.config import PROGRAMME_SHARES
from recsys.simulation.ids import hex_ids, mix64
from recsys.simulation.truth import (
    AGE_FIT,
    INTEREST_FLOOR,
    PAY_PREFERENCE,
    PROGRAMME_FIT,
    utility,
)

TINY_SEED = 7
STUDY = replace(
    get_preset("tiny"),
    name="study",
    n_people=3_000,
    n_offers=900,
    n_cities=30,
    sessions_per_person=6.0,
)
SUCCESS_EXCLUDED = {"REFUSED", "CANCEL", "CANCELED"}


def _tables(directory: Path) -> dict[str, pd.DataFrame]:
    return {
        name: schema.read_table(directory / f"{name}.parquet")
        for name in ("offers", "events", "profiles")
    }


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    simulate(get_preset("tiny"), TINY_SEED, out)
    return out


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    simulate(STUDY, 11, out)
    return out


@pytest.fixture(scope="module")
def study(study_dir: Path) -> dict[str, pd.DataFrame]:
    return _tables(study_dir)


@pytest.fixture(scope="module")
def shown(study: dict[str, pd.DataFrame], study_dir: Path) -> pd.DataFrame:
    """Human prints of identified people, with click/successful-apply flags and truth."""
    events = study["events"]
    human = events[~events["isBot"] & events["userId"].notna()]
    prints = human[human["type"] == "print"][
        ["requestId", "missionId", "userId", "position", "source"]
    ]
    key = ["requestId", "missionId"]
    clicks = human[human["type"] == "click"][key].drop_duplicates().assign(clicked=1)
    applies = human[(human["type"] == "apply") & ~human["status"].isin(SUCCESS_EXCLUDED)]
    applies = applies[key].drop_duplicates().assign(applied=1)
    frame = prints.merge(clicks, how="left", on=key).merge(applies, how="left", on=key)
    frame = frame.fillna({"clicked": 0, "applied": 0})
    truth = load_truth(study_dir)
    people = truth.person_index(frame["userId"].to_numpy())
    offers = truth.offer_index(frame["missionId"].to_numpy())
    frame["utility"] = utility(truth, people, offers)
    frame["distance"] = haversine_km(
        truth.people.lat[people],
        truth.people.lon[people],
        truth.offers.lat[offers],
        truth.offers.lon[offers],
    )
    remote = study["offers"].set_index("id")["remote"]
    frame["remote"] = remote.reindex(frame["missionId"]).to_numpy()
    return frame


# --- Determinism and files -------------------------------------------------------------------


def test_another_seed_gives_other_data(tiny_dir: Path, tmp_path: Path) -> None:
    simulate(get_preset("tiny"), TINY_SEED + 1, tmp_path)
    mine, other = _tables(tiny_dir), _tables(tmp_path)
    assert not set(mine["offers"]["id"]) & set(other["offers"]["id"])
    assert mine["offers"]["title"].tolist() != other["offers"]["title"].tolist()
    assert len(mine["events"]) != len(other["events"])


def test_manifest_describes_the_run(tiny_dir: Path) -> None:
    manifest = json.loads((tiny_dir / "manifest.json").read_text())
    tables = _tables(tiny_dir)
    assert (manifest["preset"], manifest["seed"]) == ("tiny", TINY_SEED)
    assert (manifest["start"], manifest["end"]) == ("2025-09-01", "2026-08-31")
    counts = manifest["counts"]
    assert counts["offers"] == len(tables["offers"]) == 300
    assert counts["people"] == len(tables["profiles"]) == 600
    assert counts["events"] == len(tables["events"])
    assert counts["applies"] == int((tables["events"]["type"] == "apply").sum())
    # About the brief's size: ~20k events for the tiny preset.
    assert 12_000 < counts["events"] < 30_000


def test_tables_conform_to_the_canonical_schemas(tiny_dir: Path) -> None:
    for name, kind in (("offers", "offers"), ("events", "events"), ("profiles", "profiles")):
        assert pq.read_schema(tiny_dir / f"{name}.parquet").equals(schema.SCHEMAS[kind]), name


def test_ids_are_unique_and_references_resolve(tiny_dir: Path) -> None:
    t = _tables(tiny_dir)
    offers, events, profiles = t["offers"], t["events"], t["profiles"]
    assert offers["id"].is_unique and events["id"].is_unique and profiles["userId"].is_unique
    assert not offers.duplicated(["publisherId", "clientId"]).any()
    assert events["missionId"].isin(offers["id"]).all()
    assert events["userId"].dropna().isin(profiles["userId"]).all()
    offer_publisher = offers.set_index("id")["publisherId"]
    assert (
        events["toPublisherId"].to_numpy()
        == offer_publisher.reindex(events["missionId"]).to_numpy()
    ).all()


def test_click_apply_chain(tiny_dir: Path) -> None:
    events = _tables(tiny_dir)["events"]
    clicks = events[events["type"] == "click"]
    assert (clicks["clickId"] == clicks["id"]).all()
    followers = events[events["type"].isin(["apply", "account"])]
    assert followers["clickId"].notna().all()
    parent = clicks.set_index("id")
    assert followers["clickId"].isin(parent.index).all()
    # An apply happens after its click, in the same request, on the same offer.
    matched = parent.loc[followers["clickId"]]
    assert (matched["missionId"].to_numpy() == followers["missionId"].to_numpy()).all()
    assert (matched["requestId"].to_numpy() == followers["requestId"].to_numpy()).all()
    assert (matched["createdAt"].to_numpy() <= followers["createdAt"].to_numpy()).all()
    # Prints carry a position and no click id; applies carry a status.
    prints = events[events["type"] == "print"]
    assert prints["clickId"].isna().all() and (prints["position"] >= 1).all()
    applies = events[events["type"] == "apply"]
    assert applies["status"].isin(taxonomy.APPLY_STATUSES).all()
    assert events.loc[events["type"] != "apply", "status"].isna().all()


def test_offers_only_shown_while_open(tiny_dir: Path) -> None:
    t = _tables(tiny_dir)
    offers = t["offers"].set_index("id")
    prints = t["events"][t["events"]["type"] == "print"]
    shown = offers.loc[prints["missionId"]]
    at = prints["createdAt"].to_numpy()
    assert (shown["statusCode"] == "ACCEPTED").all()
    assert (shown["postedAt"].to_numpy() <= at).all()
    assert (shown["endAt"].isna().to_numpy() | (shown["endAt"].to_numpy() >= at)).all()
    assert (shown["deletedAt"].isna().to_numpy() | (shown["deletedAt"].to_numpy() > at)).all()


def test_applies_only_while_open_and_full_offers_are_withdrawn(
    study: dict[str, pd.DataFrame],
) -> None:
    offers, events = study["offers"].set_index("id"), study["events"]
    applies = events[events["type"] == "apply"]
    target = offers.loc[applies["missionId"]]
    at = applies["createdAt"].to_numpy()
    assert (target["postedAt"].to_numpy() <= at).all()
    assert (target["deletedAt"].isna().to_numpy() | (target["deletedAt"].to_numpy() > at)).all()
    # Accepted applicants take places; an offer whose places are all taken is withdrawn.
    accepted = applies[applies["status"].isin(["VALIDATED", "CARRIED_OUT"])]
    taken = accepted.groupby("missionId").size()
    places = offers.loc[taken.index, "places"]
    full = taken.index[(taken >= places).to_numpy()]
    assert len(full) > 0
    assert offers.loc[full, "deletedAt"].notna().all()
    # Offers with unknown places never fill.
    assert offers["places"].isna().any()


def test_truth_loads_without_pickle(tiny_dir: Path) -> None:
    for name in ("people.npz", "offers.npz"):
        with np.load(tiny_dir / "truth" / name, allow_pickle=False) as data:
            assert all(data[key].dtype.kind != "O" for key in data.files)
    truth = load_truth(tiny_dir)
    profiles = _tables(tiny_dir)["profiles"]
    assert truth.people.ids.tolist() == profiles["userId"].tolist()
    assert np.allclose(truth.people.domain_interest.sum(axis=1), 1.0)


# --- Statistical shape --------------------------------------------------------------------------


def test_programme_shares(study: dict[str, pd.DataFrame]) -> None:
    shares = study["offers"]["type"].value_counts(normalize=True)
    for programme, expected in PROGRAMME_SHARES.items():
        assert shares[programme] == pytest.approx(expected, abs=0.04), programme


def test_service_civique_posted_weeks_before_start(study: dict[str, pd.DataFrame]) -> None:
    offers = study["offers"]
    civique = offers[offers["type"] == taxonomy.SERVICE_CIVIQUE]
    lead = (civique["startAt"] - civique["postedAt"]).dt.days
    assert lead.min() >= 14 and lead.max() <= 70
    assert (civique["compensationAmount"] == 620.0).all()
    assert (civique["compensationUnit"] == "month").all()
    benevolat = offers[offers["type"] == taxonomy.BENEVOLAT]
    assert benevolat["compensationAmount"].isna().all()
    assert benevolat["endAt"].isna().any() and benevolat["endAt"].notna().any()


def test_test_window_has_many_new_offers(study: dict[str, pd.DataFrame]) -> None:
    offers = study["offers"]
    end = pd.Timestamp("2026-09-01", tz="UTC")
    window = end - pd.Timedelta(days=60)
    open_then = (
        (offers["statusCode"] == "ACCEPTED")
        & (offers["postedAt"] < end)
        & (offers["endAt"].isna() | (offers["endAt"] >= window))
        & (offers["deletedAt"].isna() | (offers["deletedAt"] > window))
    )
    new = open_then & (offers["postedAt"] >= window)
    assert new.sum() / open_then.sum() > 0.2


def test_click_through_falls_with_position(shown: pd.DataFrame) -> None:
    lists = shown[shown["source"] != "seo"]
    bands = pd.cut(lists["position"], [0, 2, 5, 10], labels=["1-2", "3-5", "6-10"])
    ctr = lists.groupby(bands, observed=True)["clicked"].mean()
    assert ctr["1-2"] > 1.2 * ctr["3-5"]
    assert ctr["3-5"] > 1.1 * ctr["6-10"]


def test_apply_rate_falls_with_distance(shown: pd.DataFrame) -> None:
    on_site = shown[shown["remote"] == "no"]
    bands = pd.cut(on_site["distance"], [0, 5, 15, 1e4], labels=["near", "mid", "far"])
    rate = on_site.groupby(bands, observed=True)["applied"].mean()
    assert rate["near"] > 1.2 * rate["mid"]
    assert rate["mid"] > 3 * rate["far"]


def test_higher_expected_utility_applies_more(shown: pd.DataFrame) -> None:
    decile = pd.qcut(shown["utility"], 10, labels=False)
    rate = shown.groupby(decile)["applied"].mean()
    assert rate.iloc[-3:].mean() > 10 * max(rate.iloc[:3].mean(), 1e-4)
    # Nearly monotone: Spearman correlation of decile and apply rate.
    assert pd.Series(rate.to_numpy()).corr(pd.Series(np.arange(10)), method="spearman") > 0.9


def test_no_successful_apply_from_an_ineligible_person(
    study: dict[str, pd.DataFrame], study_dir: Path
) -> None:
    events, offers, profiles = study["events"], study["offers"], study["profiles"]
    catalogue = offer_arrays(offers)
    row_of = pd.Series(np.arange(len(offers)), index=offers["id"])
    truth = load_truth(study_dir)
    applies = events[(events["type"] == "apply") & events["userId"].notna()]
    people = profiles.set_index("userId").loc[applies["userId"]]
    true_age = truth.people.age[truth.person_index(applies["userId"].to_numpy())]
    at = to_epoch_seconds(applies["createdAt"], 0)
    successful = ~applies["status"].isin(SUCCESS_EXCLUDED).to_numpy()
    refused_ineligible = 0
    for i in range(len(applies)):
        one = catalogue.take(np.array([row_of[applies["missionId"].iloc[i]]]))
        person = people.iloc[i]
        radius = person["radiusKm"] if pd.notna(person["radiusKm"]) else taxonomy.DEFAULT_RADIUS_KM
        verdicts = [
            bool(
                eligible(
                    one,
                    age=age,
                    disability=bool(person["disability"]),
                    lat=person["lat"],
                    lon=person["lon"],
                    radius_km=radius,
                    at=int(at[i]),
                )[0]
            )
            for age in (
                None if pd.isna(person["age"]) else float(person["age"]),
                float(true_age[i]),
            )
        ]
        if successful[i]:
            assert all(verdicts), applies.iloc[i][["userId", "missionId", "status"]].to_dict()
        elif not all(verdicts):
            refused_ineligible += 1
    assert successful.sum() > 100  # the check above is not vacuous
    assert refused_ineligible > 0  # ineligible attempts exist, and are refused


def test_bots_are_flagged_anonymous_and_never_apply(study: dict[str, pd.DataFrame]) -> None:
    events = study["events"]
    bots = events[events["isBot"]]
    assert len(bots) > 0
    assert bots["userId"].isna().all()
    assert not (bots["type"] == "apply").any()
    # Bots click far more often than people.
    human = events[~events["isBot"]]
    bot_ctr = (bots["type"] == "click").sum() / (bots["type"] == "print").sum()
    human_ctr = (human["type"] == "click").sum() / (human["type"] == "print").sum()
    assert bot_ctr > 3 * human_ctr


def test_identity_is_partial_and_histories_are_short(study: dict[str, pd.DataFrame]) -> None:
    events = study["events"]
    human = events[~events["isBot"]]
    identified = human.groupby("source")["userId"].apply(lambda s: s.notna().mean())
    assert 0.5 < human["userId"].notna().mean() < 0.85
    assert identified["widget"] < identified["api"] and identified["email"] == 1.0
    # Several opaque `user` hashes per person (devices), and many cold people.
    per_person = human.dropna(subset=["userId"]).groupby("userId")
    assert (per_person["user"].nunique() > 1).mean() > 0.1
    requests = per_person["requestId"].nunique()
    known = study["profiles"]["userId"].isin(requests.index)
    assert (~known).mean() > 0.05
    assert requests.median() <= 5 and requests.max() >= 5 * requests.median()


def test_quiz_answers_read_latent_interests(
    study: dict[str, pd.DataFrame], study_dir: Path
) -> None:
    profiles = study["profiles"]
    assert profiles["hasQuiz"].mean() == pytest.approx(0.5, abs=0.08)
    assert profiles.loc[~profiles["hasQuiz"], "quizDomains"].isna().all()
    truth = load_truth(study_dir)
    quiz = profiles[profiles["hasQuiz"]]
    top = truth.people.domain_interest.argmax(axis=1)[quiz.index.to_numpy()]
    top_quiz = [taxonomy.DOMAIN_TO_QUIZ[taxonomy.DOMAINS[d]] for d in top]
    hits = [
        bool(set(targets) & set(answers if answers is not None else []))
        for targets, answers in zip(top_quiz, quiz["quizDomains"], strict=True)
    ]
    assert np.mean(hits) > 0.5  # chance would be about 0.25


# --- Truth and oracle ---------------------------------------------------------------------------


def test_expected_utility_is_the_simulators_utility(tiny_dir: Path) -> None:
    truth = load_truth(tiny_dir)
    users = truth.people.ids[[3, 0, 42]]
    offers = truth.offers.ids[[5, 17, 0, 250]]
    matrix = expected_utility(truth, users, offers)
    assert matrix.shape == (3, 4)
    people = np.repeat([3, 0, 42], 4)
    items = np.tile([5, 17, 0, 250], 3)
    assert np.allclose(matrix.ravel(), utility(truth, people, items), rtol=0, atol=1e-12)


def test_expected_utility_by_hand(tiny_dir: Path) -> None:
    truth = load_truth(tiny_dir)
    p, o, w = 4, 9, truth.weights
    pe, of = truth.people, truth.offers
    distance = haversine_km(pe.lat[p], pe.lon[p], of.lat[o], of.lon[o])
    on_site = -w.distance * np.log(1 + distance / pe.radius_km[p])
    remote = taxonomy.REMOTE_VALUES[of.remote[o]]
    distance_term = {"full": w.remote_full, "possible": w.remote_possible_share * on_site}.get(
        remote, on_site
    )
    band = 0 if pe.age[p] < 18 else 1 if pe.age[p] < 26 else 2 if pe.age[p] < 36 else 3
    expected = (
        w.domain * np.log(20 * pe.domain_interest[p, of.domain[o]] + INTEREST_FLOOR)
        + w.activity
        * sum(
            of.activity_mix[o, k] * np.log(6 * pe.activity_interest[p, k] + INTEREST_FLOOR)
            for k in range(6)
        )
        + distance_term
        + w.programme * PROGRAMME_FIT[pe.aspiration[p], of.programme[o]]
        + w.age * AGE_FIT[band, of.programme[o]]
        + w.pay * PAY_PREFERENCE[pe.aspiration[p]] * of.paid[o]
        + w.rhythm * float(pe.rhythm[p] == of.rhythm[o])
        + w.quality * of.quality[o]
    )
    got = expected_utility(truth, pe.ids[[p]], of.ids[[o]])[0, 0]
    assert got == pytest.approx(expected, rel=1e-12)


def test_expected_utility_rejects_unknown_ids(tiny_dir: Path) -> None:
    truth = load_truth(tiny_dir)
    with pytest.raises(ValueError, match="user_ids: 1 unknown id"):
        expected_utility(truth, np.array(["usr_nobody"]), truth.offers.ids[:2])
    with pytest.raises(ValueError, match="offer_ids"):
        expected_utility(truth, truth.people.ids[:1], np.array(["nope"]))


def test_load_truth_refuses_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="simulate the dataset first"):
        load_truth(tmp_path)


def test_hex_ids_are_unique_and_shaped() -> None:
    ids = hex_ids(np.arange(10_000), salt=3, prefix="evt_").to_pylist()
    assert len(set(ids)) == 10_000
    assert all(len(i) == 20 and i.startswith("evt_") for i in ids[:50])
    # mix64 is a bijection: distinct inputs never collide, and the salt changes the ids.
    assert len(np.unique(mix64(np.arange(100_000), 1))) == 100_000
    assert hex_ids(np.arange(3), salt=4).to_pylist() != hex_ids(np.arange(3), salt=3).to_pylist()


# --- Command line -------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("simulate")(commands.simulate)
    app.command("noop")(lambda: None)  # two commands keep `simulate` a named sub-command
    return app


def test_cli_unknown_preset_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["simulate", "--preset", "huge", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown preset 'huge'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "manifest.json").exists()


def test_cli_with_the_same_seed_writes_identical_files(tiny_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["simulate", "--preset", "tiny", "--seed", str(TINY_SEED), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "tiny (seed 7)" in result.output
    names = [
        "offers.parquet",
        "events.parquet",
        "profiles.parquet",
        "manifest.json",
        "truth/people.npz",
        "truth/offers.npz",
        "truth/utility.json",
        "truth/diffusion.json",
    ]
    for name in names:
        assert (tmp_path / name).read_bytes() == (tiny_dir / name).read_bytes(), name


def test_simulate_and_summarise_reuses_a_matching_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(commands, "SIMULATED_DIR", tmp_path)
    commands.simulate_and_summarise("tiny", TINY_SEED)
    first = capsys.readouterr().out
    assert "Simulating preset tiny" in first
    stamp = (tmp_path / "tiny" / "events.parquet").stat().st_mtime_ns
    commands.simulate_and_summarise("tiny", TINY_SEED)
    second = capsys.readouterr().out
    assert "Reusing" in second
    assert (tmp_path / "tiny" / "events.parquet").stat().st_mtime_ns == stamp
    for heading in (
        "Offers by programme",
        "Offers by domain",
        "Events by type",
        "Human events by programme",
        "Apply rate",
        "New offers in the last month",
    ):
        assert heading in second
    assert "benevolat" in second and "solidarite-insertion" in second


def test_simulate_and_summarise_unknown_preset_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as raised:
        commands.simulate_and_summarise("huge", 1)
    assert raised.value.exit_code != 0
    assert "unknown preset" in capsys.readouterr().err

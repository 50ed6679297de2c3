"""Descriptive figures of a dataset (`recsys.analysis`) on a hand-made five-offer dataset.

Window under study: June 2024. Offers: o0 bénévolat (Paris, publisher P0), o1 Service Civique
(Lyon, P1), o2 bénévolat ended in May, o3 Service Civique posted mid-June (new, P0), o4
refused. Applies in June: u0 → o0, u1 → o1, u0 → o3 and an anonymous visitor → o1; u1 also
applied to o0 in May. Prints and clicks at positions 1 and 2, plus one bot print and click.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys import analysis, schema, taxonomy
from tests.fixtures import LYON, make_offers_frame, make_profiles_frame

START = pd.Timestamp("2024-06-01", tz="UTC")
END = pd.Timestamp("2024-07-01", tz="UTC")
PARIS_LYON_KM = 391.5  # great-circle distance between the two fixtures' city centres


def _offers() -> pd.DataFrame:
    return make_offers_frame(
        5,
        type=[
            taxonomy.BENEVOLAT,
            taxonomy.SERVICE_CIVIQUE,
            taxonomy.BENEVOLAT,
            taxonomy.SERVICE_CIVIQUE,
            taxonomy.SAPEURS_POMPIERS,
        ],
        publisherId=["p0", "p1", "p2", "p0", "p1"],
        publisherName=["P0", "P1", "P2", "P0", "P1"],
        lat=[48.8566, LYON[0], 48.8566, 48.8566, 48.8566],
        lon=[2.3522, LYON[1], 2.3522, 2.3522, 2.3522],
        postedAt=[pd.Timestamp("2024-01-15", tz="UTC")] * 3
        + [pd.Timestamp("2024-06-10", tz="UTC"), pd.Timestamp("2024-01-15", tz="UTC")],
        endAt=[None, None, pd.Timestamp("2024-05-01", tz="UTC"), None, None],
        statusCode=["ACCEPTED"] * 4 + ["REFUSED"],
        domain=["sport", "education", "sport", "sante", "sante"],
    )


def _events() -> pd.DataFrame:
    rows = [
        # type, day, offer, userId, position, isBot
        ("print", "2024-06-04", "o0", "u0", 1, False),
        ("print", "2024-06-04", "o1", "u0", 2, False),
        ("print", "2024-06-05", "o1", "u1", 1, False),
        ("print", "2024-06-05", "o1", None, 1, True),
        ("click", "2024-06-04", "o0", "u0", 1, False),
        ("click", "2024-06-05", "o1", "u1", 1, False),
        ("click", "2024-06-05", "o1", None, 1, True),
        ("apply", "2024-05-20", "o0", "u1", None, False),
        ("apply", "2024-06-05", "o0", "u0", None, False),
        ("apply", "2024-06-06", "o1", "u1", None, False),
        ("apply", "2024-06-20", "o3", "u0", None, False),
        ("apply", "2024-06-21", "o1", None, None, False),
    ]
    frame = pd.DataFrame(
        {
            "id": [f"e{i}" for i in range(len(rows))],
            "type": [row[0] for row in rows],
            "createdAt": pd.to_datetime([row[1] for row in rows], utc=True),
            "missionId": [row[2] for row in rows],
            "userId": [row[3] for row in rows],
            "position": pd.array([row[4] for row in rows], dtype="Int16"),
            "isBot": [row[5] for row in rows],
            "source": ["widget"] * 4 + ["seo"] * 3 + ["api"] * 5,
        }
    )
    for column in schema.EVENT_SCHEMA.names:
        if column not in frame.columns:
            frame[column] = None
    frame["user"] = frame["userId"].fillna("hash")
    return frame[schema.EVENT_SCHEMA.names]


def _profiles() -> pd.DataFrame:
    return make_profiles_frame(2, radiusKm=[10.0, 30.0])  # u0 and u1, both in Paris


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> analysis.Dataset:
    folder = tmp_path_factory.mktemp("dataset")
    schema.write_table(_offers(), "offers", folder / "offers.parquet")
    schema.write_table(_events(), "events", folder / "events.parquet")
    schema.write_table(_profiles(), "profiles", folder / "profiles.parquet")
    return analysis.read_dataset(folder)


def test_read_dataset_names_the_missing_table(tmp_path: Path) -> None:
    schema.write_table(_offers(), "offers", tmp_path / "offers.parquet")
    with pytest.raises(FileNotFoundError, match=r"missing events\.parquet, profiles\.parquet"):
        analysis.read_dataset(tmp_path)


def test_event_counts_separate_bots(dataset: analysis.Dataset) -> None:
    counts = analysis.event_counts(dataset.events)
    assert counts.index.tolist() == ["print", "click", "apply"]
    assert counts.loc["print"].tolist() == [4, 1, 3]
    assert counts.loc["click"].tolist() == [3, 1, 2]
    assert counts.loc["apply"].tolist() == [5, 0, 5]


def test_offer_counts_carry_french_labels(dataset: analysis.Dataset) -> None:
    programmes = analysis.offer_counts(dataset.offers, "type")
    assert programmes.loc[taxonomy.SERVICE_CIVIQUE, "label"] == "Service Civique"
    assert programmes.loc[taxonomy.BENEVOLAT, "offers"] == 2
    assert programmes.loc[taxonomy.SAPEURS_POMPIERS, "share"] == pytest.approx(0.2)
    assert analysis.offer_counts(dataset.offers, "domain").loc["sante", "label"] == "Santé"
    with pytest.raises(ValueError, match="no column 'colour'"):
        analysis.offer_counts(dataset.offers, "colour")


def test_funnel_overall_and_by_group(dataset: analysis.Dataset) -> None:
    overall = analysis.funnel(dataset.events)
    assert overall.loc["all", ["prints", "clicks", "applies"]].tolist() == [3, 2, 5]
    assert overall.loc["all", "click_rate"] == pytest.approx(2 / 3)
    assert overall.loc["all", "apply_rate"] == pytest.approx(5 / 2)
    by_programme = analysis.funnel(dataset.events, dataset.offers, by="programme")
    assert by_programme.loc["Service Civique", ["prints", "clicks", "applies"]].tolist() == [
        2,
        1,
        3,
    ]
    assert by_programme.loc["Bénévolat", "apply_per_print"] == pytest.approx(2 / 1)
    by_source = analysis.funnel(dataset.events, by="source")
    assert by_source.loc["seo", "prints"] == 0 and np.isnan(by_source.loc["seo", "click_rate"])
    with pytest.raises(ValueError, match="offers: needed"):
        analysis.funnel(dataset.events, by="programme")


def test_position_bias(dataset: analysis.Dataset) -> None:
    bias = analysis.position_bias(dataset.events, max_position=3)
    assert bias.index.tolist() == [1, 2, 3]
    assert bias["prints"].tolist() == [2, 1, 0]
    assert bias["clicks"].tolist() == [2, 0, 0]
    assert bias.loc[1, "ctr"] == 1.0 and bias.loc[2, "ctr"] == 0.0
    assert np.isnan(bias.loc[3, "ctr"])  # never printed there
    assert bias.loc[2, "relative_ctr"] == 0.0


def test_programme_and_publisher_shares(dataset: analysis.Dataset) -> None:
    shares = analysis.programme_shares(dataset.offers, dataset.events, START, END)
    # open in June: o0, o1, o3 (o2 ended in May, o4 refused); June applies: o0, o1, o3, o1
    assert shares.loc[taxonomy.BENEVOLAT, "catalog_share"] == pytest.approx(1 / 3)
    assert shares.loc[taxonomy.SERVICE_CIVIQUE, "catalog_share"] == pytest.approx(2 / 3)
    assert shares.loc[taxonomy.BENEVOLAT, "apply_share"] == pytest.approx(1 / 4)
    assert shares.loc[taxonomy.SERVICE_CIVIQUE, "apply_share"] == pytest.approx(3 / 4)
    assert shares.loc[taxonomy.SAPEURS_POMPIERS, "offers_open"] == 0
    publishers = analysis.publisher_shares(dataset.offers, dataset.events, START, END)
    assert publishers.index.tolist() == ["P0", "P1"]
    assert publishers["catalog_share"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert publishers["apply_share"].tolist() == pytest.approx([1 / 2, 1 / 2])


def test_distances_and_radius(dataset: analysis.Dataset) -> None:
    km = analysis.apply_distances_km(dataset.offers, dataset.events, dataset.profiles, START, END)
    # u0 → o0 and o3 in Paris, u1 (Paris) → o1 in Lyon; the anonymous visitor has no place
    assert sorted(km.round(1)) == pytest.approx([0.0, 0.0, PARIS_LYON_KM], abs=1.0)
    radius = analysis.applicant_radius_km(dataset.events, dataset.profiles, START, END)
    assert sorted(radius) == [10.0, 30.0]


def test_dataset_summary(dataset: analysis.Dataset) -> None:
    summary = analysis.dataset_summary(dataset, START, END)
    assert summary["offers_open"] == 3
    assert summary["new_offer_share"] == pytest.approx(1 / 3)  # o3, posted on June 10
    assert summary["radius_km"] == {"mean": 20.0, "median": 20.0, "n": 2}
    assert summary["apply_distance_km"]["n"] == 3
    assert summary["apply_distance_km"]["median"] == pytest.approx(0.0, abs=1e-6)
    assert summary["funnel"]["applies"] == 5.0
    assert summary["events_by_type"][0] == {"type": "print", "all": 4, "bots": 1, "humans": 3}
    service_civique = summary["programmes"][1]
    assert service_civique["programme"] == taxonomy.SERVICE_CIVIQUE
    assert service_civique["label"] == "Service Civique"
    assert service_civique["applies"] == 3


def test_report_reads_a_matching_data_folder(dataset: analysis.Dataset) -> None:
    """The report's fingerprint check agrees with the feature stage's own fingerprint."""
    from features.build import data_fingerprint
    from training.report_cli import dataset_facts

    fingerprint = data_fingerprint(dataset.folder)["sha256"]
    evaluation = {
        "data": {
            "fingerprint": fingerprint,
            "window_start": str(START),
            "window_end": str(END),
        }
    }
    loaded = {"params": {"data.dir": str(dataset.folder)}, "manifest": None}
    summary, note = dataset_facts({**loaded, "evaluation": evaluation})
    assert note == ""
    assert summary is not None and summary["offers_open"] == 3

"""The offline evaluation report: pure rendering from hand-made documents, then the CLI end to
end on a temporary MLflow store (runs logged by hand, as `recsys train` lays them out)."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from recsys import taxonomy
from recsys.report import render_report, tables
from recsys.report.reading import reading

FINGERPRINT = "a" * 64
OTHER_FINGERPRINT = "b" * 64
SPLIT = {
    "train_start": "2025-09-01T00:00:00+00:00",
    "validation_start": "2026-06-23T00:00:00+00:00",
    "cutoff": "2026-07-21T00:00:00+00:00",
    "test_end": "2026-09-01T00:00:00+00:00",
}
# NDCG@10 per row; the other ranking metrics scale from it so that every delta is exact.
NDCG10 = {
    "hybrid": 0.30,
    "popularity": 0.25,
    "itemknn": 0.05,
    "incumbent": 0.20,
    "incumbent_local": 0.24,
    "oracle": 0.60,
}
EXPOSURE = {  # share of top-10 slots per programme
    "hybrid": (0.60, 0.22, 0.12, 0.06),
    "popularity": (0.70, 0.20, 0.05, 0.05),
    "itemknn": (0.75, 0.15, 0.05, 0.05),
    "incumbent": (0.85, 0.07, 0.04, 0.04),
    "incumbent_local": (0.66, 0.20, 0.08, 0.06),
    "oracle": (0.55, 0.30, 0.10, 0.05),
}
DISTANCE = {
    "hybrid": 12.0,
    "popularity": 210.0,
    "itemknn": 300.0,
    "incumbent": 200.0,
    "incumbent_local": 20.0,
    "oracle": 8.0,
}


def _metrics(row: str, scale: float = 1.0) -> dict[str, float]:
    ndcg = NDCG10[row] * scale
    values: dict[str, float] = {}
    for k, factor in ((5, 0.8), (10, 1.0), (20, 1.2)):
        values[f"ndcg@{k}"] = ndcg * factor
        values[f"recall@{k}"] = 1.5 * ndcg * factor
        values[f"precision@{k}"] = 0.2 * ndcg * factor
        values[f"map@{k}"] = 0.7 * ndcg * factor
        values[f"hit_rate@{k}"] = 2.0 * ndcg * factor
        values[f"coverage@{k}"] = 0.3
        values[f"new_offer_share@{k}"] = 0.04
        values[f"mean_distance_km@{k}"] = DISTANCE[row]
        values[f"ineligible_rate@{k}"] = 0.0
        for programme, share in zip(taxonomy.PROGRAMMES, EXPOSURE[row], strict=True):
            values[f"exposure.{programme}@{k}"] = share
        values[f"gini_programme@{k}"] = 0.4
        values[f"gini_publisher@{k}"] = 0.75
        values[f"top_publisher_share@{k}"] = 0.34
    values.update({"users_evaluated": 52, "users_without_relevant": 0})
    return values


def _segment(users: int, scale: dict[str, float]) -> dict[str, dict[str, float]]:
    """NDCG@10 and recall@10 of every row in a segment, the overall value times `scale`."""
    by_row = {}
    for row, ndcg in NDCG10.items():
        factor = scale.get(row, 1.0)
        by_row[row] = {
            "ndcg@10": ndcg * factor,
            "recall@10": 1.5 * ndcg * factor,
            "users_evaluated": users,
        }
    return by_row


def make_evaluation(fingerprint: str = FINGERPRINT) -> dict[str, Any]:
    """A document shaped like `EvaluationResult.to_json()` with round, hand-checkable numbers."""
    return {
        "models": {row: _metrics(row) for row in NDCG10},
        "segments": {
            # hybrid 0.40 vs incumbent 0.20 on warm users: +100%; 40 users, not small
            "warm": _segment(40, {"hybrid": 4 / 3}),
            # hybrid 0.216 vs incumbent 0.20 on cold users: +8%; 12 users, small
            "cold": _segment(12, {"hybrid": 0.72}),
            "new_offers": _segment(7, {}),
            "age:18-20": _segment(20, {}),
            f"programme:{taxonomy.SERVICE_CIVIQUE}": _segment(15, {}),
            "region:Île-de-France": _segment(30, {}),
        },
        "split": dict(SPLIT),
        "data": {
            "fingerprint": fingerprint,
            "window_start": "2026-07-21 00:00:00+00:00",
            "window_end": "2026-09-01 00:00:00+00:00",
            "users_evaluated": 52,
            "users_known": 40,
            "users_warm": 40,
            "offers": 300,
            "new_offers": 30,
            "target_applies": 61,
        },
    }


DATASET = {
    "folder": "/data/simulated/tiny",
    "window": {"start": "2026-07-21", "end": "2026-09-01"},
    "events_by_type": [
        {"type": "print", "all": 7928, "bots": 279, "humans": 7649},
        {"type": "apply", "all": 621, "bots": 0, "humans": 621},
    ],
    "funnel": {"prints": 7649.0, "clicks": 1306.0, "applies": 621.0, "click_rate": 0.17},
    "programmes": [
        {"programme": taxonomy.BENEVOLAT, "catalog_share": 0.62, "apply_share": 0.60},
        {"programme": taxonomy.SERVICE_CIVIQUE, "catalog_share": 0.21, "apply_share": 0.25},
        {"programme": taxonomy.SAPEURS_POMPIERS, "catalog_share": 0.12, "apply_share": 0.10},
        {"programme": taxonomy.RESERVE, "catalog_share": 0.05, "apply_share": 0.05},
    ],
    "publishers": [{"publisher": "JeVeuxAider.gouv.fr", "offers_open": 52, "catalog_share": 0.32}],
    "radius_km": {"mean": 15.0, "median": 9.0, "n": 26},
    "apply_distance_km": {"mean": 40.0, "median": 5.0, "n": 38},
    "offers_open": 160,
    "new_offer_share": 0.11,
}
RUN_INFO = {
    "run_id": "1" * 32,
    "run_name": "hybrid-test",
    "candidate": "hybrid",
    "started": "2026-11-29 17:11 UTC",
    "params": {
        "model.name": "hybrid",
        "model.geo_weight": "1.0",
        "features.half_life_days": "60.0",
        "code.version": "abc123",
        "data.fingerprint": FINGERPRINT,
    },
    "dataset": DATASET,
    "manifest": {"event_counts": {"bot_events_excluded": 367}, "counts": {"targets": 61}},
}


class _Links(HTMLParser):
    """Every URL-bearing attribute of the page, with its tag."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster"):
                self.urls.append((tag, name, value or ""))


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


CHAMPION_SAME_DATA = {"run_id": "2" * 32, "label": "champion", "evaluation": make_evaluation()}
CHAMPION_SAME_DATA["evaluation"]["models"]["hybrid"]["ndcg@10"] = 0.28  # this run: +7%


@pytest.fixture(scope="module")
def evaluation() -> dict[str, Any]:
    return make_evaluation()


@pytest.fixture(scope="module")
def page(evaluation: dict[str, Any]) -> str:
    """A healthy run, with a dataset summary, compared with a champion on the same data."""
    info = {**RUN_INFO, "run_name": "hybrid <b>test</b>"}
    return render_report(evaluation, info, [CHAMPION_SAME_DATA])


@pytest.fixture(scope="module")
def troubled_page() -> str:
    """A run with ineligible slots, no data folder, compared with a run on other data."""
    evaluation = make_evaluation()
    evaluation["models"]["hybrid"]["ineligible_rate@20"] = 0.015
    info = {**RUN_INFO, "dataset": None, "dataset_note": "data folder /nowhere is not readable"}
    other = {
        "run_id": "3" * 32,
        "label": "champion",
        "evaluation": make_evaluation(OTHER_FINGERPRINT),
    }
    return render_report(evaluation, info, [other])


# --------------------------------------------------------------------- numbers


def test_headline_deltas_are_relative_to_each_baseline(evaluation: dict[str, Any]) -> None:
    rows = {row["metric"]: row for row in tables.headline_rows(evaluation, "hybrid")}
    assert [row["metric"] for row in rows.values()][:5] == [
        "ndcg@5",
        "recall@5",
        "precision@5",
        "map@5",
        "hit_rate@5",
    ]
    ndcg10 = {ref["row"]: ref for ref in rows["ndcg@10"]["references"]}
    assert list(ndcg10) == ["popularity", "itemknn", "incumbent", "incumbent_local", "oracle"]
    assert ndcg10["incumbent"]["delta"] == pytest.approx(0.5)  # 0.30 vs 0.20
    assert ndcg10["popularity"]["delta"] == pytest.approx(0.2)  # 0.30 vs 0.25
    assert ndcg10["oracle"]["delta"] == pytest.approx(-0.5)  # 0.30 vs 0.60
    assert len(rows) == 15  # five metrics at k = 5, 10, 20


def test_candidate_and_strongest_baseline(evaluation: dict[str, Any]) -> None:
    assert tables.candidate_name(evaluation) == "hybrid"
    assert tables.strongest_baseline(evaluation, "hybrid") == "popularity"  # oracle excluded
    renamed = {"models": {"popularity": {}, "popularity_baseline": {}, "incumbent": {}}}
    assert tables.candidate_name(renamed, "popularity") == "popularity"
    assert tables.references(renamed, "popularity") == ["popularity_baseline", "incumbent"]
    with pytest.raises(ValueError, match="candidate"):
        tables.candidate_name(evaluation, "lightfm")


def test_relative_delta_edge_cases() -> None:
    assert tables.relative_delta(0.3, 0.2) == pytest.approx(0.5)
    assert tables.relative_delta(0.3, 0.0) is None
    assert tables.relative_delta(None, 0.2) is None
    assert tables.relative_delta(float("nan"), 0.2) is None


def test_segments_carry_counts_and_flag_small_ones(evaluation: dict[str, Any]) -> None:
    rows = {row["segment"]: row for row in tables.segment_rows(evaluation, "hybrid")}
    assert rows["warm"]["users"] == 40 and not rows["warm"]["small"]
    assert rows["cold"]["users"] == 12 and rows["cold"]["small"]
    assert rows["warm"]["delta_incumbent"] == pytest.approx(1.0)  # 0.40 vs 0.20
    assert rows["cold"]["delta_incumbent"] == pytest.approx(0.08)  # 0.216 vs 0.20
    assert rows["cold"]["best_baseline"] == "popularity"
    assert rows[f"programme:{taxonomy.SERVICE_CIVIQUE}"]["label"] == "Service Civique"
    assert rows["age:18-20"]["group"] == "age"
    assert rows["region:Île-de-France"]["label"] == "Île-de-France"
    assert tables.segment_label("redirect:after").endswith("continued in other programmes")
    assert tables.segment_group("redirect:after") == "other"


def test_reading_states_the_figures(evaluation: dict[str, Any]) -> None:
    sentences = reading(evaluation, "hybrid", DATASET)
    text = " ".join(sentences)
    assert sentences[0].startswith("hybrid beats the incumbent engine by 50% (0.300 against 0.200)")
    assert "beats the incumbent engine without remote override by 25%" in sentences[0]
    assert "the strongest being popularity (0.250), by 20%" in text
    assert "It reaches 50% of the oracle's NDCG@10" in text
    assert "cold users (profile, no history) +8% (12 users, small: noisy)" in text
    assert "warm users (with history) +100% (40 users)" in text
    assert "Service Civique gets 22% of top-10 slots for 25% of applications" in text
    assert "Recommended offers are 12 km away on average (incumbent engine: 200 km)" in text
    assert "declared a 15 km radius on average" in text
    assert "New offers (posted after the cutoff) fill 4% of top-10 slots" in text
    assert "they are 11% of the catalog" in text
    assert "No recommendation broke an eligibility rule" in text


def test_reading_when_the_model_loses() -> None:
    evaluation = make_evaluation()
    evaluation["models"]["hybrid"]["ndcg@10"] = 0.22  # above incumbent, below popularity
    text = " ".join(reading(evaluation, "hybrid"))
    assert "hybrid beats the incumbent engine by 10% (0.220 against 0.200)" in text
    assert "does not beat the strongest baseline, popularity (0.250, -12%)" in text


# --------------------------------------------------------------------- the page


def test_page_has_every_section(page: str) -> None:
    for section in ("reading", "headline", "comparison", "curves", "segments", "exposure", "data"):
        assert f'<section id="{section}"' in page
    assert "Headline: hybrid against the baselines" in page
    assert "Users by history" in page and "Age bands" in page and "Regions" in page
    assert "JeVeuxAider.gouv.fr" in page  # publishers of the catalog
    assert FINGERPRINT in page  # data summary
    assert "2026-07-21T00:00:00+00:00" in page  # split dates
    assert "geo_weight" in page  # model config
    assert "<dt>bot events excluded</dt><dd>367</dd>" in page  # feature set counts
    assert "Service Civique" in page and "Sapeurs-pompiers volontaires" in page
    assert "Service Civique gets 22% of top-10 slots for 25% of applications" in page


def test_page_is_self_contained(page: str) -> None:
    parsed = _parse(page)
    images = [value for tag, name, value in parsed.urls if tag == "img"]
    assert len(images) == 7  # at-k curves, 4 segment groups, exposure, distance
    for uri in images:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    external = [value for _, _, value in parsed.urls if not value.startswith(("data:", "#"))]
    assert external == []
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page


def test_page_escapes_text(page: str) -> None:
    assert "hybrid <b>test</b>" not in page
    assert "hybrid &lt;b&gt;test&lt;/b&gt;" in page


def test_same_data_comparison_has_no_warning(page: str, evaluation: dict[str, Any]) -> None:
    assert 'class="box warning"' not in page
    assert tables.holdout_warnings(evaluation, RUN_INFO["params"], [CHAMPION_SAME_DATA]) == []
    rows = tables.comparison_rows(evaluation, "hybrid", [CHAMPION_SAME_DATA])
    assert rows[0]["metric"] == "ndcg@10"
    assert rows[0]["runs"][0]["delta"] == pytest.approx(0.30 / 0.28 - 1)
    assert '<span class="delta up">+7%</span>' in page
    assert 'class="text up">\n  yes</td>' in page  # same holdout


def test_differing_fingerprints_raise_a_visible_warning(troubled_page: str) -> None:
    assert troubled_page.count('class="box warning"') == 2  # other data; ineligible slots
    assert "evaluated on other data" in troubled_page
    assert OTHER_FINGERPRINT[:12] in troubled_page
    assert 'class="text down">\n  NO</td>' in troubled_page  # the holdout table says so too


def test_differing_split_dates_raise_a_warning(evaluation: dict[str, Any]) -> None:
    other = {"run_id": "4" * 32, "label": "run", "evaluation": make_evaluation()}
    other["evaluation"]["split"]["cutoff"] = "2026-08-01T00:00:00+00:00"
    warnings = tables.holdout_warnings(evaluation, RUN_INFO["params"], [other])
    assert len(warnings) == 1 and "cutoff differ" in warnings[0]


def test_ineligible_recommendations_raise_a_warning(troubled_page: str) -> None:
    expected = "1.5% of hybrid&#39;s recommended slots are offers the person may not join"
    assert expected in troubled_page


def test_page_without_dataset_says_why(troubled_page: str) -> None:
    assert "data folder /nowhere is not readable" in troubled_page
    assert "Service Civique gets 22% of top-10 slots." in troubled_page  # no shares to compare


def test_minimal_evaluation_renders() -> None:
    """One model, no baseline, no segment, no dataset: every section still renders."""
    evaluation = {"models": {"content": {"ndcg@10": 0.1, "recall@10": 0.2}}}
    html = render_report(evaluation, {}, [])
    assert '<section id="headline"' in html and "0.100" in html
    assert reading(evaluation, "content") == [
        "No baseline was evaluated next to content (NDCG@10 0.100): its figures cannot be "
        "judged against what runs today."
    ]


# --------------------------------------------------------------------- command line

RUN_PARAMS = {
    "model.name": "hybrid",
    "model.geo_weight": "1.0",
    "code.version": "abc123",
    "data.dir": "/nowhere/on/this/machine",
}


def _log_run(evaluation: dict[str, Any], name: str) -> str:
    import mlflow

    from training import tracking

    experiment = tracking.ensure_experiment(tracking.TRAINING_EXPERIMENT)
    tags = {tracking.KIND_TAG: "train", "recsys.experiment": "hybrid"}
    with mlflow.start_run(experiment_id=experiment, run_name=name, tags=tags) as run:
        params = {**RUN_PARAMS, "data.fingerprint": evaluation["data"]["fingerprint"]}
        params.update({f"split.{key}": value for key, value in evaluation["split"].items()})
        mlflow.log_params(params)
        mlflow.log_dict(evaluation, "evaluation/evaluation.json")
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SQLite store with two runs on different data; the second is the champion."""
    from mlflow import MlflowClient

    from recsys import config
    from training import tracking

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracking.configure(uri)
    current = _log_run(make_evaluation(), "current")
    older = _log_run(make_evaluation(OTHER_FINGERPRINT), "older")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(config.REGISTERED_MODEL_NAME)
    version = client.create_model_version(
        config.REGISTERED_MODEL_NAME, f"runs:/{older}/model", run_id=older
    )
    client.set_registered_model_alias(config.REGISTERED_MODEL_NAME, "champion", version.version)
    return {"uri": uri, "current": current, "older": older}


def _invoke(args: list[str]):
    from typer.testing import CliRunner

    from training.report_cli import app

    return CliRunner().invoke(app, args)


@pytest.mark.slow  # a fresh SQLite store runs MLflow's migrations: seconds
def test_cli_writes_logs_and_warns(store: dict[str, str], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    out = tmp_path / "report.html"
    result = _invoke(
        [
            *("--run", store["current"], "--against", "champion", "--out", str(out)),
            *("--tracking-uri", store["uri"]),
        ]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    assert "evaluated on other data" in html  # the champion was evaluated on other data
    assert store["older"][:8] in html
    assert "warning: run " in result.output and "evaluated on other data" in result.output
    assert "warning: catalog and application shares left out" in result.output
    assert "/nowhere/on/this/machine is not readable here" in html
    logged = MlflowClient(tracking_uri=store["uri"]).list_artifacts(store["current"], "report")
    assert [item.path for item in logged] == ["report/report.html"]


@pytest.mark.slow  # a fresh SQLite store runs MLflow's migrations: seconds
def test_cli_unknown_run_is_a_clean_error(store: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = _invoke(["--run", "f" * 32, "--out", str(out), "--tracking-uri", store["uri"]])
    assert result.exit_code == 1
    assert f"run {'f' * 32} does not exist" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.slow  # a fresh SQLite store runs MLflow's migrations: seconds
def test_cli_unknown_alias_is_a_clean_error(store: dict[str, str], tmp_path: Path) -> None:
    result = _invoke(
        [
            *("--run", store["current"], "--against", "nightly", "--out", str(tmp_path / "r.html")),
            *("--tracking-uri", store["uri"], "--no-log"),
        ]
    )
    assert result.exit_code == 1
    assert "no version of" in result.output and "'nightly'" in result.output
    assert "Traceback" not in result.output


def test_data_folder_with_other_tables_is_left_out(tmp_path: Path) -> None:
    """A data folder whose tables do not hash to the run's fingerprint is left out, said so."""
    from training.report_cli import dataset_facts

    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("offers.parquet", "events.parquet", "profiles.parquet"):
        (folder / name).write_bytes(b"not the run's data")
    loaded = {"params": dict(RUN_PARAMS), "manifest": None, "evaluation": make_evaluation()}
    summary, note = dataset_facts(loaded, folder)
    assert summary is None
    assert "no longer match the run's data fingerprint" in note


SCREENSHOT_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "screenshot_report.sh"


@pytest.mark.slow  # starts a headless browser
@pytest.mark.skipif(  # never skipped in CI, whose .ci/run installs it
    shutil.which("chromium") is None
    and shutil.which("chromium-browser") is None
    and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
def test_screenshot_script_renders_the_page_offline(page: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(page, "utf-8")
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        ["bash", str(SCREENSHOT_SCRIPT), str(report), str(shot), "800,1200"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (800, 1200)


def test_screenshot_script_names_a_missing_report(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCREENSHOT_SCRIPT), str(tmp_path / "absent.html"), str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "absent.html" in done.stderr or "chromium" in done.stderr

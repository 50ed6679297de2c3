"""Loaders of real exports and `recsys ingest`: exact rejects, no silent loss, safe merges.

Expected values are read off the hand-made files of tests/data (row numbers are positions in
the JSON array, line numbers for CSV and JSON Lines).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recsys import schema
from recsys.ingest_cli import app
from recsys.loaders import LoadError, load_events, load_offers, load_profiles, store
from recsys.loaders.values import html_to_text

DATA = Path(__file__).parent / "data"
UTC = "UTC"


def _by_row(result) -> dict[int, tuple[str | None, str]]:
    return {
        int(r.row): (r.id, r.reason) for r in result.rejects[["row", "id", "reason"]].itertuples()
    }


def _offer(result, offer_id: str) -> pd.Series:
    rows = result.table.loc[result.table["id"] == offer_id]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.fixture(scope="module")
def offers():
    return load_offers(DATA / "offers.json")


@pytest.fixture(scope="module")
def events_csv():
    return load_events(DATA / "events.csv")


# --- offers -------------------------------------------------------------------------------------


def test_offers_loaded_ids_and_each_reject_with_its_reason(offers) -> None:
    assert offers.table["id"].tolist() == [
        "m-001",
        "m-002",
        "m-003",
        "m-008",
        "m-009",
        "m-007",
        "m-014",
    ]
    assert _by_row(offers) == {
        4: ("m-004", "unknown_domain"),
        5: ("m-005", "bad_date"),
        6: ("m-006", "bad_date"),
        7: ("m-007", "duplicate_id"),
        10: (None, "missing_id"),
        11: ("m-011", "unknown_type"),
        12: ("m-012", "bad_location"),
        14: ("m-013", "invalid_field:places"),
    }
    assert offers.reject_counts() == {
        "bad_date": 2,
        "bad_location": 1,
        "duplicate_id": 1,
        "invalid_field:places": 1,
        "missing_id": 1,
        "unknown_domain": 1,
        "unknown_type": 1,
    }


@pytest.mark.parametrize("title", [None, "", "   ", "<p> </p>", "<script>x()</script>"])
def test_offers_without_a_title_are_rejected(tmp_path: Path, title: str | None) -> None:
    """A front cannot show an offer without a title: it is rejected, never served."""
    records = json.loads((DATA / "offers.json").read_text(encoding="utf-8"))
    untitled = dict(records[0], id="m-untitled", clientId="untitled")
    if title is None:
        del untitled["title"]
    else:
        untitled["title"] = title
    path = tmp_path / "offers.json"
    path.write_text(json.dumps([records[0], untitled]), encoding="utf-8")
    result = load_offers(path)
    assert result.table["id"].tolist() == ["m-001"]
    assert _by_row(result) == {2: ("m-untitled", "missing_title")}


def test_offers_no_silent_loss(offers) -> None:
    records = json.loads((DATA / "offers.json").read_text(encoding="utf-8"))
    assert offers.loaded + offers.rejected == len(records) == 15


def test_offer_rejects_name_the_field_and_keep_the_raw_record(offers) -> None:
    details = dict(zip(offers.rejects["row"], offers.rejects["detail"], strict=True))
    assert details[5] == "startAt is not an ISO 8601 timestamp: 'le 3 mars'"
    assert details[6] == "endAt is before startAt: '2024-05-01T00:00:00.000Z'"
    assert details[12] == "(lat, lon) out of range: '(123.4, -4.4861)'"
    record = offers.rejects.loc[offers.rejects["row"] == 4, "record"].iloc[0]
    assert record["domain"] == "cuisine"


def test_duplicate_id_keeps_the_most_recently_updated(offers) -> None:
    kept = _offer(offers, "m-007")
    assert (kept["title"], kept["places"]) == ("Collecte alimentaire", 12)
    detail = offers.rejects.loc[offers.rejects["row"] == 7, "detail"].iloc[0]
    assert detail == "superseded by the more recently updated row: 13"


def test_html_description_becomes_plain_text(offers) -> None:
    offer = _offer(offers, "m-002")
    assert offer["description"] == (
        "Aide aux devoirs pour les élèves de CM2 ! Rendez-vous chaque mercredi & samedi. Merci ’"
    )
    assert offer["title"] == "Soutien scolaire & aide aux devoirs"


def test_html_to_text_keeps_paragraph_breaks_as_spaces() -> None:
    assert (
        html_to_text("<p>un</p><p>deux</p>trois<br>quatre &lt;5&gt;") == "un deux trois quatre <5>"
    )
    assert html_to_text("<style>p {}</style>a  \n b") == "a b"
    assert html_to_text("plain   text") == "plain text"


def test_first_address_is_flattened_and_department_derived(offers) -> None:
    offer = _offer(offers, "m-008")
    assert offer[["city", "postalCode", "departmentCode", "departmentName", "region"]].tolist() == [
        "Marseille",
        "13001",
        "13",
        "Bouches-du-Rhône",
        "Provence-Alpes-Côte d'Azur",
    ]
    assert (offer["lat"], offer["lon"]) == (43.2965, 5.3698)
    lyon = _offer(offers, "m-002")
    assert (lyon["departmentCode"], lyon["region"]) == ("69", "Auvergne-Rhône-Alpes")
    assert _offer(offers, "m-014")["departmentCode"] == "2A"


def test_offers_without_coordinates_are_kept(offers) -> None:
    remote = _offer(offers, "m-003")
    assert np.isnan(remote["lat"]) and np.isnan(remote["lon"])
    assert remote["remote"] == "full"
    assert offers.warnings["no_coordinates"] == 2  # m-003 and m-009


def test_offer_values_are_typed(offers) -> None:
    first = _offer(offers, "m-001")
    assert first["startAt"] == pd.Timestamp("2024-03-01T09:00:00", tz=UTC)  # +01:00 → UTC
    assert [first["openToMinors"], _offer(offers, "m-002")["openToMinors"]] == [True, False]
    assert pd.isna(_offer(offers, "m-009")["openToMinors"])
    assert pd.isna(_offer(offers, "m-009")["places"])
    corsica = _offer(offers, "m-014")
    assert (corsica["reducedMobilityAccessible"], corsica["closeToTransport"]) == (False, True)
    assert (corsica["statusCode"], corsica["deletedAt"].day) == ("REFUSED", 10)
    assert (corsica["compensationAmount"], corsica["compensationUnit"]) == (8.5, "hour")
    assert schema.conform(offers.table, "offers").num_rows == 7


def test_unknown_activity_slug_is_dropped_with_a_warning(offers) -> None:
    assert _offer(offers, "m-002")["activities"] == ["aide-aux-devoirs", "soutien-scolaire"]
    assert offers.warnings["unknown_activity"] == 1


def test_missing_dates_are_filled_from_the_creation_date(offers) -> None:
    offer = _offer(offers, "m-009")
    created = pd.Timestamp("2024-02-10", tz=UTC)
    assert [offer[name] for name in ("postedAt", "startAt", "updatedAt")] == [created] * 3
    assert pd.isna(offer["endAt"])
    for name in ("filled_postedAt", "filled_startAt", "filled_updatedAt"):
        assert offers.warnings[name] == 1


def test_wrapped_export_and_json_lines() -> None:
    wrapped = load_offers(DATA / "offers_wrapped.json")
    assert wrapped.table["id"].tolist() == ["m-001", "m-003"]
    assert _by_row(wrapped) == {3: ("m-004", "unknown_domain")}
    lines = load_offers(DATA / "offers.jsonl")
    assert lines.table["id"].tolist() == ["m-001", "m-008"]
    assert _by_row(lines) == {2: (None, "unreadable")}


def test_truncated_array_keeps_the_complete_records() -> None:
    result = load_offers(DATA / "offers_truncated.json")
    assert result.table["id"].tolist() == ["m-001", "m-002", "m-003"]
    assert _by_row(result) == {4: ("m-004", "unknown_domain"), 5: (None, "truncated_file")}
    detail = result.rejects.loc[result.rejects["row"] == 5, "detail"].iloc[0]
    assert detail == "the file is cut inside record 5, after 4 complete records"


def _record_ends(text: str) -> list[int]:
    """Byte offsets where each top-level record of a JSON array ends."""
    decoder, ends, pos = json.JSONDecoder(), [], text.index("[") + 1
    while True:
        pos = text.index("{", pos)
        _, pos = decoder.raw_decode(text, pos)
        ends.append(len(text[:pos].encode("utf-8")))
        if text[pos:].lstrip().startswith("]"):
            return ends


@pytest.mark.parametrize("fraction", np.linspace(0.0, 0.99, 12).tolist())
def test_any_cut_of_an_array_loses_nothing_silently(fraction: float, tmp_path: Path) -> None:
    data = (DATA / "offers.json").read_bytes()
    cut = 1 + int(fraction * (len(data) - 4))  # a byte offset, possibly inside a character
    path = tmp_path / "cut.json"
    path.write_bytes(data[:cut])
    result = load_offers(path)
    complete = sum(end <= cut for end in _record_ends(data.decode("utf-8")))
    reasons = result.rejects["reason"].tolist()
    assert reasons.count("truncated_file") == 1
    assert result.loaded + len(reasons) - 1 == complete
    assert "invalid_utf8" not in result.warnings


def test_broken_record_inside_an_array_is_unreadable(tmp_path: Path) -> None:
    records = json.loads((DATA / "offers.json").read_text(encoding="utf-8"))
    text = "[" + json.dumps(records[0]) + ', {"id": "m-x", oops}, ' + json.dumps(records[2]) + "]"
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    result = load_offers(path)
    assert result.table["id"].tolist() == ["m-001"]
    assert _by_row(result) == {2: (None, "unreadable")}


def test_offers_file_that_is_not_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "offers.csv"
    path.write_text("id\nm-1\n", encoding="utf-8")
    with pytest.raises(LoadError, match="expected a JSON export"):
        load_offers(path)
    with pytest.raises(LoadError, match="no such file"):
        load_offers(tmp_path / "missing.json")


# --- events -------------------------------------------------------------------------------------


def test_events_csv_loaded_ids_and_rejects(events_csv) -> None:
    assert events_csv.table["id"].tolist() == ["e-001", "e-002", "e-003", "e-007", "e-010", "e-011"]
    assert _by_row(events_csv) == {
        5: ("e-004", "unknown_type"),
        6: ("e-005", "bad_date"),
        7: ("e-002", "duplicate_id"),
        8: ("e-006", "missing_mission"),
        10: ("e-008", "unknown_status"),
        11: (None, "unreadable"),
    }
    data_lines = (DATA / "events.csv").read_text(encoding="utf-8").strip().count("\n")
    assert events_csv.loaded + events_csv.rejected == data_lines == 12
    assert schema.conform(events_csv.table, "events").num_rows == 6


def test_events_custom_attributes_and_bots(events_csv) -> None:
    table = events_csv.table.set_index("id")
    apply = table.loc["e-003"]
    assert (apply["userId"], apply["candidateAge"], apply["candidatePostalCode"]) == (
        "jva-user-42",
        19,
        "75011",
    )
    bad_age = table.loc["e-011"]
    assert pd.isna(bad_age["candidateAge"])  # "dix-neuf": dropped, the apply is kept
    assert (bad_age["userId"], bad_age["candidatePostalCode"]) == ("jva-user-7", "06000")
    assert pd.isna(table.loc["e-001", "userId"])
    assert table["isBot"].tolist() == [False, False, False, True, False, False]
    assert events_csv.warnings == {"bot_event": 1, "invalid_candidate_age": 1}
    assert table.loc["e-010", "createdAt"] == pd.Timestamp("2024-03-03T08:00:00", tz=UTC)
    assert table.loc["e-003", "position"] is pd.NA


def test_events_json_with_dict_custom_attributes() -> None:
    result = load_events(DATA / "events.json")
    assert result.table["id"].tolist() == ["e-101", "e-102", "e-106"]
    assert _by_row(result) == {
        3: (None, "missing_id"),
        4: ("e-104", "invalid_field:isBot"),
        5: ("e-105", "invalid_field:position"),
        6: ("e-101", "duplicate_id"),
    }
    apply = result.table.set_index("id").loc["e-102"]
    assert (apply["userId"], apply["candidateAge"]) == ("jva-user-99", 22)
    assert pd.isna(result.table.set_index("id").loc["e-106", "missionId"])  # account: allowed


def test_events_parquet_round_trip(events_csv, tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    schema.write_table(events_csv.table, "events", path)
    again = load_events(path)
    assert again.rejected == 0
    pd.testing.assert_frame_equal(again.table, events_csv.table, check_dtype=False)


def test_csv_with_an_unclosed_quote_keeps_the_following_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "id;type;createdAt;missionId\n"
        "a;print;2024-01-01T00:00:00Z;m-1\n"
        'b;click;"2024-01-02;m-1\n'
        "c;print;2024-01-03T00:00:00Z;m-2\n"
        "\n"
        "d;apply;2024-01-04T00:00:00Z;m-2;extra\n"
        "e;apply;2024-01-05T00:00:00Z;m-2\n"
        "f;apply;yesterday;m-2\n",
        encoding="utf-8",
    )
    result = load_events(path)
    assert result.table["id"].tolist() == ["a", "c", "e"]
    assert _by_row(result) == {
        3: (None, "unreadable"),
        6: (None, "unreadable"),
        8: ("f", "bad_date"),
    }


# --- profiles -----------------------------------------------------------------------------------


def test_profiles_loaded_and_rejected() -> None:
    result = load_profiles(DATA / "profiles.csv")
    assert result.table["userId"].tolist() == ["u-2", "u-5", "u-1", "u-8"]
    assert _by_row(result) == {
        2: ("u-1", "duplicate_id"),
        4: ("u-3", "invalid_field:age"),
        5: ("u-4", "invalid_field:postalCode"),
        7: (None, "missing_id"),
        9: ("u-6", "bad_location"),
        10: ("u-7", "invalid_field:mobility"),
    }
    table = result.table.set_index("userId")
    assert table.loc["u-2", ["postalCode", "departmentCode"]].tolist() == ["06000", "06"]
    assert table.loc["u-2", "quizDomains"] == ["education"]  # from a JSON string
    assert table.loc["u-1", "quizActivities"] == ["aider-accompagner", "transmettre-animer"]
    assert table.loc["u-1", "age"] == 20  # the later row wins
    assert table["hasQuiz"].tolist() == [True, True, True, False]
    assert table.loc["u-8", "region"] == "Provence-Alpes-Côte d'Azur"
    # An unknown quiz value (a newer quiz option) is dropped, the person kept, a warning counted.
    assert table.loc["u-5", "quizDomains"] == ["sport"]
    assert result.warnings["unknown_value:quizDomains"] == 1
    assert schema.conform(result.table, "profiles").num_rows == 4


def test_profiles_keep_people_whose_quiz_has_newer_options(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text(
        "userId,age,quizActivities,quizRhythm\n"
        "a,19,aider-accompagner|cuisiner,un-jour-par-mois\n"
        "b,22,cuisiner,\n",
        encoding="utf-8",
    )
    with caplog.at_level("WARNING", logger="recsys.loaders.profiles"):
        result = load_profiles(path)
    assert result.rejected == 0
    table = result.table.set_index("userId")
    assert table.loc["a", "quizActivities"] == ["aider-accompagner"]
    assert table.loc["b", "quizActivities"] == []
    assert pd.isna(table.loc["a", "quizRhythm"])
    assert result.warnings["unknown_value:quizActivities"] == 2
    assert result.warnings["unknown_value:quizRhythm"] == 1
    assert "cuisiner" in caplog.text and "un-jour-par-mois" in caplog.text


def test_profiles_accept_snake_case_and_the_stat_events_id(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text(
        "userIdentifiant,age,postal_code,radius_km,quiz_domains,quiz_rhythm,has_quiz\n"
        "jva-1,19,69003,15,sport|numerique,quelques-heures-par-semaine,yes\n",
        encoding="utf-8",
    )
    result = load_profiles(path)
    assert result.rejected == 0
    row = result.table.iloc[0]
    assert row["userId"] == "jva-1"
    assert row["postalCode"] == "69003" and row["departmentCode"] == "69"
    assert row["radiusKm"] == 15.0
    assert row["quizDomains"] == ["sport", "numerique"]
    assert row["quizRhythm"] == "quelques-heures-par-semaine"


def test_profiles_prefer_the_canonical_column_over_another_spelling(tmp_path: Path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("userId,userIdentifiant,age,radiusKm,radius_km\nu,jva,30,5,50\n")
    row = load_profiles(path).table.iloc[0]
    assert row["userId"] == "u" and row["radiusKm"] == 5.0


# --- merge into the stored tables ---------------------------------------------------------------


def _offer_update(tmp_path: Path) -> Path:
    records = json.loads((DATA / "offers.json").read_text(encoding="utf-8"))
    newer = dict(records[0], title="Accueil (mis à jour)", updatedAt="2024-05-01T00:00:00.000Z")
    older = dict(records[2], title="Ancienne version", updatedAt="2024-01-01T00:00:00.000Z")
    new = dict(records[0], id="m-100", clientId="jva-1100")
    path = tmp_path / "update.json"
    path.write_text(json.dumps([newer, older, new]), encoding="utf-8")
    return path


def test_reingest_merges_offers_without_losing_rows(offers, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    first = store(offers, out)
    assert (first.added, first.total) == (7, 7)
    report = store(load_offers(_offer_update(tmp_path)), out)
    assert (report.added, report.replaced, report.unchanged, report.total) == (1, 1, 1, 8)
    stored = schema.read_table(out / "offers.parquet").set_index("id")
    assert sorted(stored.index) == sorted([*offers.table["id"], "m-100"])
    assert stored.loc["m-001", "title"] == "Accueil (mis à jour)"  # later updatedAt wins
    assert stored.loc["m-003", "title"] == "Rédaction de fiches pratiques à distance"
    log = (out / "offers.rejects.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(log) == offers.rejected
    assert json.loads(log[0])["reason"] == "unknown_domain"


def test_events_are_idempotent_on_id(events_csv, tmp_path: Path) -> None:
    store(events_csv, tmp_path)
    report = store(load_events(DATA / "events.json"), tmp_path)
    assert (report.added, report.total) == (3, 9)
    again = store(events_csv, tmp_path)
    assert (again.added, again.replaced, again.unchanged, again.total) == (0, 0, 6, 9)


def test_a_crash_while_writing_leaves_the_stored_table_intact(
    offers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "raw"
    store(offers, out)
    before = (out / "offers.parquet").read_bytes()

    def crash(frame: pd.DataFrame, kind: str, path: Path) -> None:
        Path(path).write_bytes(b"PAR1 half written")
        raise OSError("disk full")

    monkeypatch.setattr(schema, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store(load_offers(_offer_update(tmp_path)), out)
    assert (out / "offers.parquet").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["offers.parquet", "offers.rejects.jsonl"]


# --- command line -------------------------------------------------------------------------------


def _count(output: str, label: str) -> int:
    match = re.search(rf"^\s+{re.escape(label)}\s+(\d+)", output, flags=re.MULTILINE)
    assert match is not None, output
    return int(match.group(1))


def test_cli_prints_counts_and_writes_table_and_rejects(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["offers", str(DATA / "offers.json"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert _count(result.output, "loaded") == 7
    assert _count(result.output, "rejected") == 8
    assert _count(result.output, "bad_date") == 2
    assert _count(result.output, "unknown_activity") == 1
    assert len(schema.read_table(tmp_path / "offers.parquet")) == 7
    assert (tmp_path / "offers.rejects.jsonl").read_text().count("\n") == 8


def test_cli_missing_file_fails_with_its_name(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    result = CliRunner().invoke(app, ["events", str(missing), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{missing}: no such file" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_cli_fails_when_every_row_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"title": "no id"}, {"id": "x", "domain": "cuisine"}]))
    result = CliRunner().invoke(app, ["offers", str(path), "--out", str(tmp_path / "raw")])
    assert result.exit_code == 1
    assert "no row of" in result.output and str(path) in result.output
    assert not (tmp_path / "raw" / "offers.parquet").exists()
    assert (tmp_path / "raw" / "offers.rejects.jsonl").read_text().count("\n") == 2


def test_cli_unknown_format_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("hello")
    result = CliRunner().invoke(app, ["profiles", str(path), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "unknown format" in result.output

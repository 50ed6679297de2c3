"""Conversion of MovieLens 100k and generic interactions CSVs into canonical tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from recsys import generic, schema
from recsys.generic_cli import app

# (user, item, rating); row k has timestamp FIRST_TS + 100 k. Ratings >= 4 on rows
# 0, 2, 5, 7, 10, 13, 16, 17, 20, 23, 27, 28 (12 applies); rating 5 on 0, 7, 10, 16, 23, 27 (6).
RATINGS = [
    (1, 1, 5), (1, 2, 3), (1, 3, 4), (1, 5, 1), (1, 7, 2),
    (2, 1, 4), (2, 2, 2), (2, 4, 5), (2, 6, 3), (2, 8, 1),
    (3, 2, 5), (3, 3, 3), (3, 4, 2), (3, 5, 4), (3, 6, 1),
    (4, 1, 3), (4, 3, 5), (4, 6, 4), (4, 7, 2), (4, 8, 3),
    (5, 2, 4), (5, 4, 1), (5, 5, 3), (5, 7, 5), (5, 8, 2),
    (6, 1, 2), (6, 3, 3), (6, 5, 5), (6, 6, 4), (6, 8, 1),
]  # fmt: skip
APPLY_ROWS = [0, 2, 5, 7, 10, 13, 16, 17, 20, 23, 27, 28]
FIRST_TS = 881_250_949  # 1997-12-04 15:55:49 UTC
FLOOR = pd.Timestamp("1997-12-03 15:55:49", tz="UTC")  # earliest rating minus a day
# (id, title, release date, genres); movie 9 has no rating, movie 3 no parseable date,
# movie 4 a release after the earliest rating (so posted at FLOOR).
MOVIES = [
    (1, "Toy Story (1995)", "01-Jan-1995", ["Animation", "Children's", "Comedy"]),
    (2, "GoldenEye (1995)", "01-Jan-1995", ["Action", "Adventure", "Thriller"]),
    (3, 'Misérables, Les "Les Mis" (1995)', "", ["Drama"]),
    (4, "Titanic (1997)", "01-Jan-1998", ["Drama", "Romance"]),
    (5, "Blade Runner (1982)", "01-Jan-1982", ["Film-Noir", "Sci-Fi"]),
    (6, "Unknown Film (1996)", "15-Mar-1996", ["unknown"]),
    (7, "Fargo (1996)", "14-Feb-1997", ["Crime", "Drama", "Thriller"]),
    (8, "Babe (1995)", "01-Jan-1995", ["Children's", "Comedy", "Drama"]),
    (9, "Unrated (1993)", "01-Jan-1993", ["Western"]),
]


def _movie_line(movie_id: int, title: str, release: str, genres: list[str]) -> str:
    flags = ["1" if genre in genres else "0" for genre in generic.MOVIELENS_GENRES]
    return "|".join([str(movie_id), title, release, "", "http://us.imdb.com/x", *flags])


@pytest.fixture
def movielens(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    rows = [f"{u}\t{i}\t{r}\t{FIRST_TS + 100 * k}" for k, (u, i, r) in enumerate(RATINGS)]
    (folder / "u.data").write_text("\n".join(rows) + "\n", encoding="utf-8")
    items = "\n".join(_movie_line(*movie) for movie in MOVIES) + "\n"
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    users = [f"{u}|{20 + u}|M|student|0210{u}" for u in range(1, 8)]  # user 7 never rated
    (folder / "u.user").write_text("\n".join(users) + "\n", encoding="latin-1")
    return folder


def _read(out: Path, kind: str) -> pd.DataFrame:
    """Read a written table after checking its Arrow schema is exactly the canonical one."""
    path = out / f"{kind}.parquet"
    assert pq.read_schema(path).equals(schema.SCHEMAS[kind], check_metadata=False)
    return pd.read_parquet(path)


# --- MovieLens 100k ------------------------------------------------------------------------------


def test_movielens_counts_and_manifest(movielens: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    counts = generic.convert_movielens100k(movielens, out)
    expected = {"offers": 9, "events": 30, "applies": 12, "clicks": 18, "profiles": 7}
    assert counts == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "movielens-100k"
    assert manifest["counts"] == expected
    assert manifest["min_weight"] == 4.0


def test_movielens_events(movielens: Path, tmp_path: Path) -> None:
    generic.convert_movielens100k(movielens, tmp_path / "out")
    events = _read(tmp_path / "out", "events")
    assert events["id"].tolist() == [f"movielens-100k:{k}" for k in range(30)]
    applies = events.index[events["type"] == "apply"].tolist()
    assert applies == APPLY_ROWS
    assert set(events["type"]) == {"apply", "click"}
    assert (events.loc[APPLY_ROWS, "status"] == "VALIDATED").all()
    assert events.drop(index=APPLY_ROWS)["status"].isna().all()
    assert events["userId"].tolist() == [str(u) for u, _, _ in RATINGS]
    assert events["missionId"].tolist() == [str(i) for _, i, _ in RATINGS]
    assert events.loc[0, "createdAt"] == pd.Timestamp("1997-12-04 15:55:49", tz="UTC")
    assert events.loc[29, "createdAt"] == pd.Timestamp("1997-12-04 16:44:09", tz="UTC")
    assert not events["isBot"].any()
    assert (events["source"] == "api").all()
    # One opaque hash per user: 16 hex digits, never the id itself, distinct across users.
    per_user = events.groupby("userId")["user"].unique()
    assert per_user.map(len).eq(1).all()
    hashes = per_user.str[0]
    assert hashes.str.fullmatch(r"[0-9a-f]{16}").all() and hashes.nunique() == 6


def test_movielens_min_rating(movielens: Path, tmp_path: Path) -> None:
    counts = generic.convert_movielens100k(movielens, tmp_path / "out", min_rating=5)
    assert (counts["applies"], counts["clicks"]) == (6, 24)
    events = _read(tmp_path / "out", "events")
    assert events.index[events["type"] == "apply"].tolist() == [0, 7, 10, 16, 23, 27]


def test_movielens_offers(movielens: Path, tmp_path: Path) -> None:
    generic.convert_movielens100k(movielens, tmp_path / "out")
    offers = _read(tmp_path / "out", "offers").set_index("id")
    assert offers.index.tolist() == [str(m) for m in range(1, 10)]
    assert offers.loc["1", "title"] == "Toy Story (1995)"
    assert offers.loc["3", "title"] == 'Misérables, Les "Les Mis" (1995)'
    assert offers.loc["1", "description"] == "Animation Childrens Comedy"
    assert offers.loc["5", "description"] == "FilmNoir SciFi"
    assert offers.loc["6", "description"] == ""  # the "unknown" flag gives no word
    posted = offers["postedAt"]
    assert posted["1"] == pd.Timestamp("1995-01-01", tz="UTC")
    assert posted["3"] == FLOOR  # no release date
    assert posted["4"] == FLOOR  # released after the first rating
    assert posted["9"] == pd.Timestamp("1993-01-01", tz="UTC")
    assert (offers["startAt"] == posted).all()
    assert (offers["type"] == "benevolat").all() and offers["openToMinors"].all()
    assert (offers["remote"] == "full").all() and (offers["statusCode"] == "ACCEPTED").all()
    assert (offers["domain"] == "autre").all() and (offers["publisherId"] == "generic").all()
    nullable = ["endAt", "deletedAt", "places", "lat", "lon", "departmentCode"]
    assert offers[nullable].isna().all().all()
    assert offers["activities"].map(len).eq(0).all()


def test_movielens_profiles(movielens: Path, tmp_path: Path) -> None:
    generic.convert_movielens100k(movielens, tmp_path / "out")
    profiles = _read(tmp_path / "out", "profiles")
    assert profiles["userId"].tolist() == [str(u) for u in range(1, 8)]
    assert profiles["age"].isna().all()  # adults for eligibility, whatever u.user says
    assert not profiles["hasQuiz"].any()
    assert profiles[["lat", "lon", "radiusKm"]].isna().all().all()
    assert profiles["quizDomains"].map(len).eq(0).all()


def test_movielens_missing_file(movielens: Path, tmp_path: Path) -> None:
    (movielens / "u.item").unlink()
    with pytest.raises(ValueError, match=r"u\.item.*not found"):
        generic.convert_movielens100k(movielens, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_movielens_bad_rating(movielens: Path, tmp_path: Path) -> None:
    lines = (movielens / "u.data").read_text().splitlines()
    lines[3] = lines[3].replace("\t1\t", "\tbad\t")
    (movielens / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"u\.data: column 'rating'.*line 4 \(value 'bad'\)"):
        generic.convert_movielens100k(movielens, tmp_path / "out")


def test_movielens_wrong_field_count(movielens: Path, tmp_path: Path) -> None:
    (movielens / "u.user").write_text("1|24|M\n2|53|F\n")
    with pytest.raises(ValueError, match=r"u\.user: expected 5 .*found 3"):
        generic.convert_movielens100k(movielens, tmp_path / "out")


# --- Generic interactions CSV --------------------------------------------------------------------


@pytest.fixture
def interactions(tmp_path: Path) -> tuple[Path, Path, Path]:
    (tmp_path / "log.csv").write_text(
        "visitor,offer,score,when\n"
        "u007,a,2.5,2024-03-01T10:00:00Z\n"
        "u007,b,0.5,2024-03-02T10:00:00+02:00\n"
        "u008,a,1,2024-03-03\n"
        "u009,c,3,2024-03-04 12:30:00\n"
    )
    (tmp_path / "items.csv").write_text(
        "offer,title,genre,color\n"
        "a,Garden day,Outdoor|Nature,green\n"
        "b,,Indoor,\n"
        "c,Chess club,Games,black\n"
        "d,Never seen,Sport,red\n"
    )
    (tmp_path / "users.csv").write_text("id,country\nu007,FR\nu010,DE\n")
    return tmp_path / "log.csv", tmp_path / "items.csv", tmp_path / "users.csv"


def test_interactions_with_side_tables(
    interactions: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    log, items, users = interactions
    out = tmp_path / "out"
    counts = generic.convert_interactions(
        log,
        out,
        user_col="visitor",
        item_col="offer",
        weight_col="score",
        time_col="when",
        users_csv=users,
        items_csv=items,
        min_weight=1.0,
    )
    assert counts == {"offers": 4, "events": 4, "applies": 3, "clicks": 1, "profiles": 4}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "interactions-csv" and manifest["counts"] == counts
    events = _read(out, "events")
    assert events["type"].tolist() == ["apply", "click", "apply", "apply"]
    assert events["userId"].tolist() == ["u007", "u007", "u008", "u009"]
    assert events["createdAt"].tolist() == [
        pd.Timestamp("2024-03-01 10:00", tz="UTC"),
        pd.Timestamp("2024-03-02 08:00", tz="UTC"),  # +02:00 converted to UTC
        pd.Timestamp("2024-03-03 00:00", tz="UTC"),  # naive ISO read as UTC
        pd.Timestamp("2024-03-04 12:30", tz="UTC"),
    ]
    offers = _read(out, "offers").set_index("id")
    assert offers["title"].to_dict() == {
        "a": "Garden day",
        "b": "item b",
        "c": "Chess club",
        "d": "Never seen",
    }
    assert offers["description"].to_dict() == {
        "a": "Outdoor Nature green",
        "b": "Indoor",
        "c": "Games black",
        "d": "Sport red",
    }
    assert (offers["postedAt"] == pd.Timestamp("2024-02-29 10:00", tz="UTC")).all()
    profiles = _read(out, "profiles")
    assert profiles["userId"].tolist() == ["u007", "u010", "u008", "u009"]


def test_interactions_defaults_epoch_seconds(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,weight,timestamp\n1,10,0.2,0\n2,11,5,86400.5\n")
    counts = generic.convert_interactions(log, tmp_path / "out")
    # No threshold: every interaction is an apply; no side tables: ids come from the log.
    assert counts == {"offers": 2, "events": 2, "applies": 2, "clicks": 0, "profiles": 2}
    events = _read(tmp_path / "out", "events")
    assert events["createdAt"].tolist() == [
        pd.Timestamp("1970-01-01", tz="UTC"),
        pd.Timestamp("1970-01-02 00:00:00.500", tz="UTC"),
    ]
    offers = _read(tmp_path / "out", "offers")
    assert offers["title"].tolist() == ["item 10", "item 11"]
    assert (offers["postedAt"] == pd.Timestamp("1969-12-31", tz="UTC")).all()


def test_interactions_implicit(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n1,10,100\n")
    counts = generic.convert_interactions(log, tmp_path / "out", weight_col=None)
    assert counts["applies"] == 1
    with pytest.raises(ValueError, match="min_weight needs a weight column"):
        generic.convert_interactions(log, tmp_path / "out", weight_col=None, min_weight=1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,item,timestamp\n1,10,100\n", r"log\.csv: missing column\(s\) 'weight'"),
        (
            "user,item,weight,timestamp\n1,10,high,100\n",
            r"column 'weight'.*line 2 \(value 'high'\)",
        ),
        (
            "user,item,weight,timestamp\n1,10,1,2024-01-01\n2,10,1,yesterday\n",
            r"column 'timestamp': neither epoch seconds.*line 3 \(value 'yesterday'\)",
        ),
        (
            "user,item,weight,timestamp\n1,10,1,1700000000000\n",
            r"column 'timestamp': epoch seconds out of range.*line 2",
        ),
        ("user,item,weight,timestamp\n1,,1,100\n", r"column 'item' is empty at line 2"),
        ("user,item,weight,timestamp\n", r"no interactions"),
    ],
)
def test_interactions_errors(tmp_path: Path, content: str, message: str) -> None:
    log = tmp_path / "log.csv"
    log.write_text(content)
    with pytest.raises(ValueError, match=message):
        generic.convert_interactions(log, tmp_path / "out")


def test_side_table_errors(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,weight,timestamp\n1,10,1,100\n")
    items = tmp_path / "items.csv"
    items.write_text("item,genre\n10,a\n10,b\n")
    with pytest.raises(ValueError, match=r"items\.csv: column 'item' repeats an id at line 3"):
        generic.convert_interactions(log, tmp_path / "out", items_csv=items)
    users = tmp_path / "users.csv"
    users.write_text("name,country\nx,FR\n")
    with pytest.raises(ValueError, match=r"users\.csv: missing id column 'user' \(or 'id'\)"):
        generic.convert_interactions(log, tmp_path / "out", users_csv=users)
    with pytest.raises(ValueError, match=r"users file .*nope\.csv not found"):
        generic.convert_interactions(log, tmp_path / "out", users_csv=tmp_path / "nope.csv")


# --- Command line --------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_movielens(movielens: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["movielens100k", str(movielens), str(out), "--min-weight", "5"])
    assert result.exit_code == 0, result.output
    assert "6 applies" in result.output and "24 clicks" in result.output
    assert json.loads((out / "manifest.json").read_text())["counts"]["applies"] == 6


def test_cli_interactions(interactions: tuple[Path, Path, Path], tmp_path: Path) -> None:
    log, items, users = interactions
    args = ["interactions", str(log), str(tmp_path / "out"), "--items", str(items)]
    args += ["--users", str(users), "--user-col", "visitor", "--item-col", "offer"]
    args += ["--weight-col", "score", "--time-col", "when", "--min-weight", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 offers" in result.output and "3 applies" in result.output


def test_cli_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["movielens100k", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "error: MovieLens 100k folder" in result.output and "not found" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_cli_rejects_side_tables_for_movielens(movielens: Path, tmp_path: Path) -> None:
    args = ["movielens100k", str(movielens), str(tmp_path / "out"), "--users", "u.csv"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "--users only apply to the interactions format" in result.output

"""Public benchmark data (MovieLens 100k, any interactions CSV) → canonical dataset folder.

The pipeline only reads canonical tables, so converting a public benchmark into them lets the
same features, models and evaluation run on data whose published results we can compare with.
`convert_interactions` and `convert_movielens100k` write `offers.parquet`, `events.parquet`,
`profiles.parquet` (through `schema.write_table`) and `manifest.json` ({"source", "inputs",
"min_weight", "counts"}) into the output folder.

Mapping (identical for both sources; MovieLens specifics in brackets):

Events, one per interaction (CSV line order):
    id "<source>:<row>" (row = 0-based data row, so a re-run gives the same ids);
    type "apply" when weight >= `min_weight` (every row when `min_weight` is None), else
    "click", so weaker ratings stay a weaker signal [rating >= 4 by default];
    createdAt = the timestamp (epoch seconds or ISO 8601; naive ISO is read as UTC);
    missionId = item id; userId = user id; user = 16 hex digits of BLAKE2b(user id), an
    opaque hash like the API's; status "VALIDATED" on applies, null on clicks; isBot False;
    source "api"; toPublisherId and fromPublisherId "generic"; every other field null.

Offers, one per item of the item table or of the interactions: offers that every person may
be recommended at any time of the data, so that eligibility never removes a candidate:
    id = clientId = item id; type "benevolat"; openToMinors True; remote "full" (no
    geography: every place field null); statusCode "ACCEPTED"; places, endAt, deletedAt null;
    postedAt = startAt = createdAt = updatedAt = the earliest interaction minus one day, or the
    item's release date when earlier and parseable [u.item's "01-Jan-1995"];
    title = the item table's `title` column [the movie title], else "item <id>";
    description = the item's categorical values as words [its genres, each one TF-IDF term:
    "Sci-Fi" → "SciFi", "Children's" → "Childrens"; the "unknown" flag gives no word], so that
    TF-IDF on title and description carries the item content. Multi-valued cells of a generic
    items CSV are split on "|"; note that the offer TF-IDF keeps letter-only tokens, so purely
    numeric codes carry no text signal. domain "autre" (mapping film genres onto the 20
    engagement domains would invent a signal the data do not hold); activities [] and tags [];
    snu False; publisherId and publisherName "generic".

Profiles, one per user of the user table or of the interactions:
    userId; age null on purpose: MovieLens ages include children, whom bénévolat's eligibility
    rules would exclude; a null age is taken for an adult by `recsys.eligibility`, so every
    offer stays a candidate. hasQuiz False, disability False, empty quiz lists, lat, lon and
    radiusKm null. The user table's other columns (MovieLens age, gender, occupation, US zip
    code) have no slot in the canonical profile and are not carried; the table only lists
    users, including those without interactions.

Bad input raises ValueError naming the file, the column and the reason (missing file or
column, empty id, non-numeric weight, unparseable timestamp, duplicated id in a side table).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from recsys import config, taxonomy
from recsys.schema import write_table

logger = logging.getLogger(__name__)

SOURCE_MOVIELENS: Final = "movielens-100k"
SOURCE_CSV: Final = "interactions-csv"
MANIFEST_FILE: Final = "manifest.json"
PUBLISHER: Final = "generic"
DOMAIN: Final = "autre"
VALIDATED: Final = "VALIDATED"

# u.item's 19 genre flags, in file order (MovieLens 100k README); "unknown" gives no word.
MOVIELENS_GENRES: Final[tuple[str, ...]] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_MOVIELENS_DATA: Final = ("u.data", ("user", "item", "rating", "timestamp"))
_MOVIELENS_ITEM: Final = (
    "u.item",
    ("item", "title", "release", "video_release", "url", *MOVIELENS_GENRES),
)
_MOVIELENS_USER: Final = ("u.user", ("user", "age", "gender", "occupation", "zip"))
MOVIELENS_MIN_RATING: Final = 4.0
_HEADER_LINES: Final = 1  # data row 0 is line 2 of a CSV with a header
_MAX_EPOCH_SECONDS: Final = 7_258_118_400  # 2200-01-01


@dataclass(frozen=True)
class _Interactions:
    """Validated interactions: string ids, float weights (NaN when unweighted), UTC times."""

    user: pd.Series
    item: pd.Series
    weight: pd.Series
    time: pd.Series


@dataclass(frozen=True)
class _Items:
    """Item side table: unique string ids, titles (null = none), words, release (NaT = none)."""

    id: pd.Series
    title: pd.Series
    words: pd.Series
    release: pd.Series


def convert_interactions(
    interactions_csv: Path,
    out_dir: Path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    weight_col: str | None = "weight",
    time_col: str = "timestamp",
    users_csv: Path | None = None,
    items_csv: Path | None = None,
    min_weight: float | None = None,
) -> dict[str, int]:
    """Convert an interactions CSV (and optional user and item tables) into a dataset folder.

    Args:
        interactions_csv: CSV with a header holding the user, item, weight and time columns.
        out_dir: destination folder (created; existing tables are overwritten).
        user_col, item_col, time_col: column names in the interactions CSV.
        weight_col: weight column; None for implicit data (then `min_weight` must be None).
        users_csv: optional CSV whose id column is `user_col` (else `id`); other columns
            are not carried (see the module docstring).
        items_csv: optional CSV whose id column is `item_col` (else `id`), with an optional
            `title` column; every other column is a categorical feature written as words.
        min_weight: weights at or above it become applies, lower ones clicks; None: all applies.

    Returns:
        Counts: offers, events, applies, clicks, profiles.

    Raises:
        ValueError: naming the file and column of a missing file or column, an empty id, a
            non-numeric weight, an unparseable timestamp or a duplicated side-table id.
    """
    if weight_col is None and min_weight is not None:
        raise ValueError("min_weight needs a weight column (weight_col is None)")
    frame = _read_csv(interactions_csv, "interactions")
    columns = [user_col, item_col, time_col] + ([weight_col] if weight_col else [])
    _require_columns(frame, columns, interactions_csv)
    interactions = _Interactions(
        user=_ids(frame[user_col], interactions_csv, user_col, _HEADER_LINES),
        item=_ids(frame[item_col], interactions_csv, item_col, _HEADER_LINES),
        weight=(
            _numbers(frame[weight_col], interactions_csv, weight_col, _HEADER_LINES)
            if weight_col
            else pd.Series(np.nan, index=frame.index)
        ),
        time=_timestamps(frame[time_col], interactions_csv, time_col, _HEADER_LINES),
    )
    items = None if items_csv is None else _generic_items(items_csv, item_col)
    users = None if users_csv is None else _generic_users(users_csv, user_col)
    inputs = {"interactions": interactions_csv.name}
    inputs |= {"users": users_csv.name} if users_csv is not None else {}
    inputs |= {"items": items_csv.name} if items_csv is not None else {}
    return _write_dataset(
        out_dir, SOURCE_CSV, inputs, interactions, items, users, min_weight=min_weight
    )


def convert_movielens100k(
    source_dir: Path, out_dir: Path, min_rating: float = MOVIELENS_MIN_RATING
) -> dict[str, int]:
    """Convert a MovieLens 100k folder (`u.data`, `u.item`, `u.user`) into a dataset folder.

    Args:
        source_dir: folder holding the three files in their published layout.
        out_dir: destination folder (created; existing tables are overwritten).
        min_rating: ratings at or above it become applies, lower ones clicks.

    Returns:
        Counts: offers, events, applies, clicks, profiles.

    Raises:
        ValueError: a missing folder or file, a wrong number of fields, an empty id, a
            non-numeric rating or timestamp, a duplicated movie or user id.
    """
    if not source_dir.is_dir():
        raise ValueError(f"MovieLens 100k folder {source_dir} not found")
    data_path = source_dir / _MOVIELENS_DATA[0]
    data = _read_fixed(data_path, _MOVIELENS_DATA[1], sep="\t", encoding="utf-8")
    interactions = _Interactions(
        user=_ids(data["user"], data_path, "user", 0),
        item=_ids(data["item"], data_path, "item", 0),
        weight=_numbers(data["rating"], data_path, "rating", 0),
        time=_timestamps(data["timestamp"], data_path, "timestamp", 0),
    )
    item_path = source_dir / _MOVIELENS_ITEM[0]
    item_frame = _read_fixed(item_path, _MOVIELENS_ITEM[1], sep="|", encoding="latin-1")
    items = _Items(
        id=_unique_ids(item_frame["item"], item_path, "item", 0),
        title=item_frame["title"].str.strip().replace("", None),
        words=_genre_words(item_frame, item_path),
        release=pd.to_datetime(
            item_frame["release"].str.strip(), format="%d-%b-%Y", errors="coerce", utc=True
        ),
    )
    user_path = source_dir / _MOVIELENS_USER[0]
    user_frame = _read_fixed(user_path, _MOVIELENS_USER[1], sep="|", encoding="latin-1")
    users = _unique_ids(user_frame["user"], user_path, "user", 0)
    inputs = {"interactions": "u.data", "items": "u.item", "users": "u.user"}
    return _write_dataset(
        out_dir, SOURCE_MOVIELENS, inputs, interactions, items, users, min_weight=min_rating
    )


# --- Reading and validation -------------------------------------------------------------------


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """A CSV with a header, every cell read as a string (ids such as "007" stay intact)."""
    if not path.is_file():
        raise ValueError(f"{what} file {path} not found")
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read as CSV: {error}") from error
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame


def _read_fixed(path: Path, names: tuple[str, ...], *, sep: str, encoding: str) -> pd.DataFrame:
    """A header-less MovieLens file whose every line must hold exactly `len(names)` fields."""
    if not path.is_file():
        raise ValueError(f"MovieLens 100k file {path} not found")
    try:
        # QUOTE_NONE: u.item titles hold bare double quotes that are text, not CSV quoting.
        frame = pd.read_csv(
            path, sep=sep, header=None, dtype=str, encoding=encoding, quoting=csv.QUOTE_NONE
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read: {error}") from error
    if frame.shape[1] != len(names):
        raise ValueError(
            f"{path}: expected {len(names)} {sep!r}-separated fields per line "
            f"({', '.join(names)}), found {frame.shape[1]}"
        )
    frame.columns = list(names)
    return frame


def _require_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [name for name in dict.fromkeys(columns) if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}; "
            f"found {', '.join(repr(c) for c in frame.columns)}"
        )


def _line(values: pd.Series, bad: pd.Series, header_lines: int) -> str:
    """'line N (value V)' of the first bad row, 1-based as an editor shows it."""
    row = int(np.flatnonzero(bad.to_numpy())[0])
    return f"line {row + 1 + header_lines} (value {values.iloc[row]!r})"


def _ids(values: pd.Series, path: Path, column: str, header_lines: int) -> pd.Series:
    """Stripped string ids; an empty cell is an error."""
    ids = values.str.strip()
    empty = ids.isna() | (ids == "")
    if empty.any():
        raise ValueError(
            f"{path}: column {column!r} is empty at {_line(values, empty, header_lines)}"
        )
    return ids.astype(object)


def _unique_ids(values: pd.Series, path: Path, column: str, header_lines: int) -> pd.Series:
    ids = _ids(values, path, column, header_lines)
    repeated = ids.duplicated()
    if repeated.any():
        raise ValueError(
            f"{path}: column {column!r} repeats an id at {_line(ids, repeated, header_lines)}"
        )
    return ids


def _numbers(values: pd.Series, path: Path, column: str, header_lines: int) -> pd.Series:
    numbers = pd.to_numeric(values.str.strip(), errors="coerce").astype(float)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise ValueError(
            f"{path}: column {column!r} is not a finite number at "
            f"{_line(values, bad, header_lines)}"
        )
    return numbers


def _timestamps(values: pd.Series, path: Path, column: str, header_lines: int) -> pd.Series:
    """UTC timestamps (ms) from epoch seconds, or from ISO 8601 when any value is not numeric."""
    text = values.str.strip()
    seconds = pd.to_numeric(text, errors="coerce")
    if seconds.notna().all():
        # Epoch milliseconds read as seconds would land past the year 50000: say so.
        bad = ~seconds.between(0, _MAX_EPOCH_SECONDS)
        reason = "epoch seconds out of range (1970-2200)"
        times = pd.to_datetime(seconds.where(~bad), unit="s", utc=True)
    else:
        times = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        bad = times.isna()
        reason = "neither epoch seconds nor an ISO 8601 timestamp"
    if bad.any():
        raise ValueError(
            f"{path}: column {column!r}: {reason} at {_line(values, bad, header_lines)}"
        )
    return times.dt.floor("ms").dt.as_unit("ms")


def _genre_words(items: pd.DataFrame, path: Path) -> pd.Series:
    """u.item's genre flags as one word per set genre, in file order, e.g. "Comedy SciFi"."""
    words = pd.Series("", index=items.index, dtype=object)
    for genre in MOVIELENS_GENRES[1:]:
        flag = items[genre].str.strip()
        bad = ~flag.isin(["0", "1"])
        if bad.any():
            raise ValueError(
                f"{path}: genre flag {genre!r} is not 0 or 1 at {_line(items[genre], bad, 0)}"
            )
        # Letters only, so that each genre is one token of the offer TF-IDF.
        words = words + np.where(flag == "1", _letters(genre) + " ", "")
    return words.str.strip()


def _letters(text: str) -> str:
    return "".join(char for char in text if char.isalpha())


def _generic_items(path: Path, item_col: str) -> _Items:
    frame = _read_csv(path, "items")
    id_col = _id_column(frame, item_col, path)
    words = pd.Series("", index=frame.index, dtype=object)
    for name in frame.columns:
        if name not in (id_col, "title"):
            # Multi-valued cells ("Action|Comedy") become separate words.
            words = words + " " + frame[name].fillna("").str.replace("|", " ", regex=False)
    title = frame["title"].str.strip() if "title" in frame.columns else None
    return _Items(
        id=_unique_ids(frame[id_col], path, id_col, _HEADER_LINES),
        title=pd.Series(title, index=frame.index, dtype=object).replace("", None),
        words=words.str.split().str.join(" "),
        release=pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ms, UTC]"),
    )


def _generic_users(path: Path, user_col: str) -> pd.Series:
    frame = _read_csv(path, "users")
    id_col = _id_column(frame, user_col, path)
    return _unique_ids(frame[id_col], path, id_col, _HEADER_LINES)


def _id_column(frame: pd.DataFrame, preferred: str, path: Path) -> str:
    for name in (preferred, "id"):
        if name in frame.columns:
            return name
    raise ValueError(
        f"{path}: missing id column {preferred!r} (or 'id'); "
        f"found {', '.join(repr(c) for c in frame.columns)}"
    )


# --- Canonical tables --------------------------------------------------------------------------


def _write_dataset(
    out_dir: Path,
    source: str,
    inputs: dict[str, str],
    interactions: _Interactions,
    items: _Items | None,
    users: pd.Series | None,
    *,
    min_weight: float | None,
) -> dict[str, int]:
    if len(interactions.user) == 0:
        raise ValueError(f"{inputs['interactions']}: no interactions to convert")
    events = _events(interactions, source, min_weight)
    offers = _offers(interactions, items)
    profiles = _profiles(interactions.user, users)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(offers, "offers", out_dir / config.OFFERS_FILE)
    write_table(events, "events", out_dir / config.EVENTS_FILE)
    write_table(profiles, "profiles", out_dir / config.PROFILES_FILE)
    applies = int((events["type"] == "apply").sum())
    counts = {
        "offers": len(offers),
        "events": len(events),
        "applies": applies,
        "clicks": len(events) - applies,
        "profiles": len(profiles),
    }
    manifest = {"source": source, "inputs": inputs, "min_weight": min_weight, "counts": counts}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("converted %s into %s: %s", source, out_dir, counts)
    return counts


def _events(interactions: _Interactions, source: str, min_weight: float | None) -> pd.DataFrame:
    count = len(interactions.user)
    if min_weight is None:
        is_apply = np.ones(count, dtype=bool)
    else:
        is_apply = (interactions.weight >= min_weight).to_numpy()
    codes, uniques = pd.factorize(interactions.user)
    hashes = np.array([_user_hash(user) for user in uniques], dtype=object)
    nulls = pd.Series(None, index=range(count), dtype=object)
    return pd.DataFrame(
        {
            "id": f"{source}:" + pd.Series(np.arange(count)).astype(str),
            "type": np.where(is_apply, "apply", "click"),
            "createdAt": interactions.time.array,  # to_numpy() would box tz-aware Timestamps
            "missionId": interactions.item.to_numpy(),
            "toPublisherId": PUBLISHER,
            "fromPublisherId": PUBLISHER,
            "source": "api",
            "sourceId": nulls,
            "user": hashes[codes],
            "userId": interactions.user.to_numpy(),
            "clickId": nulls,
            "requestId": nulls,
            "clientEventId": nulls,
            "isBot": False,
            "status": np.where(is_apply, VALIDATED, None),
            "position": nulls,
            "candidateAge": nulls,
            "candidatePostalCode": nulls,
        }
    )


def _user_hash(user: str) -> str:
    """Opaque, stable 16-hex-digit hash (BLAKE2b) of a user id.

    A loop over distinct users only (not events); hashlib, unlike pandas' object hashing,
    is stable across library versions, so a re-conversion gives the same hashes.
    """
    return hashlib.blake2b(user.encode("utf-8"), digest_size=8).hexdigest()


def _offers(interactions: _Interactions, items: _Items | None) -> pd.DataFrame:
    """Offers of the item table, then of the interactions' items missing from it."""
    known = pd.Index([] if items is None else items.id, dtype=object)
    unknown = pd.Index(pd.unique(interactions.item)).difference(known, sort=False)
    if len(unknown) and items is not None:
        logger.warning("%d item(s) of the interactions are not in the item table", len(unknown))
    table = pd.DataFrame({"id": unknown.to_numpy(dtype=object)})
    if items is not None:
        listed = pd.DataFrame(
            {"id": items.id, "title": items.title, "words": items.words, "release": items.release}
        )
        table = pd.concat([listed, table], ignore_index=True)
    table = table.reindex(columns=["id", "title", "words", "release"])
    title = table["title"].where(table["title"].notna(), "item " + table["id"].astype(str))
    floor = interactions.time.min() - pd.Timedelta(days=1)
    release = pd.to_datetime(table["release"], utc=True)
    posted = release.where(release < floor, floor).dt.as_unit("ms")
    count = len(table)
    nulls = pd.Series(None, index=range(count), dtype=object)
    empty_lists = pd.Series([[]] * count, dtype=object)  # never mutated: one shared list
    return pd.DataFrame(
        {
            "id": table["id"],
            "clientId": table["id"],
            "publisherId": PUBLISHER,
            "publisherName": PUBLISHER,
            "organizationName": nulls,
            "title": title,
            "description": table["words"].fillna(""),
            "schedule": nulls,
            "domain": DOMAIN,
            "activities": empty_lists,
            "type": taxonomy.BENEVOLAT,
            "snu": False,
            "snuPlaces": nulls,
            "places": nulls,
            "remote": "full",
            "openToMinors": True,
            "reducedMobilityAccessible": nulls,
            "closeToTransport": nulls,
            "startAt": posted,
            "endAt": nulls,
            "postedAt": posted,
            "createdAt": posted,
            "updatedAt": posted,
            "deletedAt": nulls,
            "compensationAmount": np.nan,
            "compensationAmountMax": np.nan,
            "compensationUnit": nulls,
            "compensationType": nulls,
            "statusCode": "ACCEPTED",
            "city": nulls,
            "postalCode": nulls,
            "departmentCode": nulls,
            "departmentName": nulls,
            "region": nulls,
            "lat": np.nan,
            "lon": np.nan,
            "tags": empty_lists,
        }
    )


def _profiles(interaction_users: pd.Series, users: pd.Series | None) -> pd.DataFrame:
    listed = users.to_numpy(dtype=object) if users is not None else np.array([], dtype=object)
    ids = pd.unique(np.concatenate([listed, interaction_users.to_numpy(dtype=object)]))
    count = len(ids)
    nulls = pd.Series(None, index=range(count), dtype=object)
    empty_lists = pd.Series([[]] * count, dtype=object)  # never mutated: one shared list
    return pd.DataFrame(
        {
            "userId": ids,
            "age": nulls,
            "lat": np.nan,
            "lon": np.nan,
            "postalCode": nulls,
            "departmentCode": nulls,
            "region": nulls,
            "mobility": nulls,
            "radiusKm": np.nan,
            "disability": False,
            "hasQuiz": False,
            "quizDomains": empty_lists,
            "quizActivities": empty_lists,
            "quizRhythm": nulls,
            "quizMotivations": empty_lists,
        }
    )

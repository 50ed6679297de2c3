"""Loader of the national API's mission exports into the canonical offers table.

Each mission is flattened in Python first (at most ~100k offers: activities merged, first
address flattened, every address kept in `addresses`, HTML stripped), then every field is
validated column-wise. Offers and addresses without coordinates but with a postal code or a
city are placed by `recsys.places` and flagged (`locationSource`). Precedence of the reject
reasons: missing_id, missing_title (blank once HTML is stripped), unknown_domain,
unknown_type, bad_date, bad_location, invalid_field:<name>, then duplicate_id among the rows
that passed every other check.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from recsys import geo, places, taxonomy
from recsys.loaders.readers import read_records
from recsys.loaders.result import (
    BAD_DATE,
    BAD_LOCATION,
    DUPLICATE_ID,
    MISSING_ID,
    MISSING_TITLE,
    UNKNOWN_DOMAIN,
    UNKNOWN_TYPE,
    LoadResult,
    Verdicts,
    invalid_field,
)
from recsys.loaders.values import (
    as_bool,
    as_int,
    as_number,
    as_postal_code,
    as_text,
    as_timestamp,
    html_to_text,
    in_vocabulary,
    is_missing,
)
from recsys.schema import OFFER_SCHEMA

logger = logging.getLogger(__name__)

_INT32_MAX: Final = 2**31 - 1
_TEXT_FIELDS: Final = ("clientId", "publisherId", "publisherName", "organizationName", "schedule")
_HTML_FIELDS: Final = ("title", "description")
_PLACE_FIELDS: Final = ("city", "postalCode", "departmentCode", "departmentName", "region")
_ADDRESS_TEXT: Final = ("city", "postalCode", "departmentCode")
_PLACEABLE: Final = ("insee", "commune", "postal_code")  # what may place an offer
_FLAG_FIELDS: Final = ("openToMinors", "reducedMobilityAccessible", "closeToTransport")
_DATE_FIELDS: Final = ("startAt", "endAt", "postedAt", "createdAt", "updatedAt", "deletedAt")
_COPIED: Final = (
    *_TEXT_FIELDS,
    *_HTML_FIELDS,
    *_FLAG_FIELDS,
    *_DATE_FIELDS,
    "domain",
    "type",
    "snu",
    "snuPlaces",
    "places",
    "remote",
    "compensationAmount",
    "compensationAmountMax",
    "compensationUnit",
    "compensationType",
    "statusCode",
    "tags",
)
_FLAT_COLUMNS: Final = (
    "id",
    *_COPIED,
    *_PLACE_FIELDS,
    "activities",
    "addresses",
    "location",
    "lat",
    "lon",
)
_BAD_SHAPE: Final = object()  # marker of a field whose JSON shape is wrong (a dict for a list...)


def load_offers(path: str | Path) -> LoadResult:
    """Load a mission export (JSON array, `{"data": [...]}` or JSON Lines) into offers.

    Raises:
        LoadError: when the file is missing, empty or not JSON.
    """
    path = Path(path)
    raw = read_records(path)
    warnings = raw.warnings
    flat = pd.DataFrame(
        [_flatten(record) for record in raw.records], columns=_FLAT_COLUMNS, dtype=object
    )
    rows = np.asarray(raw.rows, dtype=np.int64)
    verdicts = Verdicts(len(flat))
    columns = _validate(flat, verdicts)
    _reject_duplicates(columns["id"], columns["updatedAt"], rows, verdicts)
    verdicts.reject_into(
        raw.rejects,
        rows,
        columns["id"],
        [raw.records[i] for i in np.flatnonzero(~verdicts.ok)],
    )
    columns["addresses"] = flat["addresses"]
    columns["locationSource"] = pd.Series([None] * len(flat), dtype=object)
    table = pd.DataFrame({name: columns[name] for name in OFFER_SCHEMA.names})
    table = table.loc[verdicts.ok].reset_index(drop=True)
    table["activities"] = _known_activities(table["activities"], warnings)
    _count_repairs(columns, verdicts.ok, warnings)
    _fill_places(table)
    _place(table, warnings)
    logger.info(
        "offers loaded", extra={"source": str(path), "loaded": len(table), "warnings": warnings}
    )
    return LoadResult(
        kind="offers",
        source=path,
        table=table,
        rejects=raw.rejects.frame(),
        warnings=warnings,
    )


def _flatten(record: dict[str, object]) -> dict[str, object]:
    """One mission as flat raw values: activities merged, first address flattened, HTML gone."""
    flat: dict[str, object] = {name: record.get(name) for name in _COPIED}
    flat["id"] = record.get("id") if not is_missing(record.get("id")) else record.get("_id")
    for name in _HTML_FIELDS:
        if isinstance(flat[name], str):
            flat[name] = html_to_text(flat[name])
    flat["activities"] = _raw_activities(record)
    addresses = record.get("addresses")
    first: dict[str, object] = {}
    flat["addresses"] = None
    if isinstance(addresses, list) and addresses:
        if all(isinstance(address, dict) for address in addresses):
            first = addresses[0]
            flat["addresses"] = [_address(address) for address in addresses]
        else:
            flat["addresses"] = _BAD_SHAPE
    elif not is_missing(addresses) and not isinstance(addresses, list):
        flat["addresses"] = _BAD_SHAPE
    for name in _PLACE_FIELDS:
        value = record.get(name)
        flat[name] = value if not _blank(value) else first.get(name)
    location = record.get("location")
    if _no_coordinates(location):
        location = first.get("location")
    flat["location"] = None
    flat["lat"] = flat["lon"] = None
    if isinstance(location, dict):
        flat["lat"] = location.get("lat")
        flat["lon"] = location.get("lon", location.get("lng"))
    elif not is_missing(location):
        flat["location"] = _BAD_SHAPE
    if isinstance(flat["tags"], str):
        flat["tags"] = [flat["tags"]]
    return flat


def _address(address: dict[str, object]) -> dict[str, object]:
    """One address as the `schema.ADDRESS_LIST` struct: text fields as text, coordinates as
    numbers in range or both null ((0, 0) and anything unreadable count as none)."""
    out: dict[str, object] = {}
    for name in _ADDRESS_TEXT:
        value = address.get(name)
        out[name] = str(value).strip() if not _blank(value) else None
    location = address.get("location")
    lat = lon = None
    if isinstance(location, dict):
        lat = _coordinate(location.get("lat"), 90.0)
        lon = _coordinate(location.get("lon", location.get("lng")), 180.0)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None
    out.update(lat=lat, lon=lon, locationSource=None)
    return out


def _coordinate(value: object, bound: float) -> float | None:
    if isinstance(value, bool) or _blank(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) <= bound else None


def _blank(value: object) -> bool:
    return is_missing(value) or (isinstance(value, str) and not value.strip())


def _no_coordinates(location: object) -> bool:
    if isinstance(location, dict):
        return _blank(location.get("lat")) and _blank(location.get("lon", location.get("lng")))
    return is_missing(location)


def _raw_activities(record: dict[str, object]) -> object:
    """`activity` (one slug) and `activities[]` merged, lower-cased, in order, no repeats."""
    slugs: list[str] = []
    for value in (record.get("activity"), record.get("activities")):
        if is_missing(value):
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            return _BAD_SHAPE
        slugs.extend(item.strip().lower() for item in items if item.strip())
    return list(dict.fromkeys(slugs))


def _is_bad_shape(values: pd.Series) -> np.ndarray:
    return values.map(lambda value: value is _BAD_SHAPE).to_numpy(dtype=bool)


def _validate(flat: pd.DataFrame, verdicts: Verdicts) -> dict[str, pd.Series]:
    """Parse every column and flag the rows that fail, in order of precedence."""
    out: dict[str, pd.Series] = {}
    ids, bad_id = as_text(flat["id"])
    verdicts.flag(ids.isna().to_numpy() & ~bad_id, MISSING_ID, "id is missing")
    verdicts.flag(bad_id, invalid_field("id"), "id is not text", flat["id"])
    out["id"] = ids
    title, bad_title = as_text(flat["title"])
    blank_title = (title.isna() | (title.str.strip() == "")).to_numpy(dtype=bool) & ~bad_title
    verdicts.flag(blank_title, MISSING_TITLE, "title is missing or blank")

    domain, _ = as_text(flat["domain"])
    domain = domain.str.lower()
    verdicts.flag(
        domain.isna().to_numpy() | in_vocabulary(domain, taxonomy.DOMAINS),
        UNKNOWN_DOMAIN,
        "domain is not one of the 20 API domains",
        flat["domain"],
    )
    out["domain"] = domain
    programme, _ = as_text(flat["type"])
    programme = programme.str.lower()
    verdicts.flag(
        programme.isna().to_numpy() | in_vocabulary(programme, taxonomy.PROGRAMMES),
        UNKNOWN_TYPE,
        f"type is not one of {', '.join(taxonomy.PROGRAMMES)}",
        flat["type"],
    )
    out["type"] = programme

    _validate_dates(flat, verdicts, out)
    _validate_location(flat, verdicts, out)

    for name in (*_TEXT_FIELDS, *_HTML_FIELDS, *_PLACE_FIELDS):
        out[name], bad = as_text(flat[name])
        verdicts.flag(bad, invalid_field(name), f"{name} is not text", flat[name])
    out["postalCode"], _ = as_postal_code(flat["postalCode"])  # a foreign code stays as written
    for name in ("activities", "addresses"):
        verdicts.flag(_is_bad_shape(flat[name]), invalid_field(name), f"{name} has a wrong shape")
    tags = flat["tags"].map(lambda value: [] if is_missing(value) else value)
    bad_tags = tags.map(
        lambda value: not isinstance(value, list) or not all(isinstance(t, str) for t in value)
    ).to_numpy(dtype=bool)
    verdicts.flag(bad_tags, invalid_field("tags"), "tags is not a list of strings", flat["tags"])
    out["tags"] = tags.where(~bad_tags, None)
    out["activities"] = flat["activities"].where(~_is_bad_shape(flat["activities"]), None)

    snu, bad = as_bool(flat["snu"])
    verdicts.flag(bad, invalid_field("snu"), "snu is not yes/no", flat["snu"])
    out["snu"] = snu.fillna(False)
    for name in _FLAG_FIELDS:
        out[name], bad = as_bool(flat[name])
        verdicts.flag(bad, invalid_field(name), f"{name} is not yes/no", flat[name])
    for name in ("snuPlaces", "places"):
        number, bad = as_int(flat[name], 0, _INT32_MAX)
        verdicts.flag(bad, invalid_field(name), f"{name} is not a count", flat[name])
        out[name] = number.astype("Int32")
    remote, bad = as_text(flat["remote"])
    remote = remote.str.lower()
    bad = bad | in_vocabulary(remote, taxonomy.REMOTE_VALUES)
    verdicts.flag(bad, invalid_field("remote"), "remote is not no/possible/full/local", remote)
    out["remote"] = remote.fillna("no")  # the API's default
    for name in ("compensationAmount", "compensationAmountMax"):
        number, bad = as_number(flat[name])
        bad = bad | (number < 0).to_numpy(dtype=bool)
        verdicts.flag(bad, invalid_field(name), f"{name} is not an amount", flat[name])
        out[name] = number
    for name, vocabulary in (
        ("compensationUnit", taxonomy.COMPENSATION_UNITS),
        ("compensationType", taxonomy.COMPENSATION_TYPES),
    ):
        text, bad = as_text(flat[name])
        text = text.str.lower()
        bad = bad | in_vocabulary(text, vocabulary)
        verdicts.flag(bad, invalid_field(name), f"{name} is not one of {vocabulary}", flat[name])
        out[name] = text
    status, bad = as_text(flat["statusCode"])
    status = status.str.upper()
    bad = bad | status.isna().to_numpy() | in_vocabulary(status, taxonomy.STATUS_CODES)
    verdicts.flag(bad, invalid_field("statusCode"), "statusCode is not ACCEPTED/REFUSED", status)
    out["statusCode"] = status
    return out


def _validate_dates(flat: pd.DataFrame, verdicts: Verdicts, out: dict[str, pd.Series]) -> None:
    """Parse the six timestamps; fill the creation dates from each other (see the docs)."""
    for name in _DATE_FIELDS:
        out[name], bad = as_timestamp(flat[name])
        verdicts.flag(bad, BAD_DATE, f"{name} is not an ISO 8601 timestamp", flat[name])
    posted, created = out["postedAt"], out["createdAt"]
    out["_filled_postedAt"] = posted.isna() & created.notna()
    out["_filled_createdAt"] = created.isna() & posted.notna()
    out["postedAt"] = posted.fillna(created)
    out["createdAt"] = created.fillna(posted)
    out["_filled_updatedAt"] = out["updatedAt"].isna() & out["createdAt"].notna()
    out["updatedAt"] = out["updatedAt"].fillna(out["createdAt"])
    out["_filled_startAt"] = out["startAt"].isna() & out["postedAt"].notna()
    out["startAt"] = out["startAt"].fillna(out["postedAt"])
    verdicts.flag(
        out["createdAt"].isna().to_numpy(), BAD_DATE, "createdAt and postedAt are both missing"
    )
    before = (out["endAt"] < out["startAt"]).fillna(False).to_numpy(dtype=bool)
    verdicts.flag(before, BAD_DATE, "endAt is before startAt", flat["endAt"])


def _validate_location(flat: pd.DataFrame, verdicts: Verdicts, out: dict[str, pd.Series]) -> None:
    """Coordinates: numbers in range, both or neither; (0, 0) is a placeholder, not a place."""
    message = "location is not an object {lat, lon}"
    verdicts.flag(_is_bad_shape(flat["location"]), BAD_LOCATION, message)
    lat, bad_lat = as_number(flat["lat"])
    lon, bad_lon = as_number(flat["lon"])
    verdicts.flag(bad_lat, BAD_LOCATION, "lat is not a number", flat["lat"])
    verdicts.flag(bad_lon, BAD_LOCATION, "lon is not a number", flat["lon"])
    verdicts.flag(
        (lat.isna() != lon.isna()).to_numpy(), BAD_LOCATION, "lat and lon must be given together"
    )
    pairs = pd.Series([f"({a}, {o})" for a, o in zip(lat, lon, strict=True)], dtype=object)
    out_of_range = ((lat.abs() > 90) | (lon.abs() > 180)).fillna(False).to_numpy(dtype=bool)
    verdicts.flag(out_of_range, BAD_LOCATION, "(lat, lon) out of range", pairs)
    null_island = ((lat == 0) & (lon == 0)).fillna(False).to_numpy(dtype=bool)
    out["_null_island"] = pd.Series(null_island)
    out["lat"], out["lon"] = lat.mask(null_island), lon.mask(null_island)


def _reject_duplicates(
    ids: pd.Series, updated: pd.Series, rows: np.ndarray, verdicts: Verdicts
) -> None:
    """Among valid offers sharing an id keep the most recently updated (the later row on a
    tie) and reject the others, naming the row kept."""
    candidates = pd.DataFrame({"id": ids, "updatedAt": updated, "row": rows}).loc[verdicts.ok]
    ordered = candidates.sort_values(["updatedAt", "row"], kind="stable")
    keeper_row = ordered.drop_duplicates("id", keep="last").set_index("id")["row"]
    superseded = ordered.index[ordered.duplicated("id", keep="last")]
    mask = np.zeros(len(ids), dtype=bool)
    mask[superseded] = True
    kept_at = ids.map(keeper_row).astype("Int64").to_numpy(dtype=object)
    verdicts.flag(mask, DUPLICATE_ID, "superseded by the more recently updated row", kept_at)


def _known_activities(lists: pd.Series, warnings: Counter[str]) -> pd.Series:
    """Drop the slugs outside the API's activity list; each dropped slug counts a warning."""
    known = frozenset(taxonomy.ACTIVITIES)
    unknown: Counter[str] = Counter()
    kept = []
    for slugs in lists:
        kept.append([slug for slug in slugs if slug in known])
        unknown.update(slug for slug in slugs if slug not in known)
    if unknown:
        warnings["unknown_activity"] += sum(unknown.values())
        logger.info("unknown activity slugs dropped: %s", dict(unknown.most_common(20)))
    return pd.Series(kept, index=lists.index, dtype=object)


def _count_repairs(columns: dict[str, pd.Series], ok: np.ndarray, warnings: Counter[str]) -> None:
    """Count the values filled or cleared in the accepted offers."""
    for name in ("startAt", "postedAt", "createdAt", "updatedAt"):
        filled = int(np.count_nonzero(columns[f"_filled_{name}"].to_numpy(dtype=bool) & ok))
        if filled:
            warnings[f"filled_{name}"] += filled
    cleared = int(np.count_nonzero(columns["_null_island"].to_numpy(dtype=bool) & ok))
    if cleared:
        warnings["zero_coordinates"] += cleared
    missing = int(np.count_nonzero(columns["lat"].isna().to_numpy() & ok))
    if missing:
        warnings["no_coordinates"] += missing


def _place(table: pd.DataFrame, warnings: Counter[str]) -> None:
    """Offers and addresses without coordinates placed by their postal code or city
    (`recsys.places`; a department alone places nothing), flagged in `locationSource`."""
    missing = table["lat"].isna().to_numpy()
    lat, lon, source = places.locate_many(
        table["postalCode"][missing], table["city"][missing], table["departmentCode"][missing]
    )
    usable = np.isin(source, _PLACEABLE)
    rows = np.flatnonzero(missing)[usable]
    table.loc[rows, "lat"] = lat[usable]
    table.loc[rows, "lon"] = lon[usable]
    table.loc[rows, "locationSource"] = source[usable]
    if len(rows):
        warnings["placed_by_postal_code_or_city"] += len(rows)
    for addresses in table["addresses"]:
        for address in addresses if isinstance(addresses, list) else ():
            if address["lat"] is not None:
                continue
            found = places.locate(
                postal_code=address["postalCode"],
                commune=address["city"],
                department_code=address["departmentCode"],
            )
            if found is not None and found.source in _PLACEABLE:
                address.update(lat=found.lat, lon=found.lon, locationSource=found.source)


def _fill_places(table: pd.DataFrame) -> None:
    """Department from the postal code when missing; its name and region from the table."""
    code = table["departmentCode"].str.upper()
    code = code.mask(code.str.fullmatch(r"\d").fillna(False).astype(bool), "0" + code)
    code = code.fillna(geo.departments_of_postal_codes(table["postalCode"]))
    departments = geo.departments().set_index("code")
    table["departmentCode"] = code.astype("string")
    table["departmentName"] = (
        table["departmentName"].fillna(code.map(departments["name"])).astype("string")
    )
    table["region"] = table["region"].fillna(code.map(departments["region_name"])).astype("string")

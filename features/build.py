"""Build a versioned feature set from a dataset folder's canonical tables.

`build_feature_set` reads offers, events and profiles once, derives the split dates from the
events, then writes two self-contained windows (layout in `recsys.featureset`): `test/`
learns from events before the cutoff and is evaluated on [cutoff, test_end); `validation/`
learns from events before validation_start and is evaluated on [validation_start, cutoff).

Leakage rule, for both windows: nothing at or after the window's cutoff reaches the
interaction matrices, the encoders' vocabularies or the idf. Offers posted before the window's
end are in the set (new offers are scored from their features), but only those posted before
the cutoff fit the offer encoder; only profiles of users active before the cutoff fit the user
encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from features.config import FeatureConfig
from features.interactions import (
    APPLY,
    EventLog,
    applies_between,
    event_log,
    exposures,
    impressions,
    logged_prints,
    pair_matrix,
    read_events,
    recode,
    signal_weights,
    to_ms,
)
from recsys import config as paths
from recsys import taxonomy
from recsys.encoding import OfferEncoder, UserEncoder
from recsys.featureset import (
    ENCODERS_DIR,
    EXPOSURES_FILE,
    FORMAT_VERSION,
    HISTORY_FILE,
    IMPRESSIONS_FILE,
    INTERACTIONS_FILE,
    LOGGED_FILE,
    MANIFEST_FILE,
    OFFERS_FILE,
    TARGETS_FILE,
    TEST_WINDOW,
    USERS_FILE,
    VALIDATION_WINDOW,
    WINDOWS,
    aligned_profiles,
    csr_parts,
    read_manifest,
)
from recsys.provenance import code_version
from recsys.schema import PROFILE_SCHEMA
from recsys.split import SplitDates, random_split, split_dates

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
TABLES = (paths.OFFERS_FILE, paths.EVENTS_FILE)
OPTIONAL_TABLES = (paths.PROFILES_FILE,)  # real exports may come without visitor profiles
FINGERPRINT_METHOD = "sha256 of each table file's bytes; combined over 'name:sha256' lines"
_CHUNK = 8 * 1024 * 1024


def dataset_paths(data_dir: Path | str) -> dict[str, Path]:
    """The canonical table files of a dataset folder, checked; optional ones when present.

    Raises:
        FileNotFoundError: the folder, or one of its required tables, does not exist.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} not found")
    missing = [name for name in TABLES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"data folder {folder} is missing {', '.join(missing)} "
            "(expected the canonical tables written by `recsys simulate` or `recsys ingest`)"
        )
    present = [name for name in OPTIONAL_TABLES if (folder / name).is_file()]
    return {name: folder / name for name in (*TABLES, *present)}


def data_fingerprint(data_dir: Path | str) -> dict[str, Any]:
    """sha256 of the tables' bytes (exact; hashing runs near disk speed, under a second for
    the large preset's few hundred megabytes), with each file's size and digest."""
    files = {}
    for name, path in dataset_paths(data_dir).items():
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        files[name] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    combined = "".join(f"{name}:{files[name]['sha256']}\n" for name in sorted(files))
    return {
        "sha256": hashlib.sha256(combined.encode()).hexdigest(),
        "method": FINGERPRINT_METHOD,
        "files": files,
    }


def _until_iso(until: pd.Timestamp | None) -> str | None:
    return None if until is None else _utc(until).isoformat()


def _utc(stamp: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def is_reusable(
    out_dir: Path | str,
    fingerprint: dict[str, Any],
    config: FeatureConfig,
    until: pd.Timestamp | None = None,
) -> bool:
    """True when both windows exist, complete, built from the same data, config and `until`
    (a set from before `LOGGED_FILE` existed is incomplete: it is rebuilt)."""
    for window in WINDOWS:
        if not (Path(out_dir) / window / LOGGED_FILE).is_file():
            return False
        try:
            manifest = read_manifest(Path(out_dir) / window)
        except (OSError, ValueError):
            return False
        same = (
            manifest.get("data_fingerprint") == fingerprint["sha256"]
            and manifest.get("config") == config.to_dict()
            and manifest.get("until") == _until_iso(until)
        )
        if not same:
            return False
    return True


def build_feature_set(
    data_dir: Path | str,
    out_dir: Path | str,
    config: FeatureConfig | None = None,
    *,
    until: pd.Timestamp | None = None,
    reuse: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the `test/` and `validation/` windows of a feature set into `out_dir`.

    Args:
        data_dir: folder with offers.parquet, events.parquet and profiles.parquet.
        out_dir: destination; replaced atomically (built beside it, then renamed).
        config: feature options (defaults when None).
        until: ignore events at or after it and offers posted at or after it (build as of
            a date); the split dates are then derived from the remaining events.
        reuse: return `out_dir` untouched when it already holds a set built from the same
            data fingerprint, config and `until`.
        progress: called with a short message at each step (the CLI prints them).

    Returns:
        `out_dir`.

    Raises:
        FileNotFoundError: missing folder or table.
        ValueError: malformed tables (missing columns, duplicate ids, data too short to split).
    """
    config = config if config is not None else FeatureConfig()
    report = progress if progress is not None else (lambda message: None)
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir)
    tables = dataset_paths(data_dir)
    fingerprint = data_fingerprint(data_dir)
    if reuse and is_reusable(out_dir, fingerprint, config, until):
        report(f"reusing {out_dir} (same data fingerprint and config)")
        return out_dir

    report(f"reading {tables[paths.EVENTS_FILE]}")
    table = read_events(tables[paths.EVENTS_FILE])
    if until is not None:
        table = table.filter(
            pc.less(table["createdAt"], pa.scalar(_utc(until), table["createdAt"].type))
        )
    log = event_log(table, config)
    del table
    split = split_dates(
        pd.DataFrame({"createdAt": log.created_at}), config.test_days, config.validation_days
    )
    report(
        f"{log.table.num_rows:,} events kept of {log.counts['events_read']:,}; "
        f"cutoff {split.cutoff}, validation from {split.validation_start}, "
        f"test until {split.test_end}"
    )
    offers = _read_offers(tables[paths.OFFERS_FILE], until)
    if paths.PROFILES_FILE in tables:
        profiles = pd.read_parquet(tables[paths.PROFILES_FILE])
    else:  # no profiles: every visitor is known by their events only
        profiles = PROFILE_SCHEMA.empty_table().to_pandas()
    report(f"{len(offers):,} offers, {len(profiles):,} profiles")

    common = {
        "format": FORMAT_VERSION,
        "config": config.to_dict(),
        "split": split.to_dict(),
        "until": _until_iso(until),
        "data_dir": str(data_dir),
        "data_fingerprint": fingerprint["sha256"],
        "data_files": fingerprint,
        "code_version": code_version(),
        "event_counts": log.counts,
    }
    staging = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        holdouts = _random_holdouts(log, config) if config.split == "random" else {}
        for window, start, end in _windows(split, log, config):
            held_out = holdouts.get(window)
            if held_out is None:
                report(f"{window}: learning before {start}, evaluating [{start}, {end})")
            else:
                report(f"{window}: random holdout of {int(held_out[1].sum()):,} applies")
            counts = _write_window(
                staging / window, log, offers, profiles, start, end, config, held_out
            )
            manifest = {
                **common,
                "window": {"name": window, "start": start.isoformat(), "end": end.isoformat()},
                "counts": counts,
                "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
            }
            _write_json(staging / window / MANIFEST_FILE, manifest)
            report(
                f"{window}: {counts['users']:,} users × {counts['offers']:,} offers, "
                f"{counts['interactions_nnz']:,} interactions, {counts['targets']:,} targets"
            )
        _replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(f"feature set written to {out_dir}")
    return out_dir


def _windows(
    split: SplitDates, log: EventLog, config: FeatureConfig
) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    if config.split == "random":
        # No time window: every window spans the whole log, the holdout decides.
        ms = log.signal["ms"].to_numpy()
        first = pd.Timestamp(int(ms.min()), unit="ms", tz="UTC")
        end = pd.Timestamp(int(ms.max()) + 1, unit="ms", tz="UTC")
        return [(TEST_WINDOW, first, end), (VALIDATION_WINDOW, first, end)]
    return [
        (TEST_WINDOW, split.cutoff, split.test_end),
        (VALIDATION_WINDOW, split.validation_start, split.cutoff),
    ]


def _random_holdouts(
    log: EventLog, config: FeatureConfig
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per window, (rows used for training, rows held out as targets) over `log.signal`.

    The test window holds out `test_frac` of the applies; the validation window holds out the
    same fraction of the applies left, and never sees the test ones.
    """
    signal_rows = pd.DataFrame({"row": np.flatnonzero(log.signal["kind"].to_numpy() == APPLY)})
    if len(signal_rows) < 2:
        raise ValueError("split=random: fewer than two applies to split")
    remaining, test = random_split(signal_rows, config.test_frac, config.split_seed)
    _, validation = random_split(remaining, config.test_frac, config.split_seed + 1)
    n = len(log.signal)
    test_mask = np.zeros(n, dtype=bool)
    test_mask[test["row"].to_numpy()] = True
    validation_mask = np.zeros(n, dtype=bool)
    validation_mask[validation["row"].to_numpy()] = True
    return {
        TEST_WINDOW: (~test_mask, test_mask),
        VALIDATION_WINDOW: (~test_mask & ~validation_mask, validation_mask),
    }


def _read_offers(path: Path, until: pd.Timestamp | None) -> pd.DataFrame:
    """Offers with `posted_ms` (postedAt, else createdAt; unknown → always posted)."""
    offers = pd.read_parquet(path)
    for name in ("id", "postedAt", "createdAt"):
        if name not in offers.columns:
            raise ValueError(f"offers table {path} is missing column {name}")
    if offers["id"].isna().any():
        raise ValueError(f"offers.id: {int(offers['id'].isna().sum())} null id(s)")
    duplicated = offers["id"].duplicated()
    if duplicated.any():
        examples = offers.loc[duplicated, "id"].head(3).tolist()
        raise ValueError(f"offers.id: {int(duplicated.sum())} duplicated id(s), e.g. {examples}")
    posted = offers["postedAt"].fillna(offers["createdAt"])
    known = posted.notna().to_numpy()
    epoch = pd.Timestamp(0, tz="UTC")
    stamps = pd.to_datetime(posted.fillna(epoch), utc=True).dt.as_unit("ms").array.asi8
    posted_ms = np.where(known, stamps, np.iinfo(np.int64).min)
    offers = offers.assign(posted_ms=posted_ms)
    if until is not None:
        offers = offers[offers["posted_ms"] < to_ms(_utc(until))]
    return offers.reset_index(drop=True)


def _write_window(
    folder: Path,
    log: EventLog,
    offers: pd.DataFrame,
    profiles: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    config: FeatureConfig,
    held_out: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, int]:
    """Write one window's files; returns its counts for the manifest.

    `held_out` (random split only) gives the signal rows to train on and those to evaluate;
    time then plays no part: decay is measured from the window's end and every offer of the
    catalog fits the encoders.
    """
    start_ms, end_ms = to_ms(start), to_ms(end)
    catalog = offers[offers["posted_ms"] < end_ms].reset_index(drop=True)
    offer_ids = catalog["id"].to_numpy(dtype=object)
    offer_index = pd.Index(offer_ids, dtype=object)
    if held_out is None:
        train = log.signal[log.signal["ms"].to_numpy() < start_ms]
        reference_ms = start_ms
    else:
        train = log.signal[held_out[0]]
        reference_ms = end_ms

    kind = train["kind"].to_numpy()
    offer_rows = recode(train["missionId"], offer_index)
    key_codes = train["user_key"].cat.codes.to_numpy()
    usable = (key_codes >= 0) & (offer_rows >= 0)
    weights = signal_weights(kind, train["status"], train["ms"].to_numpy(), reference_ms, config)
    signal = usable & ((weights > 0) | (kind == APPLY))

    # Users: every profile (cold ones included), then the no-profile keys with train signal
    # in order of first appearance in the log (deterministic; sorting a million strings
    # would cost seconds for nothing).
    profile_ids = profiles["userId"].to_numpy(dtype=object)
    key_names = train["user_key"].cat.categories.to_numpy(dtype=object)
    signal_keys = key_names[np.unique(key_codes[signal])]
    profile_index = pd.Index(profile_ids, dtype=object)
    extra = signal_keys[profile_index.get_indexer(signal_keys) < 0]
    user_ids = np.concatenate([profile_ids, extra])
    user_rows = recode(train["user_key"], pd.Index(user_ids, dtype=object))
    shape = (len(user_ids), len(offer_ids))
    positive = usable & (weights > 0)
    interactions = pair_matrix(user_rows[positive], offer_rows[positive], weights[positive], shape)
    is_apply = usable & (kind == APPLY)
    applies = pair_matrix(
        user_rows[is_apply], offer_rows[is_apply], np.ones(int(is_apply.sum())), shape
    )
    applies.data[:] = 1.0

    # Encoders see the cutoff's past only: offers posted before it, and the profiles of the
    # users who clicked or applied before it (the users a model learns features from).
    learned = np.zeros(len(user_ids), dtype=bool)
    learned[user_rows[signal]] = True
    user_encoder = UserEncoder(config.user_encoder).fit(profiles[learned[: len(profile_ids)]])
    # Users without a profile all encode as the empty profile: encode it once, repeat it.
    empty = user_encoder.transform(aligned_profiles(profiles.iloc[:0], extra[:1]))
    user_features = sp.vstack(
        [user_encoder.transform(profiles), empty[np.zeros(len(extra), dtype=np.int64)]],
        format="csr",
    )
    posted_before = catalog["posted_ms"].to_numpy() < reference_ms
    offer_encoder = OfferEncoder(config.offer_encoder)
    parts = [offer_encoder.fit_transform(catalog[posted_before])]
    if not posted_before.all():  # scikit-learn refuses to transform zero rows
        parts.append(offer_encoder.transform(catalog[~posted_before]))
    stacked = sp.vstack(parts, format="csr")
    order = np.concatenate([np.flatnonzero(posted_before), np.flatnonzero(~posted_before)])
    offer_features = stacked[np.argsort(order)]

    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / USERS_FILE, ids=user_ids.astype(str), **csr_parts(user_features))
    np.savez(folder / OFFERS_FILE, ids=offer_ids.astype(str), **csr_parts(offer_features))
    np.savez(
        folder / INTERACTIONS_FILE,
        **csr_parts(interactions, "interactions_"),
        **csr_parts(applies, "applies_"),
    )
    offer_encoder.save(folder / ENCODERS_DIR)
    user_encoder.save(folder / ENCODERS_DIR)
    evaluated = log.signal if held_out is None else log.signal[held_out[1]]
    window_targets, dropped = applies_between(evaluated, start_ms, end_ms, offer_index)
    window_targets.to_parquet(folder / TARGETS_FILE, index=False)
    past, _ = applies_between(train, np.iinfo(np.int64).min, reference_ms, offer_index)
    past.to_parquet(folder / HISTORY_FILE, index=False)
    printed = impressions(log.table, reference_ms)
    shown = exposures(printed)
    pq.write_table(shown, folder / EXPOSURES_FILE)
    pq.write_table(printed, folder / IMPRESSIONS_FILE)
    logged = logged_prints(log.table, start_ms, end_ms, taxonomy.SERVED_SOURCES)
    pq.write_table(logged, folder / LOGGED_FILE)

    history = np.diff(interactions.indptr) > 0
    return {
        "users": len(user_ids),
        "users_with_profile": len(profile_ids),
        "users_without_profile": len(extra),
        "cold_profile_users": int((~history[: len(profile_ids)]).sum()),
        "profiles_fitting_user_encoder": int(learned[: len(profile_ids)].sum()),
        "offers": len(offer_ids),
        "new_offers": int((~posted_before).sum()),
        "offers_fitting_offer_encoder": int(posted_before.sum()),
        "offer_features": offer_features.shape[1],
        "text_terms": len(offer_encoder.text_terms),
        "user_features": user_features.shape[1],
        "train_signal_events": len(train),
        "train_events_unknown_offer": int(((key_codes >= 0) & (offer_rows < 0)).sum()),
        "interaction_events": int(positive.sum()),
        "interactions_nnz": int(interactions.nnz),
        "applies_nnz": int(applies.nnz),
        "targets": len(window_targets),
        "target_users": int(window_targets["user_key"].nunique()),
        "targets_dropped_unknown_offer": dropped,
        "history_applies": len(past),
        "exposures": shown.num_rows,
        "logged_prints": logged.num_rows,
        "impressions": printed.num_rows,
    }


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True), "utf-8")


def _replace(staging: Path, out_dir: Path) -> None:
    """Swap the finished build in; a reader never sees a half-written set."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    previous = out_dir.parent / f".{out_dir.name}.previous-{os.getpid()}"
    if out_dir.exists():
        out_dir.rename(previous)
    staging.rename(out_dir)
    shutil.rmtree(previous, ignore_errors=True)

"""Reader of the versioned feature sets that `features/` writes; what training and evaluation load.

A feature set is a folder with one self-contained subfolder per evaluated window:
`test/` (learn before `cutoff`, evaluate on [cutoff, test_end)) and `validation/` (learn
before `validation_start`, evaluate on [validation_start, cutoff)), so tuning never sees the
test window. Each subfolder holds:

    manifest.json       config, split dates, window, data fingerprint, counts, code version
    users.npz           ids (unicode) and user features as CSR parts
    offers.npz          ids (unicode) and offer features as CSR parts
    interactions.npz    train interaction weights and train applies, (users × offers) CSR parts
    encoders/           the fitted OfferEncoder and UserEncoder (JSON + npz, no pickle)
    targets.parquet     the window's non-bot applies: user_key, offer_id, createdAt, status,
                        candidateAge
    history.parquet     the same columns for the applies learned from (before the cutoff):
                        what the evaluation's redirect segment reads (refusals, ages then)
    exposures.parquet   train prints without a click: user_key, offer_id, position,
                        requestId, createdAt
    logged.parquet      the window's prints on the platform's surfaces with their outcome:
                        user_key, offer_id, requestId, position, source, clicked, applied,
                        createdAt (what counterfactual estimates replay)
    impressions.parquet every train print: the columns of exposures, plus clicked and applied

The canonical tables are not copied: the manifest records `data_dir`, and the reader takes
offers and profiles from there, aligned with the stored ids. Nothing is re-encoded on load.
The layout constants live here, in the core, so the writer (`features/`) and every reader
agree on them while training never imports the feature stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys import config, schema
from recsys.arrays import OfferArrays, ProfileArrays, offer_arrays, profile_arrays
from recsys.dataset import Impressions, OfferBatch, TrainingData, UserBatch
from recsys.encoding import OfferEncoder, UserEncoder
from recsys.schema import PROFILE_SCHEMA
from recsys.split import SplitDates

FORMAT_VERSION = 2  # 2: history.parquet, candidateAge in the applies
TEST_WINDOW = "test"
VALIDATION_WINDOW = "validation"
WINDOWS = (TEST_WINDOW, VALIDATION_WINDOW)

MANIFEST_FILE = "manifest.json"
USERS_FILE = "users.npz"
OFFERS_FILE = "offers.npz"
INTERACTIONS_FILE = "interactions.npz"
ENCODERS_DIR = "encoders"
TARGETS_FILE = "targets.parquet"
HISTORY_FILE = "history.parquet"
EXPOSURES_FILE = "exposures.parquet"
LOGGED_FILE = "logged.parquet"
IMPRESSIONS_FILE = "impressions.parquet"

# Filler of a no-profile user's row (an anonymous hash or an id without a profile).
_EMPTY_LIST = np.array([], dtype=object)
_FALSE_COLUMNS = ("disability", "hasQuiz")


def csr_parts(matrix: sp.csr_matrix, prefix: str = "") -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays (`data`, `indices`, `indptr`, `shape`) for `np.savez`."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}data": matrix.data,
        f"{prefix}indices": matrix.indices,
        f"{prefix}indptr": matrix.indptr,
        f"{prefix}shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_parts(stored: Any, prefix: str = "") -> sp.csr_matrix:
    """Inverse of `csr_parts`, from an opened .npz (or any mapping of arrays)."""
    shape = tuple(int(n) for n in stored[f"{prefix}shape"])
    return sp.csr_matrix(
        (stored[f"{prefix}data"], stored[f"{prefix}indices"], stored[f"{prefix}indptr"]),
        shape=shape,
    )


def aligned_profiles(profiles: pd.DataFrame, user_ids: np.ndarray) -> pd.DataFrame:
    """Canonical profile rows in the order of `user_ids`, one row per id.

    Ids without a profile (anonymous `anon:` keys, stable ids never described) get an empty
    profile: nulls, False for `disability` and `hasQuiz`, [] for the quiz lists; `userId` is
    always the user key, so the arrays built from the frame carry the same ids.
    """
    if profiles["userId"].isna().any():
        raise ValueError("profiles.userId: null id(s); every profile needs a userId")
    duplicated = profiles["userId"].duplicated()
    if duplicated.any():
        examples = profiles.loc[duplicated, "userId"].head(3).tolist()
        raise ValueError(
            f"profiles.userId: {int(duplicated.sum())} duplicated id(s), e.g. {examples}"
        )
    keys = pd.Index(np.asarray(user_ids, dtype=object).astype(str), name="userId")
    by_id = profiles.set_index(profiles["userId"].astype(str).rename("userId"))
    aligned = by_id.drop(columns="userId").reindex(keys).reset_index()[list(profiles.columns)]
    for column in schema.PROFILE_LIST_COLUMNS:
        values = aligned[column].to_numpy(dtype=object).copy()
        missing = pd.isna(values)
        filler = np.empty(int(missing.sum()), dtype=object)
        filler.fill(_EMPTY_LIST)
        values[missing] = filler
        aligned[column] = values
    for column in _FALSE_COLUMNS:
        aligned[column] = aligned[column].astype("boolean").fillna(False).astype(bool)
    return aligned


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"feature set: {path} not found")
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


@dataclass(eq=False)
class FeatureSet:
    """One evaluated window of a feature set, loaded; see the module docstring for the files.

    `window_start` is this window's cutoff (training sees strictly earlier events only) and
    `window_end` the end of its evaluation window. `offers` (and `offer_ids`) include every offer
    posted before `window_end`, new offers too (`is_new_offer`): a model must score offers with
    empty interaction columns from their features, or return NaN for them.
    """

    path: Path
    manifest: dict[str, Any]
    split: SplitDates
    window: str
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    user_ids: np.ndarray  # object (str), user keys: userId, or "anon:" + hash
    offer_ids: np.ndarray  # object (str)
    user_features: sp.csr_matrix
    offer_features: sp.csr_matrix
    interactions: sp.csr_matrix
    applies: sp.csr_matrix
    offers: pd.DataFrame
    profiles: pd.DataFrame
    targets: pd.DataFrame
    offer_encoder: OfferEncoder
    user_encoder: UserEncoder

    @property
    def cutoff(self) -> pd.Timestamp:
        """Events strictly before this instant are the training data of this window."""
        return self.window_start

    @cached_property
    def offer_arrays(self) -> OfferArrays:
        return offer_arrays(self.offers)

    @cached_property
    def profile_arrays(self) -> ProfileArrays:
        return profile_arrays(self.profiles)

    @cached_property
    def is_new_offer(self) -> np.ndarray:
        """True for offers posted at or after the cutoff (no interaction can exist for them)."""
        return self.offer_arrays.posted_at >= int(self.window_start.timestamp())

    @cached_property
    def _user_row(self) -> pd.Index:
        return pd.Index(self.user_ids, dtype=object)

    @cached_property
    def _offer_row(self) -> pd.Index:
        return pd.Index(self.offer_ids, dtype=object)

    def exposures(self) -> pd.DataFrame:
        """Train-window prints without a click (read on demand: it can be large)."""
        return pd.read_parquet(self.path / EXPOSURES_FILE)

    def history(self) -> pd.DataFrame:
        """The applies learned from, with their status and the candidate's age then (read on
        demand, like the exposures)."""
        return pd.read_parquet(self.path / HISTORY_FILE)

    def logged(self) -> pd.DataFrame | None:
        """The window's logged prints with their outcome (`LOGGED_FILE`); None for a set
        built before the file existed (rebuild it with `recsys features --force`)."""
        path = self.path / LOGGED_FILE
        return pd.read_parquet(path) if path.is_file() else None

    def impressions(self) -> Impressions:
        """Every train print with its position and outcomes, as rows of the set's users and
        offers (prints of users or offers outside the set are left out). A set written before
        the print log was kept has none: an empty log."""
        path = self.path / IMPRESSIONS_FILE
        columns = ["user_key", "offer_id", "position", "source", "clicked", "applied"]
        if not path.is_file():
            empty = np.zeros(0, dtype=np.int64)
            none = empty.astype(bool)
            return Impressions(empty, empty, empty, none, none, none)
        frame = pd.read_parquet(path, columns=columns)
        user = self._user_row.get_indexer(frame["user_key"].to_numpy(dtype=object))
        offer = self._offer_row.get_indexer(frame["offer_id"].to_numpy(dtype=object))
        position = frame["position"].to_numpy(dtype=float)
        keep = (user >= 0) & (offer >= 0) & np.isfinite(position) & (position >= 1)
        return Impressions(
            user=user[keep].astype(np.int64),
            offer=offer[keep].astype(np.int64),
            position=position[keep].astype(np.int64),
            landing=(frame["source"] == "seo").to_numpy(dtype=bool)[keep],
            clicked=frame["clicked"].to_numpy(dtype=bool)[keep],
            applied=frame["applied"].to_numpy(dtype=bool)[keep],
        )

    def offer_batch(self, offer_ids: np.ndarray | list[str] | None = None) -> OfferBatch:
        """The given offers (all by default) as a batch; an id outside the set is an error."""
        full = OfferBatch(self.offer_ids, self.offer_features, self.offer_arrays)
        if offer_ids is None:
            return full
        wanted = np.asarray(offer_ids, dtype=object)
        rows = self._offer_row.get_indexer(wanted)
        if (rows < 0).any():
            unknown = wanted[rows < 0][:3].tolist()
            raise ValueError(
                f"offer_ids: {int((rows < 0).sum())} not in the feature set: {unknown}"
            )
        return full.take(rows)

    def user_batch(self, user_ids: np.ndarray | list[str]) -> UserBatch:
        """The given users as a batch; ids outside the set get an empty profile's features."""
        wanted = np.asarray(user_ids, dtype=object)
        rows = self._user_row.get_indexer(wanted)
        known = rows >= 0
        if known.all():
            return UserBatch(wanted, self.user_features[rows], self.profile_arrays.take(rows))
        # Known users' stored rows equal the encoder's output, so encoding the whole batch
        # gives the same features as slicing, plus an empty profile's for the unknown ids.
        empty = aligned_profiles(self.profiles.iloc[:0], wanted[~known])
        frame = pd.concat([self.profiles.iloc[rows[known]], empty], ignore_index=True)
        order = np.concatenate([np.flatnonzero(known), np.flatnonzero(~known)])
        frame = frame.iloc[np.argsort(order)].reset_index(drop=True)
        return UserBatch(wanted, self.user_encoder.transform(frame), profile_arrays(frame))

    def training_data(self) -> TrainingData:
        """Everything a model learns from, for this window.

        Offers are all the set's offers, including those posted at or after the cutoff (their
        interaction columns are empty): models must cope with empty columns, and keeping one
        offer axis lets evaluation score the window's full catalog with the same indices.
        """
        return TrainingData(
            users=UserBatch(self.user_ids, self.user_features, self.profile_arrays),
            offers=self.offer_batch(),
            interactions=self.interactions,
            applies=self.applies,
            cutoff=self.window_start,
            impressions=self.impressions,
        )


def window_path(path: Path | str, window: str = TEST_WINDOW) -> Path:
    """The folder of one window: `path` itself if it holds a manifest, else `path/window`."""
    folder = Path(path)
    if (folder / MANIFEST_FILE).is_file():
        return folder
    if window not in WINDOWS:
        raise ValueError(f"window: expected one of {WINDOWS}, got {window!r}")
    return folder / window


def read_manifest(path: Path | str, window: str = TEST_WINDOW) -> dict[str, Any]:
    """The manifest of a window folder (or of `path/window`)."""
    manifest_path = window_path(path, window) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"feature set: no {MANIFEST_FILE} in {manifest_path.parent}")
    manifest = json.loads(manifest_path.read_text("utf-8"))
    if manifest.get("format") != FORMAT_VERSION:
        root = manifest_path.parent.parent  # the set's root, above its window folders
        raise ValueError(
            f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT_VERSION}: "
            f"build it again with: recsys features --data {manifest.get('data_dir')} --out {root}"
        )
    return manifest


def load_feature_set(path: Path | str, window: str = TEST_WINDOW) -> FeatureSet:
    """Load one window of a feature set (a window folder, or the set's root and `window`).

    Raises:
        FileNotFoundError: a file of the set, or the canonical tables it names, is missing.
        ValueError: the files disagree (ids vs matrix shapes), or an unknown format.
    """
    folder = window_path(path, window)
    manifest = read_manifest(folder)
    users = _read_npz(folder / USERS_FILE)
    offers = _read_npz(folder / OFFERS_FILE)
    pairs = _read_npz(folder / INTERACTIONS_FILE)
    user_ids = users["ids"].astype(object)
    offer_ids = offers["ids"].astype(object)
    user_features = csr_from_parts(users)
    offer_features = csr_from_parts(offers)
    interactions = csr_from_parts(pairs, "interactions_")
    applies = csr_from_parts(pairs, "applies_")
    expected = (len(user_ids), len(offer_ids))
    checks = {
        "user features": (user_features.shape[0], len(user_ids)),
        "offer features": (offer_features.shape[0], len(offer_ids)),
        "interactions": (interactions.shape, expected),
        "applies": (applies.shape, expected),
    }
    for name, (found, wanted) in checks.items():
        if found != wanted:
            raise ValueError(f"feature set {folder}: {name} has {found}, expected {wanted}")

    data_dir = Path(manifest["data_dir"])
    profiles_path = data_dir / config.PROFILES_FILE
    # Profiles are optional: a set built without them records no profiles file.
    with_profiles = config.PROFILES_FILE in manifest.get("data_files", {}).get("files", {})
    for name in (config.OFFERS_FILE, *([config.PROFILES_FILE] if with_profiles else [])):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(
                f"feature set {folder}: canonical table {data_dir / name} not found "
                "(the manifest's data_dir moved or was deleted)"
            )
    all_offers = pd.read_parquet(data_dir / config.OFFERS_FILE)
    row = pd.Index(all_offers["id"].astype(str)).get_indexer(offer_ids)
    if (row < 0).any():
        raise ValueError(
            f"feature set {folder}: {int((row < 0).sum())} offer id(s) missing from "
            f"{data_dir / config.OFFERS_FILE} (the data changed since the build)"
        )
    stored = (
        pd.read_parquet(profiles_path)
        if with_profiles
        else PROFILE_SCHEMA.empty_table().to_pandas()
    )
    profiles = aligned_profiles(stored, user_ids)
    window = manifest["window"]
    return FeatureSet(
        path=folder,
        manifest=manifest,
        split=SplitDates.from_dict(manifest["split"]),
        window=window["name"],
        window_start=pd.Timestamp(window["start"]),
        window_end=pd.Timestamp(window["end"]),
        user_ids=user_ids,
        offer_ids=offer_ids,
        user_features=user_features,
        offer_features=offer_features,
        interactions=interactions,
        applies=applies,
        offers=all_offers.iloc[row].reset_index(drop=True),
        profiles=profiles,
        targets=pd.read_parquet(folder / TARGETS_FILE),
        offer_encoder=OfferEncoder.load(folder / ENCODERS_DIR),
        user_encoder=UserEncoder.load(folder / ENCODERS_DIR),
    )

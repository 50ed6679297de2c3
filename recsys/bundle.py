"""The ranker bundle: everything needed to rank offers for a person, in one folder.

Training writes it (and logs it to MLflow inside the registered model); the service and the
MLflow pyfunc load it. It holds the fitted model, the encoders the model's features came
from, and a snapshot of the catalog the model was evaluated on, with a `bundle.json` naming
the model and the feature-set manifest (data fingerprint, split dates, code version), so a
served model always says what it was made from.

    bundle.json       {"format", "model", "model_config", "data_fingerprint", "manifest"}
    model/            the model's own save() folder (config.json + arrays.npz)
    encoders/         OfferEncoder and UserEncoder files (JSON + npz)
    catalog.parquet   the feature set's offers (canonical columns), for self-contained ranking
    applied.parquet   (userId, offerId): what each known person applied to before the cutoff,
                      never recommended to them again (as offline evaluation excludes it)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys import schema
from recsys.arrays import to_epoch_seconds
from recsys.candidates import candidate_mask
from recsys.dataset import OfferBatch, UserBatch
from recsys.encoding import OfferEncoder, UserEncoder
from recsys.featureset import FeatureSet
from recsys.models import model_class
from recsys.models.base import Recommender
from recsys.policy import ListPolicy, ModelScores, exclude, group_codes, tie_keys
from recsys.ranking import PAD
from recsys.rules import incumbent_scores

FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
MODEL_DIR = "model"
ENCODERS_DIR = "encoders"
CATALOG_FILE = "catalog.parquet"
APPLIED_FILE = "applied.parquet"
APPLIED_COLUMNS = ("userId", "offerId")


def profiles_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """A request's profile rows completed to the canonical profile columns.

    Absent columns are null, absent quiz lists empty and absent flags False, so a request may
    carry only what the front knows (an id, or an age and a place, or quiz answers).
    """
    frame = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    for name in schema.PROFILE_SCHEMA.names:
        if name in rows.columns:
            frame[name] = rows[name].to_numpy(dtype=object)
        else:
            frame[name] = None
    for name in schema.PROFILE_LIST_COLUMNS:
        frame[name] = [
            list(v) if isinstance(v, list | tuple | np.ndarray) else [] for v in frame[name]
        ]
    for name in schema.PROFILE_FLAG_COLUMNS:
        frame[name] = frame[name].astype("boolean").fillna(False).astype(bool)
    for name in ("age", "lat", "lon", "radiusKm"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


@dataclass
class RankerBundle:
    """A loaded bundle: model, encoders, the manifest it was trained from and the catalog."""

    model: Recommender
    offer_encoder: OfferEncoder
    user_encoder: UserEncoder
    manifest: dict[str, Any]
    catalog: pd.DataFrame = field(repr=False)
    applied: pd.DataFrame = field(
        repr=False, default_factory=lambda: pd.DataFrame(columns=list(APPLIED_COLUMNS))
    )

    def applied_by_user(self) -> dict[str, frozenset[str]]:
        """Each known person's offers applied to before the cutoff, by the model's user id."""
        return applied_by_user(self.applied)

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def data_fingerprint(self) -> str | None:
        return self.manifest.get("data_fingerprint")

    @property
    def cutoff(self) -> pd.Timestamp:
        """The instant the model's training data stops (its window's start)."""
        return pd.Timestamp(self.manifest["window"]["start"])

    def applied_mask(self, user_ids: list[object], offer_ids: np.ndarray) -> np.ndarray:
        """(n_people, n_offers) bool: True where the person applied to the offer before the
        cutoff (people without an id, or unknown to the bundle, applied to nothing)."""
        applied = self.applied_by_user()
        columns = pd.Index(np.asarray(offer_ids, dtype=object).astype(str))
        out = np.zeros((len(user_ids), len(columns)), dtype=bool)
        for i, user_id in enumerate(user_ids):
            done = applied.get(str(user_id)) if isinstance(user_id, str) else None
            if done:
                found = columns.get_indexer(list(done))
                out[i, found[found >= 0]] = True
        return out

    def offer_batch(self, offers: pd.DataFrame | None = None) -> OfferBatch:
        """Offers (the catalog snapshot by default) encoded with the bundle's encoder."""
        return OfferBatch.encode(self.catalog if offers is None else offers, self.offer_encoder)

    def user_batch(self, profiles: pd.DataFrame) -> UserBatch:
        """Profiles (any subset of the canonical columns) encoded with the bundle's encoder."""
        return UserBatch.encode(profiles_frame(profiles), self.user_encoder)

    def recommend(
        self,
        profiles: pd.DataFrame,
        k: int,
        at: pd.Timestamp | None = None,
        offers: OfferBatch | None = None,
        policy: ListPolicy = ListPolicy(),  # noqa: B008 (frozen: shared safely)
    ) -> list[list[str]]:
        """The list of k eligible offers each profile is served, best first (fewer if fewer
        are eligible).

        Candidate selection, scoring and the list policy are the core's
        (`recsys.candidates`, `Recommender.score`, `recsys.policy`), as in offline evaluation
        and in the service: a known person's past applications (by `userId`) are excluded.

        Args:
            profiles: one row per person (canonical profile columns, any subset).
            k: list length.
            at: time of the request (eligibility: offers open, ages); default the bundle's
                cutoff, the instant its catalog snapshot describes.
            offers: the catalog to rank; default the bundle's snapshot.
            policy: the list policy (caps, cold-start blend).
        """
        offers = offers if offers is not None else self.offer_batch()
        users = self.user_batch(profiles)
        when = self.cutoff if at is None else pd.Timestamp(at)
        seconds = int(to_epoch_seconds(pd.Series([when]), 0)[0])
        mask = candidate_mask(offers.arrays, users.arrays, seconds)
        if "userId" in profiles.columns:
            applied = self.applied_mask(profiles["userId"].tolist(), offers.ids)
            mask = exclude(mask, [np.flatnonzero(row) for row in applied])
        scores = np.asarray(self.model.score(users, offers), dtype=float)
        served = policy.served_scores(
            ModelScores(scores, mask),
            self.model.knows(users.ids),
            self.model.blends_rules,
            lambda: incumbent_scores(users.arrays, offers.arrays, policy.rules_remote_overrides),
        )
        publisher, programme = group_codes(offers.arrays)
        ranked = policy.lists(served, mask, k, publisher, programme, tie_keys(offers.ids))
        return [[str(offers.ids[i]) for i in row if i != PAD] for row in ranked]


def applied_pairs(feature_set: FeatureSet) -> pd.DataFrame:
    """(userId, offerId) of every application the feature set learned from, by the model's
    user ids (anonymous visitors under `features.interactions.ANON_PREFIX`): what a bundle
    keeps (`APPLIED_FILE`) and the service never lists to that visitor again."""
    users, offers = feature_set.applies.nonzero()
    return pd.DataFrame(
        {
            "userId": np.asarray(feature_set.user_ids, dtype=object)[users].astype(str),
            "offerId": np.asarray(feature_set.offer_ids, dtype=object)[offers].astype(str),
        }
    )


def applied_by_user(pairs: pd.DataFrame) -> dict[str, frozenset[str]]:
    """`applied_pairs` (or a bundle's `applied`) as each user id's offer ids."""
    grouped = pairs.groupby("userId", sort=False)["offerId"]
    return {str(user): frozenset(offers.astype(str)) for user, offers in grouped}


def save_bundle(model: Recommender, feature_set: FeatureSet, path: Path | str) -> Path:
    """Write a trained model with the feature set's encoders, manifest and offers into `path`."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_DIR)
    feature_set.offer_encoder.save(folder / ENCODERS_DIR)
    feature_set.user_encoder.save(folder / ENCODERS_DIR)
    feature_set.offers.to_parquet(folder / CATALOG_FILE, index=False)
    applied_pairs(feature_set).to_parquet(folder / APPLIED_FILE, index=False)
    payload = {
        "format": FORMAT_VERSION,
        "model": model.name,
        "model_config": model.config.to_dict(),
        "data_fingerprint": feature_set.manifest.get("data_fingerprint"),
        "manifest": feature_set.manifest,
    }
    (folder / BUNDLE_FILE).write_text(
        json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False), "utf-8"
    )
    return folder


def load_bundle(path: Path | str) -> RankerBundle:
    """Load a bundle written by `save_bundle`.

    Raises:
        FileNotFoundError: `path` holds no bundle.
        ValueError: unknown format or model name.
    """
    folder = Path(path)
    description = folder / BUNDLE_FILE
    if not description.is_file():
        raise FileNotFoundError(f"ranker bundle: no {BUNDLE_FILE} in {folder}")
    payload = json.loads(description.read_text("utf-8"))
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{description}: format {payload.get('format')!r}, expected 1")
    model = model_class(payload["model"]).load(folder / MODEL_DIR)
    return RankerBundle(
        model=model,
        offer_encoder=OfferEncoder.load(folder / ENCODERS_DIR),
        user_encoder=UserEncoder.load(folder / ENCODERS_DIR),
        manifest=payload["manifest"],
        catalog=pd.read_parquet(folder / CATALOG_FILE),
        **(
            {"applied": pd.read_parquet(folder / APPLIED_FILE)}
            if (folder / APPLIED_FILE).is_file()
            else {}
        ),
    )

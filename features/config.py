"""Typed configuration of the feature stage; round-trips to the dict stored in each manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recsys import taxonomy
from recsys.encoding import OfferEncoderConfig, UserEncoderConfig
from recsys.typed_config import DictConfig, read_yaml


@dataclass
class FeatureConfig(DictConfig):
    """How events become training signal, and how offers and users are encoded.

    Attributes:
        apply_weight, click_weight, print_weight: weight of one event of each type. A print
            weighs 0 by default: a print without a click is an exposure that did not convert
            (kept apart in `exposures.parquet`), not a positive.
        unsuccessful_apply_statuses: apply statuses that did not go through (refused by the
            organisation, or cancelled).
        unsuccessful_apply_weight: their weight. Default 2, not 0: the person still chose the
            offer, which is the preference a recommender learns; the refusal or withdrawal is
            mostly about the organisation's capacity or timing, so the signal is kept, weaker
            than an apply that went through. Every apply, whatever its status, is in the
            separate binary `applies` matrix.
        half_life_days: an event `d` days before the cutoff weighs `0.5 ** (d / half_life)`;
            0 turns decay off.
        dedup_click_id: count a click, or an apply, once per `clickId` (trackers resend them).
        exclude_bots: drop events flagged `isBot` from everything (signal, targets, exposures).
        test_days, validation_days: lengths of the evaluated windows (recsys.split.split_dates).
        split: "temporal" (the protocol of this domain) or "random": a seeded per-interaction
            holdout of `test_frac` of the applies (and, for validation, of the remaining
            ones), only to compare with results published on public data such as MovieLens.
            It lets the future leak into training and is unfit for this domain.
        offer_encoder, user_encoder: encoder options (TF-IDF size and weight, vocabularies).
    """

    apply_weight: float = 5.0
    click_weight: float = 1.0
    print_weight: float = 0.0
    unsuccessful_apply_statuses: tuple[str, ...] = ("REFUSED", "CANCEL", "CANCELED")
    unsuccessful_apply_weight: float = 2.0
    half_life_days: float = 60.0
    dedup_click_id: bool = True
    exclude_bots: bool = True
    test_days: int = 42
    validation_days: int = 28
    split: str = "temporal"
    test_frac: float = 0.25
    split_seed: int = 42
    offer_encoder: OfferEncoderConfig = field(default_factory=OfferEncoderConfig)
    user_encoder: UserEncoderConfig = field(default_factory=UserEncoderConfig)

    def __post_init__(self) -> None:
        for name in ("apply_weight", "click_weight", "print_weight", "unsuccessful_apply_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"FeatureConfig.{name}: must be >= 0, got {getattr(self, name)}")
        if self.half_life_days < 0:
            raise ValueError(
                f"FeatureConfig.half_life_days: must be >= 0, got {self.half_life_days}"
            )
        unknown = sorted(set(self.unsuccessful_apply_statuses) - set(taxonomy.APPLY_STATUSES))
        if unknown:
            raise ValueError(
                f"FeatureConfig.unsuccessful_apply_statuses: unknown status(es) {unknown}; "
                f"expected any of {list(taxonomy.APPLY_STATUSES)}"
            )
        if self.split not in ("temporal", "random"):
            raise ValueError(
                f"FeatureConfig.split: expected 'temporal' or 'random', got {self.split!r}"
            )
        if not 0 < self.test_frac < 1:
            raise ValueError(f"FeatureConfig.test_frac: must be in (0, 1), got {self.test_frac}")
        for name in ("test_days", "validation_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureConfig.{name}: must be >= 1, got {getattr(self, name)}")


def load_config(path: Path | str | None) -> FeatureConfig:
    """Read a YAML file of FeatureConfig fields (any subset); defaults when `path` is None.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not YAML, not a mapping, or an unknown or mistyped field.
    """
    if path is None:
        return FeatureConfig()
    return FeatureConfig.from_dict(read_yaml(path, "feature config"))

"""What a request reads: the catalog, the model and what was prepared from both, as one value.

`serving.engine.Engine` holds one `ServingState` behind a single reference and replaces it
whole on admin actions; `serving.ranking` reads it to answer requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from serving.catalog import Catalog
from serving.loading import LoadedModel
from serving.scorer import Prepared, Scorer

RULES_VERSION = "rules"


class NotReady(RuntimeError):
    """No catalog is loaded: nothing can be ranked yet."""


class UnknownOffer(LookupError):
    """An offer id that is not in the live catalog."""


@dataclass(frozen=True)
class ModelSlot:
    """A loaded model, its scorer, the arrays it prepared for the state's catalog, and what
    its known visitors applied to before its data ended."""

    loaded: LoadedModel
    scorer: Scorer
    prepared: Prepared | None
    applied: dict[str, frozenset[str]]  # before the model's cutoff, by the model's user ids

    @classmethod
    def of(cls, loaded: LoadedModel, catalog: Catalog | None) -> ModelSlot:
        """The model's scorer and, when there is a catalog, the model's preparation of it."""
        bundle = loaded.bundle
        scorer = Scorer(bundle.model, bundle.offer_encoder)
        prepared = scorer.prepare(catalog) if catalog is not None else None
        return cls(loaded, scorer, prepared, bundle.applied_by_user())


@dataclass(frozen=True)
class ServingState:
    """Everything a request reads; replaced whole by admin actions."""

    catalog: Catalog | None
    model: ModelSlot | None
    model_uri: str
    model_error: str | None = None
    catalog_error: str | None = None
    as_of: int | None = None  # the clock of the lists (epoch seconds); None: now

    def now(self) -> int:
        return int(time.time()) if self.as_of is None else self.as_of

    @property
    def model_version(self) -> str:
        return self.model.loaded.version if self.model is not None else RULES_VERSION

    def ready_catalog(self) -> Catalog:
        """The catalog to rank.

        Raises:
            NotReady: no catalog is loaded.
        """
        if self.catalog is None:
            raise NotReady(f"no catalog loaded: {self.catalog_error}")
        return self.catalog

"""The ranking service without HTTP: its state and the admin actions that replace it.

`Engine` holds one `ServingState` (catalog, model and what was prepared from both,
`serving.state`) behind a single reference. A request reads the reference once and works on
that state to the end (`serving.ranking`); an admin action builds a complete new state, then
replaces the reference, so a request never sees half an update and a failed update leaves the
previous state serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from serving import ranking
from serving.catalog import Catalog, CatalogError, read_offers
from serving.filtering import filter_columns
from serving.history import AppliedOffers
from serving.loading import LoadedModel, ModelLoadError, load_model
from serving.payload import display_columns
from serving.profiles import ProfileStore
from serving.ranking import Answer
from serving.schemas import (
    AdminResult,
    RankRequest,
    SimilarRequest,
    SimilarResponse,
    Status,
    Strategy,
)
from serving.settings import Settings
from serving.state import ModelSlot, NotReady, ServingState, UnknownOffer

__all__ = ["Engine", "NotReady", "UnknownOffer"]

logger = logging.getLogger(__name__)


def _now() -> int:
    return int(time.time())


class Engine:
    """Loads once, ranks many times, swaps state atomically on admin requests."""

    def __init__(self, settings: Settings, state: ServingState, profiles: ProfileStore) -> None:
        self.settings = settings
        self.state = state
        self.profiles = profiles
        self.applied = AppliedOffers()  # received since the model's data (serving.history)
        self._admin = threading.Lock()

    # --- Start-up ------------------------------------------------------------------------

    @classmethod
    def start(cls, settings: Settings) -> Engine:
        """Load model, catalog and profiles; whatever fails is reported, never raised.

        Without a model the engine serves the rules; without a catalog it is not ready.
        """
        loaded: LoadedModel | None = None
        model_error = catalog_error = None
        try:
            loaded = load_model(settings.model_uri, settings.tracking_uri)
        except ModelLoadError as error:
            model_error = str(error)
            logger.warning("serving the rules fallback: %s", error)
        catalog, as_of = None, settings.as_of
        try:
            catalog, as_of = _initial_catalog(settings, loaded)
        except CatalogError as error:
            catalog_error = str(error)
            logger.error("no catalog: %s", error)
        model = None
        if loaded is not None:
            try:
                model = ModelSlot.of(loaded, catalog)
            except Exception as error:  # a bundle whose encoder or model cannot score
                model_error = f"model {settings.model_uri}: cannot prepare: {error}"
                logger.exception("serving the rules fallback")
        state = ServingState(catalog, model, settings.model_uri, model_error, catalog_error, as_of)
        return cls(settings, state, _profiles(settings, loaded))

    # --- Ranking -----------------------------------------------------------------------------

    def rank(self, request: RankRequest, at: int | None = None) -> Answer:
        """A ranked list for the request, and its log entry: `rank_batch` of one.

        Raises:
            NotReady: no catalog is loaded.
        """
        return self.rank_batch([request], at)[0]

    def rank_batch(self, requests: Sequence[RankRequest], at: int | None = None) -> list[Answer]:
        """Ranked lists for requests that arrived together (`serving.ranking.rank_batch`).

        Raises:
            NotReady: no catalog is loaded.
        """
        return ranking.rank_batch(
            self.state, self.settings, self.profiles, self.applied, requests, at
        )

    def similar(self, request: SimilarRequest, at: int | None = None) -> SimilarResponse:
        """Open offers most like `request.offer_id` (`serving.ranking.similar`).

        Raises:
            NotReady: no catalog.
            UnknownOffer: the offer is not in the live catalog.
        """
        return ranking.similar(self.state, request, at)

    # --- Status and admin ----------------------------------------------------------------

    def strategies(self) -> list[Strategy]:
        state = self.state
        if state.catalog is None:
            return []
        if state.model is None:
            return ["rules_fallback"]
        return ["personalized", "cold_start"]

    def status(self, rank_log_pending: int = 0, rank_log_dropped: int = 0) -> Status:
        state = self.state
        catalog = state.catalog
        return Status(
            ready=catalog is not None,
            model_version=state.model_version,
            model_name=state.model.loaded.bundle.model_name if state.model else None,
            similarity_method=(
                state.model.prepared.similarity_method
                if state.model is not None and state.model.prepared is not None
                else None
            ),
            model_uri=state.model_uri,
            model_error=state.model_error,
            strategies=self.strategies(),
            catalog_version=catalog.version if catalog else None,
            catalog_source=catalog.source if catalog else None,
            catalog_size=len(catalog) if catalog else 0,
            catalog_available=catalog.available_count(state.now()) if catalog else 0,
            as_of=None if state.as_of is None else datetime.fromtimestamp(state.as_of, UTC),
            clock=self.settings.clock,
            catalog_loaded_at=catalog.loaded_at if catalog else None,
            catalog_error=state.catalog_error,
            known_profiles=len(self.profiles),
            rank_log_pending=rank_log_pending,
            rank_log_dropped=rank_log_dropped,
            worker_pid=os.getpid(),
        )

    def admin_result(
        self, ok: bool, message: str, started: float | None = None, **counts: int
    ) -> AdminResult:
        """The answer to an admin call: its outcome and the state served after it, with the
        seconds since `started` (a `time.perf_counter()` reading; None: an instant call)."""
        state = self.state
        return AdminResult(
            ok=ok,
            message=message,
            model_version=state.model_version,
            catalog_version=state.catalog.version if state.catalog else None,
            catalog_size=len(state.catalog) if state.catalog else 0,
            seconds=0.0 if started is None else round(time.perf_counter() - started, 3),
            **counts,
        )

    def reload_model(self, uri: str | None = None) -> AdminResult:
        """Load a model (default: the configured URI) and serve it; on failure keep the old."""
        uri = uri or self.settings.model_uri
        started = time.perf_counter()
        with self._admin:
            state = self.state
            try:
                loaded = load_model(uri, self.settings.tracking_uri)
                catalog, as_of = state.catalog, state.as_of
                if catalog is None and self.settings.catalog is None:
                    catalog, as_of = _initial_catalog(self.settings, loaded)
                slot = ModelSlot.of(loaded, catalog)
            except (ModelLoadError, CatalogError) as error:
                self.state = replace(state, model_error=f"reload failed: {error}")
                logger.error("model reload failed, previous model kept: %s", error)
                return self.admin_result(
                    False, f"reload failed, previous model kept: {error}", started
                )
            except Exception as error:  # cannot prepare the catalog with this model
                message = f"model {uri}: cannot prepare: {type(error).__name__}: {error}"
                self.state = replace(state, model_error=f"reload failed: {message}")
                logger.exception("model reload failed, previous model kept")
                return self.admin_result(
                    False, f"reload failed, previous model kept: {message}", started
                )
            self.profiles = _profiles(self.settings, loaded)
            self.state = ServingState(catalog, slot, uri, None, state.catalog_error, as_of)
        logger.info("model %s now served", loaded.version)
        return self.admin_result(True, f"serving {loaded.version}", started)

    def update_catalog(self, path: str | None = None, mode: str = "merge") -> AdminResult:
        """Take in offers from a file: `merge` (add or replace by id) or `replace` (all).

        The new catalog and the model's arrays for it are built completely before the swap;
        only the added or changed offers are encoded in `merge` mode.
        """
        started = time.perf_counter()
        source = path or (str(self.settings.catalog) if self.settings.catalog else None)
        with self._admin:
            state = self.state
            try:
                if source is None:
                    raise CatalogError("catalog: no path given and RECSYS_CATALOG is not set")
                offers, rejected = read_offers(source)
                as_of = self.settings.as_of  # a file's offers are ranked now, unless told
                clock = _now() if as_of is None else as_of
                if mode == "replace" or state.catalog is None:
                    catalog, change = Catalog.build(offers, source, at=clock, rejected=rejected)
                else:
                    catalog, change = state.catalog.merged(
                        offers, source, at=clock, rejected=rejected
                    )
                _prepare(catalog)
                model = state.model
                if model is not None and model.prepared is None:
                    model = ModelSlot.of(model.loaded, catalog)  # first catalog: prepare and check
                elif model is not None:
                    if mode == "replace" or state.catalog is None:
                        prepared = model.scorer.prepare(catalog)
                    else:
                        prepared = model.scorer.update(model.prepared, catalog, change)
                    model = replace(model, prepared=prepared)
            except Exception as error:  # unreadable file, bad rows, encoder failure
                message = f"{type(error).__name__}: {error}"
                self.state = replace(state, catalog_error=f"update failed: {message}")
                logger.error("catalog update failed, previous catalog kept: %s", message)
                return self.admin_result(
                    False, f"update failed, previous catalog kept: {message}", started
                )
            self.state = replace(
                state, catalog=catalog, model=model, catalog_error=None, as_of=as_of
            )
        logger.info("catalog %s now served (%d offers)", catalog.version, len(catalog))
        return self.admin_result(
            True,
            f"serving catalog {catalog.version}",
            started,
            added=change.added,
            updated=change.updated,
            removed=change.removed,
            rejected=change.rejected,
        )


def _initial_catalog(settings: Settings, loaded: LoadedModel | None) -> tuple[Catalog, int | None]:
    """The catalog to start with and the clock to rank it at.

    The configured file (ranked now, or at RECSYS_AS_OF), else the model bundle's snapshot,
    ranked at the instant it describes (the bundle's cutoff) unless RECSYS_AS_OF says
    otherwise: a snapshot of simulated or past data holds nothing open today.
    """
    if settings.catalog is not None:
        offers, rejected = read_offers(settings.catalog)
        at = _now() if settings.as_of is None else settings.as_of
        built = Catalog.build(offers, str(settings.catalog), at=at, rejected=rejected)[0]
        return _prepare(built), settings.as_of
    if loaded is not None:
        as_of = settings.as_of
        if as_of is None:
            as_of = int(loaded.bundle.cutoff.timestamp())
        built = Catalog.build(loaded.bundle.catalog, f"bundle {loaded.version}", at=as_of)[0]
        return _prepare(built), as_of
    raise CatalogError("catalog: RECSYS_CATALOG is not set and no model bundle holds one")


def _prepare(catalog: Catalog) -> Catalog:
    """Build what requests read of a catalog besides its arrays and the model's preparation,
    before the catalog serves: its display columns (`serving.payload`) and filter indexes
    (`serving.filtering`). Built by the first request that needed them, they held that
    request (and the batches queued behind it) for seconds at 100k offers, after every
    catalog update."""
    display_columns(catalog)
    filter_columns(catalog)
    return catalog


def _profiles(settings: Settings, loaded: LoadedModel | None) -> ProfileStore:
    """Known visitors: RECSYS_PROFILES, else the profiles next to the model's data."""
    path = settings.profiles
    if path is None and loaded is not None:
        data_dir = loaded.bundle.manifest.get("data_dir")
        candidate = Path(data_dir) / "profiles.parquet" if data_dir else None
        path = candidate if candidate is not None and candidate.is_file() else None
    if path is None:
        return ProfileStore()
    try:
        return ProfileStore.load(path)
    except Exception as error:  # a broken profile file must not stop ranking
        logger.error("profiles %s not loaded: %s", path, error)
        return ProfileStore()

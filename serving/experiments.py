"""Online experiments: arms, sticky assignment by visitor, and the engines that serve each arm.

An experiment is configured by RECSYS_EXPERIMENT: the path of a YAML or JSON file, or the JSON
itself (text starting with `{`); `ExperimentConfig` says what it holds and docs/serving.md
("Online experiments") gives an example. Arms: `policy` is `model` (default: the arm's
`model_uri`, else the service's own model, RECSYS_MODEL_URI) or `rules` (the rules engine
alone, as the `rules_fallback` strategy serves it; no `model_uri` then); `overrides` sets the
list-policy settings of the arm (`ArmOverrides`); shares are in (0, 1] and sum to 1.

Assignment (`assign`) is sticky and needs no state: the visitor's bucket is the SHA-256 of
the salt, the name and the visitor id, read as a number in [0, 1); the arms take consecutive
slices of [0, 1) by share, in the order listed. The visitor id is the request's `user_id`: a
known account, or the id the front sends for an anonymous visitor (a first-party cookie, for
instance). A request without one, one outside [start, end), or after the experiment was
stopped is unassigned: served by the service's own model, logged with no arm, and left out
of the A/B report. Other shares or another salt under the same name would move visitors
between arms: `Experiment.attach` refuses them.

Each arm is served by an `Engine` over the service's catalog (`arm_engines`): an arm that
serves the service's own model without overrides is the service's engine itself; the others
are engines of their own sharing its catalog, visitors' profiles and applied offers. A
catalog update reaches every arm (`serving.service`); a model reload (`/admin/reload`) only
the service's own engine.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serving.schemas import ExperimentStatus

if TYPE_CHECKING:
    from serving.engine import Engine
    from serving.events import EventStore
    from serving.ranking import Answer
    from serving.schemas import RankRequest
    from serving.settings import Settings

VARIABLE = "RECSYS_EXPERIMENT"
STOP_ACTION = "experiment_stop"  # the admin action (`serving.admin_sync`) that stops one
RULES_ARM_URI = "rules"  # what /status reports as the model of a `rules` arm
SHARE_TOLERANCE = 1e-6
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ExperimentError(ValueError):
    """A configuration the service refuses; the message names RECSYS_EXPERIMENT's field."""


class ArmOverrides(BaseModel):
    """The list-policy knobs an arm may set apart from the service's (`recsys.policy.ListPolicy`,
    bounded as `serving.settings` bounds their variables)."""

    model_config = ConfigDict(extra="forbid")

    max_per_programme: float | None = Field(default=None, ge=0.01, le=1.0)
    max_per_publisher: float | None = Field(default=None, ge=0.01, le=1.0)
    cold_start_rules_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    rules_remote_overrides: bool | None = None

    def given(self) -> dict[str, Any]:
        """The settings this arm sets (field name → value)."""
        return self.model_dump(exclude_none=True)


class ArmConfig(BaseModel):
    """One arm of an experiment (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    share: float = Field(gt=0.0, le=1.0)
    policy: Literal["model", "rules"] = "model"
    model_uri: str | None = Field(default=None, min_length=1)
    overrides: ArmOverrides = Field(default_factory=ArmOverrides)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("expected 1 to 64 letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ArmConfig:
        if self.policy == "rules" and self.model_uri is not None:
            raise ValueError("model_uri: a rules arm serves no model")
        return self

    @property
    def serves_service_model(self) -> bool:
        """Whether the service's own engine serves this arm as it is."""
        return self.policy == "model" and self.model_uri is None and not self.overrides.given()


class ExperimentConfig(BaseModel):
    """An online experiment: its name, arms and time span (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    salt: str | None = Field(default=None, min_length=1)
    start: datetime | None = None
    end: datetime | None = None
    arms: list[ArmConfig] = Field(min_length=2, max_length=20)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return ArmConfig._name(value)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _coherent(self) -> ExperimentConfig:
        names = [arm.name for arm in self.arms]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"arms: names must differ ({', '.join(repeated)} repeated)")
        total = sum(arm.share for arm in self.arms)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"arms: shares must sum to 1, they sum to {total:g}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end: must come after start")
        return self

    @property
    def shares(self) -> dict[str, float]:
        """Each arm's configured share of the visitors, in the order listed."""
        return {arm.name: arm.share for arm in self.arms}

    def running_at(self, at: datetime) -> bool:
        """Whether `at` is within [start, end)."""
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


def load_experiment(raw: str | None) -> ExperimentConfig | None:
    """RECSYS_EXPERIMENT's value (a file path or inline JSON) as a configuration; None if unset.

    Raises:
        ExperimentError: an unreadable file or a field that does not hold, named as
            `RECSYS_EXPERIMENT: arms.1.share: ...`.
    """
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if not text.startswith("{"):
        path = Path(text)
        try:
            text = path.read_text("utf-8")
        except OSError as error:
            raise ExperimentError(f"{VARIABLE}: cannot read {path}: {error.strerror}") from None
    try:
        values = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as error:
        raise ExperimentError(f"{VARIABLE}: not YAML or JSON: {error}") from None
    if not isinstance(values, dict):
        raise ExperimentError(f"{VARIABLE}: expected a mapping with name and arms")
    try:
        return ExperimentConfig.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "experiment"
        message = first["msg"].removeprefix("Value error, ")
        raise ExperimentError(f"{VARIABLE}: {where}: {message}") from None


def bucket(salt: str, name: str, visitor_id: str) -> float:
    """The visitor's place in [0, 1): the first 64 bits of SHA-256(salt, name, visitor id)."""
    digest = hashlib.sha256(json.dumps([salt, name, visitor_id]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(config: ExperimentConfig, visitor_id: str | None) -> str | None:
    """The arm of a visitor (None without a visitor id): the arm whose slice of [0, 1)
    holds the visitor's `bucket`, slices consecutive by share in the order listed."""
    if visitor_id is None:
        return None
    place = bucket(config.salt or config.name, config.name, visitor_id)
    edge = 0.0
    for arm in config.arms:
        edge += arm.share
        if place < edge:
            return arm.name
    return config.arms[-1].name  # shares summing to 1 within rounding


class Experiment:
    """A configured experiment at run time: assignment, the engines of its arms, stopping.

    `error` holds why the experiment is not running (an arm's model that cannot be loaded);
    every request is then unassigned.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        engines: dict[str, Engine],
        error: str | None = None,
        stopped_at: datetime | None = None,
    ) -> None:
        self.config = config
        self.engines = engines
        self.error = error
        self.stopped_at = stopped_at
        self._lock = threading.Lock()

    @classmethod
    def start(cls, config: ExperimentConfig, main: Engine) -> Experiment:
        """The experiment with its arms' engines; an arm that cannot be served leaves the
        experiment not running, with the reason in `error` (naming the arm's field)."""
        try:
            engines = arm_engines(config, main)
        except ExperimentError as error:
            return cls(config, {}, error=str(error))
        return cls(config, engines)

    @property
    def name(self) -> str:
        return self.config.name

    def arm_for(self, visitor_id: str | None, at: datetime | None = None) -> str | None:
        """The arm serving this visitor now (`assign`), None when the request is unassigned."""
        if self.error is not None or self.stopped_at is not None:
            return None
        if not self.config.running_at(datetime.now(UTC) if at is None else at):
            return None
        return assign(self.config, visitor_id)

    def stop(self, at: datetime | None = None) -> bool:
        """Stop assigning (every request unassigned from then on); False if already stopped."""
        with self._lock:
            if self.stopped_at is not None:
                return False
            self.stopped_at = datetime.now(UTC) if at is None else at
            return True

    def state(self, at: datetime | None = None) -> str:
        """running, scheduled (before start), ended (after end), stopped, or failed."""
        at = datetime.now(UTC) if at is None else at
        if self.error is not None:
            return "failed"
        if self.stopped_at is not None:
            return "stopped"
        if self.config.start is not None and at < self.config.start:
            return "scheduled"
        if self.config.end is not None and at >= self.config.end:
            return "ended"
        return "running"

    def attach(self, store: EventStore) -> None:
        """Record the configuration in the event store (the A/B report reads it there), and
        take what the store already says into account.

        A name already recorded with other arms or salt fails the experiment (`error`): the
        same visitors would be split otherwise and its report would mix two designs. Its
        dates may change (extending an experiment). An experiment stopped by an admin call
        (`EventStore.admin_actions`) before this worker started stays stopped.
        """
        if self.error is not None:
            return
        design = {"start", "end"}
        recorded = store.record_experiment(self.name, self.config.model_dump(mode="json"))
        if _without(recorded, design) != _without(self.config.model_dump(mode="json"), design):
            self.error = (
                f"{VARIABLE}: name: {self.name!r} already ran with other arms or salt: "
                "give the new design a new name"
            )
            return
        for _generation, action, arguments in store.admin_actions(after=0):
            if action == STOP_ACTION and arguments.get("name") == self.name:
                self.stop(datetime.fromisoformat(arguments["at"]))
                return

    def rank_batch(self, requests: Sequence[RankRequest], main: Engine) -> list[Answer]:
        """`Engine.rank_batch` of the requests, each by its arm's engine (the unassigned by
        `main`), the lists and their log entries tagged with the experiment and the arm.

        A request carrying its instant (`RankRequest.at`) is assigned at it: the experiment's
        start and end are read on the request's clock."""
        now = datetime.now(UTC)
        groups: dict[str | None, list[int]] = {}
        for index, request in enumerate(requests):  # at the request's instant when it has one
            arm = self.arm_for(request.user_id, now if request.at is None else request.at)
            groups.setdefault(arm, []).append(index)
        out: list[Any] = [None] * len(requests)
        for arm, indexes in groups.items():
            engine = main if arm is None else self.engines[arm]
            ranked = engine.rank_batch([requests[i] for i in indexes])
            for index, answer in zip(indexes, ranked, strict=True):
                out[index] = answer if arm is None else answer.tagged(self.name, arm)
        return out

    def status(self) -> ExperimentStatus:
        """What /status says of the experiment."""
        return ExperimentStatus(
            name=self.name,
            state=self.state(),
            start=self.config.start,
            end=self.config.end,
            stopped_at=self.stopped_at,
            error=self.error,
            arms=self.config.shares,
            arm_models={arm: engine.state.model_version for arm, engine in self.engines.items()},
        )

    def other_engines(self, main: Engine) -> list[Engine]:
        """The arms' engines other than the service's own (each once)."""
        seen: dict[int, Engine] = {}
        for engine in self.engines.values():
            if engine is not main:
                seen.setdefault(id(engine), engine)
        return list(seen.values())


def stop_experiment(experiment: Experiment | None, arguments: dict[str, Any]) -> tuple[bool, str]:
    """Carry out a recorded stop (`STOP_ACTION`: the experiment's `name` and the time `at`);
    whether it applies to this experiment, and what to answer."""
    if experiment is None:
        return False, f"no experiment configured ({VARIABLE})"
    if arguments.get("name") != experiment.name:
        return False, f"name: the experiment is {experiment.name!r}"
    stopped = experiment.stop(datetime.fromisoformat(arguments["at"]))
    return True, f"experiment {experiment.name} {'stopped' if stopped else 'already stopped'}"


def _arm_settings(settings: Settings, arm: ArmConfig) -> Settings:
    """The service's settings with the arm's list policy and model."""
    settings = replace(settings, policy=replace(settings.policy, **arm.overrides.given()))
    return settings if arm.model_uri is None else replace(settings, model_uri=arm.model_uri)


def _without(values: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name not in names}


def arm_engines(config: ExperimentConfig, main: Engine) -> dict[str, Engine]:
    """An engine per arm over the service engine's catalog (see the module docstring).

    Raises:
        ExperimentError: an arm's model cannot be loaded or prepared for the catalog,
            named as `RECSYS_EXPERIMENT: arms.N.model_uri: ...`.
    """
    from serving.engine import Engine

    engines: dict[str, Engine] = {}
    for index, arm in enumerate(config.arms):
        if arm.serves_service_model:
            engines[arm.name] = main
            continue
        settings = _arm_settings(main.settings, arm)
        state = main.state
        if arm.policy == "rules":
            state = replace(state, model=None, model_uri=RULES_ARM_URI, model_error=None)
        engine = Engine(settings, state, main.profiles)
        engine.applied = main.applied  # one record of what visitors applied to
        if arm.model_uri is not None:
            result = engine.reload_model(arm.model_uri)
            if not result.ok:
                raise ExperimentError(
                    f"{VARIABLE}: arms.{index}.model_uri: {arm.model_uri}: {result.message}"
                )
        engines[arm.name] = engine
    return engines

"""Experiment files (`experiments/NAME.yaml`): what to train, on what, judged against what.

One YAML file names a model and its parameters, the feature set it learns from, the baselines
it is printed next to, the promotion margin and, optionally, a hyper-parameter search space.
The file is validated with pydantic before anything runs, so a typo fails in a second with a
message naming the field instead of after an hour of training.

Example::

    name: lightfm
    model: lightfm
    params: {embedding_size: 32, epochs: 20}
    features:
      data: data/simulated/demo     # canonical tables the feature set is built from
      config: {}                    # feature config (dict) or path to a YAML file
    evaluation:
      ks: [5, 10, 20]
      baselines: [popularity, itemknn, incumbent, incumbent_local]
    promotion:
      margin: 0.0
      metric: ndcg@10               # or replay: applications in a closed-loop replay
    tuning:
      n_trials: 20
      space:
        learning_rate: {type: float, low: 0.01, high: 0.2, log: true}

Relative paths are read from the project root, so a file means the same thing whatever the
working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from recsys import config
from recsys.models import MODEL_CLASSES, model_class
from recsys.typed_config import read_yaml


class ExperimentError(ValueError):
    """An experiment file that cannot be used; the message names the file and the field."""


def _project_path(value: Path | str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else config.HOME / path


def _check_model_name(name: str) -> str:
    if name not in MODEL_CLASSES:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_CLASSES)}")
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeaturesSection(_Strict):
    """Where the feature set comes from: the data folder and the feature config."""

    # Default: where `recsys simulate` writes its default (`demo`) preset.
    data: Path = Field(default=config.SIMULATED_DIR / "demo", description="canonical tables folder")
    config: dict[str, Any] | Path = Field(
        default_factory=dict, description="feature config, inline or as a YAML file path"
    )
    out: Path | None = Field(
        default=None, description="feature set folder; default data/features/<data folder name>"
    )

    @field_validator("data", "out")
    @classmethod
    def _resolve(cls, value: Path | None) -> Path | None:
        return None if value is None else _project_path(value)

    @field_validator("config")
    @classmethod
    def _read_config(cls, value: dict[str, Any] | Path) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            return read_yaml(_project_path(value), "feature config file")
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None

    @property
    def folder(self) -> Path:
        """The feature set folder (holding `test/` and `validation/`)."""
        return self.out if self.out is not None else config.FEATURES_DIR / self.data.name


class EvaluationSection(_Strict):
    """Cut-offs and the baselines every figure is printed next to."""

    ks: tuple[int, ...] = (5, 10, 20)
    baselines: tuple[str, ...] = ("popularity", "itemknn", "incumbent", "incumbent_local")
    baseline_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="params of a baseline by name (default config if absent)"
    )

    @field_validator("ks")
    @classmethod
    def _positive(cls, ks: tuple[int, ...]) -> tuple[int, ...]:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"expected positive cut-offs, got {list(ks)}")
        if 10 not in ks:
            raise ValueError("must include 10: promotion compares ndcg@10")
        return tuple(sorted(set(ks)))

    @field_validator("baselines")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            _check_model_name(name)
        return names

    @model_validator(mode="after")
    def _params_of_listed(self) -> EvaluationSection:
        extra = sorted(set(self.baseline_params) - set(self.baselines))
        if extra:
            raise ValueError(f"baseline_params: {extra} not listed in baselines")
        for name, params in self.baseline_params.items():
            model_class(name).config_class.from_dict(params)
        return self


class PromotionSection(_Strict):
    """How a new version may replace the champion."""

    metric: Literal["ndcg@10", "replay"] = Field(
        default="ndcg@10",
        description="what the version is judged on: NDCG@10 of the evaluation, or the "
        "applications per 1,000 served lists of a closed-loop replay (simulated data only) "
        "of the experiment's model against each baseline to beat",
    )
    replay_weeks: int = Field(
        default=4, ge=1, le=26, description="replayed weeks (and retraining period) of `replay`"
    )
    margin: float = Field(default=0.0, ge=0.0, description="gain of the metric required")
    must_beat: tuple[str, ...] = Field(
        # DOMAIN.md section 7: a model beats the incumbent only if it beats the strongest of
        # the baselines, so all four are the default.
        default=("popularity", "itemknn", "incumbent", "incumbent_local"),
        description="baselines the first champion must beat on the metric (from the same run)",
    )

    @field_validator("must_beat")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            _check_model_name(name)
        return names


class SearchDimension(_Strict):
    """One tuned parameter: a float or int range (optionally log-scaled) or a list of choices."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical: give a non-empty `choices` list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type}: give `low` and `high`")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0")
        if self.type == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError("int: `low` and `high` must be integers")
        return self


class TuningSection(_Strict):
    """The search: space, budget, direction and the validation metric optimised."""

    space: dict[str, SearchDimension]
    n_trials: int = Field(default=20, ge=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    metric: str = "ndcg@10"
    seed: int = config.DEFAULT_SEED

    @field_validator("space")
    @classmethod
    def _not_empty(cls, space: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        if not space:
            raise ValueError("give at least one parameter to tune")
        return space


class Experiment(_Strict):
    """A validated experiment file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    features: FeaturesSection = Field(default_factory=FeaturesSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    promotion: PromotionSection = Field(default_factory=PromotionSection)
    tuning: TuningSection | None = None
    description: str = ""

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return _check_model_name(name)

    @field_validator("params")
    @classmethod
    def _valid_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        model = info.data.get("model")
        if model is not None:
            model_class(model).config_class.from_dict(params)  # ValueError naming the field
        return params

    @field_validator("tuning")
    @classmethod
    def _valid_search(cls, tuning: TuningSection | None, info: ValidationInfo) -> Any:
        model, evaluation = info.data.get("model"), info.data.get("evaluation")
        if tuning is None or model is None or evaluation is None:
            return tuning
        metric, _, k = tuning.metric.partition("@")
        if not (metric and k.isdigit() and int(k) in evaluation.ks):
            raise ValueError(
                f"metric {tuning.metric!r} must read <metric>@<k> with k in "
                f"evaluation.ks {list(evaluation.ks)}"
            )
        known = set(model_class(model).config_class().to_dict())
        unknown = sorted(set(tuning.space) - known)
        if unknown:
            raise ValueError(
                f"space: {unknown} are not parameters of {model}; expected any of {sorted(known)}"
            )
        return tuning

    def model_params(self) -> dict[str, Any]:
        """The full model config (defaults filled in), as logged."""
        return model_class(self.model).config_class.from_dict(self.params).to_dict()

    def to_yaml(self) -> str:
        """The experiment as YAML (paths absolute, feature config inline)."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(file)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_experiment(values: Any, source: str = "experiment") -> Experiment:
    """Validate an already-loaded mapping; ExperimentError lists every problem with its field."""
    if not isinstance(values, dict):
        raise ExperimentError(f"{source}: expected a mapping at the top level")
    try:
        return Experiment.model_validate(values)
    except ValidationError as error:
        raise ExperimentError(
            f"{source} is not a valid experiment:\n{_format_errors(error)}"
        ) from None


def load_experiment(path: Path | str) -> Experiment:
    """Read and validate an experiment YAML file."""
    try:
        values = read_yaml(path, "experiment file")
    except (FileNotFoundError, ValueError) as error:
        raise ExperimentError(str(error)) from None
    return parse_experiment(values, str(path))

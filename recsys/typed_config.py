"""Typed configs that round-trip to plain dicts (YAML, JSON, MLflow params).

Every config of the project (feature building, encoders, models) is a dataclass with this
mixin, so each is logged, stored in a manifest and read back the same way, and a wrong key or
type in an experiment file fails with the field's name. Hand-written rather than pydantic
dataclasses: the configs are plain dataclasses the models construct and compare freely, and
the whole check is these few lines.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Self

import yaml


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively, so a config dict equals its JSON round-trip."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class DictConfig:
    """Mixin for dataclass configs: `to_dict` gives plain JSON/YAML data, `from_dict` checks it.

    `from_dict` refuses unknown keys and wrong types with a message naming the field, turns
    lists back into tuples and rebuilds nested configs, so a YAML file or a manifest's JSON
    gives back an equal object.
    """

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        if not isinstance(values, dict):
            raise ValueError(f"{cls.__name__}: expected a mapping, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown parameter(s) {unknown}; expected any of {sorted(known)}"
            )
        defaults = cls()
        checked = {
            name: _check_value(f"{cls.__name__}.{name}", getattr(defaults, name), value)
            for name, value in values.items()
        }
        return cls(**checked)


def _check_value(name: str, default: Any, value: Any) -> Any:
    if isinstance(default, DictConfig):
        return type(default).from_dict(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        if isinstance(default, int):
            if not float(value).is_integer():
                raise ValueError(f"{name}: expected an integer, got {value!r}")
            return int(value)
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        if default and not all(isinstance(item, type(default[0])) for item in value):
            raise ValueError(f"{name}: expected a list of {type(default[0]).__name__}")
        return tuple(value)
    return value


def read_yaml(path: Path | str, what: str) -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is an empty mapping): the one reader of
    the project's YAML files (experiments, feature configs).

    Args:
        path: the file.
        what: what the file is, for the messages ("experiment file", "feature config").

    Raises:
        FileNotFoundError: no such file.
        ValueError: not valid YAML, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{what} {path} is not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{what} {path}: expected a mapping, got {type(values).__name__}")
    return values

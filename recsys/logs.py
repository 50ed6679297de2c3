"""Logging of the command line and the service, set up in one place.

`configure` installs one handler on the root logger, at the level of `--log-level` or
RECSYS_LOG_LEVEL, writing either text lines (`time level logger: message key=value ...`) or,
with RECSYS_LOG_FORMAT=json, one JSON object per line. Both show the structured fields a
module passes with `extra=` (a loader's `source`, `loaded`, `warnings`), which is how the
project logs facts meant to be searched.

In the service, BentoML has configured logging before the service module is imported: its
root handler is replaced, and the handler of its own `bentoml` logger (access log included)
takes the same format, so a worker writes one kind of line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Final

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LEVEL_ENV: Final = "RECSYS_LOG_LEVEL"
FORMAT_ENV: Final = "RECSYS_LOG_FORMAT"
FORMATS: Final = ("text", "json")
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HANDLER_NAME: Final = "recsys"
# BentoML's root handler in a server process (its logging configuration names it so).
BENTOML_HANDLER: Final = "tracehandler"
# Attributes BentoML's log filter adds to every record for its own text format.
_DECORATIONS: Final = ("levelname_bracketed", "component", "trace_msg", "color_message")
_NOT_FIELDS: Final = frozenset(RESERVED_ATTRS) | {"taskName", *_DECORATIONS}
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: what the caller passed with `extra=`."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _NOT_FIELDS and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """A text line with the record's structured fields after the message, as key=value."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = {key: value for key, value in fields(record).items() if value is not None}
        if not extra:
            return line
        return line + " " + " ".join(f"{key}={value!r}" for key, value in extra.items())


def formatter(kind: str) -> logging.Formatter:
    """The formatter of a log format (`FORMATS`)."""
    if kind == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=sorted(_NOT_FIELDS - {"asctime", "levelname", "name", "message"}),
            json_ensure_ascii=False,
        )
    return TextFormatter()


def resolve(level: str | None, kind: str | None, default_level: str) -> tuple[int, str]:
    """(logging level, format) from the arguments, else the environment, else the defaults.

    Raises:
        ValueError: naming the option or variable whose value is not a level or a format.
    """
    level_name = (level or os.environ.get(LEVEL_ENV) or default_level).strip().upper()
    if level_name not in LEVELS:
        source = "--log-level" if level else LEVEL_ENV
        raise ValueError(f"{source}: expected one of {', '.join(LEVELS)}, got {level_name!r}")
    format_name = (kind or os.environ.get(FORMAT_ENV) or "text").strip().lower()
    if format_name not in FORMATS:
        source = "--log-format" if kind else FORMAT_ENV
        raise ValueError(f"{source}: expected one of {', '.join(FORMATS)}, got {format_name!r}")
    return logging.getLevelNamesMapping()[level_name], format_name


def configure(
    level: str | None = None, kind: str | None = None, default_level: str = "WARNING"
) -> None:
    """Install the project's handler on the root logger (again: it replaces the previous one).

    Args:
        level: a level name (`--log-level`); default RECSYS_LOG_LEVEL, else `default_level`.
        kind: `text` or `json` (`--log-format`); default RECSYS_LOG_FORMAT, else text.
        default_level: the level when neither the argument nor the variable gives one.

    Raises:
        ValueError: a malformed level or format, naming where it came from.
    """
    number, format_name = resolve(level, kind, default_level)
    chosen = formatter(format_name)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(chosen)
    root = logging.getLogger()
    for previous in list(root.handlers):
        if previous.get_name() in (HANDLER_NAME, BENTOML_HANDLER):
            root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(number)
    for own in logging.getLogger("bentoml").handlers:
        own.setFormatter(chosen)

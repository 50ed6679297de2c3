"""Per-widget allow-lists of publishers: a partner's widget shows only the offers it chose.

Two sources, the second winning widget by widget:

* RECSYS_WIDGETS names a JSON file `{"<widget_id>": {"publishers": ["<publisherId>", ...]}}`,
  read at start-up; a malformed one stops the start with a message naming it, rather than
  serving every widget unrestricted;
* `/admin/widgets/set` (X-Admin-Token) sets or removes a widget's list. It is saved in the
  event store (`EventStore.set_widget`), so it survives restarts, and every worker re-reads the
  saved lists after the call (`serving.admin_sync`, as catalog updates reach them).

A /rank request whose `context.widget_id` has a list gets its `publishers` filter narrowed to
it (intersected with the request's own, never widened); a widget without one is not
restricted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from serving.schemas import RankFilters, RankRequest

FILE, ADMIN, NONE = "file", "admin", "none"
Source = Literal["file", "admin", "none"]


class WidgetConfigError(ValueError):
    """RECSYS_WIDGETS cannot be read or is not the expected shape."""


class NoPublisher(ValueError):
    """The request's publishers filter and its widget's allow-list have nothing in common."""


@dataclass(frozen=True)
class WidgetRules:
    """widget id → the publishers its lists may show: the file's, then the admin's."""

    file: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    admin: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    publishers: Mapping[str, tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "publishers", {**self.file, **self.admin})

    @classmethod
    def load(cls, path: str | Path | None) -> WidgetRules:
        """The rules of a RECSYS_WIDGETS file (none without a path).

        Raises:
            WidgetConfigError: naming the file and what is wrong.
        """
        if not path:
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise WidgetConfigError(f"RECSYS_WIDGETS {path}: {error}") from error
        if not isinstance(data, dict):
            raise WidgetConfigError(f"RECSYS_WIDGETS {path}: expected an object of widgets")
        publishers = {}
        for widget, rule in data.items():
            listed = rule.get("publishers") if isinstance(rule, dict) else None
            if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
                raise WidgetConfigError(
                    f"RECSYS_WIDGETS {path}: widget {widget!r}: expected "
                    '{"publishers": [publisher ids]}'
                )
            publishers[str(widget)] = tuple(listed)
        return cls(publishers)

    def with_admin(self, admin: Mapping[str, tuple[str, ...]]) -> WidgetRules:
        """The same file's rules under the admin's lists `admin` (as saved: all of them)."""
        return replace(self, admin=dict(admin))

    def rule(self, widget: str) -> tuple[tuple[str, ...] | None, Source]:
        """A widget's publishers (None: not restricted) and where the list comes from."""
        if widget in self.admin:
            return self.admin[widget], ADMIN
        if widget in self.file:
            return self.file[widget], FILE
        return None, NONE

    def narrowed(self, request: RankRequest) -> RankRequest:
        """The request restricted to its widget's publishers (unchanged when not listed).

        Raises:
            NoPublisher: the request asks only for publishers the widget does not show.
        """
        widget = request.context.widget_id if request.context is not None else None
        allowed = self.publishers.get(widget) if widget is not None else None
        if allowed is None:
            return request
        filters = request.filters or RankFilters()
        wanted = [p for p in allowed if not filters.publishers or p in filters.publishers]
        if not wanted:
            raise NoPublisher(
                f"filters.publishers: none is shown by widget {widget!r} (its allow-list)"
            )
        narrowed = request.model_copy(
            update={"filters": filters.model_copy(update={"publishers": wanted})}
        )
        narrowed._bridge = request._bridge
        return narrowed

"""`serving.widgets.WidgetRules`: the allow-list file, read strictly, and the admin's lists
above it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.schemas import RankRequest
from serving.widgets import WidgetConfigError, WidgetRules


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "RECSYS_WIDGETS"),
        ("[]", "expected an object"),
        (json.dumps({"w": {"publishers": "p1"}}), "widget 'w'"),
        (json.dumps({"w": {"publishers": [1]}}), "widget 'w'"),
    ],
)
def test_malformed_files_are_refused_naming_the_problem(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "widgets.json"
    path.write_text(content)
    with pytest.raises(WidgetConfigError, match=message):
        WidgetRules.load(path)


def test_the_widget_list_narrows_the_request_publishers() -> None:
    rules = WidgetRules({"w": ("p1", "p2")})
    request = RankRequest.model_validate(
        {"context": {"widget_id": "w"}, "filters": {"publishers": ["p2", "p3"]}}
    )
    assert rules.narrowed(request).filters.publishers == ["p2"]
    assert WidgetRules.load(None).narrowed(request) is request


def test_the_admin_s_lists_replace_the_file_s_widget_by_widget() -> None:
    rules = WidgetRules({"w": ("p1",), "v": ("p2",)}).with_admin({"w": ("p3",), "u": ("p4",)})
    assert rules.publishers == {"w": ("p3",), "v": ("p2",), "u": ("p4",)}
    assert rules.rule("w") == (("p3",), "admin")
    assert rules.rule("v") == (("p2",), "file")
    assert rules.rule("x") == (None, "none")
    assert rules.with_admin({}).rule("w") == (("p1",), "file")  # removed: the file's again

"""`serving.widgets.WidgetRules`: the allow-list file, read strictly."""

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

"""The offline evaluation report: from an evaluation document to one self-contained HTML page.

`render_report` is pure (plain dicts in, a string out); `tables` holds the numbers the page
and the notebooks share, `figures` the charts, `reading` the plain-language summary.
"""

from __future__ import annotations

from recsys.report.html import Comparison, RunInfo, render_report

__all__ = ["Comparison", "RunInfo", "render_report"]

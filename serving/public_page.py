"""The public page (`GET /`): a short quiz, the ranked offers with reasons, a map, and
"Pourquoi pas le Service Civique ?", in French, served by the service itself.

The page (`serving/page/`) is static: HTML, one script, one style sheet and a simplified
France outline for the map (no tile server, nothing fetched from elsewhere). It calls
`/rank` and `/eligibility` on the same origin. The quiz's vocabularies and French labels are
`recsys.taxonomy`'s, written into the page as a JSON data block when the service starts.

Partner texts are untrusted: the script sets every value as text (never as HTML) and links
only http(s) URLs, and every answer of the page carries a strict Content-Security-Policy (no
inline script, nothing from another origin), so a title holding markup shows as text and
runs nothing. BentoML's Swagger UI, which it serves at `/`, moves to `/docs`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from recsys import taxonomy

PAGE_DIR = Path(__file__).with_name("page")
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ASSETS: Final[dict[str, bytes]] = {
    "/page/page.js": b"text/javascript; charset=utf-8",
    "/page/page.css": b"text/css; charset=utf-8",
    "/page/france.json": b"application/json",
}
DOCS_PATH = "/docs"


def vocabulary() -> dict[str, Any]:
    """What the quiz offers, with French labels (`recsys.taxonomy`)."""
    return {
        "domains": [[d, taxonomy.QUIZ_DOMAIN_LABELS_FR[d]] for d in taxonomy.QUIZ_DOMAINS],
        "activities": [[a, taxonomy.QUIZ_ACTIVITY_LABELS_FR[a]] for a in taxonomy.QUIZ_ACTIVITIES],
        "rhythms": [[r, taxonomy.RHYTHM_LABELS_FR[r]] for r in taxonomy.RHYTHMS],
    }


def index_html() -> bytes:
    """The page with its vocabulary block (`<` escaped: the block cannot end early)."""
    data = json.dumps(vocabulary(), ensure_ascii=False).replace("<", "\\u003c")
    html = (PAGE_DIR / "index.html").read_text(encoding="utf-8")
    return html.replace("__VOCABULARY__", data).encode()


class PublicPage:
    """ASGI middleware: `GET /` and `/page/*` from `serving/page/`, `/docs` to BentoML's
    Swagger UI; everything else passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.files = {"/": (index_html(), b"text/html; charset=utf-8")}
        for path, kind in ASSETS.items():
            self.files[path] = ((PAGE_DIR / Path(path).name).read_bytes(), kind)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == DOCS_PATH:
            await self.app({**scope, "path": "/", "raw_path": b"/"}, receive, send)
            return
        found = self.files.get(path)
        if found is None:
            await self.app(scope, receive, send)
            return
        body, kind = found
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(body)).encode()),
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

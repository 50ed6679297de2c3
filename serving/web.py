"""Web conventions every endpoint follows: one error shape, X-Request-Id, CORS.

* Errors: every answer of status 400 or more has the body
  `{"error": {"code", "message", "field"}}`: `field` is the dotted path of the first refused
  field, or null (a message of the service's own that starts "field.path: " names it).
  BentoML answers a refused body `{"error", "detail": [pydantic errors]}`, other failures
  `{"error": "..."}` or `[{"error": "..."}]`, Starlette `{"detail": "..."}`; `WebConventions`
  rewrites each into the one shape (the pydantic errors stay, without the refused values,
  under `error.details`). A failed admin action keeps its `AdminResult` body (`ok: false`,
  the reason and the state still served), which says more.
* `X-Request-Id`: taken from the caller when it is a short token, else made here; returned on
  every answer, so a front can quote it and operations can find the request.
* OpenAPI (`/docs.json`): BentoML documents its own error bodies (`{"error", "detail"}`);
  `documented` puts the one shape in their place (`serving.schemas.ErrorBody`), so the
  published document says what the service answers (and drops the status of task endpoints,
  which the service has none of).
* CORS (`cors_app`): browsers on the origins of RECSYS_CORS_ORIGINS (a list, or `*`) may call
  the public endpoints; admin endpoints never answer a cross-origin request.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi.middleware.cors import CORSMiddleware

from serving.schemas import ErrorBody

REQUEST_ID_HEADER = b"x-request-id"
_TOKEN = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
ADMIN_PREFIX = "/admin/"
OPENAPI_PATH = "/docs.json"
# The error components BentoML's document refers its 400, 404 and 500 answers to.
BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError")
TASK_STATUS = "TaskStatusResponse"  # BentoML's, for task endpoints (the service has none)
_NAMED = re.compile(r"^([a-z_][a-z_0-9]*(?:\.[a-z_0-9]+)*): ")  # "field.path: message"
CODES: dict[int, str] = {
    400: "invalid_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "action_failed",
    429: "too_many_requests",
    503: "unavailable",
}


def error_body(status: int, body: bytes) -> bytes | None:
    """The one error shape for an error answer's body; None to keep the body as it is."""
    try:
        data: Any = json.loads(body) if body else None
    except ValueError:
        data = body.decode("utf-8", "replace").strip() or None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict) and "ok" in data:  # an AdminResult: kept
        return None
    message, field, details = None, None, None
    if isinstance(data, dict):
        error, detail = data.get("error"), data.get("detail")
        if isinstance(error, dict) and {"code", "message"} <= set(error):
            return None  # already in shape
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            details = detail
            first = detail[0]
            path = [str(part) for part in first.get("loc", ()) if part != "body"]
            field = ".".join(path) or None
            message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        else:
            message = error if isinstance(error, str) else detail
            named = _NAMED.match(message) if isinstance(message, str) else None
            field = named.group(1) if named else None
    elif isinstance(data, str):
        message = data
    if not isinstance(message, str) or not message:
        message = HTTPStatus(status).phrase
    code = CODES.get(status, "internal_error" if status >= 500 else "error")
    shaped: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details is not None:
        shaped["details"] = details
    return json.dumps({"error": shaped}, ensure_ascii=False).encode()


def documented(body: bytes) -> bytes:
    """The OpenAPI document with the one error shape in place of BentoML's error bodies."""
    spec = json.loads(body)
    shape = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(shape.pop("$defs", {}))
    for name in BENTOML_ERRORS:
        schemas[name] = {**shape, "title": name}
    if TASK_STATUS not in json.dumps(spec.get("paths", {})):  # no task endpoint refers to it
        schemas.pop(TASK_STATUS, None)
    return json.dumps(spec, ensure_ascii=False).encode()


Send = Callable[[dict], Awaitable[None]]


def holding(
    send: Send,
    hold: Callable[[dict], bool],
    finish: Callable[[dict, bytes], Awaitable[tuple[dict, bytes]]],
) -> Send:
    """An ASGI `send` that passes messages on, except a response whose start message `hold`
    selects: that one is held until its whole body has come, then `finish(start, body)` gives
    the start message and the body sent in its place (one body message)."""
    held: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def reply(message: dict) -> None:
        if message["type"] == "http.response.start" and hold(message):
            held["start"] = message
            return
        if message["type"] != "http.response.body" or "start" not in held:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, body = await finish(held.pop("start"), b"".join(chunks))
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return reply


class WebConventions:
    """ASGI middleware: X-Request-Id in and out, and error answers in the one shape."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER, b"")
        openapi = scope.get("path") == OPENAPI_PATH
        request_id = given if _TOKEN.match(given) else uuid.uuid4().hex.encode()

        async def shape(start: dict, body: bytes) -> tuple[dict, bytes]:
            if start["status"] < 400:  # the OpenAPI document
                shaped = documented(body)
            else:
                shaped = error_body(start["status"], body)
            if shaped is None:
                return start, body
            headers = [
                (name, value)
                for name, value in start["headers"]
                if name.lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(shaped)).encode()),
            ]
            return {**start, "headers": headers}, shaped

        # Errors and the OpenAPI document are held, to be sent with their rewritten body.
        held = holding(send, lambda start: start["status"] >= 400 or openapi, shape)

        async def reply(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id))
                message = {**message, "headers": headers}
            await held(message)

        await self.app(scope, receive, reply)


class PublicCors:
    """ASGI middleware: Starlette's CORS (as FastAPI exports it) for every path but the admin
    endpoints', which get no CORS header and whose preflight is refused (a browser then blocks
    the call)."""

    def __init__(self, app: Any, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id"],
            max_age=600,
        )
        self.enabled = bool(origins)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope.get("path", "").startswith(ADMIN_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        await self.cors(scope, receive, send)

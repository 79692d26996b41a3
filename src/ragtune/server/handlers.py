"""Every failure of the app answered in the OpenAI error shape: errors the code raises, bodies
that do not validate, and the framework's own 404, 405 and 413.

An unexpected exception (a bug) is answered 500 by :class:`CatchErrors` and logged in a bounded
form - its type, its message clipped, the last frames of its traceback - rather than passed to
the ASGI server, which logs the whole traceback: a deep recursion made one 3 KB request log
2.3 MB.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as HTTPRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragtune.errors import RagtuneError
from ragtune.server.errors import ApiError, error_for, too_large
from ragtune.server.limits import QueueFull
from ragtune.server.settings import ServerSettings, ServerState

__all__ = ["LOG_CHARS", "LOG_FRAMES", "CatchErrors", "add_error_handlers", "describe_failure"]

log = logging.getLogger("ragtune.server")

LOG_FRAMES = 12
"""Frames of an unexpected exception's traceback that are logged (the innermost ones)."""

LOG_CHARS = 8000
"""The most characters logged for one unexpected exception."""


def describe_failure(exc: BaseException) -> str:
    """An exception with the last :data:`LOG_FRAMES` frames of its traceback, clipped to
    :data:`LOG_CHARS` characters (the start and the end kept)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-LOG_FRAMES))
    if len(text) > LOG_CHARS:
        head, tail = LOG_CHARS // 4, LOG_CHARS - LOG_CHARS // 4
        text = (
            f"{text[:head]}\n[... {len(text) - LOG_CHARS} characters left out ...]\n{text[-tail:]}"
        )
    return text


class CatchErrors:
    """ASGI middleware: answer an unexpected exception with the OpenAI-shaped 500 (when the
    response has not started) and log it bounded (:func:`describe_failure`), once.

    Args:
        app: The app to guard.
        state: The server's state (the runtime decides 500 or 502 for a backend failure).
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error(
                "%s %s failed: %s",
                scope.get("method", ""),
                str(scope.get("path", ""))[:200],
                describe_failure(exc),
            )
            if not started:
                await error_for(exc, self.state.runtime).response()(scope, receive, send)


def add_error_handlers(app: FastAPI, state: ServerState) -> None:
    """Answer every failure of ``app`` with an OpenAI-shaped error."""

    async def on_error(request: HTTPRequest, exc: Exception) -> Response:
        error = error_for(exc, state.runtime)
        if error.status >= 500 and isinstance(exc, RagtuneError):
            # Unexpected exceptions are logged, clipped, by CatchErrors.
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error.response()

    async def on_validation(request: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_error(exc).response()

    async def on_http(request: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _http_error(exc, state.settings, request).response()

    handlers: dict[Any, Callable[[HTTPRequest, Exception], Awaitable[Response]]] = {
        ApiError: on_error,
        QueueFull: on_error,
        RagtuneError: on_error,
        RequestValidationError: on_validation,
        StarletteHTTPException: on_http,
        Exception: on_error,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


def _field(loc: tuple[Any, ...]) -> str:
    """``messages[0].content`` from a pydantic location (the leading ``body`` dropped)."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _validation_error(exc: RequestValidationError) -> ApiError:
    """400 for a body that is not JSON, not an object, or lacks a required field; else 422."""
    errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
    first: dict[str, Any] = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid"}
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return ApiError(
            400,
            f"the request body is not valid JSON ({detail} at character {first['loc'][-1]}): "
            'send a JSON object such as {"model": "...", "messages": [...]}.',
            code="invalid_json",
        )
    loc = tuple(first.get("loc", ()))
    if len(loc) == 1 and loc[0] == "body":
        return ApiError(
            400,
            "the request body must be a JSON object sent with 'Content-Type: application/json', "
            'such as {"model": "...", "messages": [...]}.',
            code="invalid_body",
        )
    missing = [e for e in errors if e.get("type") == "missing"]
    if missing:
        names = ", ".join(_field(tuple(e["loc"])) for e in missing)
        return ApiError(
            400,
            f"missing required field{'s' if len(missing) > 1 else ''}: {names}.",
            param=_field(tuple(missing[0]["loc"])),
            code="missing_field",
        )
    described = "; ".join(
        f"{_field(tuple(e['loc']))}: {e['msg']} (got {e.get('input')!r:.80})" for e in errors[:3]
    )
    return ApiError(422, described, param=_field(loc), code="invalid_value")


def _http_error(
    exc: StarletteHTTPException, settings: ServerSettings, request: HTTPRequest
) -> ApiError:
    if exc.status_code == 413:
        return too_large(settings.max_body_bytes)
    if exc.status_code == 404:
        return ApiError(
            404,
            f"no endpoint {request.method} {request.url.path}. This server answers "
            "/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, "
            "/v1/models/{model}, /v1/knowledge/documents/{path}, /v1/adapters/{name}/reload, "
            "/metrics and /healthz.",
            code="not_found",
        )
    if exc.status_code == 405:
        return ApiError(
            405,
            f"{request.method} is not allowed on {request.url.path}.",
            code="method_not_allowed",
            headers=dict(exc.headers or {}),
        )
    return ApiError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

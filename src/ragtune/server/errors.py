"""The server's error answers, all in OpenAI's shape: ``{"error": {"message", "type", "param",
"code"}}``, with a message that says what to change.

:func:`error_for` maps an exception from the runtime to its answer; :func:`add_error_handlers`
gives the app handlers that answer every failure that way (FastAPI's validation errors and
Starlette's 404, 405 and 413 included).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as HTTPRequest

from ragtune.errors import RagtuneError
from ragtune.generate.backend import BackendError
from ragtune.runtime.runtime import PipelineError, Runtime
from ragtune.server.documents import DocumentError
from ragtune.server.limits import QueueFull
from ragtune.server.schemas import MessageError

if TYPE_CHECKING:
    from ragtune.server.settings import ServerSettings, ServerState

__all__ = ["ApiError", "add_error_handlers", "error_for", "timeout_error", "too_large"]

log = logging.getLogger("ragtune.server")


class ApiError(Exception):
    """An error answer in OpenAI's shape.

    Attributes:
        status: The HTTP status.
        message: What went wrong and what to do about it.
        type: OpenAI's error type (``invalid_request_error``, ``authentication_error``, ...).
        param: The request field at fault, if one is.
        code: A short machine-readable code.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """``{"error": {...}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        """The JSON response carrying this error."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_for(exc: BaseException, runtime: Runtime | None = None) -> ApiError:
    """The OpenAI-shaped error for an exception from the runtime."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QueueFull):
        return ApiError(
            503,
            f"the server is busy: {exc.depth} requests are already generating or waiting for "
            f"the model. Retry in {exc.retry_after} s (Retry-After).",
            type="server_error",
            code="queue_full",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, DocumentError):
        codes = {403: "outside_sources", 404: "not_found", 422: "unreadable_document"}
        return ApiError(exc.status, str(exc), param=exc.param, code=codes.get(exc.status))
    if isinstance(exc, MessageError):
        return ApiError(400, str(exc), param=exc.param, code="invalid_messages")
    if isinstance(exc, PipelineError):
        return ApiError(400, str(exc), param="messages", code="invalid_request")
    if isinstance(exc, BackendError):
        return ApiError(502 if _remote(runtime) else 500, str(exc), "server_error", None, "backend")
    if isinstance(exc, RagtuneError):
        return ApiError(500, str(exc), type="server_error", code="ragtune_error")
    return ApiError(
        500,
        "the server failed to answer (an internal error, logged on the server); retry, and tell "
        "the operator if it persists.",
        type="server_error",
        code="internal_error",
    )


def timeout_error(settings: ServerSettings) -> ApiError:
    """504: the request passed the time limit."""
    return ApiError(
        504,
        f"the request took longer than this server's limit of {settings.timeout_s:g} s. Ask for "
        "fewer max_tokens, or retry when the server is less busy.",
        type="timeout_error",
        code="timeout",
    )


def too_large(settings: ServerSettings) -> ApiError:
    """413: the request body passed the size limit."""
    return ApiError(
        413,
        f"the request body is larger than this server's limit of {settings.max_body_bytes} "
        "bytes: send a smaller document (split it), or ask the operator to raise the limit "
        "(`ragtune serve --max-body-bytes`).",
        code="body_too_large",
    )


def add_error_handlers(app: FastAPI, state: ServerState) -> None:
    """Answer every failure of ``app`` with an OpenAI-shaped error."""

    async def on_error(request: HTTPRequest, exc: Exception) -> Response:
        error = error_for(exc, state.runtime)
        if error.status >= 500 and isinstance(exc, RagtuneError):
            # Unexpected exceptions are logged by uvicorn, which they reach after this answer.
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


def _remote(runtime: Runtime | None) -> bool:
    backend = getattr(runtime, "_backend", None)
    return bool(backend is not None and str(getattr(backend, "name", "")).startswith("remote:"))


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
        return too_large(settings)
    if exc.status_code == 404:
        return ApiError(
            404,
            f"no endpoint {request.method} {request.url.path}. This server answers "
            "/v1/chat/completions, /v1/models, /v1/knowledge/documents/{path}, "
            "/v1/adapters/{name}/reload, /metrics and /healthz.",
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

"""The server's error answers, all in OpenAI's shape: ``{"error": {"message", "type", "param",
"code"}}``, with a message that says what to change.

:func:`error_for` maps an exception from the runtime to its answer;
:func:`ragtune.server.handlers.add_error_handlers` gives the app handlers that answer every
failure that way (FastAPI's validation errors and Starlette's 404, 405 and 413 included).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from ragtune.errors import RagtuneError
from ragtune.generate.backend import BackendError
from ragtune.runtime.runtime import PipelineError, Runtime
from ragtune.server.documents import DocumentError
from ragtune.server.limits import QueueFull
from ragtune.server.schemas import ErrorBody, MessageError

__all__ = ["ApiError", "error_for", "error_responses", "timeout_error", "too_large"]

_MEANINGS = {
    400: "A malformed request: not JSON, a missing field, messages the server cannot use, or a "
    "limit passed (messages, prompt tokens, max_tokens); the message names the field.",
    401: "No API key, or one the server does not know.",
    403: "The key's scope does not allow this, or the document lies outside the sources.",
    404: "No such capability, document or adapter.",
    413: "The request body is larger than the server's limit.",
    422: "A field's value is out of range or of the wrong type, or the document cannot be read.",
    500: "An internal error (logged on the server) or a failure of the local model.",
    502: "The remote model server failed.",
    503: "Busy: the generation queue is full, or another process is writing the knowledge "
    "store; retry after Retry-After seconds.",
    504: "The request passed the server's time limit.",
}


def error_responses(*statuses: int, plain: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of these error statuses, each with the error shape.

    Args:
        statuses: The error statuses the endpoint answers.
        plain: The endpoint answers text (FastAPI would file its errors under text/plain):
            name the JSON error shape by reference instead.
    """
    if plain:
        ref = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
        return {
            s: {"description": _MEANINGS[s], "content": {"application/json": {"schema": ref}}}
            for s in statuses
        }
    return {s: {"model": ErrorBody, "description": _MEANINGS[s]} for s in statuses}


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
        codes = {
            400: "invalid_document",
            403: "outside_sources",
            404: "not_found",
            422: "unreadable_document",
        }
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


def timeout_error(limit_s: float) -> ApiError:
    """504: the request passed the time limit of ``limit_s`` seconds."""
    return ApiError(
        504,
        f"the request took longer than this server's limit of {limit_s:g} s. Ask for "
        "fewer max_tokens, or retry when the server is less busy.",
        type="timeout_error",
        code="timeout",
    )


def too_large(limit_bytes: int) -> ApiError:
    """413: the request body passed the size limit of ``limit_bytes``."""
    return ApiError(
        413,
        f"the request body is larger than this server's limit of {limit_bytes} "
        "bytes: send a smaller document (split it), or ask the operator to raise the limit "
        "(`ragtune serve --max-body-bytes`).",
        code="body_too_large",
    )


def _remote(runtime: Runtime | None) -> bool:
    backend = runtime.loaded_backend if runtime is not None else None
    return bool(backend is not None and backend.is_remote)

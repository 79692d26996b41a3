"""The HTTP server: an OpenAI-compatible chat API over the hybrid runtime, plus the endpoints that
keep it current without a restart.

=========================================  ======  ==============================================
endpoint                                   scope   what it does
=========================================  ======  ==============================================
``POST /v1/chat/completions``              read    one request through the runtime; ``model`` is
                                                   a capability or ``auto``; ``stream: true``
                                                   answers with server-sent events
``GET /v1/models``                         read    the capabilities, with the strategy of each
``PUT /v1/knowledge/documents/{path}``     write   write a document (the body), sync knowledge
``DELETE /v1/knowledge/documents/{path}``  write   remove a document, sync knowledge
``POST /v1/adapters/{name}/reload``        write   serve a retrained adapter
``GET /metrics``                           read    Prometheus metrics
``GET /healthz``                           none    liveness
=========================================  ======  ==============================================

Every error has OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with a
message that says what to change. The blocking work (retrieval, generation, sync) runs in worker
threads, so the event loop keeps answering health checks and refusals while the model works.

Build the app with :func:`create_app` (tests do) or run it with ``ragtune serve``::

    from ragtune.project import load_project
    from ragtune.runtime.pipeline import Runtime
    from ragtune.server import ServerSettings, create_app

    app = create_app(Runtime(load_project("my-review")), ServerSettings(queue_depth=4))
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as HTTPRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragtune import __version__
from ragtune.errors import RagtuneError, closest
from ragtune.generate.backend import BackendError
from ragtune.runtime.pipeline import PipelineError, Request, Result, Runtime, route, run, stream
from ragtune.server.auth import ApiKeys
from ragtune.server.documents import (
    DocumentError,
    delete_document,
    resolve_document,
    upsert_document,
)
from ragtune.server.limits import GenerationQueue, LimitBody, QueueFull
from ragtune.server.metrics import CONTENT_TYPE, Metrics
from ragtune.server.schemas import (
    ChatRequest,
    MessageError,
    completion,
    completion_chunk,
    completion_id,
    result_extras,
    to_request,
    usage,
)

__all__ = ["ApiError", "ServerSettings", "create_app"]

log = logging.getLogger("ragtune.server")
T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    """How the server guards itself.

    Attributes:
        keys: The API keys; none means no authentication (``ragtune serve`` allows that only on
            a loopback address).
        queue_depth: Generation requests admitted at once (generating or waiting for the
            model); the next one is answered 503 with ``Retry-After``.
        max_tokens_limit: The most ``max_tokens`` a request may ask for.
        default_max_tokens: ``max_tokens`` of a request that names none (capped by the limit).
        timeout_s: Seconds a request may take before it is answered 504 (a stream is cut with
            an error event).
        max_body_bytes: The largest request body, in bytes (a document upload included).
    """

    keys: ApiKeys = field(default_factory=ApiKeys)
    queue_depth: int = 8
    max_tokens_limit: int = 1024
    default_max_tokens: int = 256
    timeout_s: float = 120.0
    max_body_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("queue_depth", "max_tokens_limit", "default_max_tokens", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RagtuneError(
                    f"ServerSettings.{name} must be a whole number >= 1, got {value!r}."
                )
        if not isinstance(self.timeout_s, int | float) or not self.timeout_s > 0:
            raise RagtuneError(
                f"ServerSettings.timeout_s must be a number of seconds > 0, got {self.timeout_s!r}."
            )


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


@dataclass
class _State:
    runtime: Runtime
    settings: ServerSettings
    queue: GenerationQueue
    metrics: Metrics


def create_app(runtime: Runtime, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI app serving one runtime.

    The app does not own the runtime: close it (``runtime.close()``) when the server is done.

    Args:
        runtime: The project's runtime (its backend loads on the first generation unless it
            was loaded before).
        settings: Keys and limits; default :class:`ServerSettings`.
    """
    settings = settings or ServerSettings()
    queue = GenerationQueue(settings.queue_depth)
    state = _State(runtime, settings, queue, Metrics(queue))
    app = FastAPI(
        title="ragtune",
        version=__version__,
        summary="Knowledge in context, behaviour in weights: an OpenAI-compatible API over the "
        f"capabilities of {runtime.project.config.project or runtime.project.root.name}.",
    )
    app.state.ragtune = state

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await _too_large(settings).response()(scope, receive, send)

    # add_middleware puts each one outside the ones before: the count sees every refusal.
    app.add_middleware(LimitBody, max_bytes=settings.max_body_bytes, refuse=refuse)
    app.add_middleware(_CountRequests, metrics=state.metrics)
    _add_error_handlers(app, settings)
    read, write = _auth(settings.keys, "read"), _auth(settings.keys, "write")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: answers while the server runs (no key needed)."""
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", dependencies=[read], tags=["operations"])
    async def metrics() -> Response:
        """Prometheus metrics: requests, step latencies, tokens, queue depth."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models", dependencies=[read], tags=["openai"])
    async def models() -> dict[str, Any]:
        """The capabilities as OpenAI models; ``strategy`` says what serves each."""
        created = int(runtime.project.path.stat().st_mtime)
        data = []
        for name, cap in runtime.capabilities.items():
            chosen = route(runtime, Request("", capability=name))
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "ragtune",
                    "strategy": chosen.strategy,
                    "knowledge": list(chosen.knowledge),
                    "adapter": chosen.adapter,
                    "description": cap.description,
                }
            )
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", dependencies=[read], tags=["openai"], response_model=None)
    async def chat_completions(chat: ChatRequest) -> Response:
        """Answer a chat request through the runtime (OpenAI's schema, with ragtune's extras:
        ``citations``, ``route``, ``contract_violation``, ``timings``)."""
        deadline = anyio.current_time() + settings.timeout_s
        request = _request_for(chat, runtime, settings)
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return await _stream(state, request, include_usage, deadline)
        result = await _generate(state, lambda: run(runtime, request), deadline)
        state.metrics.result(result)
        return JSONResponse(completion(result, completion_id()))

    @app.put("/v1/knowledge/documents/{path:path}", dependencies=[write], tags=["knowledge"])
    async def put_document(
        path: str,
        request: HTTPRequest,
        capability: Annotated[
            str | None, Query(description="Only this capability's sources may hold the path.")
        ] = None,
    ) -> JSONResponse:
        """Write a knowledge document (the request body is its content) and sync incrementally:
        the next request is answered from the new text."""
        target = resolve_document(runtime.project, path, capability)
        body = await request.body()
        update = await anyio.to_thread.run_sync(upsert_document, runtime, target, body)
        return JSONResponse(
            update.to_dict(), status_code=201 if update.action == "created" else 200
        )

    @app.delete("/v1/knowledge/documents/{path:path}", dependencies=[write], tags=["knowledge"])
    async def remove_document(
        path: str,
        capability: Annotated[
            str | None, Query(description="Only this capability's sources may hold the path.")
        ] = None,
    ) -> dict[str, Any]:
        """Remove a knowledge document and sync: its passages leave the live knowledge."""
        target = resolve_document(runtime.project, path, capability)
        update = await anyio.to_thread.run_sync(delete_document, runtime, target)
        return update.to_dict()

    @app.post("/v1/adapters/{name}/reload", dependencies=[write], tags=["adapters"])
    async def reload_adapter(name: str) -> dict[str, Any]:
        """Serve an adapter as it is now on disk (after a retrain), without a restart."""
        return await _reload(runtime, name)

    return app


# -- chat ---------------------------------------------------------------------------------------


def _request_for(chat: ChatRequest, runtime: Runtime, settings: ServerSettings) -> Request:
    """The runtime request, after the checks that need the project and the limits."""
    if chat.model != "auto" and chat.model not in runtime.capabilities:
        close = closest(chat.model, runtime.capabilities)
        hint = f" Did you mean {close!r}?" if close else ""
        raise ApiError(
            404,
            f"model {chat.model!r} is not a capability of this server.{hint} Models: "
            f"{', '.join(runtime.capabilities)}, or 'auto' to route by the question "
            "(GET /v1/models lists them).",
            param="model",
            code="model_not_found",
        )
    asked = chat.max_completion_tokens or chat.max_tokens
    limit = settings.max_tokens_limit
    if asked is not None and asked > limit:
        name = "max_completion_tokens" if chat.max_completion_tokens else "max_tokens"
        raise ApiError(
            400,
            f"{name} {asked} is above this server's limit of {limit}: ask for at most {limit} "
            "(the operator sets the limit with `ragtune serve --max-tokens-limit`).",
            param=name,
            code="max_tokens_too_large",
        )
    request = to_request(chat, asked or min(settings.default_max_tokens, limit))
    if not request.question.strip():
        raise MessageError("the last user message is empty: put the question in it.")
    return request


async def _generate(state: _State, work: Callable[[], T], deadline: float) -> T:
    """Run blocking generation in a worker thread, inside the queue and the time limit.

    On the time limit the client is answered 504 at once; the worker cannot be interrupted
    mid-generation, so its queue place is given back only when it has really finished.
    """
    slot = state.queue.enter()
    started = time.perf_counter()
    began = threading.Event()

    def guarded() -> T:
        began.set()
        try:
            return work()
        finally:
            slot.release(time.perf_counter() - started)

    try:
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            return await anyio.to_thread.run_sync(guarded, abandon_on_cancel=True)
    except TimeoutError:
        if not began.is_set():  # never started: nothing will give the place back
            slot.release()
        raise _timeout(state.settings) from None


def _timeout(settings: ServerSettings) -> ApiError:
    return ApiError(
        504,
        f"the request took longer than this server's limit of {settings.timeout_s:g} s. Ask for "
        "fewer max_tokens, or retry when the server is less busy.",
        type="timeout_error",
        code="timeout",
    )


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


async def _stream(
    state: _State, request: Request, include_usage: bool, deadline: float
) -> StreamingResponse:
    """Answer with server-sent events: the role, the content deltas, a final chunk with the
    finish reason and ragtune's extras, the usage (when asked), then ``[DONE]``.

    Routing, retrieval and the prompt happen before the response starts, so their errors are
    ordinary HTTP errors. The pieces are read by a thread that owns the backend's stream and
    hands them to the event loop; when the client goes away or the time limit passes, that
    thread closes the stream, which stops a local model mid-generation.
    """
    runtime = state.runtime
    slot = state.queue.enter()
    started = time.perf_counter()
    try:
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            partial, pieces, finished = await anyio.to_thread.run_sync(
                stream, runtime, request, abandon_on_cancel=True
            )
    except TimeoutError:
        slot.release()
        raise _timeout(state.settings) from None
    except BaseException:
        slot.release()
        raise
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down)
            stop.set()

    def produce() -> None:
        try:
            for piece in pieces:
                put(("piece", piece))
                if stop.is_set():
                    break
            else:
                put(("done", next(finished)))
        except Exception as exc:  # handed to the event loop, which reports it to the client
            log.exception("streamed generation failed")
            put(("error", exc))
        finally:
            pieces.close()  # stops a local generation that is still running
            slot.release(time.perf_counter() - started)
            put(("end", None))

    threading.Thread(target=produce, name="ragtune-stream", daemon=True).start()
    ident, created, model = completion_id(), int(time.time()), partial.route.capability

    async def events() -> AsyncIterator[str]:
        failed = False
        try:
            yield _sse(
                completion_chunk(ident, created, model, {"role": "assistant", "content": ""})
            )
            while True:
                with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as waited:
                    kind, value = await inbox.get()
                if waited.cancelled_caught:
                    yield _sse(_timeout(state.settings).body())
                    failed = True
                    break
                if kind == "piece":
                    yield _sse(completion_chunk(ident, created, model, {"content": value}))
                elif kind == "done":
                    result: Result = value
                    state.metrics.result(result)
                    yield _sse(
                        completion_chunk(
                            ident, created, model, {}, result.finish_reason, **result_extras(result)
                        )
                    )
                    if include_usage:
                        yield _sse(completion_chunk(ident, created, model, usage=usage(result)))
                elif kind == "error":
                    yield _sse(_error_for(value, runtime).body())
                    failed = True
                else:  # "end"
                    break
            if not failed:
                yield _sse("[DONE]")
        finally:
            stop.set()  # the client left, the time ran out, or all was sent

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- adapters -----------------------------------------------------------------------------------


async def _reload(runtime: Runtime, name: str) -> dict[str, Any]:
    from ragtune.adapters import AdapterError, check_name, list_adapters

    try:
        check_name(name)
    except AdapterError as exc:
        raise ApiError(400, str(exc), param="name", code="invalid_adapter_name") from None
    if runtime.adapter_for(name) is None:
        trained = [a.name for a in list_adapters(runtime.adapters_root)]
        raise ApiError(
            404,
            f"no trained adapter {name!r} in this project. Trained adapters: "
            f"{', '.join(trained) or 'none'}; train one with `ragtune adapter train {name}`.",
            param="name",
            code="adapter_not_found",
        )
    backend = await anyio.to_thread.run_sync(lambda: runtime.backend)
    reload: Callable[[str], Any] | None = getattr(backend, "reload_adapter", None)
    if reload is None:
        raise ApiError(
            400,
            f"the backend {backend.name} cannot reload adapters: it serves them itself, so "
            "reload the adapter on that server (vLLM: restart it with the new --lora-modules).",
            param="name",
            code="reload_unsupported",
        )
    info = await anyio.to_thread.run_sync(reload, name)
    try:
        where = info.path.resolve().relative_to(runtime.project.root.resolve()).as_posix()
    except ValueError:
        where = str(info.path)
    return {"adapter": info.name, "path": where, "created_at": info.created_at, "reloaded": True}


# -- access -------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="An API key with read or write scope.")


def _auth(keys: ApiKeys, needed: str) -> Any:
    """A dependency that lets a request through when its key has the ``needed`` scope."""

    async def check(
        request: HTTPRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not keys.enabled:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise ApiError(
                401,
                "this server needs an API key: send it as 'Authorization: Bearer KEY' (the "
                "openai client's api_key).",
                type="authentication_error",
                code="missing_api_key",
                headers=challenge,
            )
        scope = keys.scope_of(credentials.credentials)
        if scope is None:
            raise ApiError(
                401,
                "the API key is not valid: check it against the keys the server was started with "
                "(RAGTUNE_API_KEYS or its --keys-file).",
                type="authentication_error",
                code="invalid_api_key",
                headers=challenge,
            )
        if needed == "write" and scope != "write":
            raise ApiError(
                403,
                f"this key has read scope; {request.method} {request.url.path} changes the "
                "server's state and needs a key with write scope.",
                type="permission_error",
                code="insufficient_scope",
            )

    return Depends(check)


# -- errors and metrics ---------------------------------------------------------------------------


def _error_for(exc: BaseException, runtime: Runtime | None = None) -> ApiError:
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


def _too_large(settings: ServerSettings) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than this server's limit of {settings.max_body_bytes} "
        "bytes: send a smaller document (split it), or ask the operator to raise the limit "
        "(`ragtune serve --max-body-bytes`).",
        code="body_too_large",
    )


def _http_error(
    exc: StarletteHTTPException, settings: ServerSettings, request: HTTPRequest
) -> ApiError:
    if exc.status_code == 413:
        return _too_large(settings)
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


def _add_error_handlers(app: FastAPI, settings: ServerSettings) -> None:
    def runtime_of(request: HTTPRequest) -> Runtime:
        state: _State = request.app.state.ragtune
        return state.runtime

    async def on_error(request: HTTPRequest, exc: Exception) -> Response:
        error = _error_for(exc, runtime_of(request))
        if error.status >= 500 and isinstance(exc, RagtuneError):
            # Unexpected exceptions are logged by uvicorn, which they reach after this answer.
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error.response()

    async def on_validation(request: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_error(exc).response()

    async def on_http(request: HTTPRequest, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _http_error(exc, settings, request).response()

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


class _CountRequests:
    """ASGI middleware counting answered requests by route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request(endpoint, status)

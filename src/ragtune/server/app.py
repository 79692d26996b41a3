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
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import Request as HTTPRequest
from starlette.types import Receive, Scope, Send

from ragtune import __version__
from ragtune.errors import closest
from ragtune.runtime.pipeline import Request, Result, Runtime, route, run, stream
from ragtune.server.auth import require_scope
from ragtune.server.documents import delete_document, resolve_document, upsert_document
from ragtune.server.errors import ApiError, add_error_handlers, error_for, timeout_error, too_large
from ragtune.server.limits import GenerationQueue, LimitBody
from ragtune.server.metrics import CONTENT_TYPE, CountRequests, Metrics
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
from ragtune.server.settings import ServerSettings, ServerState

__all__ = ["create_app"]

log = logging.getLogger("ragtune.server")
T = TypeVar("T")


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
    state = ServerState(runtime, settings, queue, Metrics(queue))
    app = FastAPI(
        title="ragtune",
        version=__version__,
        summary="Knowledge in context, behaviour in weights: an OpenAI-compatible API over the "
        f"capabilities of {runtime.project.config.project or runtime.project.root.name}.",
    )
    app.state.ragtune = state

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await too_large(settings).response()(scope, receive, send)

    # add_middleware puts each one outside the ones before: the count sees every refusal.
    app.add_middleware(LimitBody, max_bytes=settings.max_body_bytes, refuse=refuse)
    app.add_middleware(CountRequests, metrics=state.metrics)
    add_error_handlers(app, state)
    read, write = require_scope(settings.keys, "read"), require_scope(settings.keys, "write")

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


async def _generate(state: ServerState, work: Callable[[], T], deadline: float) -> T:
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
        raise timeout_error(state.settings) from None


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"


async def _stream(
    state: ServerState, request: Request, include_usage: bool, deadline: float
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
        raise timeout_error(state.settings) from None
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
                    yield _sse(timeout_error(state.settings).body())
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
                    yield _sse(error_for(value, runtime).body())
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

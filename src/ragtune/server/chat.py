"""The OpenAI endpoints: the models a request may name (the capabilities), and chat completions,
answered whole or streamed as server-sent events.

Generation is blocking work: it runs in a worker thread, inside the generation queue and the
request's time limit, so the event loop keeps answering while the model works.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ragtune.errors import closest
from ragtune.generate.backend import Stream
from ragtune.runtime.pipeline import route, run, stream
from ragtune.runtime.runtime import Request, Result, Runtime
from ragtune.server.auth import require_scope
from ragtune.server.budget import check_message_count, prompt_check
from ragtune.server.errors import ApiError, error_for, error_responses, timeout_error
from ragtune.server.handlers import describe_failure
from ragtune.server.limits import Slot
from ragtune.server.schemas import (
    ChatCompletion,
    ChatRequest,
    MessageError,
    ModelList,
    completion,
    completion_chunk,
    completion_id,
    result_extras,
    to_request,
    usage,
)
from ragtune.server.settings import ServerSettings, ServerState

__all__ = ["chat_router"]

log = logging.getLogger("ragtune.server")
T = TypeVar("T")


def chat_router(state: ServerState) -> APIRouter:
    """``GET /v1/models`` and ``POST /v1/chat/completions`` over the state's runtime."""
    router = APIRouter(tags=["openai"])
    read = require_scope(state.settings.keys, "read")

    @router.get(
        "/v1/models",
        dependencies=[read],
        response_model=None,
        responses={200: {"model": ModelList}, **error_responses(401)},
    )
    async def models() -> dict[str, Any]:
        """The capabilities as OpenAI models; ``strategy`` says what serves each."""
        return {"object": "list", "data": _models(state.runtime)}

    @router.post(
        "/v1/chat/completions",
        dependencies=[read],
        response_model=None,
        responses={
            200: {
                "model": ChatCompletion,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "The answer; with stream: true, server-sent events.",
            },
            **error_responses(400, 401, 404, 413, 422, 500, 502, 503, 504),
        },
    )
    async def chat_completions(chat: ChatRequest) -> Response:
        """Answer a chat request through the runtime (OpenAI's schema, with ragtune's extras:
        ``citations``, ``route``, ``contract_violation``, ``timings``)."""
        deadline = anyio.current_time() + state.settings.timeout_s
        request = _request_for(chat, state.runtime, state.settings)
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return await _stream(state, request, include_usage, deadline)
        result = await _generate(state, lambda: _checked_run(state, request), deadline)
        state.metrics.result(result)
        return JSONResponse(completion(result, completion_id()))

    return router


def _models(runtime: Runtime) -> list[dict[str, Any]]:
    """One OpenAI ``model`` per capability, with the route that serves it."""
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
    return data


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
    check_message_count(chat, settings)
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


def _checked_run(state: ServerState, request: Request) -> Result:
    """The request, its prompt counted against the model's room before it generates
    (:func:`prompt_check`)."""
    return run(state.runtime, request, prompt_check(state.runtime, request, state.settings))


def _checked_stream(
    state: ServerState, request: Request
) -> tuple[Result, Stream, Iterator[Result]]:
    """The stream, its prompt counted against the model's room before it opens."""
    return stream(state.runtime, request, prompt_check(state.runtime, request, state.settings))


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (an anyio clock time), never below zero."""
    return max(0.0, deadline - anyio.current_time())


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
        with anyio.fail_after(_left(deadline)):
            return await anyio.to_thread.run_sync(guarded, abandon_on_cancel=True)
    except TimeoutError:
        if not began.is_set():  # never started: nothing will give the place back
            slot.release()
        raise timeout_error(state.settings.timeout_s) from None


# -- streaming ----------------------------------------------------------------------------------


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
    slot = state.queue.enter()
    started = time.perf_counter()
    partial, pieces, finished = await _start_stream(state, request, slot, deadline)
    relay = _Relay(asyncio.get_running_loop())
    relay.start(pieces, finished, lambda: slot.release(time.perf_counter() - started))
    chunk = functools.partial(
        completion_chunk, completion_id(), int(time.time()), partial.route.capability
    )
    return StreamingResponse(
        _events(state, relay, chunk, include_usage, deadline),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _start_stream(
    state: ServerState, request: Request, slot: Slot, deadline: float
) -> tuple[Result, Stream, Iterator[Result]]:
    """Route, retrieve, build the prompt and open the backend's stream in a worker thread; on a
    failure the queue place is given back."""
    try:
        with anyio.fail_after(_left(deadline)):
            return await anyio.to_thread.run_sync(
                _checked_stream, state, request, abandon_on_cancel=True
            )
    except TimeoutError:
        slot.release()
        raise timeout_error(state.settings.timeout_s) from None
    except BaseException:
        slot.release()
        raise


class _Relay:
    """Hands a backend's stream from the thread that reads it to the event loop.

    The loop receives ``("piece", text)`` items, then ``("done", result)`` or ``("error",
    exception)``, then ``("end", None)``. :meth:`stop` asks the thread to close the stream.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.stopped = threading.Event()

    def start(self, pieces: Stream, finished: Iterator[Result], done: Callable[[], None]) -> None:
        """Read ``pieces`` in a thread of its own; ``done`` runs when the stream is closed."""
        threading.Thread(
            target=self._produce,
            args=(pieces, finished, done),
            name="ragtune-stream",
            daemon=True,
        ).start()

    def stop(self) -> None:
        """The client left, the time ran out, or all was sent: close the stream."""
        self.stopped.set()

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down)
            self.stopped.set()

    def _produce(
        self, pieces: Stream, finished: Iterator[Result], done: Callable[[], None]
    ) -> None:
        try:
            for piece in pieces:
                self._put(("piece", piece))
                if self.stopped.is_set():
                    break
            else:
                self._put(("done", next(finished)))
        except Exception as exc:  # handed to the event loop, which reports it to the client
            log.error("streamed generation failed: %s", describe_failure(exc))
            self._put(("error", exc))
        finally:
            pieces.close()  # stops a local generation that is still running
            done()
            self._put(("end", None))


async def _events(
    state: ServerState,
    relay: _Relay,
    chunk: Callable[..., dict[str, Any]],
    include_usage: bool,
    deadline: float,
) -> AsyncIterator[str]:
    """The server-sent events of one streamed answer, as the relay hands its items over."""
    failed = False
    try:
        yield _sse(chunk({"role": "assistant", "content": ""}))
        while True:
            with anyio.move_on_after(_left(deadline)) as waited:
                kind, value = await relay.inbox.get()
            if waited.cancelled_caught:
                yield _sse(timeout_error(state.settings.timeout_s).body())
                failed = True
                break
            if kind == "end":
                break
            for event in _events_for(state, kind, value, chunk, include_usage):
                yield event
            failed = failed or kind == "error"
        if not failed:
            yield _sse("[DONE]")
    finally:
        relay.stop()


def _events_for(
    state: ServerState,
    kind: str,
    value: Any,
    chunk: Callable[..., dict[str, Any]],
    include_usage: bool,
) -> list[str]:
    """The events for one item of the relay: a content delta, the final chunks, or the error."""
    if kind == "piece":
        return [_sse(chunk({"content": value}))]
    if kind == "done":
        result: Result = value
        state.metrics.result(result)
        events = [_sse(chunk({}, result.finish_reason, **result_extras(result)))]
        if include_usage:
            events.append(_sse(chunk(usage=usage(result))))
        return events
    return [_sse(error_for(value, state.runtime).body())]  # "error"


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"

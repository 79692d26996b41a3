"""Running a request through the runtime for an endpoint: in a worker thread, inside the
generation queue and the request's time limit, answered whole or streamed as server-sent events.

Generation is blocking work: it runs in a worker thread, so the event loop keeps answering while
the model works. The chat and the legacy completions endpoints share this; each lays its
streamed events out with a :class:`Framing` of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from fastapi.responses import StreamingResponse

from ragtune.generate.backend import GuideError, Stream
from ragtune.runtime.pipeline import run, stream
from ragtune.runtime.runtime import Request, Result
from ragtune.server.budget import prompt_check
from ragtune.server.errors import ApiError, error_for, timeout_error
from ragtune.server.handlers import describe_failure
from ragtune.server.limits import Slot
from ragtune.server.settings import ServerState

__all__ = ["Framing", "checked_run", "generate", "left", "stream_response"]

log = logging.getLogger("ragtune.server")
T = TypeVar("T")


class Framing(Protocol):
    """How an endpoint lays out the events of a streamed answer (each a JSON object)."""

    def start(self) -> list[dict[str, Any]]:
        """The events before the first piece of text."""
        ...

    def piece(self, text: str) -> list[dict[str, Any]]:
        """The events for one piece of text."""
        ...

    def done(self, result: Result) -> list[dict[str, Any]]:
        """The last events, once the answer is whole (its finish reason, extras, usage)."""
        ...


def left(deadline: float) -> float:
    """Seconds until ``deadline`` (an anyio clock time), never below zero."""
    return max(0.0, deadline - anyio.current_time())


def checked_run(state: ServerState, request: Request) -> Result:
    """The request, its prompt counted against the model's room before it generates
    (:func:`prompt_check`), with its adapter as the last reload left it."""
    with _client_guide(request):
        return run(state.runtime, request, _before_generation(state, request))


def _checked_stream(
    state: ServerState, request: Request
) -> tuple[Result, Stream, Iterator[Result]]:
    """The stream, its prompt counted against the model's room before it opens."""
    with _client_guide(request):
        return stream(state.runtime, request, _before_generation(state, request))


def _before_generation(state: ServerState, request: Request) -> Callable[[Result], None]:
    """What runs once the request is routed and its prompt built: the prompt's size check, then
    a reload of the route's adapter when another worker reloaded it
    (:meth:`~ragtune.server.reloads.AdapterReloads.catch_up`)."""
    check = prompt_check(state.runtime, request, state.settings)

    def before(result: Result) -> None:
        check(result)
        if result.route.adapter is not None:
            state.reloads.catch_up(state.runtime, result.route.adapter)

    return before


@contextmanager
def _client_guide(request: Request) -> Iterator[None]:
    """A schema the client sent that the backend cannot guide its decoding by is the client's
    400, naming where it came from; the capability's own contract failing so stays the
    server's error."""
    try:
        yield
    except GuideError as exc:
        contract = request.contract
        if contract is None:
            raise
        raise ApiError(
            400,
            f"{contract.source}: this server's model cannot be guided by the schema: {exc}",
            param=contract.source,
            code="invalid_schema",
        ) from exc


async def generate(state: ServerState, work: Callable[[], T], deadline: float) -> T:
    """Run blocking work in a worker thread, inside the queue and the time limit.

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
        with anyio.fail_after(left(deadline)):
            return await anyio.to_thread.run_sync(guarded, abandon_on_cancel=True)
    except TimeoutError:
        if not began.is_set():  # never started: nothing will give the place back
            slot.release()
        raise timeout_error(state.settings.timeout_s) from None


async def stream_response(
    state: ServerState,
    request: Request,
    framing: Callable[[Result], Framing],
    deadline: float,
) -> StreamingResponse:
    """Answer with server-sent events laid out by ``framing`` (made from the routed result),
    then ``[DONE]``.

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
    return StreamingResponse(
        _events(state, relay, framing(partial), deadline),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _start_stream(
    state: ServerState, request: Request, slot: Slot, deadline: float
) -> tuple[Result, Stream, Iterator[Result]]:
    """Route, retrieve, build the prompt and open the backend's stream in a worker thread; on a
    failure the queue place is given back."""
    try:
        with anyio.fail_after(left(deadline)):
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
    state: ServerState, relay: _Relay, framing: Framing, deadline: float
) -> AsyncIterator[str]:
    """The server-sent events of one streamed answer, as the relay hands its items over."""
    failed = False
    try:
        for event in framing.start():
            yield _sse(event)
        while True:
            with anyio.move_on_after(left(deadline)) as waited:
                kind, value = await relay.inbox.get()
            if waited.cancelled_caught:
                yield _sse(timeout_error(state.settings.timeout_s).body())
                failed = True
                break
            if kind == "end":
                break
            if kind == "piece":
                events = framing.piece(value)
            elif kind == "done":
                state.metrics.result(value)
                events = framing.done(value)
            else:  # "error"
                events = [error_for(value, state.runtime).body()]
                failed = True
            for event in events:
                yield _sse(event)
        if not failed:
            yield _sse("[DONE]")
    finally:
        relay.stop()


def _sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n"

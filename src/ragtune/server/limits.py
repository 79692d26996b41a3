"""The server's limits: how large a request may be, and how many generations it takes on at once.

A request body larger than the limit is refused with 413 before it is read (when it declares its
``Content-Length``) or as soon as the bytes received pass the limit (a chunked upload).
:class:`LimitBody` is a small ASGI middleware rather than Starlette's own body limit because
Starlette's answers an oversized request with a plain-text body of its own, whatever the app
would answer, and every error of this server must keep OpenAI's JSON shape.

Generation is the slow, scarce part (one model, a few cores): a local backend serves one request
at a time. Rather than let requests pile up behind it until clients time out, the server admits
at most ``depth`` generation requests - the one generating and those waiting for the model - and
answers the next one at once with 503 and a ``Retry-After`` header. A client can then back off
(the ``openai`` client does so by itself) or go to another replica.

A request keeps its place until its generation has really finished, even when the server gave up
waiting for it (the request time limit): the model is still busy with it, so the queue says so.

With several workers (``ragtune serve --workers N``) each worker has a queue of its own holding a
share of the bound, ``depth // N`` places (:func:`ragtune.server.workers.queue_share`), rather
than one count shared across processes: each worker has its own model, and what the bound is for
- how many requests wait behind one model - is then bounded per model, while the server as a
whole still admits no more than ``depth``. The price: a request that reaches a full worker is
refused while another worker may have a free place (the client's retry usually lands elsewhere).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyTooLarge", "GenerationQueue", "LimitBody", "QueueFull", "Slot"]


class BodyTooLarge(HTTPException):
    """A request body passed the limit (an HTTP 413, which the app's handlers answer)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


class LimitBody:
    """ASGI middleware: refuse request bodies larger than ``max_bytes`` with 413.

    Args:
        app: The app to protect.
        max_bytes: The largest body accepted.
        refuse: Answers a request whose declared ``Content-Length`` is too large, without
            calling the app (the app's own error shape); a body that grows too large while it is
            read raises :class:`BodyTooLarge` inside the app instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        refuse: Callable[[Scope, Receive, Send], Awaitable[None]],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class QueueFull(Exception):
    """Every place in the queue is taken.

    Attributes:
        depth: The queue's depth.
        retry_after: Seconds a client should wait before trying again.
    """

    def __init__(self, depth: int, retry_after: int) -> None:
        super().__init__(f"the generation queue is full ({depth} requests admitted)")
        self.depth = depth
        self.retry_after = retry_after


@dataclass
class Slot:
    """One admitted request's place in the queue; :meth:`release` gives it back (once)."""

    queue: GenerationQueue
    _released: bool = field(default=False, repr=False)

    def release(self, seconds: float | None = None) -> None:
        """Give the place back; ``seconds`` (the request's duration) informs ``Retry-After``.

        Safe to call more than once and from any thread: only the first call counts.
        """
        with self.queue._lock:
            if self._released:
                return
            self._released = True
            self.queue._admitted -= 1
            if seconds is not None:
                self.queue._record(seconds)
            self.queue._changed()


class GenerationQueue:
    """At most ``depth`` generation requests admitted at a time (generating or waiting).

    Args:
        depth: Places in the queue (>= 1).

    Example::

        queue = GenerationQueue(8)
        slot = queue.enter()        # raises QueueFull when 8 are admitted
        try:
            ...                     # generate
        finally:
            slot.release(seconds)
    """

    def __init__(self, depth: int) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"queue depth must be a whole number >= 1, got {depth!r}")
        self.depth = depth
        self._admitted = 0
        self._lock = threading.Lock()
        self._mean_seconds: float | None = None
        self._watchers: list[Callable[[int], object]] = []

    @property
    def admitted(self) -> int:
        """Requests admitted now (generating or waiting for the model)."""
        return self._admitted

    def enter(self) -> Slot:
        """Take a place, or raise :class:`QueueFull` (with a ``Retry-After``) when none is free."""
        with self._lock:
            if self._admitted >= self.depth:
                raise QueueFull(self.depth, self.retry_after())
            self._admitted += 1
            self._changed()
            return Slot(self)

    def watch(self, callback: Callable[[int], object]) -> None:
        """Call ``callback(admitted)`` now and after every change (under the queue's lock).

        The metrics' depth gauge is set so: a value written on each change, which Prometheus'
        multiprocess mode can add up over the workers (a gauge that asks a function when
        scraped cannot be read from another process).
        """
        with self._lock:
            self._watchers.append(callback)
            callback(self._admitted)

    def _changed(self) -> None:
        """Tell the watchers the new count; the caller holds the lock."""
        for callback in self._watchers:
            callback(self._admitted)

    def retry_after(self) -> int:
        """Seconds to wait before trying again: about one request's duration, 1 to 60."""
        if self._mean_seconds is None:
            return 1
        return max(1, min(60, math.ceil(self._mean_seconds)))

    def _record(self, seconds: float) -> None:
        """Fold a finished request's duration into the running mean; the caller holds the lock."""
        previous = self._mean_seconds
        self._mean_seconds = seconds if previous is None else 0.8 * previous + 0.2 * seconds

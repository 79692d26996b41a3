"""Prometheus metrics of one server, in a registry of its own.

``GET /metrics`` serves them in the text format Prometheus scrapes:

- ``ragtune_requests_total{endpoint, status}``: requests by route (the route's template, such as
  ``/v1/knowledge/documents/{path:path}``, so paths do not multiply the series) and status code;
- ``ragtune_step_seconds{capability, step}``: a latency histogram per pipeline step (``route``,
  ``retrieve``, ``select``, ``prompt``, ``generate``, ``validate`` and ``total``), from each
  result's timings;
- ``ragtune_prompt_tokens_total`` / ``ragtune_completion_tokens_total{capability}``;
- ``ragtune_queue_depth``: generation requests admitted now, beside ``ragtune_queue_limit``;
- ``ragtune_adapter_trained_timestamp_seconds{adapter}``: when the adapter version the server
  serves was trained (its manifest's ``created_at``, Unix time), set when the server first serves
  it and on each reload.

A registry per app (not the process-wide default) lets tests build many apps in one process;
:class:`CountRequests` is the middleware that counts the requests.

Several workers (``ragtune serve --workers N``) answer as one server through Prometheus'
multiprocess mode: the parent makes a folder and names it in ``PROMETHEUS_MULTIPROC_DIR`` before
the workers start, each worker writes its values there, and ``GET /metrics`` - whichever worker
answers it - reads them all (:class:`~prometheus_client.multiprocess.MultiProcessCollector`).
Counters and histograms are summed over the workers, those of exited workers included; the queue
gauges are summed over the live workers (the whole server's depth and bound); two gauges keep a
``pid`` label, one series per live worker: ``ragtune_worker_requests{endpoint}`` (requests each
worker answered, which shows how the load spreads) and
``ragtune_adapter_trained_timestamp_seconds`` (which adapter version each worker serves, so a
reload can be seen reaching all of them). The values of a worker that exited are dropped from the
live gauges (:func:`forget_exited_workers`).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragtune.runtime.runtime import Result
from ragtune.server.limits import GenerationQueue

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROCESS_ENV",
    "CountRequests",
    "Metrics",
    "forget_exited_workers",
    "multiprocess_dir",
]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The folder the workers share their values through (prometheus_client reads it when first
imported, so it must be set before a worker starts)."""

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of the text format."""

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
"""Seconds: retrieval takes milliseconds, generation on CPU seconds to minutes."""


class Metrics:
    """The server's counters, histograms and gauges.

    Args:
        queue: The generation queue whose depth the gauge reports.
    """

    def __init__(self, queue: GenerationQueue) -> None:
        self.registry = CollectorRegistry()
        self.shared = multiprocess_dir()
        """The multiprocess folder when this server is one of several workers, else None."""
        self.requests = Counter(
            "ragtune_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.steps = Histogram(
            "ragtune_step_seconds",
            "Seconds spent in each pipeline step (and in total) per request.",
            ["capability", "step"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "ragtune_prompt_tokens",
            "Prompt tokens sent to the model.",
            ["capability"],
            registry=self.registry,
        )
        self.completion_tokens = Counter(
            "ragtune_completion_tokens",
            "Tokens the model generated.",
            ["capability"],
            registry=self.registry,
        )
        depth = Gauge(
            "ragtune_queue_depth",
            "Generation requests admitted now (generating or waiting for the model).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        queue.watch(depth.set)
        limit = Gauge(
            "ragtune_queue_limit",
            "Generation requests admitted at most; more are answered 503.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        limit.set(queue.depth)
        self.adapters = Gauge(
            "ragtune_adapter_trained_timestamp_seconds",
            "When the adapter version served was trained (its manifest's created_at), set when "
            "it is first served and on each reload.",
            ["adapter"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.worker_requests = (
            Gauge(
                "ragtune_worker_requests",
                "HTTP requests answered by each worker since it started, by endpoint.",
                ["endpoint"],
                registry=self.registry,
                multiprocess_mode="liveall",
            )
            if self.shared is not None
            else None
        )

    def request(self, endpoint: str, status: int) -> None:
        """Count one answered HTTP request."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        if self.worker_requests is not None:
            self.worker_requests.labels(endpoint=endpoint).inc()

    def adapter_served(self, name: str, created_at: str | None) -> None:
        """Record the version of adapter ``name`` now served (its ``created_at``; None or an
        unreadable time leaves the gauge as it was)."""
        try:
            trained = datetime.fromisoformat(created_at) if created_at else None
        except ValueError:
            trained = None
        if trained is not None:
            self.adapters.labels(adapter=name).set(trained.timestamp())

    def result(self, result: Result) -> None:
        """Record one finished pipeline result: step times and tokens."""
        capability = result.route.capability
        for step, seconds in result.timings.items():
            self.steps.labels(capability=capability, step=step).observe(seconds)
        self.prompt_tokens.labels(capability=capability).inc(result.prompt_tokens)
        self.completion_tokens.labels(capability=capability).inc(result.completion_tokens)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format (with several workers: of them all)."""
        if self.shared is None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        forget_exited_workers(self.shared)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, path=str(self.shared))
        return generate_latest(everyone)

    def close(self) -> None:
        """Drop this worker's live gauges from the shared folder (the worker is stopping)."""
        if self.shared is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid(), str(self.shared))


def multiprocess_dir() -> Path | None:
    """The folder named by ``PROMETHEUS_MULTIPROC_DIR`` when it exists, else None (one process)."""
    named = os.environ.get(MULTIPROCESS_ENV)
    return Path(named) if named and Path(named).is_dir() else None


_PID = re.compile(r"_(\d+)\.db$")


def forget_exited_workers(folder: Path) -> list[int]:
    """Drop the live gauges of workers that exited without saying so (killed, crashed; uvicorn
    starts a new one in their place); returns their pids. Their counters stay in the sums."""
    from prometheus_client.multiprocess import mark_process_dead

    pids = {int(m.group(1)) for p in folder.glob("gauge_live*.db") if (m := _PID.search(p.name))}
    gone = [pid for pid in sorted(pids) if not _alive(pid)]
    for pid in gone:
        mark_process_dead(pid, str(folder))
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class CountRequests:
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

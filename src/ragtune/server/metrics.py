"""Prometheus metrics of one server, in a registry of its own.

``GET /metrics`` serves them in the text format Prometheus scrapes:

- ``ragtune_requests_total{endpoint, status}``: requests by route (the route's template, such as
  ``/v1/knowledge/documents/{path:path}``, so paths do not multiply the series) and status code;
- ``ragtune_step_seconds{capability, step}``: a latency histogram per pipeline step (``route``,
  ``retrieve``, ``select``, ``prompt``, ``generate``, ``validate`` and ``total``), from each
  result's timings;
- ``ragtune_prompt_tokens_total`` / ``ragtune_completion_tokens_total{capability}``;
- ``ragtune_queue_depth``: generation requests admitted now, beside ``ragtune_queue_limit``.

A registry per app (not the process-wide default) lets tests build many apps in one process;
:class:`CountRequests` is the middleware that counts the requests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragtune.runtime.runtime import Result
from ragtune.server.limits import GenerationQueue

__all__ = ["CONTENT_TYPE", "CountRequests", "Metrics"]

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
        )
        depth.set_function(lambda: queue.admitted)
        limit = Gauge(
            "ragtune_queue_limit",
            "Generation requests admitted at most; more are answered 503.",
            registry=self.registry,
        )
        limit.set(queue.depth)

    def request(self, endpoint: str, status: int) -> None:
        """Count one answered HTTP request."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def result(self, result: Result) -> None:
        """Record one finished pipeline result: step times and tokens."""
        capability = result.route.capability
        for step, seconds in result.timings.items():
            self.steps.labels(capability=capability, step=step).observe(seconds)
        self.prompt_tokens.labels(capability=capability).inc(result.prompt_tokens)
        self.completion_tokens.labels(capability=capability).inc(result.completion_tokens)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


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

"""The operations endpoints: liveness (``GET /healthz``) and Prometheus metrics (``GET
/metrics``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from ragtune import __version__
from ragtune.server.auth import require_scope
from ragtune.server.errors import error_responses
from ragtune.server.metrics import CONTENT_TYPE
from ragtune.server.settings import ServerState

__all__ = ["operations_router"]


def operations_router(state: ServerState) -> APIRouter:
    """``GET /healthz`` (no key needed) and ``GET /metrics`` (read scope)."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: answers while the server runs (no key needed)."""
        return {"status": "ok", "version": __version__}

    @router.get(
        "/metrics",
        dependencies=[require_scope(state.settings.keys, "read")],
        response_class=PlainTextResponse,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "The metrics in Prometheus' text format.",
            },
            **error_responses(401, plain=True),
        },
    )
    async def metrics() -> Response:
        """Prometheus metrics: requests, step latencies, tokens, queue depth."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    return router

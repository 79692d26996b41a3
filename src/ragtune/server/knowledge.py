"""The knowledge endpoints: write or remove a document through the API, and sync at once (the
checks and the sync are :mod:`ragtune.server.documents`)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.requests import Request as HTTPRequest

from ragtune.server.auth import require_scope
from ragtune.server.documents import delete_document, resolve_document, upsert_document
from ragtune.server.settings import ServerState

__all__ = ["knowledge_router"]

OnlyCapability = Annotated[
    str | None, Query(description="Only this capability's sources may hold the path.")
]


def knowledge_router(state: ServerState) -> APIRouter:
    """``PUT`` and ``DELETE /v1/knowledge/documents/{path}`` (write scope)."""
    router = APIRouter(tags=["knowledge"])
    write = require_scope(state.settings.keys, "write")
    runtime = state.runtime

    @router.put("/v1/knowledge/documents/{path:path}", dependencies=[write])
    async def put_document(
        path: str, request: HTTPRequest, capability: OnlyCapability = None
    ) -> JSONResponse:
        """Write a knowledge document (the request body is its content) and sync incrementally:
        the next request is answered from the new text."""
        target = resolve_document(runtime.project, path, capability)
        body = await request.body()
        update = await anyio.to_thread.run_sync(upsert_document, runtime, target, body)
        return JSONResponse(
            update.to_dict(), status_code=201 if update.action == "created" else 200
        )

    @router.delete("/v1/knowledge/documents/{path:path}", dependencies=[write])
    async def remove_document(path: str, capability: OnlyCapability = None) -> dict[str, Any]:
        """Remove a knowledge document and sync: its passages leave the live knowledge."""
        target = resolve_document(runtime.project, path, capability)
        update = await anyio.to_thread.run_sync(delete_document, runtime, target)
        return update.to_dict()

    return router

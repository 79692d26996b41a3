"""The knowledge endpoints: write or remove a document through the API, and sync at once (the
checks and the sync are :mod:`ragtune.server.documents`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from starlette.requests import Request as HTTPRequest

from ragtune.knowledge.store import StoreError
from ragtune.server.auth import require_scope
from ragtune.server.documents import (
    DocumentTarget,
    check_raw_path,
    delete_document,
    resolve_document,
    upsert_document,
)
from ragtune.server.errors import ApiError, error_responses
from ragtune.server.schemas import DocumentChange
from ragtune.server.settings import ServerState

__all__ = ["WRITE_WAIT_S", "knowledge_router"]

WRITE_WAIT_S = 5.0
"""How long a document write waits for another writer of the knowledge store (a CLI sync or
build) before it is answered 503 with ``Retry-After``: while it waits it holds nothing, so
searches and chat go on."""

T = TypeVar("T")

OnlyCapability = Annotated[
    str | None, Query(description="Only this capability's sources may hold the path.")
]
DocumentPath = Annotated[
    str,
    Path(
        description="The document's path in the project, under a capability's sources.",
        examples=["knowledge/dpa.md"],
    ),
]


def knowledge_router(state: ServerState) -> APIRouter:
    """``PUT`` and ``DELETE /v1/knowledge/documents/{path}`` (write scope)."""
    router = APIRouter(tags=["knowledge"])
    write = require_scope(state.settings.keys, "write")
    runtime = state.runtime

    @router.put(
        "/v1/knowledge/documents/{path:path}",
        dependencies=[write],
        response_model=None,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The document's content (text as UTF-8, or a PDF).",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
        responses={
            200: {"model": DocumentChange, "description": "The document was replaced."},
            201: {"model": DocumentChange, "description": "The document was created."},
            **error_responses(400, 401, 403, 404, 413, 422, 500, 503),
        },
    )
    async def put_document(
        path: DocumentPath, request: HTTPRequest, capability: OnlyCapability = None
    ) -> JSONResponse:
        """Write a knowledge document (the request body is its content) and sync incrementally:
        the next request is answered from the new text."""
        target = _target(request, path, capability)
        body = await request.body()
        update = await anyio.to_thread.run_sync(_writing, upsert_document, target, body)
        return JSONResponse(
            update.to_dict(), status_code=201 if update.action == "created" else 200
        )

    @router.delete(
        "/v1/knowledge/documents/{path:path}",
        dependencies=[write],
        response_model=None,
        responses={
            200: {"model": DocumentChange, "description": "The document was removed."},
            **error_responses(400, 401, 403, 404, 422, 500, 503),
        },
    )
    async def remove_document(
        path: DocumentPath, request: HTTPRequest, capability: OnlyCapability = None
    ) -> dict[str, Any]:
        """Remove a knowledge document and sync: its passages leave the live knowledge."""
        target = _target(request, path, capability)
        update = await anyio.to_thread.run_sync(_writing, delete_document, target)
        return update.to_dict()

    def _writing(work: Callable[..., T], *args: Any) -> T:
        """``work(runtime, *args)`` holding the store's writer lock, taken before the runtime's
        own lock: a CLI sync in another process makes the write wait (searches go on) up to
        :data:`WRITE_WAIT_S`, then answers 503 with ``Retry-After``."""
        store = runtime.knowledge.store
        hold = store.writing(WRITE_WAIT_S)
        try:
            hold.__enter__()
        except StoreError as exc:
            raise ApiError(
                503,
                f"{exc} Retry in {int(WRITE_WAIT_S)} s (Retry-After).",
                type="server_error",
                code="store_busy",
                headers={"Retry-After": str(int(WRITE_WAIT_S))},
            ) from None
        try:
            return work(runtime, *args)
        finally:
            hold.__exit__(None, None, None)

    def _target(request: HTTPRequest, path: str, capability: str | None) -> DocumentTarget:
        check_raw_path(request.scope.get("raw_path") or b"")
        return resolve_document(runtime.project, path, capability)

    return router

"""The adapters endpoint: serve an adapter as it is on disk now (after a retrain), without a
restart - in every worker of the server (:mod:`ragtune.server.reloads` carries the reload to the
other workers)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter

from ragtune.generate.backend import BackendError
from ragtune.runtime.runtime import Runtime
from ragtune.server.auth import require_scope
from ragtune.server.errors import ApiError, error_responses
from ragtune.server.reloads import AdapterReloads
from ragtune.server.schemas import AdapterReloaded
from ragtune.server.settings import ServerState

__all__ = ["adapters_router"]


def adapters_router(state: ServerState) -> APIRouter:
    """``POST /v1/adapters/{name}/reload`` (write scope)."""
    router = APIRouter(tags=["adapters"])

    @router.post(
        "/v1/adapters/{name}/reload",
        dependencies=[require_scope(state.settings.keys, "write")],
        response_model=None,
        responses={200: {"model": AdapterReloaded}, **error_responses(400, 401, 403, 404, 422)},
    )
    async def reload_adapter(name: str) -> dict[str, Any]:
        """Serve an adapter as it is now on disk (after a retrain), without a restart."""
        return await _reload(state.runtime, state.reloads, name)

    return router


async def _reload(runtime: Runtime, reloads: AdapterReloads, name: str) -> dict[str, Any]:
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
    if backend.is_remote:
        raise ApiError(
            400,
            f"the backend {backend.name} cannot reload adapters: it serves them itself, so "
            "reload the adapter on that server (vLLM: restart it with the new --lora-modules).",
            param="name",
            code="reload_unsupported",
        )
    try:
        created_at = await anyio.to_thread.run_sync(reloads.reload, backend, name)
    except BackendError as exc:  # the adapter on disk cannot be served: the old one stays
        raise ApiError(400, str(exc), param="name", code="reload_failed") from None
    folder = runtime.adapters_root / name
    try:
        where = folder.resolve().relative_to(runtime.project.root.resolve()).as_posix()
    except ValueError:
        where = str(folder)
    return {"adapter": name, "path": where, "created_at": created_at, "reloaded": True}

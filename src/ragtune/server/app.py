"""The HTTP server: an OpenAI-compatible chat API over the hybrid runtime, plus the endpoints that
keep it current without a restart.

=========================================  ======  ==============================================
endpoint                                   scope   what it does
=========================================  ======  ==============================================
``POST /v1/chat/completions``              read    one request through the runtime; ``model`` is
                                                   a capability or ``auto``; ``stream: true``
                                                   answers with server-sent events; every
                                                   OpenAI field honoured or refused (400)
``POST /v1/completions``                   read    the same for a prompt (OpenAI's legacy API)
``POST /v1/embeddings``                    read    vectors from the knowledge base's embedder
``GET /v1/models``                         read    the capabilities, with the strategy of each
``GET /v1/models/{model}``                 read    one capability
``PUT /v1/knowledge/documents/{path}``     write   write a document (the body), sync knowledge
``DELETE /v1/knowledge/documents/{path}``  write   remove a document, sync knowledge
``POST /v1/adapters/{name}/reload``        write   serve a retrained adapter
``GET /metrics``                           read    Prometheus metrics
``GET /healthz``                           none    liveness
=========================================  ======  ==============================================

Each group of endpoints is a router of its own (:mod:`~ragtune.server.chat`,
:mod:`~ragtune.server.completions`, :mod:`~ragtune.server.embeddings`,
:mod:`~ragtune.server.knowledge`, :mod:`~ragtune.server.adapters`,
:mod:`~ragtune.server.operations`); :func:`create_app` puts them together behind the limits, the
request count and the error handlers. Every error has OpenAI's shape (:mod:`ragtune.server.errors`).
The blocking work (retrieval, generation, sync) runs in worker threads, so the event loop keeps
answering health checks and refusals while the model works.

Build the app with :func:`create_app` (tests do) or run it with ``ragtune serve``::

    from ragtune.project import load_project
    from ragtune.runtime.runtime import Runtime
    from ragtune.server import ServerSettings, create_app

    app = create_app(Runtime(load_project("my-review")), ServerSettings(queue_depth=4))
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from ragtune import __version__
from ragtune.runtime.runtime import Runtime
from ragtune.server.adapters import adapters_router
from ragtune.server.chat import chat_router
from ragtune.server.completions import completions_router
from ragtune.server.embeddings import embeddings_router
from ragtune.server.errors import too_large
from ragtune.server.handlers import CatchErrors, add_error_handlers
from ragtune.server.knowledge import knowledge_router
from ragtune.server.limits import GenerationQueue, LimitBody
from ragtune.server.metrics import CountRequests, Metrics
from ragtune.server.operations import operations_router
from ragtune.server.reloads import RELOADS, AdapterReloads
from ragtune.server.settings import ServerSettings, ServerState

__all__ = ["create_app"]


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
    metrics = Metrics(queue)
    reloads = AdapterReloads(runtime.project.state_dir / RELOADS, metrics.adapter_served)
    state = ServerState(runtime, settings, queue, metrics, reloads)
    app = FastAPI(
        title="ragtune",
        version=__version__,
        summary="Knowledge in context, behaviour in weights: an OpenAI-compatible API over the "
        f"capabilities of {runtime.project.config.project or runtime.project.root.name}.",
    )
    app.state.ragtune = state
    _add_guards(app, state)
    add_error_handlers(app, state)
    routers = (
        operations_router,
        chat_router,
        completions_router,
        embeddings_router,
        knowledge_router,
        adapters_router,
    )
    for router in routers:
        app.include_router(router(state))
    return app


def _add_guards(app: FastAPI, state: ServerState) -> None:
    """The catch of unexpected errors, the body limit outside it, and the request count
    outside both (so the count sees every refusal and every 500)."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await too_large(state.settings.max_body_bytes).response()(scope, receive, send)

    # add_middleware puts each one outside the ones before.
    app.add_middleware(CatchErrors, state=state)
    app.add_middleware(LimitBody, max_bytes=state.settings.max_body_bytes, refuse=refuse)
    app.add_middleware(CountRequests, metrics=state.metrics)

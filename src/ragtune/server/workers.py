"""Several server workers on one port (``ragtune serve --workers N``), serving one project.

uvicorn's own multiprocess mode runs the workers: the parent binds the port and starts N
processes that accept from it (and starts a new one when one dies). Each worker imports
:func:`worker_app`, which builds a :class:`~ragtune.runtime.runtime.Runtime` of its own - its own
store connection, vector index and model copy, so memory grows N times - and the app around it.

What the workers share, and how:

- the knowledge: the project's store (SQLite in WAL mode, or PostgreSQL). A document written
  through one worker is synced into the store; every search of every worker compares the store's
  chunk signature with its vector index and catches up first, so the next request anywhere is
  answered from the new text;
- adapter reloads: a reload record under ``.ragtune/reloads/`` (:mod:`ragtune.server.reloads`);
- the metrics: Prometheus' multiprocess mode in a private temporary folder the parent makes and
  removes at exit (:mod:`ragtune.server.metrics`);
- the generation queue's bound: split, each worker admits ``queue // workers`` requests
  (:func:`queue_share`): a worker has one model, so its share bounds how many requests wait
  behind that model, and the server as a whole never admits more than ``queue``.

The parent passes the project and the settings (API keys included) to the workers in a JSON file
readable by the user alone, inside that same temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.errors import RagtuneError
from ragtune.server.auth import ApiKeys
from ragtune.server.metrics import MULTIPROCESS_ENV
from ragtune.server.settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["CONFIG_ENV", "queue_share", "run_workers", "worker_app"]

CONFIG_ENV = "RAGTUNE_SERVE_CONFIG"
"""Names the JSON file the parent wrote for its workers: the project file and the settings."""


def queue_share(queue: int, workers: int) -> int:
    """Generation requests each of ``workers`` workers admits out of a server-wide ``queue``.

    Raises:
        RagtuneError: Fewer places than workers (each worker needs one).
    """
    if workers > queue:
        raise RagtuneError(
            f"--queue {queue} is less than --workers {workers}: each worker admits a share of "
            f"the queue and needs at least one place; pass --queue {workers} or more."
        )
    return queue // workers


def run_workers(
    project_file: Path, host: str, port: int, settings: ServerSettings, workers: int
) -> None:
    """Serve the project from ``workers`` processes on ``host:port`` until stopped.

    Args:
        project_file: The project's ``ragtune.yaml``.
        host: The address to bind.
        port: The TCP port.
        settings: The server-wide settings; each worker admits :func:`queue_share` of
            ``settings.queue_depth``.
        workers: Worker processes (>= 2).
    """
    import uvicorn

    share = queue_share(settings.queue_depth, workers)
    folder = Path(tempfile.mkdtemp(prefix="ragtune-serve-"))  # 0700: the keys are inside
    metrics = folder / "metrics"
    metrics.mkdir()
    config = folder / "serve.json"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(
            {
                "project": str(project_file),
                "settings": _settings_dict(settings, queue_depth=share),
            },
            out,
        )
    saved = {name: os.environ.get(name) for name in (MULTIPROCESS_ENV, CONFIG_ENV)}
    os.environ[MULTIPROCESS_ENV] = str(metrics)  # the workers inherit both
    os.environ[CONFIG_ENV] = str(config)
    try:
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn calls it in each worker process): a runtime of its own,
    the embedder and the model loaded before the worker accepts requests."""
    from ragtune.project import load_project
    from ragtune.runtime.runtime import Runtime
    from ragtune.server.app import create_app

    named = os.environ.get(CONFIG_ENV)
    if not named:
        raise RagtuneError(
            f"{CONFIG_ENV} is not set: worker_app is started by `ragtune serve --workers N`."
        )
    data = json.loads(Path(named).read_text(encoding="utf-8"))
    runtime = Runtime(load_project(data["project"]))
    try:
        runtime.embedder  # noqa: B018 - loads on first access
        runtime.backend  # noqa: B018
        app = create_app(runtime, _settings_from(data["settings"]))
    except BaseException:
        runtime.close(backend=True)
        raise
    state = app.state.ragtune

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.metrics.close()
            runtime.close(backend=True)

    app.router.lifespan_context = lifespan
    return app


def _settings_dict(settings: ServerSettings, **changes: Any) -> dict[str, Any]:
    """The settings as JSON (the keys as a plain mapping), with ``changes``."""
    data = {f.name: getattr(settings, f.name) for f in fields(settings)}
    data["keys"] = dict(settings.keys.keys)
    data.update(changes)
    return data


def _settings_from(data: dict[str, Any]) -> ServerSettings:
    """The settings back from :func:`_settings_dict`'s JSON."""
    return ServerSettings(**{**data, "keys": ApiKeys(dict(data["keys"]))})

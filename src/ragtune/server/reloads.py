"""Adapter reloads that reach every worker of the server.

A reload reaches the process that answered it at once. The other workers (``ragtune serve
--workers N``, or another server on the same project) learn of it from a reload record:
``.ragtune/reloads/<adapter>.json``, written whole under a new token by each successful reload
(a temporary file, then :func:`os.replace`; two reloads at once take turns on a lock file beside
the records). Before a worker generates with an adapter it reads that small file and compares
the token with the one it last served (:meth:`AdapterReloads.catch_up`, a few microseconds);
when it moved, the worker reloads the adapter from disk first. A reload that fails leaves no
record, so the other workers keep the version they serve.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ragtune.generate.backend import Backend, BackendError
from ragtune.runtime.runtime import Runtime

__all__ = ["RELOADS", "AdapterReloads"]

RELOADS = "reloads"
"""The folder under ``.ragtune/`` holding one reload record per reloaded adapter."""

log = logging.getLogger("ragtune.server")

_UNSERVED = object()  # no version of the adapter served by this process yet


class AdapterReloads:
    """Which reload of each adapter this process serves, and the records all workers share.

    Args:
        folder: The records' folder (``.ragtune/reloads``).
        served: Called with an adapter's name and ``created_at`` whenever this process starts
            serving a version of it (the metrics' gauge).
    """

    def __init__(
        self, folder: Path, served: Callable[[str, str | None], None] = lambda *_: None
    ) -> None:
        self.folder = folder
        self._served = served
        self._tokens: dict[str, object] = {}  # adapter -> the record's token when last loaded
        self._lock = threading.Lock()

    def reload(self, backend: Backend, name: str) -> str | None:
        """Reload ``name`` here, then record the reload for the other workers; returns when the
        version now served was trained.

        Raises:
            BackendError: The adapter on disk cannot be served (nothing is recorded).
        """
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        # Reloads in two workers at once take turns, so the record left is that of the reload
        # that read the disk last: the worker whose record was replaced reloads once more.
        with self._lock, FileLock(str(self.folder / ".lock")):
            created_at = backend.reload_adapter(name)
            self._tokens[name] = self._record(name, created_at)
        self._served(name, created_at)
        return created_at

    def catch_up(self, runtime: Runtime, name: str) -> None:
        """Before a generation with adapter ``name``: reload it when another worker did since
        this process loaded it. The first use of an adapter here only notes the record (the
        backend loads the adapter from disk as it is now)."""
        token = self._token(name)
        if self._tokens.get(name, _UNSERVED) == token:
            return
        backend = runtime.backend
        if backend.is_remote:  # its server loads adapters itself
            return
        with self._lock:
            seen = self._tokens.get(name, _UNSERVED)
            if seen == token:
                return
            if seen is _UNSERVED:
                created_at = _created_at(runtime, name)
            else:
                try:
                    created_at = backend.reload_adapter(name)
                except BackendError as exc:  # the version loaded stays in service
                    log.warning("adapter %s was reloaded by another worker, but not here: %s",
                                name, exc)  # fmt: skip
                    self._tokens[name] = token
                    return
            self._tokens[name] = token
        self._served(name, created_at)

    def _token(self, name: str) -> str | None:
        """The token of the adapter's reload record, None when it has none (never reloaded)."""
        try:
            record = json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        token = record.get("token") if isinstance(record, dict) else None
        return token if isinstance(token, str) else None

    def _record(self, name: str, created_at: str | None) -> str:
        """Write a new reload record for ``name`` whole; returns its token."""
        token = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        record = {"adapter": name, "token": token, "created_at": created_at,
                  "pid": os.getpid(), "at": time.time()}  # fmt: skip
        target = self.folder / f"{name}.json"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return token


def _created_at(runtime: Runtime, name: str) -> str | None:
    """When the adapter on disk was trained (its manifest), None when unreadable."""
    from ragtune.adapters import AdapterError, load_manifest

    try:
        return load_manifest(runtime.adapters_root, name).created_at or None
    except AdapterError:
        return None

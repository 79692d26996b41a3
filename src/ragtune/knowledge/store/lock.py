"""One writer at a time: an OS file lock beside each file that several processes write.

The knowledge store (``knowledge.db``) and each derived index (``knowledge.usearch``) have a
lock file beside them (``knowledge.db.lock``). A sync holds the store's lock from the moment it
reads what is live until its snapshot is complete, so two syncs - two ``ragtune knowledge sync``,
a sync and ``ragtune build``, a sync and the server's live upserts - run one after the other
instead of writing the same document versions into one snapshot. The lock is the kernel's
(``flock``, through :mod:`filelock`): a process that is killed lets go of it at once, so a crash
never leaves a stale lock behind.

A sync that finds the store's lock taken says so on the ``ragtune.knowledge`` logger (stderr
when nothing else is configured) and waits; after :func:`lock_timeout` seconds it gives up with a
:class:`~ragtune.knowledge.store.StoreError` that names the lock file. A process saving the
vector index does not wait: when another holds the index's lock it leaves the saving to that one
(:meth:`WriterLock.try_hold`). Readers never take a lock: SQLite's WAL gives them a consistent
snapshot, and index files are replaced atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ragtune.knowledge.store import StoreError

log = logging.getLogger("ragtune.knowledge")

LOCK_TIMEOUT_ENV = "RAGTUNE_LOCK_TIMEOUT"
"""The environment variable that sets how long a writer waits for another, in seconds."""
DEFAULT_LOCK_TIMEOUT = 600.0

__all__ = ["DEFAULT_LOCK_TIMEOUT", "LOCK_TIMEOUT_ENV", "WriterLock", "lock_timeout"]


def lock_timeout() -> float:
    """Seconds a writer waits for another: ``RAGTUNE_LOCK_TIMEOUT``, else 600."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise StoreError(
            f"{LOCK_TIMEOUT_ENV}={raw!r}: give the seconds a writer waits for another, a number "
            "of 0 or more."
        )
    return value


class WriterLock:
    """The lock that serialises the writers of one file (``<file>.lock`` beside it).

    Re-entrant within a thread: a sync that holds it may call code that takes it again. Other
    threads of the same process, and other processes, wait.
    """

    def __init__(self, path: Path, what: str) -> None:
        from filelock import FileLock

        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.what = what  # "the knowledge store", "the vector index": for messages
        self._lock = FileLock(str(self.lock_path), thread_local=True)

    @contextmanager
    def hold(self, timeout: float | None = None, *, wait_message: bool = True) -> Iterator[None]:
        """Hold the lock for the block; wait for another writer up to ``timeout`` seconds.

        Args:
            timeout: Seconds to wait; None: :func:`lock_timeout`.
            wait_message: Log a line when the lock is taken, before waiting.

        Raises:
            StoreError: Another writer held the lock longer than ``timeout``.
        """
        from filelock import Timeout

        limit = lock_timeout() if timeout is None else timeout
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if wait_message and limit > 0:
                log.warning(
                    "%s: another process is writing %s (a sync, a build or the server's "
                    "document upserts); waiting up to %g s for it to finish (%s sets the "
                    "limit).",
                    self.path,
                    self.what,
                    limit,
                    LOCK_TIMEOUT_ENV,
                )
            try:
                self._lock.acquire(timeout=limit, poll_interval=0.05)
            except Timeout:
                raise StoreError(
                    f"{self.path}: another process has been writing {self.what} for more than "
                    f"{limit:g} s (it holds {self.lock_path}); nothing was changed. Run the "
                    f"command again when it has finished, or wait longer with "
                    f"{LOCK_TIMEOUT_ENV}=SECONDS."
                ) from None
        try:
            yield
        finally:
            self._lock.release()

    def try_hold(self) -> _TryHold:
        """Hold the lock if it is free now; ``with lock.try_hold() as held:`` says whether."""
        return _TryHold(self)


class _TryHold:
    """Context manager of :meth:`WriterLock.try_hold`."""

    def __init__(self, lock: WriterLock) -> None:
        self.lock = lock
        self.held = False

    def __enter__(self) -> bool:
        from filelock import Timeout

        self.lock.lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock._lock.acquire(timeout=0)
        except Timeout:
            return False
        self.held = True
        return True

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.lock._lock.release()
            self.held = False

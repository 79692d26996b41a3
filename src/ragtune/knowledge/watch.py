"""``ragtune knowledge watch``: re-sync within a second of a source file changing (watchfiles)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.sources import source_folder
from ragtune.knowledge.sync import SyncResult

DEBOUNCE_MS = 150  # changes closer than this are one sync: an editor's save is several events


def watched_roots(kb: KnowledgeBase) -> list[Path]:
    """The folders to watch: the outermost of the folders holding each source's files."""
    roots: set[Path] = set()
    for capability in kb.project.config.capabilities:
        for ref in capability.sources:
            folder = source_folder(kb.project.root, ref)
            if folder is not None:  # a tool is called at query time: nothing to watch
                roots.add(folder)
    # Watch the outermost folders only: a nested folder is covered by its parent.
    ordered = sorted(roots, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for root in ordered:
        if not any(root.is_relative_to(k) for k in kept) and root.exists():
            kept.append(root)
    return kept


def watch(
    kb: KnowledgeBase,
    on_sync: Callable[[SyncResult], None],
    *,
    stop: threading.Event | None = None,
    ready: Callable[[list[Path]], None] | None = None,
) -> None:
    """Sync now, then again after every change under the source folders, until ``stop`` is set."""
    from watchfiles import watch as watch_files

    on_sync(kb.sync())
    roots = watched_roots(kb)
    if ready is not None:
        ready(roots)
    for _changes in watch_files(
        *roots,
        debounce=DEBOUNCE_MS,
        step=50,
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=False,
        watch_filter=lambda _change, path: not Path(path).name.startswith("."),
    ):
        on_sync(kb.sync())

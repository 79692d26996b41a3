"""``ragtune knowledge watch``: re-sync within a second of a source file changing (watchfiles)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.sync import SyncResult
from ragtune.knowledge.tools import is_tool_ref

DEBOUNCE_MS = 150  # changes closer than this are one sync: an editor's save is several events


def watched_roots(kb: KnowledgeBase) -> list[Path]:
    """The folders to watch: each source folder, or the folder of each source file or glob."""
    roots: set[Path] = set()
    for capability in kb.project.config.capabilities:
        for ref in capability.sources:
            if is_tool_ref(ref):
                continue  # called at query time, nothing to watch
            base = ref.split("#", 1)[0]
            head = base.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
            path = (kb.project.root / head).resolve()
            roots.add(path if path.is_dir() else path.parent)
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

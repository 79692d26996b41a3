"""A document's history read from a real store: versions, their snapshots, and diffs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.knowledge.history import document_history
from ragtune.knowledge.store import StoreError
from ragtune.project import load_project

PROJECT = """
version: 1
project: history
knowledge:
  embedder: hashing
capabilities:
  - name: policies
    description: Answer questions about our current policies.
    sources: [docs/]
"""


def test_versions_snapshots_and_the_diff_between_any_two(
    write_project: Callable[..., Path],
) -> None:
    folder = write_project(PROJECT)
    (folder / "docs").mkdir()
    doc = folder / "docs" / "leave.md"
    kb = KnowledgeBase(load_project(folder), embedder=HashingEmbedder(64))
    try:
        for days in ("twenty", "twenty-two", "twenty-five"):
            doc.write_text(f"# Leave\n\n## 1. Annual\n\nEmployees get {days} days a year.\n")
            kb.sync()
        history = document_history(kb.store, "docs/leave.md")
        assert [(v.version, v.snapshot, v.retired_at_snapshot) for v in history.versions] == [
            (1, 1, 2), (2, 2, 3), (3, 3, None),
        ]  # fmt: skip
        assert all(v.synced_at and v.chunks >= 1 for v in history.versions)
        assert history.compared == (2, 3)  # the last two by default
        assert "-Employees get twenty-two days" in history.diff
        assert "+Employees get twenty-five days" in history.diff

        first_to_last = document_history(kb.store, "docs/leave.md", (1, 3))
        assert "-Employees get twenty days" in first_to_last.diff
        assert first_to_last.to_dict()["versions"][0]["version"] == 1

        with pytest.raises(StoreError, match=r"--diff 1 7: versions are 1, 2, 3"):
            document_history(kb.store, "docs/leave.md", (1, 7))
        with pytest.raises(StoreError, match=r"no document 'docs/leav.md'.*docs/leave.md"):
            document_history(kb.store, "docs/leav.md")
    finally:
        kb.close()

"""Retrievers over a project's knowledge for the frameworks users already have (optional extras:
``ragtune[langchain]``, ``ragtune[llamaindex]``).

Both return the passages :meth:`ragtune.api.Ragtune.search` finds, each with its citation and
snapshot metadata: ``document``, ``section``, ``title``, ``version``, ``snapshot``, ``chunk_id``,
``score`` and ``citation`` (``knowledge/dpa.md > 6. Personal Data Breach (version 2)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragtune.knowledge.search import Hit

__all__ = ["hit_metadata"]


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's provenance as flat metadata (what both retrievers attach to each passage)."""
    return {
        "document": hit.document,
        "section": hit.section,
        "title": hit.title,
        "version": hit.version,
        "snapshot": hit.snapshot,
        "chunk_id": hit.chunk_id,
        "score": hit.score,
        "citation": f"{hit.document} > {hit.section} (version {hit.version})",
    }

"""A project's knowledge: its store, its embedder and its vector index, opened together."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.errors import RagtuneError
from ragtune.knowledge.index import VectorIndex
from ragtune.knowledge.search import Hit, Mode, filter_paths, search
from ragtune.knowledge.store import ChunkRow, StoreError
from ragtune.knowledge.sync import (
    Progress,
    SyncPlan,
    SyncResult,
    open_project_store,
    plan_sync,
    sync,
)
from ragtune.knowledge.tools import Tool, is_tool_ref, load_tool
from ragtune.project import Project

if TYPE_CHECKING:
    from ragtune.context import Passage
    from ragtune.knowledge.embed import Embedder


class KnowledgeBase:
    """The knowledge of one project: its store (``.ragtune/knowledge.db`` by default, or
    PostgreSQL) and, for a store that does not search vectors itself, its HNSW index file.

    The embedder is loaded only when something needs vectors (a sync that embeds, a search).
    """

    def __init__(self, project: Project, embedder: Embedder | None = None) -> None:
        self.project = project
        self.store = open_project_store(project)
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The project's embedder (``knowledge.embedder``); its model loads on the first text
        it embeds (:class:`~ragtune.knowledge.embed.LazyEmbedder`), so a sync with nothing to
        embed and a keyword search load none."""
        if self._embedder is None:
            from ragtune.knowledge.embed import LazyEmbedder, embedder_name

            settings = self.project.config.knowledge
            options = {"api_key_env": settings.api_key_env}
            if settings.base_url:
                options["base_url"] = settings.base_url
            recorded = self.store.get_meta("dim")
            same = self.store.get_meta("embedder") == embedder_name(settings.embedder)
            dim = int(recorded) if same and recorded and recorded.isdigit() else None
            self._embedder = LazyEmbedder(settings.embedder, options, dim=dim)
        return self._embedder

    @cached_property
    def index_path(self) -> Path:
        """``.ragtune/knowledge.usearch`` beside the project file."""
        return self.project.state_dir / "knowledge.usearch"

    def index(self) -> VectorIndex | None:
        """The HNSW index, caught up with the store (rebuilt if missing or foreign); None for
        a store that searches vectors itself (pgvector)."""
        if self.store.native_vectors:
            return None
        index = self._vector_index()
        index.catch_up(self.store)
        return index

    def plan(self) -> SyncPlan:
        """What a sync would do now (nothing is embedded or written)."""
        return plan_sync(self.project, self.store)

    def sync(
        self, progress: Progress | None = None, *, lock_timeout: float | None = None
    ) -> SyncResult:
        """Sync the sources, then bring the vector index up to date.

        Another sync of the same store (another process, another thread) runs first; this one
        waits up to ``lock_timeout`` seconds for it (see :func:`ragtune.knowledge.sync.sync`).
        """
        result = sync(
            self.project, self.store, self.embedder, progress=progress, lock_timeout=lock_timeout
        )
        if not self.store.native_vectors:
            result.index = self._vector_index().catch_up(self.store)
        return result

    def _vector_index(self) -> VectorIndex:
        if not hasattr(self, "_index"):
            self._index = VectorIndex(self.index_path, self.embedder.dim, self.embedder.name)
        return self._index

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        capability: str | Sequence[str] | None = None,
        source: str | None = None,
        as_of: str | None = None,
        where: dict[str, str] | None = None,
        mode: Mode = "hybrid",
    ) -> list[Hit]:
        """Hybrid search; see :func:`ragtune.knowledge.search.search`.

        The checks, the index's catch-up and the search read the store in one read
        transaction: a sync in another process commits either before all of it or after.
        """
        if capability is not None:
            names = [c.name for c in self.project.config.capabilities]
            wanted = [capability] if isinstance(capability, str) else list(capability)
            for name in wanted:
                if name not in names:
                    raise RagtuneError(
                        f"--capability {name!r}: no such capability; the project has "
                        f"{', '.join(names)}."
                    )
        embedder = self.embedder if mode != "bm25" else None
        # The live vector index serves history too (search.nearest): open it for any vector search.
        live_vectors = mode != "bm25" and not self.store.native_vectors
        if live_vectors:
            self._vector_index().open()  # the file, before the transaction starts
        with self.store.reading():
            if self.store.latest_snapshot() == 0:
                raise StoreError(
                    f"{self.store.location}: the knowledge store is empty; run "
                    "`ragtune knowledge sync` first."
                )
            at = self.store.resolve_as_of(as_of) if as_of is not None else None
            paths = filter_paths(self.store, capability=capability, source=source, where=where)
            index = self.index() if live_vectors else None
            return search(self.store, embedder, index, query, k=k, paths=paths, as_of=at, mode=mode)

    def passages(
        self, query: str, k: int, capabilities: Sequence[str], order: str = "retrieved"
    ) -> list[Passage]:
        """The top ``k`` passages of these capabilities' documents for the query, as a prompt
        holds them: in the search's order, or with ``order="reranked"`` reordered by their
        clause closest to the query (:func:`ragtune.knowledge.offers.rerank`)."""
        found = [hit.passage() for hit in self.search(query, k=k, capability=list(capabilities))]
        if order != "reranked":
            return found
        from ragtune.knowledge.offers import rerank

        return rerank(query, found, self.embedder)

    def tools(self, capability: str | None = None) -> list[Tool]:
        """The tools the capabilities declare (``tool:...`` sources), loaded and checked."""
        refs = [
            ref
            for c in self.project.config.capabilities
            if capability is None or c.name == capability
            for ref in c.sources
            if is_tool_ref(ref)
        ]
        return [load_tool(ref, self.project.root) for ref in dict.fromkeys(refs)]

    def lookup(self, table: str, key: str, as_of: str | None = None) -> ChunkRow | None:
        """Exact lookup of a table row by its key column."""
        at = self.store.resolve_as_of(as_of) if as_of is not None else None
        return self.store.lookup(table, key, at)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

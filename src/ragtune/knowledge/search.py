"""Hybrid search: BM25 (FTS5) and vector results fused by reciprocal rank fusion.

Each list is ranked on its own; a chunk's fused score is the sum of ``1 / (RRF_K + rank)`` over
the lists it appears in (Cormack et al., 2009). BM25 catches exact terms (a clause number, a
defined term, a fee code); the vectors catch paraphrase ("how long do we have to report a breach"
against "notify within seventy-two hours").
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ragtune.knowledge.index import VectorIndex, brute_force
from ragtune.knowledge.store import StoreError
from ragtune.knowledge.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from ragtune.knowledge.embed import Embedder

RRF_K = 60
POOL = 50  # candidates taken from each list before fusion
# Below this many live chunks an exact matrix product is as fast as HNSW (about 1 ms) and exact.
HNSW_FROM = 20_000
Mode = Literal["hybrid", "bm25", "vector"]


@dataclass(frozen=True)
class Hit:
    """One search result: the chunk's text and where it comes from."""

    text: str
    document: str
    section: str
    title: str
    version: int  # the document version the chunk belongs to
    snapshot: int  # the snapshot in which this text appeared
    score: float
    chunk_id: str
    bm25_rank: int | None = None
    vector_rank: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a hit (``--json``)."""
        return {
            "text": self.text,
            "document": self.document,
            "section": self.section,
            "title": self.title,
            "version": self.version,
            "snapshot": self.snapshot,
            "score": round(self.score, 6),
            "chunk_id": self.chunk_id,
            "bm25_rank": self.bm25_rank,
            "vector_rank": self.vector_rank,
        }


def rrf(rankings: list[list[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of ranked id lists (rank 1 first)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return scores


def search(
    store: SQLiteStore,
    embedder: Embedder | None,
    index: VectorIndex | None,
    query: str,
    *,
    k: int = 5,
    paths: set[str] | None = None,
    as_of: int | None = None,
    mode: Mode = "hybrid",
) -> list[Hit]:
    """Search the chunks visible at ``as_of`` (default: live), restricted to ``paths`` if given."""
    if not query.strip():
        raise StoreError("the search query is empty.")
    pool = max(POOL, k)
    bm25_ids: list[int] = []
    vector_ids: list[int] = []
    if mode in ("hybrid", "bm25"):
        bm25_ids = [rowid for rowid, _ in store.bm25(query, pool, at=as_of, paths=paths)]
    if mode in ("hybrid", "vector"):
        if embedder is None:
            raise StoreError("vector search needs an embedder.")
        vector = embedder.embed([query])[0]
        if as_of is None and index is not None:
            # Live search: HNSW on a large store; below HNSW_FROM, or with a filter, an exact
            # product over the matrix the index keeps in memory.
            if paths is None and index.size >= HNSW_FROM:
                found = index.search(vector, pool)
            else:
                allowed = None if paths is None else store.live_ids(paths)
                found = index.exact(vector, pool, allowed)
            vector_ids = [rowid for rowid, _ in found]
        else:
            ids, blobs = store.vectors_at(as_of, paths)
            vector_ids = [rowid for rowid, _ in brute_force(vector, ids, blobs, embedder.dim, pool)]
    fused = rrf([r for r in (bm25_ids, vector_ids) if r])
    top = sorted(fused, key=lambda key: -fused[key])[:k]
    rows = store.chunks(top)
    versions = store.versions_at({row.document for row in rows.values()}, as_of)
    bm25_rank = {rowid: i for i, rowid in enumerate(bm25_ids, start=1)}
    vector_rank = {rowid: i for i, rowid in enumerate(vector_ids, start=1)}
    return [
        Hit(
            text=rows[key].text,
            document=rows[key].document,
            section=rows[key].section,
            title=rows[key].title,
            version=versions.get(rows[key].document, rows[key].doc_version),
            snapshot=rows[key].valid_from,
            score=fused[key],
            chunk_id=rows[key].chunk_id,
            bm25_rank=bm25_rank.get(key),
            vector_rank=vector_rank.get(key),
        )
        for key in top
        if key in rows
    ]


METADATA = ("kind", "title")  # document fields a search can filter on (--where kind=pdf)


def filter_paths(
    store: SQLiteStore,
    *,
    capability: str | None = None,
    source: str | None = None,
    where: dict[str, str] | None = None,
) -> set[str] | None:
    """The documents a search may return: of a capability, matching a source glob, and whose
    metadata (``kind``, ``title``: exact or glob, case-insensitive) match ``where``."""
    if capability is None and source is None and not where:
        return None
    documents = store.db.execute("SELECT DISTINCT path, kind, title FROM documents").fetchall()
    allowed = {row[0] for row in documents}
    if capability is not None:
        allowed &= store.paths_of(capability)
    if source is not None:
        allowed = {p for p in allowed if fnmatch.fnmatch(p, source) or p.startswith(source)}
    for key, pattern in (where or {}).items():
        if key not in METADATA:
            raise StoreError(
                f"--where {key}={pattern}: unknown field {key!r}; filter on {', '.join(METADATA)}."
            )
        column = METADATA.index(key) + 1
        allowed &= {
            row[0]
            for row in documents
            if fnmatch.fnmatch(str(row[column]).lower(), pattern.lower())
        }
    return allowed

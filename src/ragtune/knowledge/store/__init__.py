"""Knowledge stores: the source of truth for documents, chunks, their history and vectors.

One interface, :class:`KnowledgeStore`; the embedded SQLite store is the default and registers the
same way a PostgreSQL store (a later stage) will. Rows between the store and its callers are
plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ragtune.errors import RagtuneError


class StoreError(RagtuneError):
    """The knowledge store cannot be opened, or a request to it is invalid."""


@dataclass(frozen=True)
class Snapshot:
    """One sync: what it changed, when it started and whether it finished."""

    id: int
    started_at: str
    finished_at: str | None
    status: str  # open | complete
    docs_added: int = 0
    docs_changed: int = 0
    docs_deleted: int = 0
    chunks_added: int = 0
    chunks_retired: int = 0
    chunks_embedded: int = 0
    embed_seconds: float = 0.0


@dataclass(frozen=True)
class DocumentRow:
    """One version of a document as stored."""

    path: str
    version: int
    kind: str
    title: str
    sha256: str
    valid_from: int
    valid_to: int | None
    chunks: int = 0


@dataclass(frozen=True)
class ChunkRow:
    """One version of a chunk as stored (``vector`` is float32 bytes)."""

    rowid: int
    chunk_id: str
    document: str
    doc_version: int  # the document version in which this text first appeared
    ordinal: int
    section: str
    title: str
    text: str
    text_hash: str
    tokens: int
    valid_from: int
    valid_to: int | None


@dataclass(frozen=True)
class NewChunk:
    """A chunk to insert, with its vector."""

    chunk_id: str
    ordinal: int
    section: str
    title: str
    text: str
    text_hash: str
    tokens: int
    vector: bytes


class KnowledgeStore(Protocol):
    """What sync, search, history and plan need from a store."""

    def get_meta(self, key: str) -> str | None:
        """A value recorded in the store (the embedder's name, its dimension)."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Record a value in the store."""
        ...

    def begin_snapshot(self) -> int:
        """Start a sync, or resume the one an interrupted sync left open; returns its id."""
        ...

    def finish_snapshot(self, snapshot: int, counts: dict[str, float]) -> None:
        """Mark a sync complete with what it did."""
        ...

    def snapshots(self) -> list[Snapshot]:
        """Every sync, oldest first."""
        ...

    def latest_snapshot(self) -> int:
        """The id of the newest snapshot (0 when the store is empty)."""
        ...

    def resolve_as_of(self, value: str) -> int:
        """A snapshot id from an id or an ISO time."""
        ...

    def current_documents(self) -> dict[str, DocumentRow]:
        """The live version of every document, by path."""
        ...

    def current_chunks(self, path: str) -> list[ChunkRow]:
        """The live chunks of one document."""
        ...

    def document_versions(self, path: str) -> list[DocumentRow]:
        """Every version of a document, oldest first."""
        ...

    def document_text(self, path: str, version: int) -> str | None:
        """The text of one version of a document (None: no such version)."""
        ...

    def vectors_by_hash(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Stored vectors for chunk texts already embedded (any version), by text hash."""
        ...

    def apply_document(
        self,
        snapshot: int,
        document: DocumentRow,
        text: str,
        add: Sequence[NewChunk],
        retire: Sequence[int],
    ) -> None:
        """Replace a document's version, its new chunks and retired ones, in one transaction."""
        ...

    def retire_document(self, snapshot: int, path: str) -> int:
        """Retire a deleted document and its chunks in one transaction; returns chunks retired."""
        ...

    def set_capabilities(self, members: dict[str, set[str]]) -> None:
        """Which capabilities each document serves (by path)."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...

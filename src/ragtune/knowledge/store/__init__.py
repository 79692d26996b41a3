"""Knowledge stores: the source of truth for documents, chunks, their history and vectors.

One interface, :class:`KnowledgeStore`, with two implementations registered the same way a
plugin's would be (:func:`register_store`): the embedded SQLite file (the default,
``.ragtune/knowledge.db``) and PostgreSQL with pgvector (``knowledge.store:
postgresql://...`` in ragtune.yaml, or ``RAGTUNE_STORE``). :func:`open_store` opens either from
its location. Rows between the store and its callers are plain dataclasses; nothing outside this
package names an implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ragtune.errors import RagtuneError
from ragtune.errors import redact_url as redact


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
class ChangeMark:
    """Where a store's chunks stand, read from indexes (as cheap at 1M chunks as at 1k).

    Chunk rows are only added (with a higher row id) or retired (in the open snapshot or a
    later one), so a mark read again with the same ``since`` is equal exactly when no row was
    added or retired in between: what a derived index checks before each search.
    """

    max_id: int  # the highest chunk row id
    snapshot: int  # the latest snapshot
    since: int  # that snapshot while it is open, else the next: where later retirements fall
    retired_since: int  # rows retired in snapshot ``since`` or later


def read_change_mark(
    one: Callable[[str, tuple[object, ...]], Any], since: int | None, param: str
) -> ChangeMark:
    """A store's :class:`ChangeMark`, by ``one(sql, params)`` (the first row of a query) with the
    driver's parameter marker ``param`` (``?`` or ``%s``): the same SQL on both stores."""
    if since is None:
        row = one("SELECT id, status FROM snapshots ORDER BY id DESC LIMIT 1", ())
        since = 1 if row is None else int(row[0]) + (row[1] != "open")
    row = one(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM chunks), "
        "(SELECT COALESCE(MAX(id), 0) FROM snapshots), "
        f"(SELECT COUNT(*) FROM chunks WHERE valid_to >= {param})",
        (since,),
    )
    return ChangeMark(int(row[0]), int(row[1]), since, int(row[2]))


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


@dataclass(frozen=True)
class ExampleRow:
    """One few-shot example as stored (``vector`` is float32 bytes of its embedded text)."""

    line: int
    input: str
    output: str
    context: str | None
    input_hash: str
    vector: bytes


class KnowledgeStore(Protocol):
    """What sync, search, history, plan, few-shot selection and the doctor need from a store.

    Visibility: a row is visible at snapshot ``S`` when ``valid_from <= S`` and ``valid_to`` is
    null or greater than ``S``; live rows have a null ``valid_to``. ``at=None`` means live.
    """

    location: str
    """Where the store is, for messages: a file path, or a URL without its password
    (:func:`redact`)."""
    native_vectors: bool
    """True when the store searches vectors itself (pgvector); False when ragtune keeps a
    derived vector index file beside it (:class:`ragtune.knowledge.index.VectorIndex`)."""
    derived: dict[str, tuple[int, object]]
    """Values computed from the store (search's document aliases), each with the snapshot it
    was computed at, so a later snapshot recomputes it."""

    # -- concurrency and upkeep
    def writing(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the store's writer lock for the block (one sync at a time, across processes);
        wait up to ``timeout`` seconds (None: ``RAGTUNE_LOCK_TIMEOUT``), then StoreError."""
        ...

    def reading(self) -> AbstractContextManager[object]:
        """One read transaction for the block: every query in it sees the same state."""
        ...

    def optimize(self) -> None:
        """Refresh the query planner's statistics, and what the store derives itself (its
        keyword index), after a sync."""
        ...

    def repair(self) -> list[str]:
        """Rebuild what the store derives itself (its keyword index); returns what it did."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...

    # -- meta
    def get_meta(self, key: str) -> str | None:
        """A value recorded in the store (the embedder's name, its dimension)."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Record a value in the store."""
        ...

    # -- snapshots
    def begin_snapshot(self) -> int:
        """Start a sync, or resume the one an interrupted sync left open; returns its id."""
        ...

    def finish_snapshot(self, snapshot: int, counts: dict[str, float]) -> None:
        """Mark a sync complete, adding ``counts`` to what it recorded so far."""
        ...

    def discard_empty_snapshot(self, snapshot: int) -> None:
        """Drop a snapshot in which nothing changed."""
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

    # -- documents
    def current_documents(self) -> dict[str, DocumentRow]:
        """The live version of every document, by path."""
        ...

    def document_versions(self, path: str) -> list[DocumentRow]:
        """Every version of a document, oldest first."""
        ...

    def last_version(self, path: str) -> int:
        """The highest version a document has had, live or retired (0: never stored)."""
        ...

    def document_text(self, path: str, version: int) -> str | None:
        """The text of one version of a document (None: no such version)."""
        ...

    def document_metadata(self) -> list[tuple[str, str, str]]:
        """(path, kind, title) of every document version, distinct (search's filters)."""
        ...

    def versions_at(self, paths: Iterable[str], at: int | None = None) -> dict[str, int]:
        """The version of each document visible at a snapshot."""
        ...

    # -- chunks
    def current_chunks(self, path: str) -> list[ChunkRow]:
        """The live chunks of one document, in order."""
        ...

    def chunks(self, rowids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows by row id."""
        ...

    def lookup(self, path: str, key: str, at: int | None = None) -> ChunkRow | None:
        """The row of a table whose key column equals ``key`` (case and spaces ignored)."""
        ...

    def live_hashes(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """The text hash of each of these chunks that is live now."""
        ...

    def live_ids(self, paths: set[str] | None = None) -> set[int]:
        """Row ids of the live chunks (of these documents)."""
        ...

    def chunk_signature(self) -> tuple[int, int]:
        """(all chunk rows, retired rows): counts over the whole table, for checks and copies;
        a search's freshness check reads :meth:`change_mark` instead."""
        ...

    def change_mark(self, since: int | None = None) -> ChangeMark:
        """Where the chunks stand now, counting retirements from snapshot ``since`` (default:
        the latest snapshot while it is open, else the next one)."""
        ...

    def counts(self) -> dict[str, int]:
        """Live documents and chunks, and all chunk versions kept."""
        ...

    # -- vectors
    def vectors_by_hash(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Stored vectors for chunk texts already embedded (any version), by text hash."""
        ...

    def vectors_at(
        self, at: int | None = None, paths: set[str] | None = None
    ) -> tuple[list[int], list[bytes]]:
        """Row ids and vectors of the chunks visible at a snapshot, ordered by id."""
        ...

    def vectors_of(self, rowids: Sequence[int]) -> tuple[list[int], list[bytes]]:
        """Row ids and vectors of these chunk rows."""
        ...

    def since(
        self, at: int, paths: set[str] | None = None
    ) -> tuple[set[int], list[int], list[bytes]]:
        """What separates the live chunks from those visible at snapshot ``at`` (of ``paths``):
        the live row ids added after it, and the row ids and vectors of the rows visible then
        and retired since (a search ``--as-of`` takes the rest from the live vector index)."""
        ...

    def texts_by_hash(self) -> list[tuple[str, str, str, str]]:
        """(text hash, text, section, title) of every distinct chunk text, history included."""
        ...

    def replace_vectors(self, vectors: dict[str, bytes]) -> None:
        """Write new vectors for every row with these text hashes, in one transaction."""
        ...

    # -- writes
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

    # -- capabilities
    def set_capabilities(self, members: dict[str, set[str]]) -> None:
        """Which capabilities each document serves (by path)."""
        ...

    def paths_of(self, capability: str) -> set[str]:
        """The documents a capability draws on."""
        ...

    def capabilities_of(self, path: str) -> list[str]:
        """The capabilities a document serves."""
        ...

    # -- search
    def bm25(
        self, query: str, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """Row ids and keyword scores (higher is better) of the chunks matching ``query``."""
        ...

    def nearest(
        self, vector: Any, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """Row ids and cosine similarities of the chunks nearest ``vector`` (float32, unit
        length), visible at ``at``, of ``paths``; exact where the store cannot do better."""
        ...

    # -- few-shot examples
    def examples_state(self, capability: str) -> tuple[str, str] | None:
        """(dataset sha256, embedder) of a capability's live examples; None when it has none."""
        ...

    def example_vectors_by_hash(self, hashes: Iterable[str], embedder: str) -> dict[str, bytes]:
        """Vectors this embedder made for these example texts before."""
        ...

    def replace_examples(
        self,
        capability: str,
        rows: Sequence[ExampleRow],
        *,
        path: str,
        dataset_sha256: str,
        embedder: str,
    ) -> None:
        """Make ``rows`` the capability's live examples, in one transaction."""
        ...

    def live_examples(self, capability: str) -> list[ExampleRow]:
        """A capability's live examples with their vectors, in line order."""
        ...


def resolve_as_of(
    store: KnowledgeStore, value: str, started_by: Callable[[datetime], int | None]
) -> int:
    """A snapshot id from ``"12"`` or an ISO time (the last snapshot started by then): the one
    reading of ``--as-of`` both stores share.

    Args:
        store: The store whose snapshots are named.
        value: What the user gave.
        started_by: The id of the last snapshot started at or before an aware time, or None.

    Raises:
        StoreError: No such snapshot, a value that is neither, or a time before the first.
    """
    text = value.strip()
    if text.isdigit():
        snapshot = int(text)
        known = [s.id for s in store.snapshots()]
        if snapshot not in known:
            listed = ", ".join(str(i) for i in known) or "none yet"
            raise StoreError(f"--as-of {value}: no snapshot {snapshot} (snapshots: {listed}).")
        return snapshot
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise StoreError(
            f"--as-of {value!r}: give a snapshot id (see `ragtune knowledge history`) or an "
            "ISO time such as 2026-07-01 or 2026-07-01T09:30."
        ) from exc
    found = started_by(when if when.tzinfo is not None else when.replace(tzinfo=UTC))
    if found is None:
        raise StoreError(f"--as-of {value}: the first snapshot is later than that.")
    return found


StoreOpener = Callable[[str, bool], KnowledgeStore]
"""Opens a store: ``(location, readonly) -> store``; readonly refuses to create one."""

_OPENERS: dict[str, StoreOpener] = {}


def register_store(scheme: str, opener: StoreOpener) -> None:
    """Register a store implementation for locations ``<scheme>://...``.

    ``"sqlite"`` also opens plain file paths. A later registration of the same scheme replaces
    the earlier one (a plugin may override a built-in).
    """
    _OPENERS[scheme.lower()] = opener


def store_scheme(location: str | Path) -> str:
    """The scheme of a store location: ``postgresql`` for ``postgresql://...``, ``sqlite`` for
    a file path."""
    text = str(location)
    if "://" in text:
        return text.split("://", 1)[0].lower()
    return "sqlite"


def open_store(location: str | Path, *, readonly: bool = False) -> KnowledgeStore:
    """Open (or create) the store at ``location``: a SQLite file path, ``sqlite:///path`` or
    ``postgresql://user@host:port/db``.

    Raises:
        StoreError: An unknown scheme (naming the known ones), or the store cannot be opened;
            with ``readonly``, there is no store there yet.
    """
    _register_builtins()
    scheme = store_scheme(location)
    opener = _OPENERS.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(_OPENERS))
        raise StoreError(
            f"store {redact(str(location))!r}: no store for {scheme}://; known: {known} or a "
            "file path."
        )
    return opener(str(location), readonly)


def _open_sqlite(location: str, readonly: bool) -> KnowledgeStore:
    from ragtune.knowledge.store.sqlite import SQLiteStore

    path = location.split("://", 1)[1] if "://" in location else location
    return SQLiteStore(Path(path), readonly=readonly)


def _open_postgres(location: str, readonly: bool) -> KnowledgeStore:
    try:
        from ragtune.knowledge.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        from ragtune.extras import missing_extra

        hint = missing_extra(exc)
        if hint is None:
            raise
        raise StoreError(f"store {redact(location)}: {hint}") from None
    return PostgresStore(location, readonly=readonly)


def _register_builtins() -> None:
    if "sqlite" not in _OPENERS:
        register_store("sqlite", _open_sqlite)
    for scheme in ("postgresql", "postgres"):
        if scheme not in _OPENERS:
            register_store(scheme, _open_postgres)

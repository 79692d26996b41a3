"""The knowledge store on PostgreSQL: pgvector (HNSW) for vectors, full-text search for keywords.

The same semantics as the SQLite store (``sqlite.py``): every chunk version is a row with
``valid_from``/``valid_to`` snapshot ids, nothing is deleted, each document change is one
transaction, a sync resumes the snapshot an interrupted one left open. Opened by
``knowledge.store: postgresql://user@host:port/db`` in ragtune.yaml or ``RAGTUNE_STORE``.

Design choices:

- **Vectors.** ``chunks.embedding`` is a ``vector`` column without a dimension, because the
  dimension is known only when the first chunk arrives (and changes when ``knowledge.embedder``
  does). The HNSW index is an expression index over its cast, ``((embedding::vector(D))
  vector_cosine_ops)``, partial on the live rows (``WHERE valid_to IS NULL``): it is created
  when the first snapshot with vectors finishes - built over the rows at once, which pgvector
  does several times faster than adding them one by one to an index (searches during that first
  sync scan exactly) - and dropped and created again when a re-embedding changes ``D``. A
  search orders by ``embedding::vector(D) <=> query`` (the index, ``hnsw.ef_search`` raised to
  at least twice the pool). A search of some documents (``paths``) filters during the index
  scan (``hnsw.iterative_scan = strict_order``, pgvector 0.8), and a search of history (``at``)
  takes the live rows that existed then through the index and ranks the rows retired since
  exactly beside them; where the index answers fewer rows than asked (a very selective filter),
  the search scans the visible rows exactly instead, so it is never short. An embedder of more
  than 2,000 dimensions (pgvector's HNSW limit) is searched exactly.
- **Keywords.** ``chunks.keywords`` is a generated ``tsvector`` (the ``english`` configuration,
  ASCII punctuation read as a space, as FTS5's unicode61 splits words) of the text (weight A)
  and the section and title (weight B), with a GIN index. :meth:`PostgresStore.bm25` matches any
  word of the query (``to_tsquery`` of the words joined by ``|``; the words are letters and
  digits only, so no punctuation can reach the query syntax) and ranks by BM25's own
  ingredients: each word's ``ts_rank`` in the chunk (1.0 for text, 0.5 for section and title,
  as ``bm25(chunks_fts, 1.0, 0.5, 0.5)`` weighs them; divided by one plus the log of the
  chunk's length, then saturated as ``r / (r + 1)``: normalisation ``1 | 32``) times the
  word's inverse document frequency over all chunk versions, as FTS5 counts it, summed. On
  the contract-review example (12 queries) its top hit is FTS5's for 11 and its top three for
  11 (per-word ``ts_rank`` without normalisation: 7; with ``ts_rank_cd``: 4).
- **Transactions.** The connection is in autocommit mode; every write method is one
  transaction. :meth:`PostgresStore.reading` opens one ``REPEATABLE READ READ ONLY``
  transaction on the same connection, and every method called inside it runs in it. A lock
  in the process keeps two threads from interleaving statements on the connection.
- **Writers.** :meth:`PostgresStore.writing` takes a session-level advisory lock
  (``pg_advisory_lock``) on a second connection: one sync at a time across processes and
  machines, released by the server if the process dies.

Setting up PostgreSQL for ragtune
---------------------------------

The store needs PostgreSQL 13 or later with the pgvector extension (0.5 or later) installed on
the server: ``apt install postgresql-16-pgvector`` (apt.postgresql.org), ``brew install
pgvector``, the ``pgvector/pgvector`` Docker image, or the extension list of a managed service.
Then, once, as the database's owner or a superuser::

    CREATE DATABASE ragtune;
    \\c ragtune
    CREATE EXTENSION vector;

Point the project at it in ``ragtune.yaml`` (or ``RAGTUNE_STORE``, which wins)::

    knowledge:
      store: postgresql://ragtune@db.internal:5432/ragtune

Keep the password out of the file: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass``; any
libpq URL parameter works (``?sslmode=require``). The store creates its tables (meta,
snapshots, documents, chunks, doc_capabilities, examples, migrations) in the connection's
schema on the first sync; give each project a database of its own, or a schema with
``?options=-csearch_path%3Dmyproject`` (create the schema first). A user who may not create
extensions gets an error saying so when ``vector`` is missing; with it created, the store needs
only CREATE on the schema. ``ragtune knowledge search`` and the server never create anything:
before the first sync they say there is no knowledge store yet.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from ragtune.knowledge.store import (
    ChangeMark,
    ChunkRow,
    DocumentRow,
    ExampleRow,
    KnowledgeStore,
    NewChunk,
    Snapshot,
    StoreError,
    read_change_mark,
    redact,
    resolve_as_of,
)
from ragtune.knowledge.store.lock import LOCK_TIMEOUT_ENV, lock_timeout
from ragtune.knowledge.store.postgres_migrations import MIGRATIONS, migrate

log = logging.getLogger("ragtune.knowledge")

HNSW_MAX_DIM = 2000  # pgvector indexes vector columns of up to 2,000 dimensions
EF_SEARCH = 100  # hnsw.ef_search of a live search (pgvector's default is 40)
KEYWORD_ROWS = 20_000  # rows a keyword search ranks, rarest words first (see bm25)
ESTIMATED_ROWS = 10_000  # a word the statistics put in this many rows or more is not counted
BUILD_MEMORY = "1GB"  # the least maintenance_work_mem of the transaction that builds the HNSW index
EXACT_FILTER = 2_000  # rows of a filter's documents ranked exactly rather than through HNSW
_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits: nothing tsquery would parse
_CHUNK_COLUMNS = (
    "c.id, c.chunk_id, c.document, c.doc_version, c.ordinal, c.section, c.title, c.text, "
    "c.text_hash, c.tokens, c.valid_from, c.valid_to"
)
_COUNTS = (
    "docs_added", "docs_changed", "docs_deleted", "chunks_added", "chunks_retired",
    "chunks_embedded", "embed_seconds",
)  # fmt: skip


def keyword_words(text: str) -> list[str]:
    """The distinct words of a query, lower case, letters and digits only (what
    :meth:`PostgresStore.bm25` matches any of)."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def _visible(alias: str, at: int | None) -> tuple[str, dict[str, object]]:
    """The SQL condition (and parameters) for rows visible at a snapshot, or live when None."""
    if at is None:
        return f"{alias}.valid_to IS NULL", {}
    return (
        f"{alias}.valid_from <= %(at)s AND ({alias}.valid_to IS NULL OR {alias}.valid_to > %(at)s)",
        {"at": at},
    )


def _and(condition: str | None) -> str:
    """`` AND condition`` to append to a WHERE clause, or nothing."""
    return f" AND {condition}" if condition else ""


def _any_of(queries: list[str]) -> str:
    """One tsquery matching any of ``queries`` (tsqueries as text)."""
    return " | ".join(f"({q})" for q in queries)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def build_memory(db: Any) -> str:
    """Raise ``maintenance_work_mem`` to :data:`BUILD_MEMORY` for the rest of ``db``'s
    transaction unless it is set higher already; the setting in force."""
    row = db.execute(
        "SELECT CASE WHEN pg_size_bytes(current_setting('maintenance_work_mem')) "
        "< pg_size_bytes(%s) THEN set_config('maintenance_work_mem', %s, true) "
        "ELSE current_setting('maintenance_work_mem') END",
        (BUILD_MEMORY, BUILD_MEMORY),
    ).fetchone()
    return str(row[0])


class PostgresStore:
    """The knowledge store in a PostgreSQL database with pgvector; see the module docstring.

    Args:
        url: A libpq URL, ``postgresql://user@host:port/db`` (``postgres://`` too).
        readonly: Refuse to create the store's tables: a database without them raises
            StoreError ("no knowledge store yet").

    Raises:
        StoreError: The server cannot be reached, pgvector is missing and cannot be created,
            or (``readonly``) the store has no tables yet.
    """

    native_vectors = True  # pgvector searches the vectors: no derived index file

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.location = redact(url)
        self.derived: dict[str, tuple[int, object]] = {}
        self._mutex = threading.RLock()  # one thread's statements on the connection at a time
        self._writer_mutex = threading.Lock()  # one thread of this process holds writing()
        self._writer_owner: int | None = None
        self._writer_depth = 0
        self._lock_conn: Any = None
        self._hnsw_dim: int | None = None
        self.conn = self._connect()
        try:
            if readonly:
                self._check_exists()
            else:
                migrate(self.conn, url)
            self._register_vector()
            self._hnsw_dim = self._index_dim()
        except BaseException:
            self.conn.close()
            raise

    # -- connections -------------------------------------------------------------------------------

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=10, application_name="ragtune"
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"{self.location}: cannot connect to the PostgreSQL server: "
                f"{_first_line(exc)}. Check the host, port, database and user of "
                "knowledge.store (or RAGTUNE_STORE); a password comes from PGPASSWORD or "
                "~/.pgpass."
            ) from None

    def _check_exists(self) -> None:
        row = self.conn.execute(
            "SELECT to_regclass('migrations') IS NOT NULL AND to_regclass('chunks') IS NOT NULL"
        ).fetchone()
        if not row[0]:
            raise StoreError(
                f"{self.location}: no knowledge store yet; run `ragtune knowledge sync` first."
            )
        missing = self._pending_migrations()
        if missing:
            migrate(self.conn, self.url)  # an older schema: bring it up to date, as SQLite does

    def _pending_migrations(self) -> list[str]:
        done = {row[0] for row in self.conn.execute("SELECT name FROM migrations").fetchall()}
        return [name for name, _ in MIGRATIONS if name not in done]

    def _register_vector(self) -> None:
        from pgvector.psycopg import register_vector

        register_vector(self.conn)

    # -- helpers -----------------------------------------------------------------------------------

    def _all(self, sql: str, params: Any = None, *, binary: bool = False) -> list[Any]:
        with self._mutex:
            cursor = self.conn.cursor(binary=binary)
            return list(cursor.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Any = None) -> Any:
        with self._mutex:
            return self.conn.execute(sql, params).fetchone()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction (a savepoint inside a transaction already open)."""
        with self._mutex, self.conn.transaction():
            yield self.conn

    # -- concurrency -------------------------------------------------------------------------------

    def writing(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the store's writer lock for the block: a session-level PostgreSQL advisory lock
        on a connection of its own.

        Re-entrant within a thread; other threads and other processes (on any machine) wait,
        saying so on the ``ragtune.knowledge`` logger, up to ``timeout`` seconds (default
        ``RAGTUNE_LOCK_TIMEOUT`` or 600), then raise :class:`StoreError`.
        """
        return self._hold(lock_timeout() if timeout is None else timeout)

    @property
    def lock_name(self) -> str:
        """The advisory lock's name, for messages."""
        return "PostgreSQL advisory lock ragtune.knowledge:<schema>"

    @contextmanager
    def _hold(self, limit: float) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer_owner == me:
            self._writer_depth += 1
            try:
                yield
            finally:
                self._writer_depth -= 1
            return
        deadline = time.monotonic() + limit
        warned = False
        if not self._writer_mutex.acquire(blocking=False):
            warned = self._warn_waiting(limit)
            if not self._writer_mutex.acquire(timeout=max(limit, 0.001)):
                raise self._busy(limit, None)
        try:
            conn = self._writer_connection()
            key = "hashtextextended('ragtune.knowledge:' || current_schema(), 0)"
            while not conn.execute(f"SELECT pg_try_advisory_lock({key})").fetchone()[0]:
                if not warned:
                    warned = self._warn_waiting(limit)
                if time.monotonic() >= deadline:
                    raise self._busy(limit, _holder(conn, key))
                time.sleep(0.05)
            self._writer_owner, self._writer_depth = me, 1
            try:
                yield
            finally:
                self._writer_owner, self._writer_depth = None, 0
                conn.execute(f"SELECT pg_advisory_unlock({key})")
        finally:
            self._writer_mutex.release()

    def _writer_connection(self) -> Any:
        if self._lock_conn is None or self._lock_conn.closed:
            self._lock_conn = self._connect()
        return self._lock_conn

    def _warn_waiting(self, limit: float) -> bool:
        if limit > 0:
            log.warning(
                "%s: another process is writing the knowledge store (a sync, a build or the "
                "server's document upserts); waiting up to %g s for it to finish (%s sets the "
                "limit).",
                self.location,
                limit,
                LOCK_TIMEOUT_ENV,
            )
        return True

    def _busy(self, limit: float, pid: int | None) -> StoreError:
        holder = f", held by server process {pid}" if pid is not None else ""
        return StoreError(
            f"{self.location}: another process has been writing the knowledge store for more "
            f"than {limit:g} s (it holds the {self.lock_name}{holder}); nothing was changed. Run "
            f"the command again when it has finished, or wait longer with "
            f"{LOCK_TIMEOUT_ENV}=SECONDS."
        )

    def reading(self) -> AbstractContextManager[object]:
        """One ``REPEATABLE READ READ ONLY`` transaction for the block: every query in it sees
        the same state, whatever other sessions commit meanwhile. Inside a transaction already,
        it adds nothing (the outer one decides)."""
        return self._read()

    @contextmanager
    def _read(self) -> Iterator[Any]:
        from psycopg import IsolationLevel
        from psycopg.pq import TransactionStatus

        with self._mutex:
            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                yield self.conn
                return
            self.conn.isolation_level = IsolationLevel.REPEATABLE_READ
            self.conn.read_only = True
            try:
                with self.conn.transaction():
                    yield self.conn
            finally:
                self.conn.isolation_level = None
                self.conn.read_only = None

    # -- upkeep ------------------------------------------------------------------------------------

    def optimize(self) -> None:
        """Refresh the planner's statistics of the store's tables (ANALYZE)."""
        with self._mutex:
            self.conn.execute("ANALYZE meta, snapshots, documents, chunks, doc_capabilities")

    def repair(self) -> list[str]:
        """Rebuild the keyword index (GIN over the chunks' tsvector) with REINDEX."""
        with self._mutex:
            self.conn.execute("REINDEX INDEX chunks_keywords")
        return [f"{self.location}: keyword index (chunks_keywords, GIN) rebuilt with REINDEX"]

    def close(self) -> None:
        """Close the connections (and so release the writer lock if held)."""
        for conn in (self._lock_conn, self.conn):
            if conn is not None and not conn.closed:
                conn.close()

    # -- meta --------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value recorded in the store."""
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Record a value in the store."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- snapshots ---------------------------------------------------------------------------------

    def begin_snapshot(self) -> int:
        """Start a snapshot, or resume the open one an interrupted sync left behind.

        Ids are one more than the highest, as in SQLite: a discarded empty snapshot's id is
        used again, so both stores number the same history alike.
        """
        with self._tx() as db:
            db.execute("LOCK TABLE snapshots IN SHARE ROW EXCLUSIVE MODE")
            row = db.execute(
                "SELECT id FROM snapshots WHERE status = 'open' ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is not None:
                return int(row[0])
            row = db.execute(
                "INSERT INTO snapshots (id, started_at) "
                "SELECT COALESCE(MAX(id), 0) + 1, %s FROM snapshots RETURNING id",
                (datetime.now(UTC),),
            ).fetchone()
            return int(row[0])

    def finish_snapshot(self, snapshot: int, counts: dict[str, float]) -> None:
        """Mark a snapshot complete, adding ``counts`` to what it recorded so far."""
        sets = "".join(f"{k} = {k} + %({k})s, " for k in counts if k in _COUNTS)
        params = {k: v for k, v in counts.items() if k in _COUNTS}
        with self._tx() as db:
            db.execute(
                f"UPDATE snapshots SET {sets}status = 'complete', finished_at = %(now)s "
                "WHERE id = %(id)s",
                {**params, "now": datetime.now(UTC), "id": snapshot},
            )
            if self._hnsw_dim is None:
                row = db.execute(
                    "SELECT vector_dims(embedding) FROM chunks WHERE valid_to IS NULL LIMIT 1"
                ).fetchone()
                if row is not None:
                    self._ensure_index(db, int(row[0]))

    def discard_empty_snapshot(self, snapshot: int) -> None:
        """Drop a snapshot in which nothing changed (a no-op sync leaves no trace)."""
        with self._tx() as db:
            db.execute(
                "DELETE FROM snapshots WHERE id = %(s)s AND NOT EXISTS "
                "(SELECT 1 FROM chunks WHERE valid_from = %(s)s OR valid_to = %(s)s) "
                "AND NOT EXISTS "
                "(SELECT 1 FROM documents WHERE valid_from = %(s)s OR valid_to = %(s)s)",
                {"s": snapshot},
            )

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first."""
        rows = self._all(
            "SELECT id, started_at, finished_at, status, docs_added, docs_changed, "
            "docs_deleted, chunks_added, chunks_retired, chunks_embedded, embed_seconds "
            "FROM snapshots ORDER BY id"
        )
        return [
            Snapshot(
                id=int(r[0]),
                started_at=_iso(r[1]) or "",
                finished_at=_iso(r[2]),
                status=str(r[3]),
                embed_seconds=float(r[10]),
                **{name: int(value) for name, value in zip(_COUNTS[:-1], r[4:10], strict=True)},
            )
            for r in rows
        ]

    def latest_snapshot(self) -> int:
        """The newest snapshot id (0 for an empty store)."""
        return int(self._one("SELECT COALESCE(MAX(id), 0) FROM snapshots")[0])

    def resolve_as_of(self, value: str) -> int:
        """A snapshot id from ``"12"`` or an ISO time (the last snapshot started by then)."""

        def started_by(when: datetime) -> int | None:
            row = self._one("SELECT MAX(id) FROM snapshots WHERE started_at <= %s", (when,))
            return None if row[0] is None else int(row[0])

        return resolve_as_of(self, value, started_by)

    # -- documents and chunks ----------------------------------------------------------------------

    def current_documents(self) -> dict[str, DocumentRow]:
        """The live version of every document, by path."""
        rows = self._all(
            "SELECT d.path, d.version, d.kind, d.title, d.sha256, d.valid_from, d.valid_to, "
            "(SELECT COUNT(*) FROM chunks c WHERE c.document = d.path AND c.valid_to IS NULL) "
            "FROM documents d WHERE d.valid_to IS NULL ORDER BY d.path"
        )
        return {r[0]: _document(r) for r in rows}

    def document_versions(self, path: str) -> list[DocumentRow]:
        """Every version of a document, oldest first."""
        rows = self._all(
            "SELECT d.path, d.version, d.kind, d.title, d.sha256, d.valid_from, d.valid_to, "
            "(SELECT COUNT(*) FROM chunks c WHERE c.document = d.path "
            " AND c.doc_version = d.version) "
            "FROM documents d WHERE d.path = %s ORDER BY d.version",
            (path,),
        )
        return [_document(r) for r in rows]

    def last_version(self, path: str) -> int:
        """The highest version a document has had, live or retired (0: never stored)."""
        return int(
            self._one("SELECT COALESCE(MAX(version), 0) FROM documents WHERE path = %s", (path,))[0]
        )

    def document_text(self, path: str, version: int) -> str | None:
        """The text of one version of a document."""
        row = self._one(
            "SELECT text FROM documents WHERE path = %s AND version = %s", (path, version)
        )
        return None if row is None else str(row[0])

    def document_metadata(self) -> list[tuple[str, str, str]]:
        """(path, kind, title) of every document version, distinct."""
        rows = self._all("SELECT DISTINCT path, kind, title FROM documents")
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def versions_at(self, paths: Iterable[str], at: int | None = None) -> dict[str, int]:
        """The version of each document visible at a snapshot (default: the live one)."""
        wanted = list(dict.fromkeys(paths))
        if not wanted:
            return {}
        where, params = _visible("d", at)
        rows = self._all(
            f"SELECT path, version FROM documents d WHERE {where} AND d.path = ANY(%(paths)s)",
            {**params, "paths": wanted},
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def current_chunks(self, path: str) -> list[ChunkRow]:
        """The live chunks of one document, in order."""
        rows = self._all(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c "
            "WHERE c.document = %s AND c.valid_to IS NULL ORDER BY c.ordinal",
            (path,),
        )
        return [_chunk(r) for r in rows]

    def chunks(self, rowids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows by row id."""
        ids = [int(i) for i in rowids]
        if not ids:
            return {}
        rows = self._all(f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE c.id = ANY(%s)", (ids,))
        return {int(r[0]): _chunk(r) for r in rows}

    def lookup(self, path: str, key: str, at: int | None = None) -> ChunkRow | None:
        """The row of a table whose key column equals ``key`` (case and spaces ignored)."""
        where, params = _visible("c", at)
        row = self._one(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE c.document = %(path)s "
            f"AND lower(trim(c.section)) = lower(trim(%(key)s)) AND {where} "
            "ORDER BY c.id LIMIT 1",
            {**params, "path": path, "key": key},
        )
        return None if row is None else _chunk(row)

    def live_hashes(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """The text hash of each of these chunks that is live now."""
        rows = self._all(
            "SELECT chunk_id, text_hash FROM chunks WHERE valid_to IS NULL AND chunk_id = ANY(%s)",
            (sorted(set(chunk_ids)),),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def live_ids(self, paths: set[str] | None = None) -> set[int]:
        """Row ids of the live chunks (of these documents)."""
        if paths is None:
            rows = self._all("SELECT id FROM chunks WHERE valid_to IS NULL")
        else:
            rows = self._all(
                "SELECT id FROM chunks WHERE valid_to IS NULL AND document = ANY(%s)",
                (sorted(paths),),
            )
        return {int(r[0]) for r in rows}

    def chunk_signature(self) -> tuple[int, int]:
        """(all chunk rows, retired rows)."""
        row = self._one("SELECT COUNT(*), COUNT(valid_to) FROM chunks")
        return int(row[0]), int(row[1])

    def change_mark(self, since: int | None = None) -> ChangeMark:
        """Where the chunks stand now (index reads only)."""
        return read_change_mark(self._one, since, "%s")

    def counts(self) -> dict[str, int]:
        """Live documents and chunks, and all chunk versions kept."""
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM documents WHERE valid_to IS NULL), "
            "(SELECT COUNT(*) FROM chunks WHERE valid_to IS NULL), (SELECT COUNT(*) FROM chunks)"
        )
        return {"documents": int(row[0]), "chunks": int(row[1]), "chunk_versions": int(row[2])}

    # -- vectors -----------------------------------------------------------------------------------

    def vectors_by_hash(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Vectors already computed for these chunk texts (any version), by text hash."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        rows = self._all(
            "SELECT DISTINCT ON (text_hash) text_hash, embedding FROM chunks "
            "WHERE text_hash = ANY(%s) ORDER BY text_hash, id",
            (wanted,),
            binary=True,
        )
        return {str(r[0]): _bytes(r[1]) for r in rows}

    def vectors_at(
        self, at: int | None = None, paths: set[str] | None = None
    ) -> tuple[list[int], list[bytes]]:
        """Row ids and vectors of the chunks visible at a snapshot (default: live ones)."""
        where, params = _visible("c", at)
        sql = f"SELECT c.id, c.embedding FROM chunks c WHERE {where} "
        if paths is not None:
            sql += "AND c.document = ANY(%(paths)s) "
            params["paths"] = sorted(paths)
        rows = self._all(sql + "ORDER BY c.id", params, binary=True)
        return [int(r[0]) for r in rows], [_bytes(r[1]) for r in rows]

    def vectors_of(self, rowids: Sequence[int]) -> tuple[list[int], list[bytes]]:
        """Row ids and vectors of these chunk rows, ordered by id."""
        rows = self._all(
            "SELECT id, embedding FROM chunks WHERE id = ANY(%s) ORDER BY id",
            ([int(i) for i in rowids],),
            binary=True,
        )
        return [int(r[0]) for r in rows], [_bytes(r[1]) for r in rows]

    def since(
        self, at: int, paths: set[str] | None = None
    ) -> tuple[set[int], list[int], list[bytes]]:
        """The live rows added after snapshot ``at`` and the rows visible then and retired since
        (with vectors), of ``paths``; pgvector searches history itself, this serves the protocol."""
        where: str = ""
        params: dict[str, Any] = {"at": at}
        if paths is not None:
            where = "AND c.document = ANY(%(paths)s) "
            params["paths"] = sorted(paths)
        late = self._all(
            f"SELECT c.id FROM chunks c WHERE c.valid_from > %(at)s AND c.valid_to IS NULL {where}",
            params,
        )
        old = self._all(
            "SELECT c.id, c.embedding FROM chunks c WHERE c.valid_to > %(at)s "
            f"AND c.valid_from <= %(at)s {where}ORDER BY c.id",
            params,
            binary=True,
        )
        return {int(r[0]) for r in late}, [int(r[0]) for r in old], [_bytes(r[1]) for r in old]

    def texts_by_hash(self) -> list[tuple[str, str, str, str]]:
        """(text hash, text, section, title) of every distinct chunk text, history included."""
        rows = self._all(
            'SELECT text_hash, MIN(text COLLATE "C"), MIN(section COLLATE "C"), '
            'MIN(title COLLATE "C") FROM chunks GROUP BY text_hash'
        )
        return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def replace_vectors(self, vectors: dict[str, bytes]) -> None:
        """Write new vectors for every row with these text hashes, in one transaction; the HNSW
        index follows a change of dimension."""
        if not vectors:
            return
        dim = len(next(iter(vectors.values()))) // 4
        with self._tx() as db:
            if self._hnsw_dim not in (None, dim):
                db.execute("DROP INDEX IF EXISTS chunks_hnsw")
                self._hnsw_dim = None
            with db.cursor() as cursor:
                cursor.executemany(
                    "UPDATE chunks SET embedding = %b WHERE text_hash = %s",
                    [(_vector(blob), key) for key, blob in vectors.items()],
                )
            self._ensure_index(db, dim)

    def _index_dim(self) -> int | None:
        """The dimension the HNSW index casts to (None: no index yet)."""
        row = self._one(
            "SELECT pg_get_indexdef(to_regclass('chunks_hnsw')) WHERE to_regclass('chunks_hnsw') "
            "IS NOT NULL"
        )
        found = re.search(r"vector\((\d+)\)", row[0]) if row and row[0] else None
        return int(found.group(1)) if found else None

    def _ensure_index(self, db: Any, dim: int) -> None:
        """Create the HNSW index for vectors of ``dim`` once (inside the caller's transaction),
        with at least :data:`BUILD_MEMORY` for the build: pgvector builds far faster while its graph
        fits in ``maintenance_work_mem`` (64 MB by default holds about 40k 384-d rows, 1 GB about
        600k). A larger setting of the database or role (for a bigger first load) is kept."""
        if self._hnsw_dim == dim or dim > HNSW_MAX_DIM:
            return
        build_memory(db)
        db.execute(
            f"CREATE INDEX IF NOT EXISTS chunks_hnsw ON chunks USING hnsw "
            f"((embedding::vector({dim})) vector_cosine_ops) WHERE valid_to IS NULL"
        )
        self._hnsw_dim = dim

    # -- writes ------------------------------------------------------------------------------------

    def apply_document(
        self,
        snapshot: int,
        document: DocumentRow,
        text: str,
        add: Sequence[NewChunk],
        retire: Sequence[int],
    ) -> None:
        """A document's new version, its new chunks and its retired ones: one transaction."""
        with self._tx() as db:
            db.execute(
                "UPDATE documents SET valid_to = %s WHERE path = %s AND valid_to IS NULL",
                (snapshot, document.path),
            )
            db.execute(
                "INSERT INTO documents (path, version, kind, title, sha256, text, valid_from) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    document.path,
                    document.version,
                    document.kind,
                    document.title,
                    document.sha256,
                    text,
                    snapshot,
                ),
            )
            with db.cursor() as cursor:
                if retire:
                    cursor.execute(
                        "UPDATE chunks SET valid_to = %s WHERE id = ANY(%s) AND valid_to IS NULL",
                        (snapshot, [int(i) for i in retire]),
                    )
                if add:
                    cursor.executemany(
                        "INSERT INTO chunks (chunk_id, document, doc_version, ordinal, section, "
                        "title, text, text_hash, tokens, embedding, valid_from) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %b, %s)",
                        [
                            (
                                c.chunk_id, document.path, document.version, c.ordinal,
                                c.section, c.title, c.text, c.text_hash, c.tokens,
                                _vector(c.vector), snapshot,
                            )
                            for c in add
                        ],
                    )  # fmt: skip
            db.execute(
                "UPDATE snapshots SET chunks_added = chunks_added + %s, "
                "chunks_retired = chunks_retired + %s WHERE id = %s",
                (len(add), len(retire), snapshot),
            )
            # no HNSW index yet: finish_snapshot builds it over all the rows at once

    def retire_document(self, snapshot: int, path: str) -> int:
        """Retire a deleted document and all its live chunks, in one transaction."""
        with self._tx() as db:
            db.execute(
                "UPDATE documents SET valid_to = %s WHERE path = %s AND valid_to IS NULL",
                (snapshot, path),
            )
            retired = db.execute(
                "UPDATE chunks SET valid_to = %s WHERE document = %s AND valid_to IS NULL",
                (snapshot, path),
            ).rowcount
            db.execute(
                "UPDATE snapshots SET chunks_retired = chunks_retired + %s WHERE id = %s",
                (retired, snapshot),
            )
        return int(retired)

    def set_capabilities(self, members: dict[str, set[str]]) -> None:
        """Which capabilities each document serves."""
        with self._tx() as db:
            db.execute("DELETE FROM doc_capabilities")
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO doc_capabilities (path, capability) VALUES (%s, %s)",
                    [(path, cap) for path, caps in members.items() for cap in sorted(caps)],
                )

    def paths_of(self, capability: str) -> set[str]:
        """The documents a capability draws on."""
        rows = self._all("SELECT path FROM doc_capabilities WHERE capability = %s", (capability,))
        return {str(r[0]) for r in rows}

    def capabilities_of(self, path: str) -> list[str]:
        """The capabilities a document serves."""
        rows = self._all(
            "SELECT capability FROM doc_capabilities WHERE path = %s ORDER BY capability", (path,)
        )
        return [str(r[0]) for r in rows]

    # -- search ------------------------------------------------------------------------------------

    def bm25(
        self, query: str, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """Row ids and keyword scores (higher is better) of the chunks matching words of
        ``query``: per word, its ``ts_rank`` in the chunk times its inverse document frequency
        over all chunk versions (BM25's ``ln(1 + (N - n + 0.5) / (n + 0.5))``), summed.

        PostgreSQL ranks every row it is given (its GIN index finds rows, it does not rank
        them), so the rows ranked are those holding the query's rarer words: words are taken
        rarest first while the rows holding them add up to :data:`KEYWORD_ROWS` (and at least
        to ``limit``), and each of those rows is scored on every word. A row holding only the
        query's commonest words - the ones that weigh least - is left out; below
        :data:`KEYWORD_ROWS` matching rows in all, nothing is, and when a filter or a past
        snapshot leaves fewer than ``limit`` of the chosen rows, every match is ranked. A
        word's row count comes from the planner's statistics when they put it at
        :data:`ESTIMATED_ROWS` or more (counting it would read that many rows), else it is
        counted."""
        terms, total = self._keyword_terms(keyword_words(query))
        if not terms:
            return []
        chosen: list[str] = []
        rows = 0.0
        for query_text, n in sorted(terms, key=lambda t: t[1]):
            if rows >= limit and rows + n > KEYWORD_ROWS:
                break
            chosen.append(query_text)
            rows += n
        where, params = _visible("c", at)
        params["queries"] = [q for q, _ in terms]
        params["idfs"] = [math.log(1 + (total - n + 0.5) / (n + 0.5)) for _, n in terms]
        params["any"] = _any_of(chosen)
        params["weights"] = "{0, 0, 0.5, 1.0}"  # D, C, B (section, title), A (text)
        sql = (
            "WITH weighted AS MATERIALIZED (SELECT q::tsquery AS q, idf"
            " FROM unnest(%(queries)s::text[], %(idfs)s::float8[]) AS t(q, idf))"
            " SELECT c.id, (SELECT SUM(w.idf * ts_rank(%(weights)s, c.keywords, w.q, 1 | 32))"
            " FROM weighted w WHERE c.keywords @@ w.q) AS score"
            f" FROM chunks c WHERE c.keywords @@ %(any)s::tsquery AND {where}"
        )
        if paths is not None:
            sql += " AND c.document = ANY(%(paths)s)"
            params["paths"] = sorted(paths)
        sql += " ORDER BY score DESC, c.id LIMIT %(limit)s"
        params["limit"] = limit
        with self._mutex:
            found = self.conn.execute(sql, params).fetchall()
            if len(found) < limit and len(chosen) < len(terms):
                # a filter or a past snapshot left too few of those rows: rank every match
                params["any"] = _any_of([q for q, _ in terms])
                found = self.conn.execute(sql, params).fetchall()
        return [(int(r[0]), float(r[1])) for r in found]

    def _keyword_terms(self, words: list[str]) -> tuple[list[tuple[str, float]], float]:
        """Per word that can match (stop words cannot), its tsquery as text and the chunk rows
        holding it (all versions), and the rows in all: estimated from the planner's statistics
        where they are large (see :meth:`bm25`), else counted."""
        if not words:
            return [], 0.0
        with self._mutex:
            found = self.conn.execute(
                "WITH stats AS (SELECT most_common_elems::text::text[] AS elems,"
                " most_common_elem_freqs AS freqs FROM pg_stats WHERE tablename = 'chunks'"
                " AND attname = 'keywords' AND schemaname = current_schema()),"
                " tuples AS (SELECT GREATEST(reltuples, 0) AS n FROM pg_class"
                " WHERE oid = 'chunks'::regclass)"
                " SELECT q::text, (SELECT s.freqs[array_position(s.elems,"
                " (tsvector_to_array(to_tsvector('english', w)))[1])] FROM stats s), tuples.n"
                " FROM unnest(%s::text[]) AS w, to_tsquery('english', w) AS q, tuples"
                " WHERE numnode(q) > 0",
                (words,),
            ).fetchall()
            if not found:
                return [], 0.0
            tuples = float(found[0][2])
            # A small table (or one never analysed) is counted whole; in a large one the common
            # words' counts come from the statistics and the rest are counted through the index.
            small = tuples < ESTIMATED_ROWS
            counts = {
                q: share * tuples
                for q, share, _ in found
                if not small and share is not None and share * tuples >= ESTIMATED_ROWS
            }
            counted = [q for q, _, _ in found if q not in counts]
            total = tuples
            if counted:
                filters = ", ".join(
                    "COUNT(*) FILTER (WHERE keywords @@ %s::tsquery)" for _ in counted
                )
                row = self.conn.execute(
                    f"SELECT {filters}, COUNT(*) FROM chunks"
                    + ("" if small else " WHERE keywords @@ %s::tsquery"),
                    [*counted, *([] if small else [_any_of(counted)])],
                ).fetchone()
                counts.update((q, float(n)) for q, n in zip(counted, row[:-1], strict=True))
                total = float(row[-1]) if small else tuples
        return [(q, counts[q]) for q, _, _ in found], total

    def nearest(
        self, vector: Any, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """Row ids and cosine similarities of the chunks nearest ``vector`` among those visible
        at ``at`` (None: live), of ``paths``.

        With the HNSW index: the live rows through it (filters applied during the scan, which
        pgvector's iterative scan continues until enough rows pass), and for a search of history
        the rows retired since ``at`` ranked exactly beside them (as many as the changes since,
        read by ``valid_to``'s index). An exact scan of the visible rows where there is no index,
        and wherever the index answers fewer rows than asked (a filter more selective than the
        scan's reach, or fewer rows than ``limit``), so the answer is never short.
        """
        import numpy as np

        query = np.asarray(vector, dtype=np.float32).ravel()
        dim = query.size
        if self._hnsw_dim is None:
            self._hnsw_dim = self._index_dim()  # another process may have created it since
        params: dict[str, object] = {"q": _vector(query.tobytes()), "limit": limit}
        only = None  # the documents' condition, when searching some
        if paths is not None:
            only = "c.document = ANY(%(paths)s)"
            params["paths"] = sorted(paths)
        with self._mutex, self.conn.transaction():
            self.conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)", (str(max(EF_SEARCH, 2 * limit)),)
            )
            if self._hnsw_dim == dim and not (only and self._few(only, params, at)):
                found = self._through_index(dim, at, only, params)
                if len(found) >= limit:
                    return found[:limit]
            where, visible = _visible("c", at)
            distance = "c.embedding <=> %(q)b"
            rows = self.conn.execute(
                f"SELECT c.id, 1 - ({distance}) FROM chunks c WHERE {where}{_and(only)} "
                f"ORDER BY {distance}, c.id LIMIT %(limit)s",
                {**params, **visible},
            ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def _few(self, only: str, params: dict[str, object], at: int | None) -> bool:
        """Whether the documents of condition ``only`` hold :data:`EXACT_FILTER` or fewer rows
        (live, or visible at ``at``): ranked exactly at once, cheaper than an index scan that
        looks for them among all the rows. Counts at most one row past the limit."""
        visible, bound = _visible("c", at)
        row = self.conn.execute(  # inside the caller's transaction
            f"SELECT count(*) FROM (SELECT 1 FROM chunks c WHERE {visible} AND {only} "
            f"LIMIT {EXACT_FILTER + 1}) few",
            {**params, **bound},
        ).fetchone()
        return int(row[0]) <= EXACT_FILTER

    def _through_index(
        self, dim: int, at: int | None, only: str | None, params: dict[str, object]
    ) -> list[tuple[int, float]]:
        """The live rows (visible at ``at``; of ``only``'s documents) nearest the query through
        the HNSW index, plus, for a search of history, the rows retired since ``at`` ranked
        exactly; best first (inside the caller's transaction)."""
        distance = f"c.embedding::vector({dim}) <=> %(q)b::vector({dim})"
        since = " AND c.valid_from <= %(at)s" if at is not None else ""
        if only or at is not None:  # filtered: scan on until enough rows pass (pgvector 0.8)
            self.conn.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        # ``(...) IS TRUE`` keeps the planner from answering a filter through the documents'
        # btree and sorting every row it matches (108 ms for a quarter of 100k rows, against
        # about 12 ms through HNSW, measured): the index scan filters as it goes
        fenced = _and(f"({only}) IS TRUE" if only else None)
        rows = self.conn.execute(
            f"SELECT c.id, 1 - ({distance}) FROM chunks c WHERE c.valid_to IS NULL{since}{fenced} "
            f"ORDER BY {distance} LIMIT %(limit)s",
            {**params, "at": at},
        ).fetchall()
        if at is not None:
            rows += self.conn.execute(
                "SELECT c.id, 1 - (c.embedding <=> %(q)b) FROM chunks c WHERE c.valid_to > %(at)s "
                f"AND c.valid_from <= %(at)s{_and(only)} ORDER BY c.embedding <=> %(q)b, c.id "
                "LIMIT %(limit)s",
                {**params, "at": at},
            ).fetchall()
        return sorted(((int(r[0]), float(r[1])) for r in rows), key=lambda hit: -hit[1])

    # -- copying another store ---------------------------------------------------------------------

    def copy_from(
        self, source: KnowledgeStore, *, capabilities: Iterable[str] = (), batch: int = 1000
    ) -> dict[str, int]:
        """Copy another store's whole history into this empty one, in one transaction.

        Snapshots (ids, times, counts), every document version with its text, every chunk row
        with its id, visibility and vector, the capabilities of each document and the meta values
        come across as they are; chunk ids stay the same, so a derived index or a citation that
        names a row id still points at the same text. The live few-shot examples of
        ``capabilities`` come too (the previous versions SQLite keeps only to save embedding
        are left behind). Reads ``source`` through the :class:`KnowledgeStore` protocol only, so
        any store can be the source.

        Returns:
            What was copied: snapshots, document versions, chunk rows, examples.

        Raises:
            StoreError: This store is not empty, or the copy's counts differ from the source's
                (then nothing is written).
        """
        if self.latest_snapshot() or self.chunk_signature()[0]:
            raise StoreError(
                f"{self.location}: the store is not empty; copy into a new database or schema."
            )
        copied = {"snapshots": 0, "documents": 0, "chunks": 0, "examples": 0}
        with self.writing(), self._tx() as db, db.cursor() as cursor:
            for snap in source.snapshots():
                cursor.execute(
                    "INSERT INTO snapshots (id, started_at, finished_at, status, docs_added, "
                    "docs_changed, docs_deleted, chunks_added, chunks_retired, chunks_embedded, "
                    "embed_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        snap.id, datetime.fromisoformat(snap.started_at),
                        snap.finished_at and datetime.fromisoformat(snap.finished_at),
                        snap.status, snap.docs_added, snap.docs_changed, snap.docs_deleted,
                        snap.chunks_added, snap.chunks_retired, snap.chunks_embedded,
                        snap.embed_seconds,
                    ),
                )  # fmt: skip
                copied["snapshots"] += 1
            paths = sorted({path for path, _, _ in source.document_metadata()})
            for path in paths:
                for d in source.document_versions(path):
                    cursor.execute(
                        "INSERT INTO documents (path, version, kind, title, sha256, text, "
                        "valid_from, valid_to) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            d.path, d.version, d.kind, d.title, d.sha256,
                            source.document_text(path, d.version) or "", d.valid_from, d.valid_to,
                        ),
                    )  # fmt: skip
                    copied["documents"] += 1
            total, dim, start, empty = source.chunk_signature()[0], 0, 1, 0
            while copied["chunks"] < total and empty < 100:  # ids: 1, 2, ... with rare gaps
                ids = list(range(start, start + batch))
                start += batch
                rows = source.chunks(ids)
                empty = 0 if rows else empty + 1
                found, blobs = source.vectors_of(sorted(rows))
                vectors = dict(zip(found, blobs, strict=True))
                cursor.executemany(
                    "INSERT INTO chunks (id, chunk_id, document, doc_version, ordinal, section, "
                    "title, text, text_hash, tokens, embedding, valid_from, valid_to) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b, %s, %s)",
                    [
                        (
                            c.rowid, c.chunk_id, c.document, c.doc_version, c.ordinal, c.section,
                            c.title, c.text, c.text_hash, c.tokens, _vector(vectors[c.rowid]),
                            c.valid_from, c.valid_to,
                        )
                        for c in rows.values()
                    ],
                )  # fmt: skip
                copied["chunks"] += len(rows)
                if vectors:
                    dim = len(next(iter(vectors.values()))) // 4
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('chunks', 'id'), "
                "(SELECT COALESCE(MAX(id), 0) + 1 FROM chunks), false)"
            )
            members = {path: set(source.capabilities_of(path)) for path in paths}
            cursor.executemany(
                "INSERT INTO doc_capabilities (path, capability) VALUES (%s, %s)",
                [(path, cap) for path, caps in members.items() for cap in sorted(caps)],
            )
            for key in ("embedder", "dim", "embed_rate"):
                value = source.get_meta(key)
                if value is not None:
                    cursor.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (key, value))
            for capability in capabilities:
                state = source.examples_state(capability)
                if state is None:
                    continue
                rows_ = source.live_examples(capability)
                self.replace_examples(
                    capability,
                    rows_,
                    path=f"(copied from {source.location})",
                    dataset_sha256=state[0],
                    embedder=state[1],
                )
                copied["examples"] += len(rows_)
            if dim:
                self._ensure_index(db, dim)
            if self.counts() != source.counts() or self.chunk_signature() != (
                source.chunk_signature()
            ):
                raise StoreError(
                    f"{self.location}: the copy of {source.location} does not add up: "
                    f"{self.counts()} here, {source.counts()} there; nothing was written."
                )
        return copied

    # -- few-shot examples -------------------------------------------------------------------------

    def examples_state(self, capability: str) -> tuple[str, str] | None:
        """(dataset sha256, embedder) of a capability's live examples; None when it has none."""
        row = self._one(
            "SELECT dataset_sha256, embedder FROM examples "
            "WHERE capability = %s AND valid = 1 LIMIT 1",
            (capability,),
        )
        return None if row is None else (str(row[0]), str(row[1]))

    def example_vectors_by_hash(self, hashes: Iterable[str], embedder: str) -> dict[str, bytes]:
        """Vectors this embedder made for these example texts before (any capability, version)."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        rows = self._all(
            "SELECT DISTINCT ON (input_hash) input_hash, vector FROM examples "
            "WHERE embedder = %s AND input_hash = ANY(%s) ORDER BY input_hash, id",
            (embedder, wanted),
        )
        return {str(r[0]): bytes(r[1]) for r in rows}

    def replace_examples(
        self,
        capability: str,
        rows: Sequence[ExampleRow],
        *,
        path: str,
        dataset_sha256: str,
        embedder: str,
    ) -> None:
        """Make ``rows`` the capability's live examples, in one transaction; the live rows
        before become the previous version (``valid = 0``), the one before that is deleted."""
        with self._tx() as db:
            db.execute("DELETE FROM examples WHERE capability = %s AND valid = 0", (capability,))
            db.execute("UPDATE examples SET valid = 0 WHERE capability = %s", (capability,))
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO examples (capability, line, input, output, context, "
                    "input_hash, embedder, vector, path, dataset_sha256) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            capability, r.line, r.input, r.output, r.context, r.input_hash,
                            embedder, bytes(r.vector), path, dataset_sha256,
                        )
                        for r in rows
                    ],
                )  # fmt: skip

    def live_examples(self, capability: str) -> list[ExampleRow]:
        """A capability's live examples with their vectors, in line order."""
        rows = self._all(
            "SELECT line, input, output, context, input_hash, vector FROM examples "
            "WHERE capability = %s AND valid = 1 ORDER BY line, id",
            (capability,),
        )
        return [
            ExampleRow(
                line=int(r[0]),
                input=r[1],
                output=r[2],
                context=r[3],
                input_hash=r[4],
                vector=bytes(r[5]),
            )
            for r in rows
        ]


def _holder(conn: Any, key: str) -> int | None:
    """The server process id of the session that holds the advisory lock ``key`` (for
    messages; None when it cannot be told)."""
    import psycopg

    try:
        row = conn.execute(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND ((l.classid::bigint << 32) | l.objid::bigint) = {key}"
        ).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else int(row[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _vector(blob: bytes) -> Any:
    """float32 bytes as a pgvector value."""
    import numpy as np
    from pgvector import Vector

    return Vector(np.frombuffer(blob, dtype=np.float32))


def _bytes(value: Any) -> bytes:
    """A pgvector value as float32 bytes."""
    import numpy as np

    return np.asarray(value.to_numpy(), dtype=np.float32).tobytes()


def _document(r: Sequence[Any]) -> DocumentRow:
    return DocumentRow(
        path=str(r[0]),
        version=int(r[1]),
        kind=str(r[2]),
        title=str(r[3]),
        sha256=str(r[4]),
        valid_from=int(r[5]),
        valid_to=None if r[6] is None else int(r[6]),
        chunks=int(r[7]),
    )


def _chunk(r: Sequence[Any]) -> ChunkRow:
    return ChunkRow(
        rowid=int(r[0]),
        chunk_id=str(r[1]),
        document=str(r[2]),
        doc_version=int(r[3]),
        ordinal=int(r[4]),
        section=str(r[5]),
        title=str(r[6]),
        text=str(r[7]),
        text_hash=str(r[8]),
        tokens=int(r[9]),
        valid_from=int(r[10]),
        valid_to=None if r[11] is None else int(r[11]),
    )

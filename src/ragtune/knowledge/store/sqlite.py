"""The embedded store: one SQLite file in WAL mode, FTS5 for BM25, vectors as BLOBs.

Every chunk version is a row with ``valid_from``/``valid_to`` snapshot ids: nothing is deleted,
so "what did the template say then" is a query. A row is visible at snapshot ``S`` when
``valid_from <= S`` and ``valid_to`` is null or greater than ``S``; the live rows have a null
``valid_to``. Each document's change is one ``BEGIN IMMEDIATE`` transaction, so a reader sees the
old version of a document or the new, never a mix; a reader that needs several queries to agree
takes :meth:`SQLiteStore.reading`. Writers of whole snapshots (syncs) take
:meth:`SQLiteStore.writing`, a lock file beside the store: one at a time, across processes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragtune.knowledge.store import (
    ChangeMark,
    ChunkRow,
    DocumentRow,
    NewChunk,
    Snapshot,
    StoreError,
    resolve_as_of,
)
from ragtune.knowledge.store.examples import ExampleRows
from ragtune.knowledge.store.keyword import (
    KeywordIndex,
    available,
    change_mark,
    keyword_path,
)
from ragtune.knowledge.store.lock import WriterLock
from ragtune.knowledge.store.migrations import (
    blobs_by_key,
    migrate,
    read_transaction,
    transaction,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _visible(alias: str = "c") -> str:
    return f"{alias}.valid_from <= :at AND ({alias}.valid_to IS NULL OR {alias}.valid_to > :at)"


def _visible_at(alias: str, at: int | None) -> tuple[str, dict[str, object]]:
    """The SQL condition (and parameters) for rows visible at a snapshot, or live when None."""
    if at is None:
        return f"{alias}.valid_to IS NULL", {}
    return _visible(alias), {"at": at}


_CHUNK_COLUMNS = (
    "c.id, c.chunk_id, c.document, c.doc_version, c.ordinal, c.section, c.title, c.text, "
    "c.text_hash, c.tokens, c.valid_from, c.valid_to"
)
_FTS_TOKEN = re.compile(r"[\w]+", re.UNICODE)
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by can do does for from has have how i if in is it its may of on "
        "or our over the their them there they this to under us was we what when where which who "
        "will with within you your",
    )
)


def query_words(text: str) -> list[str]:
    """The distinct words of ``text``, lower case, stop words dropped (all of them when every
    word is one)."""
    words = [w for w in _FTS_TOKEN.findall(text.lower()) if w not in _STOPWORDS]
    if not words:
        words = _FTS_TOKEN.findall(text.lower())
    return list(dict.fromkeys(words))


def fts_query(text: str) -> str | None:
    """An FTS5 query matching any of the words of ``text`` (stop words dropped), or ``None``."""
    words = query_words(text)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


def _wal(db: sqlite3.Connection, wait_s: float = 10.0) -> None:
    """Switch the database to write-ahead logging. Turning a new file to WAL needs it to
    itself, and SQLite answers "database is locked" at once rather than through the busy
    timeout when several processes open a new store together: try again for ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteStore(ExampleRows):
    """The knowledge store in one SQLite file (``.ragtune/knowledge.db``).

    Its schema is in ``migrations.py``; the few-shot example rows it also keeps, in
    ``examples.py``.
    """

    native_vectors = False  # the vector index is a derived file beside the store

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.location = str(path)
        # Values computed from the store (search's document aliases), each with the snapshot it
        # was computed at, so a later snapshot recomputes it.
        self.derived: dict[str, tuple[int, object]] = {}
        if readonly and not path.exists():
            raise StoreError(f"{path}: no knowledge store yet; run `ragtune knowledge sync` first.")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout = 10000")
            _wal(self.db)
            self.db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the knowledge store: {exc}") from exc
        self.db.row_factory = sqlite3.Row
        migrate(self.db)
        self.writer = WriterLock(path, "the knowledge store")
        # BM25 through tantivy (knowledge.keyword/ beside the file) when it is installed;
        # FTS5 inside the file answers whenever that index cannot.
        self.keyword = KeywordIndex(keyword_path(path)) if available() else None

    # -- concurrency -------------------------------------------------------------------------------

    def writing(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the store's writer lock (``knowledge.db.lock``) for the block.

        A sync holds it from reading what is live until its snapshot is complete; another
        process that wants it waits (saying so) up to ``timeout`` seconds, default
        ``RAGTUNE_LOCK_TIMEOUT`` or 600, then raises :class:`StoreError`.
        """
        return self.writer.hold(timeout)

    def reading(self) -> AbstractContextManager[sqlite3.Connection]:
        """One read transaction for the block: every query in it sees the same state."""
        return read_transaction(self.db)

    # -- upkeep ------------------------------------------------------------------------------------

    def optimize(self) -> None:
        """Refresh the query planner's statistics (sampled: milliseconds even at 100k chunks),
        and bring the keyword index (tantivy) up to the store: a sync calls it when it is done.

        With the statistics, FTS5's join reads the small visibility index instead of whole chunk
        rows (vectors included): 2.3x faster at 50k chunks in bench_knowledge. Never run on an
        empty store - statistics of empty tables mislead the planner into slow inserts.
        """
        self.db.execute("PRAGMA analysis_limit = 1000")
        self.db.execute("ANALYZE")
        if self.keyword is not None:
            with self.reading() as db:
                self.keyword.catch_up(db)

    def repair(self) -> list[str]:
        """Rebuild the keyword indexes (FTS5 and tantivy) from the chunks."""
        with transaction(self.db) as db:
            db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
        done = [f"{self.path}: keyword index (FTS5) rebuilt from the chunks"]
        if self.keyword is not None:
            with self.reading() as db:
                done.append(f"{self.keyword.path}: keyword index (tantivy) "
                            f"{self.keyword.rebuild(db)}")  # fmt: skip
        return done

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    # -- meta --------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value recorded in the store."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Record a value in the store."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- snapshots ---------------------------------------------------------------------------------

    def begin_snapshot(self) -> int:
        """Start a snapshot, or resume the open one an interrupted sync left behind."""
        row = self.db.execute(
            "SELECT id FROM snapshots WHERE status = 'open' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self.db.execute("INSERT INTO snapshots (started_at) VALUES (?)", (_now(),))
        return int(cursor.lastrowid or 0)

    def finish_snapshot(self, snapshot: int, counts: dict[str, float]) -> None:
        """Mark a snapshot complete, adding ``counts`` to what it recorded so far."""
        allowed = {
            "docs_added", "docs_changed", "docs_deleted", "chunks_added", "chunks_retired",
            "chunks_embedded", "embed_seconds",
        }  # fmt: skip
        sets = ", ".join(f"{k} = {k} + :{k}" for k in counts if k in allowed)
        params = {k: v for k, v in counts.items() if k in allowed}
        self.db.execute(
            f"UPDATE snapshots SET {sets + ', ' if sets else ''}status = 'complete', "
            "finished_at = :now WHERE id = :id",
            {**params, "now": _now(), "id": snapshot},
        )

    def discard_empty_snapshot(self, snapshot: int) -> None:
        """Drop a snapshot in which nothing changed (a no-op sync leaves no trace)."""
        used = self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM chunks WHERE valid_from = :s OR valid_to = :s) "
            "OR EXISTS (SELECT 1 FROM documents WHERE valid_from = :s OR valid_to = :s)",
            {"s": snapshot},
        ).fetchone()[0]
        if not used:
            self.db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot,))

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest first."""
        rows = self.db.execute("SELECT * FROM snapshots ORDER BY id").fetchall()
        return [Snapshot(**dict(row)) for row in rows]

    def latest_snapshot(self) -> int:
        """The newest snapshot id (0 for an empty store)."""
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM snapshots").fetchone()[0])

    def resolve_as_of(self, value: str) -> int:
        """A snapshot id from ``"12"`` or an ISO time (the last snapshot started by then)."""

        def started_by(when: datetime) -> int | None:
            row = self.db.execute(
                "SELECT MAX(id) FROM snapshots WHERE started_at <= ?",
                (when.astimezone(UTC).isoformat(timespec="microseconds"),),
            ).fetchone()
            return None if row[0] is None else int(row[0])

        return resolve_as_of(self, value, started_by)

    # -- documents and chunks ----------------------------------------------------------------------

    def current_documents(self) -> dict[str, DocumentRow]:
        """The live version of every document, by path."""
        rows = self.db.execute(
            "SELECT d.path, d.version, d.kind, d.title, d.sha256, d.valid_from, d.valid_to, "
            "(SELECT COUNT(*) FROM chunks c WHERE c.document = d.path AND c.valid_to IS NULL) "
            "AS chunks FROM documents d WHERE d.valid_to IS NULL ORDER BY d.path"
        ).fetchall()
        return {row["path"]: DocumentRow(**dict(row)) for row in rows}

    def document_versions(self, path: str) -> list[DocumentRow]:
        """Every version of a document, oldest first."""
        rows = self.db.execute(
            "SELECT d.path, d.version, d.kind, d.title, d.sha256, d.valid_from, d.valid_to, "
            "(SELECT COUNT(*) FROM chunks c WHERE c.document = d.path "
            " AND c.doc_version = d.version) AS chunks "
            "FROM documents d WHERE d.path = ? ORDER BY d.version",
            (path,),
        ).fetchall()
        return [DocumentRow(**dict(row)) for row in rows]

    def last_version(self, path: str) -> int:
        """The highest version a document has had, live or retired (0: never stored)."""
        row = self.db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM documents WHERE path = ?", (path,)
        ).fetchone()
        return int(row[0])

    def document_text(self, path: str, version: int) -> str | None:
        """The text of one version of a document."""
        row = self.db.execute(
            "SELECT text FROM documents WHERE path = ? AND version = ?", (path, version)
        ).fetchone()
        return None if row is None else str(row[0])

    def document_metadata(self) -> list[tuple[str, str, str]]:
        """(path, kind, title) of every document version, distinct."""
        rows = self.db.execute("SELECT DISTINCT path, kind, title FROM documents").fetchall()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def current_chunks(self, path: str) -> list[ChunkRow]:
        """The live chunks of one document, in order."""
        rows = self.db.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c "
            "WHERE c.document = ? AND c.valid_to IS NULL ORDER BY c.ordinal",
            (path,),
        ).fetchall()
        return [_chunk(row) for row in rows]

    def chunks(self, rowids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows by row id."""
        out: dict[int, ChunkRow] = {}
        ids = list(rowids)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE c.id IN ({marks})", part
            ):
                out[int(row["id"])] = _chunk(row)
        return out

    def vectors_by_hash(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Vectors already computed for these chunk texts (any version), by text hash."""
        return blobs_by_key(
            self.db, "SELECT text_hash, vector FROM chunks WHERE text_hash IN ({marks})", hashes
        )

    def apply_document(
        self,
        snapshot: int,
        document: DocumentRow,
        text: str,
        add: Sequence[NewChunk],
        retire: Sequence[int],
    ) -> None:
        """A document's new version, its new chunks and its retired ones: one transaction."""
        with transaction(self.db) as db:
            db.execute(
                "UPDATE documents SET valid_to = ? WHERE path = ? AND valid_to IS NULL",
                (snapshot, document.path),
            )
            db.execute(
                "INSERT INTO documents (path, version, kind, title, sha256, text, valid_from) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            db.executemany(
                "UPDATE chunks SET valid_to = ? WHERE id = ? AND valid_to IS NULL",
                [(snapshot, rowid) for rowid in retire],
            )
            db.executemany(
                "INSERT INTO chunks (chunk_id, document, doc_version, ordinal, section, title, "
                "text, text_hash, tokens, vector, valid_from) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.chunk_id,
                        document.path,
                        document.version,
                        c.ordinal,
                        c.section,
                        c.title,
                        c.text,
                        c.text_hash,
                        c.tokens,
                        c.vector,
                        snapshot,
                    )
                    for c in add
                ],
            )
            db.execute(
                "UPDATE snapshots SET chunks_added = chunks_added + ?, "
                "chunks_retired = chunks_retired + ? WHERE id = ?",
                (len(add), len(retire), snapshot),
            )

    def replace_vectors(self, vectors: dict[str, bytes]) -> None:
        """Write new vectors for every row with these text hashes, in one transaction."""
        with transaction(self.db) as db:
            db.executemany(
                "UPDATE chunks SET vector = ? WHERE text_hash = ?",
                [(vector, key) for key, vector in vectors.items()],
            )

    def retire_document(self, snapshot: int, path: str) -> int:
        """Retire a deleted document and all its live chunks, in one transaction."""
        with transaction(self.db) as db:
            db.execute(
                "UPDATE documents SET valid_to = ? WHERE path = ? AND valid_to IS NULL",
                (snapshot, path),
            )
            retired = db.execute(
                "UPDATE chunks SET valid_to = ? WHERE document = ? AND valid_to IS NULL",
                (snapshot, path),
            ).rowcount
            db.execute(
                "UPDATE snapshots SET chunks_retired = chunks_retired + ? WHERE id = ?",
                (retired, snapshot),
            )
        return int(retired)

    def set_capabilities(self, members: dict[str, set[str]]) -> None:
        """Which capabilities each document serves."""
        with transaction(self.db) as db:
            db.execute("DELETE FROM doc_capabilities")
            db.executemany(
                "INSERT INTO doc_capabilities (path, capability) VALUES (?, ?)",
                [(path, cap) for path, caps in members.items() for cap in sorted(caps)],
            )

    def paths_of(self, capability: str) -> set[str]:
        """The documents a capability draws on."""
        rows = self.db.execute(
            "SELECT path FROM doc_capabilities WHERE capability = ?", (capability,)
        )
        return {row[0] for row in rows}

    def capabilities_of(self, path: str) -> list[str]:
        """The capabilities a document serves."""
        rows = self.db.execute(
            "SELECT capability FROM doc_capabilities WHERE path = ? ORDER BY capability", (path,)
        )
        return [row[0] for row in rows]

    # -- search ------------------------------------------------------------------------------------

    def bm25(
        self, query: str, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """Row ids and BM25 scores (higher is better) of the chunks matching ``query``.

        Through the tantivy keyword index, caught up first if the store moved on; through FTS5
        (:meth:`fts_bm25`) when tantivy is not installed or another process is writing that
        index while it is behind.
        """
        if self.keyword is not None:
            with self.reading() as db:
                if self.keyword.catch_up(db) != "busy":
                    return self.keyword.search(query_words(query), limit, at=at, paths=paths)
        return self.fts_bm25(query, limit, at=at, paths=paths)

    def fts_bm25(
        self, query: str, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """:meth:`bm25` by FTS5: exhaustive (every matching row is scored), the reference the
        tantivy index is tested against."""
        match = fts_query(query)
        if match is None:
            return []
        at = self.latest_snapshot() if at is None else at
        sql = (
            "SELECT c.id, -bm25(chunks_fts, 1.0, 0.5, 0.5) AS score FROM chunks_fts "
            "JOIN chunks c ON c.id = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH :match AND {_visible()} "
        )
        params: dict[str, object] = {"match": match, "at": at, "limit": limit}
        if paths is not None:
            sql += "AND c.document IN (SELECT value FROM json_each(:paths)) "
            params["paths"] = _json_list(paths)
        sql += "ORDER BY bm25(chunks_fts, 1.0, 0.5, 0.5) LIMIT :limit"
        return [(int(r[0]), float(r[1])) for r in self.db.execute(sql, params)]

    def vectors_at(
        self, at: int | None = None, paths: set[str] | None = None
    ) -> tuple[list[int], list[bytes]]:
        """Row ids and vectors of the chunks visible at a snapshot (default: live ones)."""
        where, params = _visible_at("c", at)
        sql = f"SELECT c.id, c.vector FROM chunks c WHERE {where} "
        if paths is not None:
            sql += "AND c.document IN (SELECT value FROM json_each(:paths)) "
            params["paths"] = _json_list(paths)
        rows = self.db.execute(sql + "ORDER BY c.id", params).fetchall()
        return [int(r[0]) for r in rows], [bytes(r[1]) for r in rows]

    def vectors_of(self, rowids: Sequence[int]) -> tuple[list[int], list[bytes]]:
        """Row ids and vectors of these chunk rows, ordered by id."""
        rows = self.db.execute(
            "SELECT id, vector FROM chunks WHERE id IN (SELECT value FROM json_each(?)) "
            "ORDER BY id",
            (json.dumps(sorted(int(i) for i in rowids)),),
        ).fetchall()
        return [int(r[0]) for r in rows], [bytes(r[1]) for r in rows]

    def since(
        self, at: int, paths: set[str] | None = None
    ) -> tuple[set[int], list[int], list[bytes]]:
        """What separates the live chunks from those visible at snapshot ``at`` (of ``paths``):
        the live rows added after it, and the row ids and vectors of the rows visible then and
        retired since. Both are read by index, in time with the changes since ``at``, not with
        the store's size."""
        where = ""
        params: dict[str, object] = {"at": at}
        if paths is not None:
            where = "AND c.document IN (SELECT value FROM json_each(:paths)) "
            params["paths"] = _json_list(paths)
        # INDEXED BY: the planner otherwise walks every live row for ``valid_to IS NULL``
        late = self.db.execute(
            "SELECT c.id FROM chunks c INDEXED BY chunks_from "
            f"WHERE c.valid_from > :at AND c.valid_to IS NULL {where}",
            params,
        )
        old = self.db.execute(
            "SELECT c.id, c.vector FROM chunks c INDEXED BY chunks_to "
            f"WHERE c.valid_to > :at AND c.valid_from <= :at {where}ORDER BY c.id",
            params,
        ).fetchall()
        return {int(r[0]) for r in late}, [int(r[0]) for r in old], [bytes(r[1]) for r in old]

    def texts_by_hash(self) -> list[tuple[str, str, str, str]]:
        """(text hash, text, section, title) of every distinct chunk text, history included."""
        rows = self.db.execute(
            "SELECT text_hash, MIN(text), MIN(section), MIN(title) FROM chunks GROUP BY text_hash"
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def nearest(
        self, vector: Any, limit: int, *, at: int | None = None, paths: set[str] | None = None
    ) -> list[tuple[int, float]]:
        """The exact nearest chunks by a matrix product over the visible vectors (the live
        search uses the HNSW index file instead; this serves history and filters)."""
        import numpy as np

        from ragtune.knowledge.index import brute_force

        query = np.asarray(vector, dtype=np.float32).ravel()
        ids, blobs = self.vectors_at(at, paths)
        return brute_force(query, ids, blobs, query.size, limit)

    def live_hashes(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        """The text hash of each of these chunks that is live now; a chunk that was removed is
        missing from the result."""
        rows = self.db.execute(
            "SELECT chunk_id, text_hash FROM chunks WHERE valid_to IS NULL "
            "AND chunk_id IN (SELECT value FROM json_each(?))",
            (_json_list(set(chunk_ids)),),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def live_ids(self, paths: set[str] | None = None) -> set[int]:
        """Row ids of the live chunks (of these documents)."""
        if paths is None:
            rows = self.db.execute("SELECT id FROM chunks WHERE valid_to IS NULL")
        else:
            rows = self.db.execute(  # by document: the planner otherwise walks every live row
                "SELECT id FROM chunks INDEXED BY chunks_live WHERE valid_to IS NULL "
                "AND document IN (SELECT value FROM json_each(?))",
                (_json_list(paths),),
            )
        return {int(r[0]) for r in rows}

    def chunk_signature(self) -> tuple[int, int]:
        """(all chunk rows, retired rows)."""
        row = self.db.execute("SELECT COUNT(*), COUNT(valid_to) FROM chunks").fetchone()
        return int(row[0]), int(row[1])

    def change_mark(self, since: int | None = None) -> ChangeMark:
        """Where the chunks stand now (three index reads)."""
        return change_mark(self.db, since)

    def versions_at(self, paths: Iterable[str], at: int | None = None) -> dict[str, int]:
        """The version of each document visible at a snapshot (default: the live one).

        A chunk that did not change keeps its row across document versions, so the version a
        search reports comes from here, not from the row that first held the text.
        """
        wanted = list(dict.fromkeys(paths))
        if not wanted:
            return {}
        where, params = _visible_at("d", at)
        sql = f"SELECT path, version FROM documents d WHERE {where} "
        sql += "AND d.path IN (SELECT value FROM json_each(:paths))"
        params["paths"] = _json_list(wanted)
        return {row[0]: int(row[1]) for row in self.db.execute(sql, params)}

    def lookup(self, path: str, key: str, at: int | None = None) -> ChunkRow | None:
        """The row of a table whose key column equals ``key`` (case and spaces ignored)."""
        at = self.latest_snapshot() if at is None else at
        row = self.db.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks c WHERE c.document = :path "
            f"AND lower(trim(c.section)) = lower(trim(:key)) AND {_visible()} LIMIT 1",
            {"path": path, "key": key, "at": at},
        ).fetchone()
        return None if row is None else _chunk(row)

    def counts(self) -> dict[str, int]:
        """Live documents and chunks, and all chunk versions kept."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM documents WHERE valid_to IS NULL), "
            "(SELECT COUNT(*) FROM chunks WHERE valid_to IS NULL), (SELECT COUNT(*) FROM chunks)"
        ).fetchone()
        return {"documents": int(row[0]), "chunks": int(row[1]), "chunk_versions": int(row[2])}


def _json_list(values: Iterable[str]) -> str:
    return json.dumps(sorted(values))


def _chunk(row: sqlite3.Row) -> ChunkRow:
    return ChunkRow(
        rowid=int(row["id"]),
        chunk_id=row["chunk_id"],
        document=row["document"],
        doc_version=int(row["doc_version"]),
        ordinal=int(row["ordinal"]),
        section=row["section"],
        title=row["title"],
        text=row["text"],
        text_hash=row["text_hash"],
        tokens=int(row["tokens"]),
        valid_from=int(row["valid_from"]),
        valid_to=None if row["valid_to"] is None else int(row["valid_to"]),
    )

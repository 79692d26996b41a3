"""The schema of the SQLite knowledge store: append-only named migrations, applied once each.

A migration is a function named ``mNNN_what_it_does``, registered with :func:`migration`; the
store records each one applied in table ``migrations`` and runs the rest, in order, each in one
write transaction (:func:`transaction`), when it opens. Never edit a migration that has shipped:
add the next one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register a schema migration; they run once each, in the order they are defined."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Documents, chunks with their history and vectors, snapshots, BM25 index."""
    execute_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'open',
            docs_added INTEGER NOT NULL DEFAULT 0,
            docs_changed INTEGER NOT NULL DEFAULT 0,
            docs_deleted INTEGER NOT NULL DEFAULT 0,
            chunks_added INTEGER NOT NULL DEFAULT 0,
            chunks_retired INTEGER NOT NULL DEFAULT 0,
            chunks_embedded INTEGER NOT NULL DEFAULT 0,
            embed_seconds REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            version INTEGER NOT NULL,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            text TEXT NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to INTEGER,
            UNIQUE (path, version)
        );
        CREATE INDEX documents_live ON documents (path) WHERE valid_to IS NULL;
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            chunk_id TEXT NOT NULL,
            document TEXT NOT NULL,
            doc_version INTEGER NOT NULL,
            ordinal INTEGER NOT NULL,
            section TEXT NOT NULL,
            title TEXT NOT NULL,
            text TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            vector BLOB NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_to INTEGER
        );
        CREATE INDEX chunks_live ON chunks (document) WHERE valid_to IS NULL;
        CREATE INDEX chunks_hash ON chunks (text_hash);
        CREATE INDEX chunks_from ON chunks (valid_from);
        CREATE INDEX chunks_to ON chunks (valid_to);
        CREATE VIRTUAL TABLE chunks_fts USING fts5 (
            text, section, title,
            content = 'chunks', content_rowid = 'id', tokenize = 'porter unicode61'
        );
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts (rowid, text, section, title)
            VALUES (new.id, new.text, new.section, new.title);
        END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts (chunks_fts, rowid, text, section, title)
            VALUES ('delete', old.id, old.text, old.section, old.title);
        END;
        CREATE TABLE doc_capabilities (
            path TEXT NOT NULL,
            capability TEXT NOT NULL,
            PRIMARY KEY (path, capability)
        );
        """,
    )


@migration
def m002_visibility_index(db: sqlite3.Connection) -> None:
    """A covering index for "is this row visible": BM25 joins without reading whole rows."""
    execute_script(
        db,
        """
        CREATE INDEX chunks_visibility ON chunks (id, valid_from, valid_to, document);
        """,
    )


@migration
def m003_examples(db: sqlite3.Connection) -> None:
    """Few-shot examples per capability, each with the vector of its text, for selection.

    ``input_hash`` (sha1 of input and context) and ``embedder`` key the vector: re-indexing a
    file copies the vectors of unchanged inputs instead of embedding them again. The rows of the
    previous version of a capability's file stay (``valid = 0``) so that undoing an edit embeds
    nothing either; older ones are dropped.
    """
    execute_script(
        db,
        """
        CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            capability TEXT NOT NULL,
            line INTEGER NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            context TEXT,
            input_hash TEXT NOT NULL,
            embedder TEXT NOT NULL,
            vector BLOB NOT NULL,
            path TEXT NOT NULL,
            dataset_sha256 TEXT NOT NULL,
            valid INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX examples_live ON examples (capability, line) WHERE valid = 1;
        CREATE INDEX examples_hash ON examples (input_hash, embedder);
        """,
    )


def execute_script(db: sqlite3.Connection, script: str) -> None:
    """Run SQL statements one by one, inside the caller's transaction.

    (``executescript`` would commit first: a migration must apply whole or not at all.)
    """
    current: list[str] = []
    for line in script.splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            db.execute(joined)
            current = []


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: taken at once (no upgrade deadlock), whole or rolled back.

    A migration runs in one, and so does every write of the store.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


@contextmanager
def read_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Reads that all see one state of the store, whatever other processes commit meanwhile.

    In WAL mode a read transaction keeps the snapshot its first read saw: a search that reads
    candidates, rows and document versions in several queries gets them from one state, never
    a chunk of one sync with the version of the next. Inside a transaction already, it adds
    nothing (the outer one decides).
    """
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN")
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("COMMIT")  # nothing was written: this only ends the read


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this database has not had yet, in order, each in one transaction.

    Processes that open a new store at once all get here: each migration is checked again
    inside its write transaction, so the one that applies it first is the only one.
    """
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in db.execute("SELECT name FROM migrations")}
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with transaction(db):
            if db.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                continue  # another process applied it since we looked
            fn(db)
            applied = datetime.now(UTC).isoformat(timespec="microseconds")
            db.execute("INSERT INTO migrations VALUES (?, ?)", (name, applied))


def blobs_by_key(
    db: sqlite3.Connection, select: str, keys: Iterable[str], params: Sequence[object] = ()
) -> dict[str, bytes]:
    """``{key: blob}`` for ``select`` - a query of two columns ending in ``IN ({marks})`` - over
    ``keys`` in batches of 500 (SQLite's limit on parameters), ``params`` bound before them; the
    first row of a key wins."""
    wanted = list(dict.fromkeys(keys))
    out: dict[str, bytes] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        for row in db.execute(select.format(marks=",".join("?" * len(part))), [*params, *part]):
            out.setdefault(row[0], bytes(row[1]))
    return out

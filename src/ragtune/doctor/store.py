"""The knowledge store and what is derived from it: integrity, keyword index, schema, snapshots,
the vector index and the few-shot examples.

The SQLite file is read with SQL of its own (``integrity_check``, FTS5's integrity-check, the
usearch file beside it). A PostgreSQL store (``knowledge.store`` / ``RAGTUNE_STORE`` naming a
``postgresql://`` URL) is read on a connection of the doctor's own, read only: the server
reached, pgvector created in the database, the schema's migrations, an open snapshot, the
vectors' dimension, the keyword (GIN) and the derived HNSW indexes. Whatever the backend, what
the :class:`~ragtune.knowledge.store.KnowledgeStore` protocol answers is then checked the same
way (the few-shot examples, the documents from outside the project). Nothing is created or
migrated: a store with pending migrations is only named.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.doctor.report import Area, Check
from ragtune.errors import RagtuneError
from ragtune.project import Project

if TYPE_CHECKING:
    from ragtune.knowledge.store import KnowledgeStore

INDEX = "knowledge.usearch"
"""The vector index file, beside the store (as ``KnowledgeBase.index_path`` names it)."""


@contextlib.contextmanager
def open_store(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to an existing store that neither creates nor migrates it.

    Read-write (``mode=rw``) where allowed, though only the rolled-back FTS5 check writes: the
    last connection to close then removes the WAL files, as after any ragtune command.
    """
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.OperationalError:  # a read-only folder or file
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 10000")
        yield db
    finally:
        db.close()


def check_store(project: Project) -> tuple[list[Check], bool]:
    """The knowledge store's integrity, keyword index, schema, snapshots and vectors.

    Returns:
        The checks, and whether the store is readable (the checks that read it need one).
    """
    from ragtune.knowledge.store import store_scheme
    from ragtune.knowledge.sync import store_location

    out = Area("store", project.root)
    location = store_location(project)
    if store_scheme(location) in ("postgresql", "postgres"):
        return out.checks, _check_postgres(project, location, out)
    if "://" in location and store_scheme(location) != "sqlite":
        return out.checks, _check_any(project, location, out)
    path = Path(location.split("://", 1)[1] if "://" in location else location)
    sync = out.fix("knowledge sync")
    if not path.is_file():
        _no_store(project, str(path), out)
        return out.checks, False
    aside = f"mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.broken')} && {sync}"
    try:
        with open_store(path) as db:
            rows = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)")]
            if rows != ["ok"]:
                said = "; ".join(rows[:5])
                out.fail("integrity", f"{path}: SQLite's integrity check failed: {said}", aside)
                return out.checks, False
            out.ok("integrity", f"{path}: integrity_check ok")
            applied = [str(r[0]) for r in db.execute("SELECT name FROM migrations ORDER BY rowid")]
            meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
            sql = "SELECT id FROM snapshots WHERE status = 'open'"
            unfinished = [str(r[0]) for r in db.execute(sql)]
            sql = "SELECT COUNT(*) FROM chunks WHERE length(vector) != ?"
            width = int(meta.get("dim", 0)) * 4
            bad_vectors = int(db.execute(sql, (width,)).fetchone()[0]) if width else 0
            fts = _fts_problem(db)
    except sqlite3.DatabaseError as exc:
        out.fail("integrity", f"{path}: not a readable knowledge store ({exc})", aside)
        return out.checks, False
    if fts is None:
        out.ok("keyword index", "FTS5 integrity-check ok against the chunks")
    else:
        out.fail("keyword index", f"the FTS5 index does not match the chunks ({fts})",
                 out.fix("doctor --repair"))  # fmt: skip
    from ragtune.knowledge.store.migrations import MIGRATIONS

    _check_schema(applied, [name for name, _ in MIGRATIONS], out)
    if unfinished:
        out.fail("snapshots", f"snapshot {', '.join(unfinished)} is open: a sync was interrupted "
                 "(the next sync finishes it)", sync)  # fmt: skip
    else:
        out.ok("snapshots", "no interrupted sync")
    _check_embedder(project, meta, bad_vectors, out)
    return out.checks, True


def _no_store(project: Project, where: str, out: Area) -> None:
    """No store yet: a failure when a capability has sources to search."""
    from ragtune.knowledge.tools import is_tool_ref

    if any(not is_tool_ref(r) for c in project.config.capabilities for r in c.sources):
        out.fail("knowledge store", f"{where}: none yet; retrieval has nothing to search",
                 out.fix("knowledge sync"))  # fmt: skip
    else:
        out.ok("knowledge store", "no capability has sources: no store needed")


def _check_any(project: Project, location: str, out: Area) -> bool:
    """A store of a backend the doctor knows nothing particular about (a plugin's): what the
    protocol answers. Returns whether it could be opened."""
    from ragtune.knowledge.store import StoreError, open_store, redact

    try:
        store = open_store(location, readonly=True)
    except StoreError as exc:
        out.fail("knowledge store", str(exc), out.fix("knowledge sync"))
        return False
    try:
        out.ok("knowledge store", f"{redact(location)} opens")
        _check_contents(project, store, out)
    finally:
        store.close()
    return True


def _check_contents(project: Project, store: KnowledgeStore, out: Area) -> None:
    """Through the protocol: an interrupted sync, the embedder of the vectors, the counts."""
    open_ = [str(s.id) for s in store.snapshots() if s.status == "open"]
    if open_:
        out.fail("snapshots", f"snapshot {', '.join(open_)} is open: a sync was interrupted "
                 "(the next sync finishes it)", out.fix("knowledge sync"))  # fmt: skip
    else:
        out.ok("snapshots", "no interrupted sync")
    meta = {k: v for k in ("embedder", "dim") if (v := store.get_meta(k)) is not None}
    _check_embedder(project, meta, 0, out)
    counts, (rows, retired) = store.counts(), store.chunk_signature()
    out.ok("contents", f"{counts['documents']} live documents, {counts['chunks']} live chunks; "
           f"{rows} chunk rows kept ({retired} retired) over {len(store.snapshots())} "
           "snapshot(s)")  # fmt: skip


# -- PostgreSQL ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres(location: str) -> Iterator[Any]:
    """A read-only connection of the doctor's own to the store's database."""
    import psycopg

    conn = psycopg.connect(
        location, autocommit=True, connect_timeout=10, application_name="ragtune doctor"
    )
    try:
        conn.read_only = True
        yield conn
    finally:
        conn.close()


def _psql(location: str, sql: str) -> str:
    """The psql command that runs ``sql`` on the store's database (its password left out)."""
    from ragtune.knowledge.migrate import url_without_password

    return f"psql {shlex.quote(url_without_password(location))} -c {shlex.quote(sql)}"


def _check_postgres(project: Project, location: str, out: Area) -> bool:
    """The server, pgvector, the schema, snapshots, vectors and the keyword index of a
    PostgreSQL store. Returns whether the store can be read (the schema is current)."""
    from ragtune.errors import redact_url
    from ragtune.knowledge.store.postgres_migrations import INSTALL_PGVECTOR, MIGRATIONS

    shown = redact_url(location)
    try:
        import psycopg
    except ModuleNotFoundError:
        out.fail("server", f"{shown}: the PostgreSQL client is not installed",
                 "pip install 'ragtune[postgres]'")  # fmt: skip
        return False
    try:
        with _postgres(location) as db:
            version = str(db.execute("SHOW server_version").fetchone()[0])
            out.ok("server", f"{shown}: PostgreSQL {version.split()[0]} reached")
            row = db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            found = row.fetchone()
            if found is None:
                create = _psql(location, "CREATE EXTENSION vector")
                sql = "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
                if db.execute(sql).fetchone() is None:
                    said = f"{shown}: the server has no pgvector. {INSTALL_PGVECTOR}"
                else:
                    said = (
                        f"{shown}: pgvector is installed on the server but not created in this "
                        "database; its owner or a superuser runs CREATE EXTENSION vector once"
                    )
                out.fail("pgvector", said, create)
            else:
                out.ok("pgvector", f"pgvector {found[0]}")
            if db.execute("SELECT to_regclass('migrations')").fetchone()[0] is None:
                _no_store(project, shown, out)
                return False
            applied = [str(r[0]) for r in db.execute("SELECT name FROM migrations ORDER BY 1")]
            _check_schema(applied, [name for name, _ in MIGRATIONS], out)
            if any(name not in applied for name, _ in MIGRATIONS) or found is None:
                return False
            keywords = _index_state(db, "chunks_keywords")
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        out.fail("server", f"{shown}: cannot be read: {redact_url(first)}. Check the host, port, "
                 "database and user of knowledge.store (or RAGTUNE_STORE); a password comes from "
                 "PGPASSWORD or ~/.pgpass", _psql(location, "SELECT 1"))  # fmt: skip
        return False
    if keywords is None:
        out.fail("keyword index", "chunks_keywords (GIN over the chunks' words) is missing: "
                 "keyword search reads every chunk", _psql(location,
                 "CREATE INDEX chunks_keywords ON chunks USING gin (keywords)"))  # fmt: skip
    elif not keywords[1]:
        out.fail("keyword index", "chunks_keywords is not valid (an interrupted build)",
                 out.fix("doctor --repair"))  # fmt: skip
    else:
        out.ok("keyword index", "chunks_keywords (GIN) valid")
    return _check_any(project, location, out)


def _index_state(db: Any, name: str) -> tuple[str, bool] | None:
    """(definition, valid) of an index of the store's schema; None when it does not exist."""
    row = db.execute(
        "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
        "WHERE i.indexrelid = to_regclass(%s)",
        (name,),
    ).fetchone()
    return None if row is None else (str(row[0]), bool(row[1]))


def _check_hnsw(location: str, out: Area) -> None:
    """The derived HNSW index of a PostgreSQL store against its live vectors."""
    from ragtune.knowledge.store.postgres import HNSW_MAX_DIM

    with _postgres(location) as db:
        live = int(db.execute("SELECT COUNT(*) FROM chunks WHERE valid_to IS NULL").fetchone()[0])
        dim = db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        state = _index_state(db, "chunks_hnsw")
    wanted = int(dim[0]) if dim and str(dim[0]).isdigit() else None
    create = (
        f"CREATE INDEX chunks_hnsw ON chunks USING hnsw ((embedding::vector({wanted})) "
        "vector_cosine_ops) WHERE valid_to IS NULL"
    )
    if state is None:
        if not live or wanted is None:
            return out.ok("vector index", "no live chunks: no HNSW index needed")
        if wanted > HNSW_MAX_DIM:
            return out.ok("vector index", f"vectors of {wanted} dimensions are searched exactly "
                          f"(pgvector's HNSW takes up to {HNSW_MAX_DIM})")  # fmt: skip
        return out.warn("vector index", f"chunks_hnsw is missing: each vector search reads all "
                        f"{live} live vectors", _psql(location, create))  # fmt: skip
    found = re.search(r"vector\((\d+)\)", state[0])
    has = int(found.group(1)) if found else None
    if wanted is not None and has != wanted:
        return out.fail("vector index", f"chunks_hnsw indexes vectors of dimension {has}, the "
                        f"store's are {wanted}: vector search reads every row",
                        _psql(location, f"DROP INDEX chunks_hnsw; {create}"))  # fmt: skip
    if not state[1]:
        return out.fail("vector index", "chunks_hnsw is not valid (an interrupted build)",
                        _psql(location, "REINDEX INDEX chunks_hnsw"))  # fmt: skip
    out.ok("vector index", f"chunks_hnsw (HNSW, cosine) over {live} live vectors of dimension "
           f"{has}")  # fmt: skip


def _fts_problem(db: sqlite3.Connection) -> str | None:
    """What FTS5's integrity-check says against the chunks table; None when it passes.

    The check is written as an INSERT: it changes nothing, and runs in a transaction that is
    rolled back.
    """
    db.execute("BEGIN")
    try:
        db.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
        return None
    except sqlite3.OperationalError as exc:
        return None if "readonly" in str(exc) else str(exc)  # read-only: cannot be checked
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.execute("ROLLBACK")


def _check_schema(applied: list[str], known: list[str], out: Area) -> None:
    """The migrations applied against those this ragtune knows (``known``, in order)."""
    unknown = [name for name in applied if name not in known]
    pending = [name for name in known if name not in applied]
    if unknown:
        out.fail("schema", f"written by a newer ragtune: migrations {', '.join(unknown)} are "
                 "unknown to this one", "pip install -U ragtune")  # fmt: skip
    elif pending:
        out.warn("schema", f"{len(pending)} migration(s) not applied yet ({', '.join(pending)}); "
                 "the next command that opens the store applies them",
                 out.fix("knowledge sync"))  # fmt: skip
    else:
        out.ok("schema", f"all {len(known)} migrations applied")


def _check_embedder(project: Project, meta: dict[str, str], bad: int, out: Area) -> None:
    from ragtune.knowledge.embed import embedder_name

    wanted, recorded = embedder_name(project.config.knowledge.embedder), meta.get("embedder")
    sync = out.fix("knowledge sync")
    if recorded is None:
        return
    if recorded != wanted:
        out.fail("embedder", f"vectors made by {recorded}, but knowledge.embedder is {wanted}; "
                 "the next sync re-embeds them", sync)  # fmt: skip
    elif bad:
        out.fail("embedder", f"{bad} chunk vector(s) are not {meta['dim']} float32s", sync)
    else:
        out.ok("embedder", f"vectors by {recorded}, dimension {meta.get('dim')}")


# -- derived indexes ---------------------------------------------------------------------------


def _sqlite_path(project: Project) -> Path | None:
    """The SQLite file of the project's store; None for a store elsewhere (a URL)."""
    from ragtune.knowledge.store import store_scheme
    from ragtune.knowledge.sync import store_location

    location = store_location(project)
    if store_scheme(location) != "sqlite":
        return None
    return Path(location.split("://", 1)[1] if "://" in location else location)


def check_indexes(project: Project) -> list[Check]:
    """The vector index and the few-shot examples against the store (a readable one)."""
    from ragtune.knowledge.store import open_store, store_scheme
    from ragtune.knowledge.sync import store_location

    out = Area("index", project.root)
    path = _sqlite_path(project)
    if path is None:
        location = store_location(project)
        if store_scheme(location) in ("postgresql", "postgres"):
            _check_hnsw(location, out)
        store = open_store(location, readonly=True)
        try:
            _check_examples_of(project, _indexed_examples(project, store), out)
        finally:
            store.close()
        return out.checks
    _check_vector_index(path, project.state_dir / INDEX, out)
    _check_keyword_index(path, out)
    leftovers = sorted(p.name for p in project.state_dir.glob(f".{INDEX}*.tmp"))
    if leftovers:
        out.warn("temporary files", f"left by an interrupted save: {', '.join(leftovers)} (the "
                 "next save removes them)", out.fix("knowledge sync"))  # fmt: skip
    _check_examples(project, path, out)
    return out.checks


def _check_vector_index(db_path: Path, path: Path, out: Area) -> None:
    from ragtune.knowledge.index import IndexState
    from ragtune.knowledge.store.keyword import change_mark

    sync = out.fix("knowledge sync")
    record = path.with_name(INDEX + ".json")
    try:
        state: IndexState | None = IndexState.from_json(
            json.loads(record.read_text(encoding="utf-8"))
        )
        problem = None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        state, problem = None, exc
    with open_store(db_path) as db:
        meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        live = {int(r[0]) for r in db.execute("SELECT id FROM chunks WHERE valid_to IS NULL")}
        now = change_mark(db, state.mark.since if state else None)
    if not live and not path.exists():
        return out.ok("vector index", "no live chunks: no vector index needed")
    if not path.is_file() or not record.is_file():
        gone = record if path.is_file() else path
        return out.fail("vector index", f"{gone} is missing ({len(live)} live chunks)", sync)
    if state is None:
        return out.fail("vector index", f"{record}: unreadable ({problem})", sync)
    if (state.embedder, str(state.dim)) != (meta.get("embedder"), meta.get("dim")):
        return out.fail("vector index", f"{path}: built with {state.embedder} (dimension "
                        f"{state.dim}), the store's vectors are {meta.get('embedder')} "
                        f"({meta.get('dim')})", sync)  # fmt: skip
    if now != state.mark:
        was = state.mark
        return out.fail("vector index", f"{path} is stale: built at snapshot {was.snapshot} "
                        f"up to chunk row {was.max_id}; the store is at snapshot {now.snapshot}, "
                        f"row {now.max_id}, {now.retired_since - was.retired_since} rows retired "
                        "since", sync)  # fmt: skip
    keys, unloadable = _index_keys(path)
    if unloadable is not None:
        return out.fail("vector index", f"{path}: cannot be loaded ({unloadable})", sync)
    if len(keys) != state.size or keys != live:
        return out.fail("vector index", f"{path}: {len(keys)} vectors (its record says "
                        f"{state.size}), {len(keys - live)} of them not live, {len(live - keys)} "
                        "live chunks missing", sync)  # fmt: skip
    out.ok(
        "vector index", f"{len(keys)} vectors, the live chunks at snapshot {state.mark.snapshot}"
    )


def _check_keyword_index(db_path: Path, out: Area) -> None:
    """The tantivy keyword index beside the file against the store's chunks (every version).

    Where it is missing, behind or unreadable, FTS5 answers instead (slower, never wrong) and
    the next search or sync rebuilds it; ``doctor --repair`` rebuilds it now.
    """
    from ragtune.knowledge.store.keyword import (
        FORMAT,
        KeywordState,
        available,
        change_mark,
        keyword_path,
    )

    path = keyword_path(db_path)
    if not available():
        return out.ok("keyword index", "tantivy is not installed: FTS5 answers keyword searches "
                      "(install the knowledge extra for the faster index)")  # fmt: skip
    record = path.with_name(path.name + ".json")
    repair = out.fix("doctor --repair")
    if not record.is_file() or not path.is_dir():
        return out.warn("keyword index", f"{record if path.is_dir() else path} is missing: FTS5 "
                        "answers until the next search or sync builds it", repair)  # fmt: skip
    try:
        state = KeywordState(**json.loads(record.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        return out.fail("keyword index", f"{record}: unreadable ({exc})", repair)
    if state.format != FORMAT:
        return out.warn("keyword index", f"{path}: format {state.format}, this version writes "
                        f"{FORMAT}: the next search rebuilds it", repair)  # fmt: skip
    with open_store(db_path) as db:
        now = change_mark(db, state.since)
        rows = int(db.execute("SELECT COUNT(*) FROM chunks WHERE id <= ?",
                              (state.max_id,)).fetchone()[0])  # fmt: skip
    held, problem = _keyword_rows(path)
    if problem is not None:
        return out.fail("keyword index", f"{path}: cannot be opened ({problem})", repair)
    if held != rows:
        return out.fail("keyword index", f"{path}: {held} chunk versions indexed, the store has "
                        f"{rows} up to row {state.max_id}", repair)  # fmt: skip
    if now != state.mark:
        behind = (f"{path} is behind: built at snapshot {state.snapshot} up to chunk row "
                  f"{state.max_id}; the store is at snapshot {now.snapshot}, row {now.max_id} "
                  "(the next search catches it up)")  # fmt: skip
        return out.warn("keyword index", behind, out.fix("knowledge sync"))
    out.ok("keyword index", f"{held} chunk versions (tantivy), current at snapshot "
           f"{state.snapshot}")  # fmt: skip


def _keyword_rows(path: Path) -> tuple[int, str | None]:
    """How many documents a tantivy index holds, or why it cannot be opened."""
    import tantivy

    try:
        return int(tantivy.Index.open(str(path)).searcher().num_docs), None
    except Exception as exc:  # a corrupt folder of any kind
        return 0, str(exc) or type(exc).__name__


def _index_keys(path: Path) -> tuple[set[int], str | None]:
    """The keys of a usearch file, or why it cannot be loaded."""
    import numpy as np

    # usearch carries its own libstdc++: the shared one is loaded first (see index.py).
    from ragtune.knowledge.index import _share_libstdcxx

    _share_libstdcxx()
    from usearch.index import Index

    try:
        index = Index.restore(str(path))
    except Exception as exc:  # usearch raises ValueError or RuntimeError on a bad file
        return set(), str(exc)
    if index is None:
        return set(), "not a usearch index"
    return (set(np.asarray(index.keys).tolist()) if len(index) else set()), None


def _check_examples(project: Project, db_path: Path, out: Area) -> None:
    """Few-shot examples in an SQLite file."""
    with open_store(db_path) as db:
        sql = "SELECT capability, dataset_sha256 FROM examples WHERE valid = 1"
        indexed = {str(r[0]): str(r[1]) for r in db.execute(sql)}
    _check_examples_of(project, indexed, out)


def _indexed_examples(project: Project, store: KnowledgeStore) -> dict[str, str]:
    """The dataset SHA-256 of each capability's live examples in a store (the protocol's)."""
    states = {c.name: store.examples_state(c.name) for c in project.config.capabilities}
    return {name: state[0] for name, state in states.items() if state is not None}


def _check_examples_of(project: Project, indexed: dict[str, str], out: Area) -> None:
    """Few-shot examples: indexed from the current file? (The runtime re-indexes them if not.)"""
    from ragtune.behavior.examples import load_examples

    stale = []
    for capability in project.config.capabilities:
        if capability.name in indexed and capability.examples:
            with contextlib.suppress(RagtuneError):  # a bad file is the project check's to name
                examples = load_examples(project.resolve(capability.examples), project.root)
                if examples.sha256 != indexed[capability.name]:
                    stale.append(capability.name)
    if stale:
        out.warn("few-shot examples", f"{', '.join(stale)}: the examples changed since they "
                 "were indexed; the next request that needs them re-indexes them")  # fmt: skip
    else:
        out.ok("few-shot examples", f"{len(indexed)} example set(s) indexed, all current")


def outside_documents(project: Project) -> list[str]:
    """Live documents whose path leaves the project (indexed through a link before sync
    refused to follow links out of it)."""
    path = _sqlite_path(project)
    if path is None:
        from ragtune.knowledge.store import open_store as open_any
        from ragtune.knowledge.sync import store_location

        store = open_any(store_location(project), readonly=True)
        try:
            paths = list(store.current_documents())
        finally:
            store.close()
    else:
        with open_store(path) as db:
            sql = "SELECT path FROM documents WHERE valid_to IS NULL"
            paths = [str(r[0]) for r in db.execute(sql)]
    return [p for p in paths if p.startswith("/") or p.split("/")[0] == ".."]

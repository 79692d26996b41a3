"""The knowledge store and what is derived from it: integrity, FTS5, schema, snapshots, the
vector index and the few-shot examples."""

from __future__ import annotations

import contextlib
import json
import shlex
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ragtune.doctor.report import Area, Check
from ragtune.errors import RagtuneError
from ragtune.project import Project

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
    from ragtune.knowledge.sync import knowledge_db
    from ragtune.knowledge.tools import is_tool_ref

    out = Area("store", project.root)
    path, sync = knowledge_db(project), out.fix("knowledge sync")
    if not path.is_file():
        if any(not is_tool_ref(r) for c in project.config.capabilities for r in c.sources):
            out.fail("knowledge store", f"{path}: none yet; retrieval has nothing to search", sync)
        else:
            out.ok("knowledge store", "no capability has sources: no store needed")
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
    _check_schema(applied, out)
    if unfinished:
        out.fail("snapshots", f"snapshot {', '.join(unfinished)} is open: a sync was interrupted "
                 "(the next sync finishes it)", sync)  # fmt: skip
    else:
        out.ok("snapshots", "no interrupted sync")
    _check_embedder(project, meta, bad_vectors, out)
    return out.checks, True


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


def _check_schema(applied: list[str], out: Area) -> None:
    from ragtune.knowledge.store.migrations import MIGRATIONS

    known = [name for name, _ in MIGRATIONS]
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


def check_indexes(project: Project) -> list[Check]:
    """The vector index and the few-shot examples against the store (a readable one)."""
    from ragtune.knowledge.sync import knowledge_db

    out = Area("index", project.root)
    path = knowledge_db(project)
    _check_vector_index(path, out)
    leftovers = sorted(p.name for p in path.parent.glob(f".{INDEX}*.tmp"))
    if leftovers:
        out.warn("temporary files", f"left by an interrupted save: {', '.join(leftovers)} (the "
                 "next save removes them)", out.fix("knowledge sync"))  # fmt: skip
    _check_examples(project, path, out)
    return out.checks


def _check_vector_index(db_path: Path, out: Area) -> None:
    from ragtune.knowledge.index import IndexState

    sync = out.fix("knowledge sync")
    with open_store(db_path) as db:
        meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        rows, retired = db.execute("SELECT COUNT(*), COUNT(valid_to) FROM chunks").fetchone()
        live = {int(r[0]) for r in db.execute("SELECT id FROM chunks WHERE valid_to IS NULL")}
        snapshot = db.execute("SELECT COALESCE(MAX(id), 0) FROM snapshots").fetchone()[0]
    path = db_path.with_name(INDEX)
    record = path.with_name(INDEX + ".json")
    if not live and not path.exists():
        return out.ok("vector index", "no live chunks: no vector index needed")
    if not path.is_file() or not record.is_file():
        gone = record if path.is_file() else path
        return out.fail("vector index", f"{gone} is missing ({len(live)} live chunks)", sync)
    try:
        state = IndexState(**json.loads(record.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        return out.fail("vector index", f"{record}: unreadable ({exc})", sync)
    if (state.embedder, str(state.dim)) != (meta.get("embedder"), meta.get("dim")):
        return out.fail("vector index", f"{path}: built with {state.embedder} (dimension "
                        f"{state.dim}), the store's vectors are {meta.get('embedder')} "
                        f"({meta.get('dim')})", sync)  # fmt: skip
    if (state.rows, state.retired) != (rows, retired):
        return out.fail("vector index", f"{path} is stale: built at snapshot {state.snapshot} "
                        f"from {state.rows} chunk rows ({state.retired} retired); the store is at "
                        f"snapshot {snapshot} with {rows} ({retired} retired)", sync)  # fmt: skip
    keys, problem = _index_keys(path)
    if problem is not None:
        return out.fail("vector index", f"{path}: cannot be loaded ({problem})", sync)
    if len(keys) != state.size or keys != live:
        return out.fail("vector index", f"{path}: {len(keys)} vectors (its record says "
                        f"{state.size}), {len(keys - live)} of them not live, {len(live - keys)} "
                        "live chunks missing", sync)  # fmt: skip
    out.ok("vector index", f"{len(keys)} vectors, the live chunks at snapshot {state.snapshot}")


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
    """Few-shot examples: indexed from the current file? (The runtime re-indexes them if not.)"""
    from ragtune.behavior.examples import load_examples

    with open_store(db_path) as db:
        sql = "SELECT capability, dataset_sha256 FROM examples WHERE valid = 1"
        indexed = {str(r[0]): str(r[1]) for r in db.execute(sql)}
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
    from ragtune.knowledge.sync import knowledge_db

    with open_store(knowledge_db(project)) as db:
        sql = "SELECT path FROM documents WHERE valid_to IS NULL"
        paths = [str(r[0]) for r in db.execute(sql)]
    return [p for p in paths if p.startswith("/") or p.split("/")[0] == ".."]

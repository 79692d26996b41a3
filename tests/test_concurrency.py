"""Several processes on one knowledge store: syncs take turns, searches never mislabel a hit.

Two ``ragtune knowledge sync`` at once used to write the same document versions into one snapshot
(``UNIQUE constraint failed: documents.path, documents.version``) and leave it open; a search
during a sync could return the text of one revision labelled with the version of the next; two
processes saving the vector index shared one temporary file. These tests run real processes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.knowledge.store import StoreError
from ragtune.knowledge.store.migrations import MIGRATIONS
from ragtune.project import load_project

DOCS = 60

PROJECT = """
version: 1
project: concurrent
knowledge:
  embedder: hashing
capabilities:
  - name: handbook
    description: Answer questions about the handbook.
    sources: [docs/]
"""

FILLER = "It is written down so that everyone on the team applies it the same way."


def write_docs(folder: Path, revision: int, docs: int = DOCS) -> None:
    """Every section of every policy names its revision: each revision changes every chunk."""
    folder.joinpath("docs").mkdir(exist_ok=True)
    for i in range(docs):
        folder.joinpath("docs", f"policy-{i:03d}.md").write_text(
            f"# Policy {i}\n\n## 1. Scope\n\nRevision {revision} of policy {i} applies to team "
            f"{i % 7}. {FILLER}\n\n## 2. Rule\n\nRevision {revision}: the rule of policy {i} is "
            f"rule number {i}. {FILLER}\n\n## 3. Review\n\nRevision {revision}: policy {i} is "
            f"reviewed by the board. {FILLER}\n"
        )


def make_project(folder: Path, revision: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ragtune.yaml").write_text(PROJECT)
    write_docs(folder, revision)
    return folder


# A sync slowed down (small batches, a pause per batch) so that another process can start while
# it holds the store; it prints when it is done.
SLOW_SYNC = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import ragtune.knowledge.sync as sync_module
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.knowledge.embed import HashingEmbedder
    from ragtune.project import load_project

    class Slow(HashingEmbedder):
        def embed(self, texts):
            time.sleep(float(sys.argv[2]))
            return super().embed(texts)

    sync_module.EMBED_BATCH = 6
    kb = KnowledgeBase(load_project(Path(sys.argv[1])), embedder=Slow(256))
    result = kb.sync()
    print("finished", result.snapshot, flush=True)
    """
)


def open_snapshots(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=10)
    try:
        return int(
            con.execute("SELECT COUNT(*) FROM snapshots WHERE status = 'open'").fetchone()[0]
        )
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


def cli(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ragtune.cli", *args, "-p", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def live_content(db: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The live documents and chunks, without row ids: what two stores must agree on."""
    con = sqlite3.connect(db)
    try:
        documents = con.execute(
            "SELECT path, version, kind, title, sha256, text FROM documents "
            "WHERE valid_to IS NULL ORDER BY path"
        ).fetchall()
        chunks = con.execute(
            "SELECT document, doc_version, chunk_id, ordinal, section, title, text, text_hash, "
            "tokens, vector FROM chunks WHERE valid_to IS NULL ORDER BY document, ordinal"
        ).fetchall()
        return documents, chunks
    finally:
        con.close()


@pytest.mark.slow
def test_two_syncs_at_once_take_turns_and_leave_no_open_snapshot(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "project")
    db = folder / ".ragtune" / "knowledge.db"
    first = subprocess.Popen(
        [sys.executable, "-c", SLOW_SYNC, str(folder), "0.12"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while open_snapshots(db) == 0:  # the first sync holds the store now
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)

    # A second sync that may wait half a second gives up, names the lock, changes nothing.
    impatient = cli(folder, "knowledge", "sync", env={"RAGTUNE_LOCK_TIMEOUT": "0.5"})
    out, err = impatient.communicate(timeout=60)
    assert impatient.returncode == 2, (out, err)
    assert "another process has been writing the knowledge store" in err
    assert "knowledge.db.lock" in err and "RAGTUNE_LOCK_TIMEOUT" in err
    assert "Traceback" not in err
    assert first.poll() is None, "the first sync ended before the second was tried"

    # A second sync that may wait says so, waits, then finds nothing left to do.
    patient = cli(folder, "knowledge", "sync", "--json")
    out, err = patient.communicate(timeout=120)
    assert patient.returncode == 0, (out, err)
    assert "another process is writing the knowledge store" in err and "waiting" in err
    assert "Traceback" not in err
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert '"unchanged": 60' in out and '"chunks_embedded": 0' in out

    con = sqlite3.connect(db)
    statuses = con.execute("SELECT id, status FROM snapshots ORDER BY id").fetchall()
    versions = con.execute("SELECT COUNT(*), COUNT(DISTINCT path), MAX(version) FROM documents")
    assert statuses == [(1, "complete")]
    assert versions.fetchone() == (DOCS, DOCS, 1)
    con.close()

    # What the two syncs left is what one sync alone makes.
    alone = make_project(tmp_path / "alone")
    kb = KnowledgeBase(load_project(alone), embedder=HashingEmbedder(256))
    kb.sync()
    kb.close()
    assert live_content(db) == live_content(alone / ".ragtune" / "knowledge.db")


@pytest.mark.slow
def test_many_syncs_at_once_all_finish_one_after_another(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "project")
    db = folder / ".ragtune" / "knowledge.db"
    runs = [cli(folder, "knowledge", "sync") for _ in range(3)]
    results = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], results
    assert all("Traceback" not in err for _, err in results)
    assert open_snapshots(db) == 0
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), MAX(version) FROM documents").fetchone() == (DOCS, 1)
    con.close()


# Syncs revision after revision of every document, as fast as it can, in its own process.
RESYNC = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import ragtune.knowledge.sync as sync_module
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.knowledge.embed import HashingEmbedder
    from ragtune.project import load_project
    sys.path.insert(0, sys.argv[3])
    from test_concurrency import write_docs

    sync_module.EMBED_BATCH = 12
    folder = Path(sys.argv[1])
    kb = KnowledgeBase(load_project(folder), embedder=HashingEmbedder(256))
    for revision in range(2, int(sys.argv[2]) + 1):
        write_docs(folder, revision)
        kb.sync()
    print("finished", flush=True)
    """
)


def mislabelled(db: Path, hits: list[Any]) -> list[Any]:
    """The hits (or passages) whose text, version and snapshot are not those of one stored row.

    A chunk row belongs to a document version when it was live while that version was: it
    appeared at or before the version did, and was retired no earlier than the version was.
    """
    con = sqlite3.connect(db)
    wrong = []
    try:
        for hit in hits:
            found = con.execute(
                "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.path = c.document "
                "WHERE c.document = :doc AND c.chunk_id = :chunk AND c.text = :text "
                "AND c.valid_from = :snapshot AND d.version = :version "
                "AND c.valid_from <= d.valid_from AND (c.valid_to IS NULL OR "
                "(d.valid_to IS NOT NULL AND c.valid_to >= d.valid_to))",
                {
                    "doc": hit.document,
                    "chunk": hit.chunk_id,
                    "text": hit.text,
                    "snapshot": hit.snapshot,
                    "version": hit.version,
                },
            ).fetchone()[0]
            if not found or f"Revision {hit.version}" not in hit.text:
                wrong.append(hit)
    finally:
        con.close()
    return wrong


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hybrid", "bm25", "runtime"])
def test_searches_during_syncs_never_fail_nor_mislabel(tmp_path: Path, mode: str) -> None:
    """``runtime``: the passages a chat request is given (the runtime's retrieval, filtered by
    capability) rather than a plain search."""
    from ragtune.runtime.runtime import Runtime

    folder = make_project(tmp_path / "project")
    db = folder / ".ragtune" / "knowledge.db"
    # One long-lived knowledge base searches, as the server's does, while another process
    # syncs revision after revision.
    kb = KnowledgeBase(load_project(folder), embedder=HashingEmbedder(256))
    kb.sync()
    runtime = Runtime(load_project(folder), embedder=kb.embedder, decisions={})

    def search(query: str) -> list[Any]:
        if mode == "runtime":
            return runtime.search(query, ["handbook"], 5)
        return kb.search(query, k=5, mode=mode)  # type: ignore[arg-type]

    revisions = 8
    syncing = subprocess.Popen(
        [sys.executable, "-c", RESYNC, str(folder), str(revisions), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    hits: list[Any] = []
    searches = 0
    queries = ["which board reviews policy 17", "rule number 42", "revision of policy 3 scope"]
    while syncing.poll() is None:
        hits.extend(search(queries[searches % len(queries)]))
        searches += 1
    _, err = syncing.communicate()
    assert syncing.returncode == 0, err
    hits.extend(search("which board reviews policy 17"))
    runtime.close()
    kb.close()

    assert searches >= 20, "too few searches ran during the syncs to tell"
    assert len({h.version for h in hits}) > 2, "the searches saw too few revisions to tell"
    wrong = mislabelled(db, hits)
    assert not wrong, f"{len(wrong)} of {len(hits)} hits mislabelled, e.g. {wrong[0]}"
    assert open_snapshots(db) == 0
    # Two processes saved the index over and over: no temporary file is left.
    assert not list(db.parent.glob("*.tmp")), list(db.parent.iterdir())


# Opens the store at an agreed moment, so that the processes race for its first migration.
OPEN_AT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ragtune.knowledge.store.sqlite import SQLiteStore

    start = float(sys.argv[2])
    while time.time() < start:
        pass
    SQLiteStore(Path(sys.argv[1])).close()
    """
)


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # Each used to apply the migrations it had not seen: "table examples already exists".
    for round_ in range(4):
        db = tmp_path / f"round-{round_}" / "knowledge.db"
        start = time.time() + 3
        opening = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AT, str(db), str(start)],
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        errors = [p.communicate(timeout=60)[1] for p in opening]
        assert [p.returncode for p in opening] == [0] * 6, errors
        con = sqlite3.connect(db)
        applied = [r[0] for r in con.execute("SELECT name FROM migrations ORDER BY rowid")]
        assert applied == [name for name, _ in MIGRATIONS]  # each once, in order
        con.close()


def test_a_sync_that_cannot_get_the_store_in_time_changes_nothing(tmp_path: Path) -> None:
    folder = make_project(tmp_path / "project")
    holder = KnowledgeBase(load_project(folder), embedder=HashingEmbedder(256))
    waiter = KnowledgeBase(load_project(folder), embedder=HashingEmbedder(256))
    started = time.monotonic()
    with holder.store.writing(), pytest.raises(StoreError) as raised:
        waiter.sync(lock_timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    message = str(raised.value)
    assert "another process has been writing the knowledge store for more than 0.3 s" in message
    assert "knowledge.db.lock" in message and "nothing was changed" in message
    assert waiter.store.snapshots() == []
    assert waiter.sync().snapshot == 1  # free again: the same sync goes through
    holder.close()
    waiter.close()

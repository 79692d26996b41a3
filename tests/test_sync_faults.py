"""A sync killed mid-way leaves the previous snapshot whole; the next sync finishes the work."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.project import load_project

DOCS = 120

PROJECT = """
version: 1
project: faults
knowledge:
  embedder: hashing
capabilities:
  - name: handbook
    description: Answer questions about the handbook.
    sources: [docs/]
"""


def write_docs(folder: Path, edition: str) -> None:
    docs = folder / "docs"
    docs.mkdir(exist_ok=True)
    for i in range(DOCS):
        filler = "It is written down so that everyone on the team applies it the same way."
        (docs / f"policy-{i:03d}.md").write_text(
            f"# Policy {i}\n\n## 1. Scope\n\nPolicy {i} applies to team {i % 7}. {filler}\n\n"
            f"## 2. Rule\n\nThe {edition} rule of policy {i} is rule number {i}. {filler}\n\n"
            f"## 3. Review\n\nPolicy {i} is reviewed by the {edition} board. {filler}\n"
        )


# The child process syncs with a slow embedder and small batches, so that it can be killed
# between documents, mid-way through the snapshot.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import ragtune.knowledge.sync as sync_module
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.knowledge.embed import HashingEmbedder
    from ragtune.project import load_project

    class Slow(HashingEmbedder):
        def embed(self, texts):
            time.sleep(0.05)
            return super().embed(texts)

    sync_module.EMBED_BATCH = 6
    kb = KnowledgeBase(load_project(Path(sys.argv[1])), embedder=Slow(256))
    kb.sync()
    print("finished", flush=True)
    """
)


def live_versions(db: Path) -> int:
    con = sqlite3.connect(db, timeout=10)
    try:
        return int(
            con.execute(
                "SELECT COUNT(*) FROM documents WHERE valid_from = 2 AND valid_to IS NULL"
            ).fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


@pytest.mark.slow
def test_sync_killed_midway_then_resumed(tmp_path: Path) -> None:
    (tmp_path / "ragtune.yaml").write_text(PROJECT)
    write_docs(tmp_path, "first")
    embedder = HashingEmbedder(256)
    kb = KnowledgeBase(load_project(tmp_path), embedder=embedder)
    kb.sync()
    kb.close()
    write_docs(tmp_path, "second")

    db = tmp_path / ".ragtune" / "knowledge.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while live_versions(db) < 10:
        assert child.poll() is None, "the sync finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done = live_versions(db)
    assert 10 <= done < DOCS, "killed mid-way: some documents new, some old"

    kb = KnowledgeBase(load_project(tmp_path), embedder=HashingEmbedder(256))
    store = kb.store
    statuses = {s.id: s.status for s in store.snapshots()}
    assert statuses == {1: "complete", 2: "open"}
    # The previous snapshot is whole and searchable: every document as it was.
    then = kb.search("which board reviews policy 77", k=3, as_of="1")
    assert any("first board" in h.text for h in then)
    old_rows = store.db.execute(
        "SELECT COUNT(*) FROM chunks WHERE valid_from <= 1 AND (valid_to IS NULL OR valid_to > 1)"
    ).fetchone()[0]
    assert old_rows == DOCS * 3
    # No document is a mix: its live sections are all of the first edition or all of the second,
    # and the second edition's chunks were written with the second version of the document.
    for path, doc in store.current_documents().items():
        texts = [c for c in store.current_chunks(path) if "board" in c.text or "rule of" in c.text]
        editions = {"second" if "second" in c.text else "first" for c in texts}
        assert len(editions) == 1, f"{path} mixes editions"
        assert editions == ({"second"} if doc.version == 2 else {"first"})
        assert all(c.doc_version == doc.version for c in texts)
    per_doc = store.db.execute(
        "SELECT COUNT(*) FROM (SELECT document, COUNT(*) n FROM chunks WHERE valid_to IS NULL "
        "GROUP BY document HAVING n != 3)"
    ).fetchone()[0]
    assert per_doc == 0

    # The next sync resumes the open snapshot and embeds only what was left.
    result = kb.sync()
    assert result.resumed
    assert result.snapshot == 2
    assert {s.id: s.status for s in store.snapshots()} == {1: "complete", 2: "complete"}
    assert len(result.plan.of("changed")) == DOCS - done
    assert (
        store.db.execute(
            "SELECT COUNT(*) FROM documents WHERE valid_to IS NULL AND version = 2"
        ).fetchone()[0]
        == DOCS
    )
    assert store.counts()["chunks"] == DOCS * 3
    now = kb.search("which board reviews policy 77", k=3)
    assert any("second board" in h.text for h in now)
    assert len(kb.index().index) == DOCS * 3


def test_a_document_deleted_then_restored_continues_its_history(tmp_path: Path) -> None:
    # Its first version stays in history, so the restored text is version 2 (it used to be
    # inserted as version 1 again: UNIQUE constraint failed: documents.path, documents.version).
    (tmp_path / "ragtune.yaml").write_text(PROJECT)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\n## 1. Annual\n\nTwenty-five days a year.\n")
    (docs / "travel.md").write_text("# Travel\n\n## 1. Class\n\nEconomy class only.\n")
    kb = KnowledgeBase(load_project(tmp_path), embedder=HashingEmbedder(256))
    kb.sync()
    removed = (docs / "leave.md").read_text()
    (docs / "leave.md").unlink()
    assert [c.path for c in kb.sync().plan.of("deleted")] == ["docs/leave.md"]
    (docs / "leave.md").write_text(removed.replace("Twenty-five", "Thirty"))
    restored = kb.sync()
    assert [c.path for c in restored.plan.of("added")] == ["docs/leave.md"]
    versions = kb.store.document_versions("docs/leave.md")
    assert [(v.version, v.valid_from, v.valid_to) for v in versions] == [(1, 1, 2), (2, 3, None)]
    assert any("Thirty" in h.text and h.version == 2 for h in kb.search("annual leave days"))
    assert any("Twenty-five" in h.text for h in kb.search("annual leave days", as_of="1"))
    kb.close()


def test_a_killed_writers_temporary_file_is_removed_once_it_is_old(tmp_path: Path) -> None:
    # A PUT killed between writing its temporary file and replacing the document leaves
    # `.name.XXXXXXXX.tmp` beside it; a sync removes it once no live writer can own it.
    (tmp_path / "ragtune.yaml").write_text(PROJECT)
    write_docs(tmp_path, "first")
    docs = tmp_path / "docs"
    orphan = docs / ".policy-001.md.k2x_9abc.tmp"
    fresh = docs / ".policy-002.md.q8w7e6r5.tmp"
    unrelated = docs / ".notes.tmp"  # not a temporary file of an atomic write
    for path in (orphan, fresh, unrelated):
        path.write_text("half a document")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    os.utime(unrelated, (old, old))
    kb = KnowledgeBase(load_project(tmp_path), embedder=HashingEmbedder(256))
    kb.sync()
    kb.close()
    assert not orphan.exists()
    assert fresh.exists() and unrelated.exists()

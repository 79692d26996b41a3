"""One store suite, two backends: the embedded SQLite file and PostgreSQL with pgvector.

Every test that takes ``location`` runs against both, opened the way a project opens its store
(:func:`~ragtune.knowledge.store.open_store` from a file path or a ``postgresql://`` URL); the
PostgreSQL one on a real server the session starts (``tests/pg.py``), a fresh database a test.
The ``agree`` tests run the same steps on both and compare what they answer.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pg import PostgresServer
from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.store import (
    DocumentRow,
    ExampleRow,
    KnowledgeStore,
    NewChunk,
    StoreError,
    open_store,
)
from ragtune.project import load_project

DIM = 16


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a new store goes: a file path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "state" / "knowledge.db")
    return str(request.getfixturevalue("fresh_database"))


@pytest.fixture
def both(tmp_path: Path, fresh_database: str) -> dict[str, str]:
    """A new store location of each backend, for the tests that compare them."""
    return {"sqlite": str(tmp_path / "state" / "knowledge.db"), "postgresql": fresh_database}


def vec(seed: int) -> bytes:
    """A unit float32 vector, the same for the same seed."""
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32).tobytes()


def chunk(chunk_id: str, ordinal: int, text: str, seed: int, section: str = "") -> NewChunk:
    return NewChunk(chunk_id, ordinal, section, "Leave policy", text, f"h-{text}", 5, vec(seed))


def doc(path: str, version: int, sha: str, title: str = "Leave policy") -> DocumentRow:
    return DocumentRow(path, version, "markdown", title, sha, 0, None)


def write_history(store: KnowledgeStore) -> dict[str, Any]:
    """Four syncs by hand - add, edit, delete, restore - and an empty one; returns what the
    store answers along the way, in a form both backends should give alike."""
    seen: dict[str, Any] = {}
    s1 = store.begin_snapshot()
    assert store.begin_snapshot() == s1  # an open snapshot is resumed, not doubled
    store.set_meta("dim", str(DIM))
    store.apply_document(
        s1,
        doc("docs/leave.md", 1, "a1"),
        "# Leave\n\nTwenty-five days.\n",
        [
            chunk("leave#1", 0, "Annual leave is twenty-five days.", 1, "1. Annual leave"),
            chunk("leave#2", 1, "Sick leave is paid for ten days.", 2, "2. Sick leave"),
        ],
        [],
    )
    store.apply_document(
        s1,
        doc("tables/fees.csv", 1, "t1", "tables/fees.csv"),
        "NDA review,450\nMSA review,1200\n",
        [
            NewChunk("fees#nda", 0, "NDA review", "fees", "NDA review: fee 450", "h-n", 3, vec(3)),
            NewChunk("fees#msa", 1, "MSA review", "fees", "MSA review: fee 1200", "h-m", 3, vec(4)),
        ],
        [],
    )
    store.finish_snapshot(s1, {"docs_added": 2, "chunks_embedded": 4, "embed_seconds": 0.5})
    live = {c.chunk_id: c.rowid for c in store.current_chunks("docs/leave.md")}

    s2 = store.begin_snapshot()  # edit: the sick-leave chunk changes, annual leave stays
    store.apply_document(
        s2,
        doc("docs/leave.md", 2, "a2"),
        "# Leave\n\nThirty days.\n",
        [chunk("leave#2", 1, "Sick leave is paid for twelve days.", 5, "2. Sick leave")],
        [live["leave#2"]],
    )
    store.finish_snapshot(s2, {"docs_changed": 1})

    s3 = store.begin_snapshot()  # delete the document
    seen["retired"] = store.retire_document(s3, "docs/leave.md")
    store.finish_snapshot(s3, {"docs_deleted": 1})

    s4 = store.begin_snapshot()  # nothing happens: the snapshot leaves no trace
    store.finish_snapshot(s4, {})
    store.discard_empty_snapshot(s4)
    s4b = store.begin_snapshot()
    assert s4b == s4  # the id of the discarded snapshot is used again, on both backends
    version = store.last_version("docs/leave.md") + 1  # restored: its history continues
    store.apply_document(
        s4b,
        doc("docs/leave.md", version, "a1"),
        "# Leave\n\nTwenty-five days.\n",
        [chunk("leave#1", 0, "Annual leave is twenty-five days.", 1, "1. Annual leave")],
        [],
    )
    store.finish_snapshot(s4b, {"docs_added": 1})
    store.set_capabilities({"docs/leave.md": {"policies"}, "tables/fees.csv": {"fees", "rates"}})

    seen["snapshots"] = [
        (s.id, s.status, s.docs_added, s.docs_changed, s.docs_deleted, s.chunks_added,
         s.chunks_retired, s.chunks_embedded, s.embed_seconds)
        for s in store.snapshots()
    ]  # fmt: skip
    seen["latest"] = store.latest_snapshot()
    seen["current"] = {p: d for p, d in store.current_documents().items()}
    seen["versions"] = store.document_versions("docs/leave.md")
    seen["text"] = [store.document_text("docs/leave.md", v) for v in (1, 2, 3, 4)]
    seen["metadata"] = sorted(store.document_metadata())
    seen["versions_at"] = [
        store.versions_at(["docs/leave.md", "tables/fees.csv", "nope"], at)
        for at in (1, 2, 3, 4, None)
    ]
    rows = store.current_chunks("docs/leave.md")
    seen["current_chunks"] = [(c.chunk_id, c.text, c.doc_version, c.valid_from) for c in rows]
    by_id = store.chunks([c.rowid for c in rows] + [live["leave#2"], 10_000])
    seen["chunks"] = sorted((c.chunk_id, c.text, c.valid_from, c.valid_to) for c in by_id.values())
    seen["live_hashes"] = store.live_hashes(["leave#1", "leave#2", "fees#nda"])
    seen["signature"] = store.chunk_signature()
    seen["counts"] = store.counts()
    seen["paths_of"] = [store.paths_of(c) for c in ("policies", "fees", "rates", "none")]
    seen["capabilities_of"] = store.capabilities_of("tables/fees.csv")
    for at in (1, 2, 3, 4, None):
        ids, blobs = store.vectors_at(at)
        texts = store.chunks(ids)
        seen[f"vectors_at {at}"] = sorted(
            (texts[i].text, b) for i, b in zip(ids, blobs, strict=True)
        )
    ids, blobs = store.vectors_at(None, {"tables/fees.csv"})
    seen["vectors_at fees"] = sorted(blobs)
    seen["vectors_of"] = sorted(store.vectors_of(ids)[1])
    seen["vectors_by_hash"] = store.vectors_by_hash(["h-n", "h-Sick leave is paid for ten days."])
    seen["texts_by_hash"] = sorted(store.texts_by_hash())
    seen["meta"] = (store.get_meta("dim"), store.get_meta("nope"))
    seen["as_of"] = [store.resolve_as_of(v) for v in ("1", "4", "2999-01-01")]
    return seen


def test_history_by_hand(location: str) -> None:
    """Snapshots, versions, a deleted-then-restored document, visibility at each snapshot."""
    store = open_store(location)
    try:
        seen = write_history(store)
        assert seen["retired"] == 2
        assert [s[:2] for s in seen["snapshots"]] == [(i, "complete") for i in (1, 2, 3, 4)]
        assert seen["snapshots"][0][5:] == (4, 0, 4, 0.5)  # added, retired, embedded, seconds
        assert [d.version for d in seen["versions"]] == [1, 2, 3]
        assert [(d.valid_from, d.valid_to) for d in seen["versions"]] == [(1, 2), (2, 3), (4, None)]
        assert seen["current"]["docs/leave.md"].chunks == 1
        assert seen["text"][0] == seen["text"][2] != seen["text"][1] and seen["text"][3] is None
        assert seen["versions_at"] == [
            {"docs/leave.md": 1, "tables/fees.csv": 1},
            {"docs/leave.md": 2, "tables/fees.csv": 1},
            {"tables/fees.csv": 1},
            {"docs/leave.md": 3, "tables/fees.csv": 1},
            {"docs/leave.md": 3, "tables/fees.csv": 1},
        ]
        assert [t for t, _ in seen["vectors_at 2"]] == [
            "Annual leave is twenty-five days.",
            "MSA review: fee 1200",
            "NDA review: fee 450",
            "Sick leave is paid for twelve days.",
        ]
        assert seen["vectors_at 3"] == [
            (t, b) for t, b in seen["vectors_at 2"] if t.startswith(("MSA", "NDA"))
        ]
        assert dict(seen["vectors_at 1"])["Sick leave is paid for ten days."] == vec(2)
        assert seen["vectors_by_hash"] == {
            "h-n": vec(3),
            "h-Sick leave is paid for ten days.": vec(2),
        }
        assert seen["live_hashes"] == {
            "leave#1": "h-Annual leave is twenty-five days.",
            "fees#nda": "h-n",
        }
        assert seen["signature"] == (6, 3) and seen["counts"] == {
            "documents": 2, "chunks": 3, "chunk_versions": 6,
        }  # fmt: skip
        assert seen["paths_of"] == [
            {"docs/leave.md"},
            {"tables/fees.csv"},
            {"tables/fees.csv"},
            set(),
        ]
        assert seen["capabilities_of"] == ["fees", "rates"]
        assert seen["as_of"] == [1, 4, 4] and seen["meta"] == (str(DIM), None)
        with pytest.raises(StoreError, match="no snapshot 9"):
            store.resolve_as_of("9")
        with pytest.raises(StoreError, match="ISO time"):
            store.resolve_as_of("last tuesday")
        with pytest.raises(StoreError, match="later than that"):
            store.resolve_as_of("2000-01-01")
    finally:
        store.close()


def test_backends_agree_on_history(both: dict[str, str]) -> None:
    """The same writes give the same answers on SQLite and PostgreSQL (ids and times aside)."""
    answers = {}
    for name, where in both.items():
        store = open_store(where)
        try:
            answers[name] = write_history(store)
        finally:
            store.close()
    assert answers["sqlite"] == answers["postgresql"]


def test_lookup_search_and_nearest(location: str) -> None:
    """Table lookup ignoring case and spaces, keyword and vector search, live and in history,
    filtered by document."""
    store = open_store(location)
    try:
        write_history(store)
        row = store.lookup("tables/fees.csv", "  nda REVIEW ")
        assert row is not None and row.text == "NDA review: fee 450"
        assert store.lookup("tables/fees.csv", "DPA review") is None
        assert store.lookup("docs/leave.md", "2. sick leave") is None  # retired, then not back
        old = store.lookup("docs/leave.md", "2. Sick leave", at=1)
        assert old is not None and old.text == "Sick leave is paid for ten days."

        def texts(hits: list[tuple[int, float]]) -> list[str]:
            rows = store.chunks([i for i, _ in hits])
            return [rows[i].text for i, _ in hits]

        assert texts(store.bm25("sick leave days", 5)) == ["Annual leave is twenty-five days."]
        assert set(texts(store.bm25("sick leave days", 5, at=2))) == {
            "Annual leave is twenty-five days.",
            "Sick leave is paid for twelve days.",
        }
        assert texts(store.bm25("sick leave", 5, at=2))[0] == "Sick leave is paid for twelve days."
        assert texts(store.bm25("fee", 5, paths={"docs/leave.md"})) == []
        assert store.bm25("the of (( ' \" ) -- OR", 5) == []  # punctuation and stop words
        assert texts(store.bm25('NDA "review" (fee)*', 1)) == ["NDA review: fee 450"]

        query = np.frombuffer(vec(2), dtype=np.float32)  # the old sick-leave vector
        live = store.nearest(query, 3)
        assert len(live) == 3 and texts(live)[0] != "Sick leave is paid for ten days."
        then = store.nearest(query, 2, at=1)
        assert texts(then)[0] == "Sick leave is paid for ten days."
        assert then[0][1] == pytest.approx(1.0, abs=1e-5)  # cosine similarity of itself
        fees = store.nearest(query, 5, paths={"tables/fees.csv"})
        assert sorted(texts(fees)) == ["MSA review: fee 1200", "NDA review: fee 450"]
        exact = sorted(
            ((float(np.dot(query, np.frombuffer(vec(s), np.float32))), s) for s in (1, 3, 4)),
            reverse=True,
        )
        assert [round(sim, 5) for _, sim in live] == [round(sim, 5) for sim, _ in exact]
    finally:
        store.close()


def test_few_shot_examples_keep_one_previous_version(location: str) -> None:
    store = open_store(location)
    try:

        def rows(*texts: str) -> list[ExampleRow]:
            return [
                ExampleRow(i + 1, t, f"out {t}", None if i else "ctx", f"x-{t}", vec(100 + len(t)))
                for i, t in enumerate(texts)
            ]

        assert store.examples_state("flags") is None
        store.replace_examples(
            "flags", rows("a", "bb"), path="f.jsonl", dataset_sha256="s1", embedder="e"
        )
        store.replace_examples(
            "flags", rows("ccc"), path="f.jsonl", dataset_sha256="s2", embedder="e"
        )
        assert store.examples_state("flags") == ("s2", "e")
        assert [r.input for r in store.live_examples("flags")] == ["ccc"]
        assert store.live_examples("flags")[0].context == "ctx"
        # the previous version keeps its vectors, for an undo that embeds nothing
        assert store.example_vectors_by_hash(["x-a", "x-ccc", "x-zz"], "e") == {
            "x-a": vec(101), "x-ccc": vec(103),
        }  # fmt: skip
        assert store.example_vectors_by_hash(["x-a"], "other embedder") == {}
        store.replace_examples(
            "flags", rows("dddd"), path="f.jsonl", dataset_sha256="s3", embedder="e"
        )
        assert store.example_vectors_by_hash(["x-a"], "e") == {}  # two versions back: gone
        assert store.live_examples("summaries") == []
    finally:
        store.close()


def test_readonly_creates_nothing(location: str) -> None:
    with pytest.raises(StoreError, match="no knowledge store yet"):
        open_store(location, readonly=True)
    with pytest.raises(StoreError, match="no knowledge store yet"):
        open_store(location, readonly=True)  # and the refusal left nothing behind
    open_store(location).close()
    store = open_store(location, readonly=True)
    try:
        assert store.latest_snapshot() == 0 and store.counts()["chunks"] == 0
    finally:
        store.close()


def test_writers_are_serialised(location: str, caplog: pytest.LogCaptureFixture) -> None:
    """Two stores on the same location (two processes, in effect): the second writer waits,
    says so, gives up after its timeout naming the lock, and gets the lock once it is free."""
    first, second = open_store(location), open_store(location)
    try:
        with first.writing(), first.writing():  # re-entrant in a thread
            with caplog.at_level(logging.WARNING, "ragtune.knowledge"):
                started = time.monotonic()
                with (
                    pytest.raises(StoreError, match="nothing was changed") as err,
                    second.writing(timeout=0.3),
                ):
                    pass
            assert time.monotonic() - started >= 0.25
            assert "lock" in str(err.value)
            assert "waiting up to 0.3 s" in caplog.text

        order: list[str] = []
        held = threading.Event()

        def hold_a_while() -> None:
            with first.writing():
                held.set()
                time.sleep(0.4)
                order.append("first done")

        thread = threading.Thread(target=hold_a_while)
        thread.start()
        held.wait(5)
        with second.writing(timeout=10):
            order.append("second in")
        thread.join()
        assert order == ["first done", "second in"]
    finally:
        first.close()
        second.close()


def test_reading_sees_one_state(location: str) -> None:
    """A read transaction keeps its state while another connection writes."""
    reader, writer = open_store(location), open_store(location)
    try:
        s1 = writer.begin_snapshot()
        writer.finish_snapshot(s1, {})
        with reader.reading():
            assert reader.latest_snapshot() == s1
            s2 = writer.begin_snapshot()
            writer.apply_document(s2, doc("a.md", 1, "x"), "a", [chunk("a#1", 0, "alpha", 7)], [])
            writer.finish_snapshot(s2, {})
            assert reader.latest_snapshot() == s1 and reader.counts()["chunks"] == 0
        assert reader.latest_snapshot() == s2 and reader.counts()["chunks"] == 1
    finally:
        reader.close()
        writer.close()


def test_upkeep(location: str) -> None:
    store = open_store(location)
    try:
        write_history(store)
        store.optimize()
        done = store.repair()
        assert done and "keyword index" in done[0]
        assert store.bm25("annual leave", 3)  # the rebuilt index still finds the words
    finally:
        store.close()


# -- a project's store: the contract-review example synced through KnowledgeBase ---------------

QUERIES = [
    "What is the liability cap in the MSA?",
    "breach notification window under the DPA",
    "governing law of the NDA",
    "How long is the notice period for termination?",
    "review fee for an NDA on counterparty paper",
    "auto-renewal terms",
]


def _project(copy: Callable[..., Path], dest: Path, store: str) -> Path:
    folder = copy(dest, embedder="hashing")
    config = folder / "ragtune.yaml"
    config.write_text(config.read_text() + f"  store: {store}\n")
    return folder


def _answers(kb: KnowledgeBase) -> dict[str, Any]:
    """What searches, lookups and history say, comparable across backends."""
    out: dict[str, Any] = {}
    for mode in ("hybrid", "bm25", "vector"):
        for query in QUERIES:
            hits = kb.search(query, k=3, mode=mode)  # type: ignore[arg-type]
            out[f"{mode} {query}"] = [(h.document, h.chunk_id, h.version) for h in hits]
    hits = kb.search(QUERIES[0], k=3, capability="templates", source="knowledge/msa.md")
    out["filtered"] = [(h.document, h.chunk_id) for h in hits]
    row = kb.lookup("tables/rates.csv", "  nda on COUNTERPARTY paper")
    out["lookup"] = None if row is None else row.text
    return out


def test_example_project_on_both_backends(
    example_project: Callable[..., Path], tmp_path: Path, fresh_database: str
) -> None:
    """The example synced into SQLite and PostgreSQL: the same documents and chunks, the same
    top hits for hybrid, keyword and vector search, live and as of an earlier snapshot after an
    edit, a deletion and a restore."""
    results: dict[str, dict[str, Any]] = {}
    for name, where in {"sqlite": "", "postgresql": fresh_database}.items():
        folder = _project(example_project, tmp_path / name, where)
        kb = KnowledgeBase(load_project(folder))
        try:
            first = kb.sync()
            assert first.embedded > 0 and first.snapshot == 1
            out = _answers(kb)
            out["counts"] = kb.store.counts()
            assert kb.sync().snapshot == 1  # nothing changed: no new snapshot

            msa = folder / "knowledge" / "msa.md"
            text = msa.read_text()
            msa.write_text(text.replace("twelve (12) months", "twenty-four (24) months"))
            kb.sync()
            nda = folder / "knowledge" / "nda.md"
            saved = tmp_path / f"{name}-nda.md"
            shutil.move(nda, saved)
            kb.sync()
            assert "knowledge/nda.md" not in kb.store.current_documents()
            shutil.move(saved, nda)
            kb.sync()
            out["nda versions"] = [
                (d.version, d.valid_from, d.valid_to)
                for d in kb.store.document_versions("knowledge/nda.md")
            ]
            out["snapshots"] = [
                (s.id, s.docs_added, s.docs_changed, s.docs_deleted) for s in kb.store.snapshots()
            ]
            for mode in ("vector", "hybrid"):
                out[f"{mode} as of 1"] = [
                    (h.document, h.chunk_id, h.version, h.snapshot)
                    for h in kb.search(QUERIES[0], k=3, as_of="1", mode=mode)  # type: ignore[arg-type]
                ]
            out["as of 3"] = {h.document for h in kb.search(QUERIES[2], k=5, as_of="3")}
            out["later counts"] = kb.store.counts()
            results[name] = out
        finally:
            kb.close()
    sqlite, postgres = results["sqlite"], results["postgresql"]
    assert sqlite["lookup"] is not None and "350" in sqlite["lookup"]
    assert "knowledge/nda.md" not in sqlite["as of 3"]  # deleted at snapshot 3
    assert {hit[3] for hit in sqlite["vector as of 1"]} == {1}
    assert sqlite["nda versions"] == [(1, 1, 3), (2, 4, None)]
    ranked = [k for k in sqlite if k.startswith(("bm25 ", "hybrid ")) or k == "filtered"]
    # PostgreSQL's ts_rank weighted by BM25's idf was tuned close to FTS5's BM25; SQLite's
    # keyword side is tantivy's BM25 now (per-column lengths, idf never below zero), so the two
    # agree less: about half the keyword and hybrid results share their first chunk
    same_top = [k for k in ranked if postgres[k][:1] == sqlite[k][:1]]
    assert len(same_top) >= len(ranked) // 2 - 1, sorted(set(ranked) - set(same_top))
    for key in ranked:  # and the top threes share a chunk
        assert set(postgres[key]) & set(sqlite[key]), key
    for key in sqlite:
        if key not in ranked:  # vectors, history, lookup, counts: exactly alike
            assert postgres[key] == sqlite[key], key


def test_copy_from_sqlite_keeps_ids_snapshots_and_history(
    tmp_path: Path, fresh_database: str
) -> None:
    """An SQLite store's whole history copied into PostgreSQL answers every question alike,
    row ids included; a second copy into the now full store is refused."""
    from ragtune.knowledge.store.postgres import PostgresStore

    sqlite = open_store(tmp_path / "knowledge.db")
    target = open_store(fresh_database)
    try:
        write_history(sqlite)
        sqlite.replace_examples(
            "flags",
            [ExampleRow(1, "in", "out", None, "x-in", vec(9))],
            path="f.jsonl",
            dataset_sha256="s1",
            embedder="e",
        )
        assert isinstance(target, PostgresStore)
        copied = target.copy_from(sqlite, capabilities=["flags", "none"])
        assert copied == {"snapshots": 4, "documents": 4, "chunks": 6, "examples": 1}
        ids = sorted(sqlite.live_ids())
        assert sorted(target.live_ids()) == ids
        assert target.chunks(ids) == sqlite.chunks(ids)
        assert target.snapshots() == sqlite.snapshots()
        for at in (1, 2, 3, 4):
            assert target.vectors_at(at) == sqlite.vectors_at(at)
        assert target.document_versions("docs/leave.md") == sqlite.document_versions(
            "docs/leave.md"
        )
        assert target.document_text("docs/leave.md", 2) == sqlite.document_text("docs/leave.md", 2)
        assert target.live_examples("flags") == sqlite.live_examples("flags")
        assert target.examples_state("flags") == ("s1", "e")
        annual = sqlite.current_chunks("docs/leave.md")[0].rowid
        assert target.nearest(np.frombuffer(vec(1), np.float32), 1)[0][0] == annual
        s5 = target.begin_snapshot()  # and the copy goes on from where the source was
        target.apply_document(s5, doc("b.md", 1, "b"), "b", [chunk("b#1", 0, "beta", 8)], [])
        assert s5 == 5 and max(target.live_ids()) == 7
        with pytest.raises(StoreError, match="not empty"):
            target.copy_from(sqlite)
    finally:
        sqlite.close()
        target.close()


def test_unreachable_server_names_the_url_without_its_password() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"postgresql://ragtune:s3cret@127.0.0.1:{port}/knowledge"
    with pytest.raises(StoreError) as err:
        open_store(url, readonly=True)
    message = str(err.value)
    assert "s3cret" not in message and f"postgresql://ragtune:***@127.0.0.1:{port}" in message
    assert "cannot connect" in message


def test_a_user_who_may_not_create_pgvector_is_told_who_can(
    postgres_server: PostgresServer,
) -> None:
    postgres_server.execute(
        "DROP DATABASE IF EXISTS noext WITH (FORCE)",
        "DROP ROLE IF EXISTS plain",
        "CREATE ROLE plain LOGIN",
        "CREATE DATABASE noext OWNER plain",
    )
    with pytest.raises(StoreError, match="CREATE EXTENSION vector") as err:
        open_store(postgres_server.url("noext", user="plain"))
    assert "superuser" in str(err.value)
    postgres_server.execute("CREATE EXTENSION vector", database="noext")
    store = open_store(postgres_server.url("noext", user="plain"))  # then the owner may go on
    store.close()


def test_postgres_builds_its_hnsw_index_when_the_first_snapshot_finishes(
    fresh_database: str,
) -> None:
    """The first sync's rows go in without an index (searched exactly meanwhile, same answer);
    finishing the snapshot builds the HNSW index over them at once; later syncs keep it."""
    store = open_store(fresh_database)

    def hnsw() -> str | None:
        row = store._one("SELECT pg_get_indexdef(to_regclass('chunks_hnsw'))")  # type: ignore[attr-defined]
        return row[0]

    try:
        s1 = store.begin_snapshot()
        rows = [chunk(f"c#{i}", i, f"Clause {i} text.", i) for i in range(40)]
        store.apply_document(s1, doc("docs/a.md", 1, "a1"), "", rows, [])
        assert hnsw() is None
        query = np.frombuffer(vec(7), dtype=np.float32)
        during = [r for r, _ in store.nearest(query, 5)]
        store.finish_snapshot(s1, {"docs_added": 1})
        assert f"vector({DIM})" in (hnsw() or "") and "hnsw" in (hnsw() or "")
        assert [r for r, _ in store.nearest(query, 5)] == during
        s2 = store.begin_snapshot()
        store.apply_document(s2, doc("docs/b.md", 1, "b1"), "", [chunk("b#1", 0, "B.", 99)], [])
        store.finish_snapshot(s2, {"docs_added": 1})
        assert f"vector({DIM})" in (hnsw() or "")
    finally:
        store.close()


def test_the_index_build_gets_at_least_its_memory_and_keeps_a_larger_setting(
    fresh_database: str,
) -> None:
    """pgvector's build slows many times once its graph outgrows ``maintenance_work_mem``: the
    build's transaction raises the default to BUILD_MEMORY, and a database set higher for a big
    first load keeps its own; both only for that transaction."""
    from ragtune.knowledge.store.postgres import BUILD_MEMORY, build_memory

    store = open_store(fresh_database)
    try:
        for setting, during in [("64MB", BUILD_MEMORY), ("3GB", "3GB")]:
            with store._tx() as db:  # type: ignore[attr-defined]
                db.execute(f"SET maintenance_work_mem = '{setting}'")
            with store._tx() as db:  # type: ignore[attr-defined]
                assert build_memory(db) == during
                assert db.execute("SHOW maintenance_work_mem").fetchone()[0] == during
            assert store._one("SHOW maintenance_work_mem")[0] == setting  # type: ignore[attr-defined]
    finally:
        store.close()


def test_postgres_keyword_search_ranks_the_rows_of_the_rarer_words(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 rows: every one says "customer", one in ten "breach", three "hours". Asked for all
    three words, PostgreSQL ranks every matching row while they fit KEYWORD_ROWS; past it, the
    rows of the rarer words only (rarest first, at least the rarest), which are the top of
    the full ranking anyway. Past ESTIMATED_ROWS a word's row count comes from ANALYZE's
    statistics instead of a count, close to it, and the ranking stays the same."""
    from ragtune.knowledge.store import postgres

    store = open_store(fresh_database)
    try:
        s1 = store.begin_snapshot()
        rows = [
            chunk(
                f"c#{i}",
                i,
                "The customer pays."
                + (" A breach is reported." if i % 10 == 0 else "")
                + (" Within 72 hours." if i in (0, 10, 7) else ""),
                i,
            )
            for i in range(300)
        ]
        store.apply_document(s1, doc("docs/a.md", 1, "a1"), "", rows, [])
        store.finish_snapshot(s1, {"docs_added": 1})
        store.optimize()
        query = "customer breach hours"
        full = store.bm25(query, 300)
        assert len(full) == 300  # below KEYWORD_ROWS: every matching row
        top = [r for r, _ in full[:3]]
        monkeypatch.setattr(postgres, "KEYWORD_ROWS", 40)  # hours (3) + breach (30) fit
        pruned = store.bm25(query, 31)
        assert [r for r, _ in pruned] == [r for r, _ in full[:31]]
        # Only the rows holding breach or hours were ranked: customer alone is left out ...
        ranked: list[str] = []
        execute = store.conn.execute  # type: ignore[attr-defined]

        def spy(sql: str, params: Any = None) -> Any:
            if isinstance(params, dict) and "any" in params:
                ranked.append(str(params["any"]))
            return execute(sql, params)

        monkeypatch.setattr(store.conn, "execute", spy)  # type: ignore[attr-defined]
        store.bm25(query, 31)
        assert ranked == ["('hour') | ('breach')"]
        monkeypatch.undo()
        monkeypatch.setattr(postgres, "KEYWORD_ROWS", 40)
        monkeypatch.setattr(postgres, "KEYWORD_ROWS", 1)  # ... and at least `limit` rows
        assert [r for r, _ in store.bm25(query, 3)] == top
        # A filter that leaves too few of the rarer words' rows ranks every match.
        s0 = store.begin_snapshot()
        plain = [chunk(f"p#{i}", i, "The customer signs.", 900 + i) for i in range(5)]
        store.apply_document(s0, doc("docs/plain.md", 1, "p1"), "", plain, [])
        store.finish_snapshot(s0, {"docs_added": 1})
        assert len(store.bm25(query, 10, paths={"docs/plain.md"})) == 5

        monkeypatch.setattr(postgres, "KEYWORD_ROWS", 20_000)
        monkeypatch.setattr(postgres, "ESTIMATED_ROWS", 100)  # 300 rows: customer estimated
        assert [r for r, _ in store.bm25(query, 300)] == [r for r, _ in full]
        # 30 more rows, not analysed: the statistics still say 300 customers, the counts move.
        with store._tx() as db:  # type: ignore[attr-defined]
            db.execute("ALTER TABLE chunks SET (autovacuum_enabled = false)")
        s2 = store.begin_snapshot()
        more = [chunk(f"b#{i}", i, "The customer reports a breach.", 500 + i) for i in range(30)]
        store.apply_document(s2, doc("docs/b.md", 1, "b1"), "", more, [])
        store.finish_snapshot(s2, {"docs_added": 1})
        terms, _ = store._keyword_terms(["customer", "breach", "hours"])  # type: ignore[attr-defined]
        assert dict(terms) == {"'custom'": 300.0, "'breach'": 60.0, "'hour'": 3.0}
    finally:
        store.close()


def test_postgres_filtered_and_history_searches_go_through_the_index_and_are_never_short(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,000 rows in 30 documents, then 300 of them replaced: a search of some documents and a
    search as of the first snapshot find (nearly) what an exact scan of the rows visible there
    finds, never a row not visible there; a filter to one 5-row document gets all 5 (the index
    answers short, the exact scan takes over); the index's scan count shows each in it, and a
    filter of fewer rows than EXACT_FILTER (lowered here to 100) ranked exactly without it."""
    from ragtune.knowledge.store.postgres import PostgresStore

    monkeypatch.setattr("ragtune.knowledge.store.postgres.EXACT_FILTER", 100)

    store = open_store(fresh_database)
    assert isinstance(store, PostgresStore)
    rng = np.random.default_rng(3)
    try:
        s1 = store.begin_snapshot()
        for d in range(30):
            rows = [chunk(f"d{d}#{i}", i, f"Doc {d} clause {i}.", d * 1000 + i) for i in range(100)]
            store.apply_document(s1, doc(f"docs/d{d:02d}.md", 1, f"a{d}"), "", rows, [])
        store.apply_document(s1, doc("docs/tiny.md", 1, "t"), "",
                             [chunk(f"t#{i}", i, f"Tiny {i}.", 90_000 + i) for i in range(5)],
                             [])  # fmt: skip
        store.finish_snapshot(s1, {"docs_added": 31})
        s2 = store.begin_snapshot()
        for d in range(0, 30, 3):
            old = store.current_chunks(f"docs/d{d:02d}.md")[:30]
            new = [chunk(f"d{d}#{i}", i, f"Doc {d} clause {i} amended.", 50_000 + d * 100 + i)
                   for i in range(30)]  # fmt: skip
            store.apply_document(s2, doc(f"docs/d{d:02d}.md", 2, f"b{d}"), "", new,
                                 [c.rowid for c in old])  # fmt: skip
        store.finish_snapshot(s2, {"docs_changed": 10})
        some = {f"docs/d{d:02d}.md" for d in range(0, 30, 4)}
        for at, paths in ((None, some), (s1, None), (s1, some), (None, {"docs/tiny.md"})):
            visible = set(store.vectors_at(at, paths)[0])
            recalls = []
            for _ in range(10):
                query = rng.standard_normal(DIM).astype(np.float32)
                query /= np.linalg.norm(query)
                found = store.nearest(query, 10, at=at, paths=paths)
                where, params = ("c.valid_to IS NULL", {}) if at is None else (
                    "c.valid_from <= %(at)s AND (c.valid_to IS NULL OR c.valid_to > %(at)s)",
                    {"at": at},
                )  # fmt: skip
                if paths is not None:
                    where += " AND c.document = ANY(%(paths)s)"
                exact = {
                    int(r[0])
                    for r in store.conn.execute(
                        f"SELECT c.id FROM chunks c WHERE {where} ORDER BY c.embedding <=> "
                        "%(q)s::vector LIMIT 10",
                        {**params, "paths": sorted(paths or []), "q": str(query.tolist())},
                    ).fetchall()
                }
                assert len(found) == min(10, len(visible)), (at, paths)
                assert {r for r, _ in found} <= visible, (at, paths)
                assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
                recalls.append(len({r for r, _ in found} & exact) / len(exact))
            assert np.mean(recalls) >= 0.9, (at, paths, np.mean(recalls))
        store.optimize()  # the planner's statistics, as a sync leaves them

        def index_scans() -> int:
            store.conn.execute("SELECT pg_stat_force_next_flush()")
            store.conn.execute("SELECT pg_stat_clear_snapshot()")
            row = store.conn.execute(
                "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'chunks_hnsw'"
            ).fetchone()
            return int(row[0])

        for at, paths in ((s1, None), (None, some), (s1, some)):
            before = index_scans()
            store.nearest(rng.standard_normal(DIM).astype(np.float32), 10, at=at, paths=paths)
            assert index_scans() > before, (at, paths)  # through the HNSW index, not a sort
        before = index_scans()
        assert len(store.nearest(np.ones(DIM, np.float32), 10, paths={"docs/tiny.md"})) == 5
        assert index_scans() == before  # 5 rows: ranked exactly, no index scan
    finally:
        store.close()

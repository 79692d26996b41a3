"""Sync, history, search and the vector index on a real SQLite file, with the hashing embedder.

These tests are about indexing logic (what is embedded, retired, kept, found), so they use the
deterministic hashing embedder; the semantic tests with the real model are in
test_retrieval_quality.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.build import NO_RETRAINING, make_plan
from ragtune.cli import app
from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder, load_embedder
from ragtune.knowledge.store import StoreError
from ragtune.project import load_project

PROJECT = """
version: 1
project: kb
knowledge:
  embedder: hashing
capabilities:
  - name: policies
    description: Answer questions about our current policies.
    sources: [docs/]
  - name: fees
    description: Quote the review fee for a matter type from the fee table.
    sources: ["tables/fees.csv#matter"]
"""

LEAVE = """# Leave policy

Version 3. This policy applies to every employee of the company, full time or part time, from
their first day of employment.

## 1. Annual leave

Employees receive twenty-five (25) days of annual leave a year, accrued monthly from the start
date and booked through the HR portal at least two weeks ahead.

## 2. Sick leave

Sick leave is paid in full for the first ten (10) days in any calendar year; a doctor's note is
needed for an absence longer than three consecutive working days.

## 3. Carry-over

Up to five (5) unused days carry over to the next year and must be taken before the end of
March, after which they lapse without payment.
"""

EXPENSES = """# Expenses policy

## 1. Meals

Meals are reimbursed up to forty dollars a day when travelling on company business, with an
itemised receipt attached to the claim in the expenses tool.

## 2. Hotels

Hotels must be booked through the travel desk, which holds negotiated rates with the major
chains in every city where the company has an office.
"""

FEES = "matter,fee_usd,turnaround_days\nNDA review,450,2\nMSA review,1200,5\nDPA review,900,4\n"


@pytest.fixture
def project_dir(write_project: Callable[..., Path]) -> Path:
    folder = write_project(PROJECT)
    (folder / "docs").mkdir()
    (folder / "docs" / "leave.md").write_text(LEAVE)
    (folder / "docs" / "expenses.md").write_text(EXPENSES)
    (folder / "tables").mkdir()
    (folder / "tables" / "fees.csv").write_text(FEES)
    return folder


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


def open_kb(folder: Path, embedder: HashingEmbedder) -> KnowledgeBase:
    return KnowledgeBase(load_project(folder), embedder=embedder)


def test_first_sync_embeds_everything_and_a_second_embeds_nothing(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    first = kb.sync()
    assert first.snapshot == 1
    assert sorted(c.path for c in first.plan.of("added")) == [
        "docs/expenses.md", "docs/leave.md", "tables/fees.csv",
    ]  # fmt: skip
    assert first.embedded == embedder.calls > 0
    assert kb.store.counts()["documents"] == 3
    calls = embedder.calls
    second = kb.sync()
    assert embedder.calls == calls, "an unchanged sync must not embed"
    assert second.embedded == 0
    assert second.snapshot == 1, "a sync that changes nothing leaves no snapshot"
    assert len(second.plan.of("unchanged")) == 3


def test_editing_one_section_re_embeds_only_that_section(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    before = {c.chunk_id: c for c in kb.store.current_chunks("docs/leave.md")}
    calls = embedder.calls
    (project_dir / "docs" / "leave.md").write_text(
        LEAVE.replace("twenty-five (25) days", "thirty (30) days")
    )
    result = kb.sync()
    assert result.snapshot == 2
    assert [c.path for c in result.plan.of("changed")] == ["docs/leave.md"]
    assert embedder.calls - calls == 1, "only the edited section is embedded again"
    after = {c.chunk_id: c for c in kb.store.current_chunks("docs/leave.md")}
    assert after.keys() == before.keys(), "sections keep their stable ids"
    changed = [cid for cid in after if after[cid].text_hash != before[cid].text_hash]
    assert len(changed) == 1
    assert "thirty (30) days" in after[changed[0]].text
    # The untouched sections are the very same rows; the edited one is a new version.
    assert all(after[c].rowid == before[c].rowid for c in after if c not in changed)
    old = kb.store.db.execute(
        "SELECT valid_from, valid_to FROM chunks WHERE id = ?", (before[changed[0]].rowid,)
    ).fetchone()
    assert tuple(old) == (1, 2)


def test_search_now_and_as_of_the_earlier_snapshot(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    (project_dir / "docs" / "leave.md").write_text(
        LEAVE.replace("twenty-five (25) days", "thirty (30) days")
    )
    kb.sync()
    now = kb.search("annual leave days a year", k=1)
    then = kb.search("annual leave days a year", k=1, as_of="1")
    assert "thirty (30) days" in now[0].text and now[0].snapshot == 2
    assert "twenty-five (25) days" in then[0].text and then[0].snapshot == 1
    assert now[0].document == "docs/leave.md"
    assert "1. Annual leave" in now[0].section
    with pytest.raises(StoreError, match="no snapshot 9"):
        kb.search("leave", as_of="9")
    with pytest.raises(StoreError, match="ISO time"):
        kb.search("leave", as_of="last tuesday")


def test_deleted_documents_retire_their_chunks_and_stay_in_history(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    (project_dir / "docs" / "expenses.md").unlink()
    result = kb.sync()
    assert [c.path for c in result.plan.of("deleted")] == ["docs/expenses.md"]
    assert "docs/expenses.md" not in kb.store.current_documents()
    assert all(h.document != "docs/expenses.md" for h in kb.search("hotels travel desk", k=10))
    then = kb.search("hotels travel desk", k=1, as_of="1")
    assert then[0].document == "docs/expenses.md"
    versions = kb.store.document_versions("docs/expenses.md")
    assert [(v.version, v.valid_from, v.valid_to) for v in versions] == [(1, 1, 2)]


def test_bad_files_are_reported_and_the_rest_synced(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    docs = project_dir / "docs"
    (docs / "empty.md").write_text("   \n")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (docs / "slides.pptx").write_bytes(b"PK")
    kb = open_kb(project_dir, embedder)
    result = kb.sync()
    skipped = dict(result.skipped)
    assert {"docs/empty.md", "docs/binary.txt", "docs/slides.pptx"} <= skipped.keys()
    assert all(reason for reason in skipped.values())
    assert {"docs/leave.md", "docs/expenses.md"} <= kb.store.current_documents().keys()


def test_a_file_that_turns_bad_keeps_its_last_good_version(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    (project_dir / "docs" / "leave.md").write_text("")
    result = kb.sync()
    assert "docs/leave.md" in dict(result.skipped)
    assert kb.store.current_documents()["docs/leave.md"].version == 1
    assert kb.search("annual leave", k=1)[0].document == "docs/leave.md"


def test_table_rows_by_exact_key_and_by_search(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    row = kb.lookup("tables/fees.csv", "  msa REVIEW ")
    assert row is not None and "1200" in row.text
    assert kb.lookup("tables/fees.csv", "SOW review") is None
    hits = kb.search("fee for a DPA review", k=3, capability="fees")
    assert hits[0].document == "tables/fees.csv" and "900" in hits[0].text


def test_filters_by_capability_and_source(project_dir: Path, embedder: HashingEmbedder) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    assert {h.document for h in kb.search("review", k=20, capability="fees")} == {"tables/fees.csv"}
    only = {h.document for h in kb.search("policy days", k=20, source="docs/leave*")}
    assert only == {"docs/leave.md"}
    with pytest.raises(Exception, match="no such capability"):
        kb.search("x", capability="nope")


def test_a_sync_walks_the_sources_once(
    project_dir: Path, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragtune.knowledge.sync as sync_module
    from ragtune.knowledge.sources import Discovered

    walked: list[list[str]] = []
    real = sync_module.discover

    def discover(root: Path, refs: list[str]) -> Discovered:
        walked.append(refs)
        return real(root, refs)

    monkeypatch.setattr(sync_module, "discover", discover)
    kb = open_kb(project_dir, embedder)
    kb.sync()
    assert walked == [["docs/"], ["tables/fees.csv#matter"]]  # once for each capability
    assert kb.store.paths_of("fees") == {"tables/fees.csv"}
    assert kb.store.paths_of("policies") == {"docs/expenses.md", "docs/leave.md"}


def test_several_capabilities_at_once(project_dir: Path, embedder: HashingEmbedder) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    both = {h.document for h in kb.search("days", k=50, capability=["fees", "policies"])}
    assert both == {"tables/fees.csv", "docs/leave.md", "docs/expenses.md"}
    with pytest.raises(Exception, match="'nope': no such capability"):
        kb.search("x", capability=["fees", "nope"])


def test_title_acronyms_and_query_expansion() -> None:
    from ragtune.knowledge.search import expand_query, title_acronyms

    assert title_acronyms("Mutual Non-Disclosure Agreement") == {"MNDA", "NDA"}
    assert title_acronyms("Master Services Agreement") == {"MSA"}
    assert title_acronyms("Leave policy") == set()  # one capitalised word: no acronym
    aliases = {"NDA": "Mutual Non-Disclosure Agreement"}
    assert expand_query("NDA term?", aliases) == "Mutual Non-Disclosure Agreement (NDA) term?"
    # Lower case, unknown acronyms and acronyms inside words are left alone.
    assert expand_query("nda term, CEO, NDAS", aliases) == "nda term, CEO, NDAS"


def test_a_document_named_by_its_acronym_is_found(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    """'EP' is too short; 'TEP' is the acronym of 'Travel Expenses Policy': the query names the
    document only by it, and the expansion brings its chunks up through BM25 on the title."""
    (project_dir / "docs" / "expenses.md").write_text(
        EXPENSES.replace("# Expenses policy", "# Travel Expenses Policy")
    )
    kb = open_kb(project_dir, embedder)
    kb.sync()
    from ragtune.knowledge.search import document_names

    assert document_names(kb.store).aliases == {"TEP": "Travel Expenses Policy"}
    hits = kb.search("what does the TEP say", k=2, mode="bm25")
    assert hits and all(h.document == "docs/expenses.md" for h in hits)
    # A renamed document's acronym goes with the next snapshot.
    (project_dir / "docs" / "expenses.md").write_text(EXPENSES)
    kb.sync()
    assert document_names(kb.store).aliases == {}


def test_named_documents_reads_acronyms_and_titles_and_drops_them() -> None:
    from ragtune.knowledge.search import DocumentNames, named_documents

    names = DocumentNames(
        aliases={"TEP": "Travel Expenses Policy"},
        paths={
            "TEP": {"docs/expenses.md"},
            "travel expenses policy": {"docs/expenses.md"},
            "leave policy": {"docs/leave.md"},
        },
    )
    assert named_documents("what does the TEP say about meals?", names) == (
        {"docs/expenses.md"},
        "what does the say about meals?",
    )
    assert named_documents("Leave Policy: carry-over?", names) == (
        {"docs/leave.md"},
        ": carry-over?",
    )
    # Only the name itself: the query is kept whole (nothing else to rank on).
    assert named_documents("TEP", names) == ({"docs/expenses.md"}, "TEP")
    assert named_documents("tep, TEPS and meals", names) == (set(), "tep, TEPS and meals")


def test_a_question_naming_a_document_is_answered_from_it_first(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    """ "sick leave days" matches the leave policy word for word, but the question names the
    travel expenses policy: its chunks (both mention the company) come first, the rest fill the
    places it cannot, and a capability that does not cover the named document searches as
    before."""
    (project_dir / "docs" / "expenses.md").write_text(
        EXPENSES.replace("# Expenses policy", "# Travel Expenses Policy")
    )
    kb = open_kb(project_dir, embedder)
    kb.sync()
    question = "Under the TEP, what does the company pay when sick leave days run out?"
    for mode in ("hybrid", "bm25"):
        plain = kb.search(question.replace("Under the TEP, w", "W"), k=1, mode=mode)  # type: ignore[arg-type]
        assert plain[0].document == "docs/leave.md"
        hits = kb.search(question, k=6, mode=mode)  # type: ignore[arg-type]
        documents = [h.document for h in hits]
        named = documents.count("docs/expenses.md")
        assert named >= 2 and documents[:named] == ["docs/expenses.md"] * named, documents
        assert "docs/leave.md" in documents[named:], documents
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # The policies capability covers docs/*.md: scoped. The fees capability does not cover the
    # expenses policy, so its search is the usual one over its own table.
    fees = kb.search(question, k=2, capability="fees")
    assert fees and {h.document for h in fees} == {"tables/fees.csv"}


def test_live_hashes_follow_edits_and_deletions(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    hit = kb.search("sick leave doctor's note", k=1)[0]
    assert kb.store.live_hashes([hit.chunk_id]) == {hit.chunk_id: hit.text_hash}
    path = project_dir / "docs" / "leave.md"
    path.write_text(path.read_text().replace("ten (10) days", "twelve (12) days"))
    kb.sync()
    assert kb.store.live_hashes([hit.chunk_id])[hit.chunk_id] != hit.text_hash
    path.unlink()
    kb.sync()
    assert kb.store.live_hashes([hit.chunk_id]) == {}


def test_bm25_alone_and_vector_alone(project_dir: Path, embedder: HashingEmbedder) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    bm25 = kb.search("travel desk", k=2, mode="bm25")
    vector = kb.search("travel desk", k=2, mode="vector")
    hybrid = kb.search("travel desk", k=2)
    assert bm25[0].bm25_rank == 1 and bm25[0].vector_rank is None
    assert vector[0].vector_rank == 1 and vector[0].bm25_rank is None
    assert hybrid[0].bm25_rank is not None and hybrid[0].vector_rank is not None
    assert "travel desk" in hybrid[0].text


def test_vector_index_catches_up_and_rebuilds(project_dir: Path, embedder: HashingEmbedder) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    index = kb.index()
    live = kb.store.counts()["chunks"]
    assert len(index.index) == live
    (project_dir / "docs" / "leave.md").write_text(LEAVE.replace("ten (10)", "twelve (12)"))
    result = kb.sync()
    assert result.index == "caught up: +1 -1"
    assert len(index.index) == live
    # A lost or corrupt index file is derived data: rebuilt from SQLite.
    kb.index_path.write_bytes(b"garbage")
    fresh = open_kb(project_dir, embedder)
    assert fresh._vector_index().catch_up(fresh.store) == "rebuilt"
    assert "twelve (12)" in fresh.search("sick leave paid", k=1)[0].text


def test_history_lists_versions_and_diffs(project_dir: Path, embedder: HashingEmbedder) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    kb.close()
    (project_dir / "docs" / "leave.md").write_text(LEAVE.replace("five (5)", "three (3)"))
    runner = CliRunner()
    assert runner.invoke(app, ["knowledge", "sync", str(project_dir), "--json"]).exit_code == 0
    result = runner.invoke(
        app, ["knowledge", "history", "docs/leave.md", "-p", str(project_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [v["version"] for v in data["versions"]] == [1, 2]
    assert "-Up to five (5) unused days" in data["diff"]
    assert "+Up to three (3) unused days" in data["diff"]
    missing = runner.invoke(app, ["knowledge", "history", "nope.md", "-p", str(project_dir)])
    assert missing.exit_code == 2 and "docs/leave.md" in missing.output


def test_plan_lists_changes_without_embedding_or_writing(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    project = load_project(project_dir)
    first = make_plan(project)
    assert not (project_dir / ".ragtune" / "knowledge.db").exists(), "plan must not write"
    assert first.knowledge is not None
    assert len(first.knowledge.of("added")) == 3
    kb = open_kb(project_dir, embedder)
    kb.sync()
    calls = embedder.calls
    (project_dir / "docs" / "leave.md").write_text(LEAVE.replace("ten (10)", "twelve (12)"))
    plan = make_plan(project)
    assert embedder.calls == calls
    assert plan.knowledge is not None
    assert [
        (c.path, c.chunks_to_embed, c.chunks_to_retire) for c in plan.knowledge.of("changed")
    ] == [("docs/leave.md", 1, 1)]
    assert NO_RETRAINING in plan.summary()
    assert "1 document changed" in plan.summary()
    result = CliRunner().invoke(app, ["plan", str(project_dir), "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["knowledge"]["chunks_to_embed"] == 1
    assert payload["knowledge"]["retraining_needed"] is False


def test_cli_search_json_keys_and_errors(project_dir: Path) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["knowledge", "search", "leave", "-p", str(project_dir)])
    assert empty.exit_code == 2 and "knowledge sync" in empty.output
    assert runner.invoke(app, ["knowledge", "sync", str(project_dir)]).exit_code == 0
    result = runner.invoke(
        app, ["knowledge", "search", "carry over unused days", "-p", str(project_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert {"text", "document", "section", "snapshot", "score"} <= set(hits[0])
    assert "carry" in hits[0]["text"].lower()
    table = runner.invoke(app, ["knowledge", "search", "sick leave", "-p", str(project_dir)])
    assert table.exit_code == 0 and "docs/leave.md" in table.output
    lookup = runner.invoke(
        app, ["knowledge", "lookup", "tables/fees.csv", "NDA review", "-p", str(project_dir)]
    )
    assert lookup.exit_code == 0 and "450" in lookup.output


def test_store_is_wal_with_numbered_migrations(
    project_dir: Path, embedder: HashingEmbedder
) -> None:
    kb = open_kb(project_dir, embedder)
    kb.sync()
    db = sqlite3.connect(project_dir / ".ragtune" / "knowledge.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in db.execute("SELECT name FROM migrations")] == [
        "m001_initial",
        "m002_visibility_index",
        "m003_examples",
    ]


def test_embedders_registry() -> None:
    hashing = load_embedder("hashing:64")
    vectors = hashing.embed(["a b c", "a b c", "x y z"])
    assert vectors.shape == (3, 64)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0)
    assert abs(float((vectors**2).sum(axis=1)[2]) - 1.0) < 1e-5
    with pytest.raises(Exception, match="unknown embedder"):
        load_embedder("word2vec")
    with pytest.raises(Exception, match="no such model folder"):
        load_embedder("st:/nonexistent/model")


def test_watch_resyncs_within_a_second_of_a_change(project_dir: Path) -> None:
    import threading
    import time

    from ragtune.knowledge.watch import watch

    kb = open_kb(project_dir, HashingEmbedder(256))
    stop = threading.Event()
    ready = threading.Event()
    synced: list[tuple[float, object]] = []

    def on_sync(result: object) -> None:
        synced.append((time.monotonic(), result))

    thread = threading.Thread(
        target=watch, args=(kb, on_sync), kwargs={"stop": stop, "ready": lambda _: ready.set()}
    )
    thread.start()
    try:
        assert ready.wait(10)
        time.sleep(0.3)  # let the watcher settle before the change
        changed_at = time.monotonic()
        (project_dir / "docs" / "leave.md").write_text(LEAVE.replace("ten (10)", "fifteen (15)"))
        deadline = changed_at + 5
        while len(synced) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(synced) >= 2, "no re-sync after the change"
        at, result = synced[1]
        assert at - changed_at < 1.0, f"re-synced {at - changed_at:.2f} s after the change"
        assert [c.path for c in result.plan.of("changed")] == ["docs/leave.md"]  # type: ignore[attr-defined]
    finally:
        stop.set()
        thread.join(5)
    reader = open_kb(project_dir, HashingEmbedder(256))
    assert "fifteen (15)" in reader.search("sick leave paid in full", k=1)[0].text


def test_watch_json_prints_one_line_per_sync(project_dir: Path) -> None:
    """`ragtune knowledge watch --json`: stdout holds only JSON lines, one per sync."""
    import subprocess
    import sys
    import time

    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ragtune.cli",
            "knowledge",
            "watch",
            "-p",
            str(project_dir),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import threading

    watchdog = threading.Timer(60, watcher.kill)  # a hung watcher fails the test, never hangs it
    watchdog.start()
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        assert "watching" in watcher.stderr.readline()  # the story goes to stderr
        first = json.loads(watcher.stdout.readline())  # the sync it starts with
        time.sleep(0.3)
        (project_dir / "docs" / "leave.md").write_text(LEAVE.replace("ten (10)", "fifteen (15)"))
        second = json.loads(watcher.stdout.readline())
    finally:
        watchdog.cancel()
        watcher.terminate()
        watcher.wait(10)
    assert first["snapshot"] == 1 and second["snapshot"] == 2
    assert second["changed"] == ["docs/leave.md"], second


TOOL = """
from ragtune.knowledge.tools import tool

@tool(description="Order status by order id")
def order_status(query: str) -> str:
    return "order 42: shipped" if "42" in query else "unknown order"

def not_a_tool(query: str) -> str:
    return "x"

@tool()
def broken(query: str) -> int:
    return 3
"""


def test_python_tools_are_declared_loaded_and_called(
    write_project: Callable[..., Path], tmp_path: Path
) -> None:
    from ragtune.knowledge.tools import ToolError, load_tool

    folder = write_project(
        """
        version: 1
        project: tools
        knowledge: {embedder: hashing}
        capabilities:
          - name: orders
            description: Tell customers where their order is.
            sources: ["tool:tools/orders.py:order_status"]
        """
    )
    (folder / "tools").mkdir()
    (folder / "tools" / "orders.py").write_text(TOOL)
    kb = open_kb(folder, HashingEmbedder(64))
    [order] = kb.tools()
    assert (order.name, order.description) == ("order_status", "Order status by order id")
    assert order("where is order 42?") == ["order 42: shipped"]
    # A tool source is called, not indexed: sync finds nothing to embed and skips nothing.
    result = kb.sync()
    assert result.embedded == 0 and result.skipped == []
    with pytest.raises(ToolError, match="not marked as a tool"):
        load_tool("tool:tools/orders.py:not_a_tool", folder)
    with pytest.raises(ToolError, match="returned int"):
        load_tool("tool:tools/orders.py:broken", folder)("q")
    with pytest.raises(ToolError, match="has no function"):
        load_tool("tool:tools/orders.py:missing", folder)
    runner = CliRunner()
    called = runner.invoke(
        app, ["knowledge", "tools", "-p", str(folder), "--call", "order_status", "order 42"]
    )
    assert called.exit_code == 0 and "shipped" in called.output
    (folder / "ragtune.yaml").write_text(
        (folder / "ragtune.yaml").read_text().replace("orders.py", "nothere.py")
    )
    bad = runner.invoke(app, ["knowledge", "tools", "-p", str(folder)])
    assert bad.exit_code == 2 and "nothere.py" in bad.output


def test_example_tool_runs_offline() -> None:
    from ragtune.examples import example_path
    from ragtune.knowledge.tools import load_tool

    status = load_tool(
        "tool:tools/counterparties.py:counterparty_status", example_path("contract-review")
    )
    assert "review required" in status("Can we sign with Globex Corporation?")[0]


def test_a_concurrent_reader_sees_one_version_of_a_document_never_a_mix(
    project_dir: Path,
) -> None:
    import threading

    kb = open_kb(project_dir, HashingEmbedder(64))
    kb.sync()
    editions = [LEAVE, LEAVE.replace("(25)", "(30)").replace("(10)", "(12)").replace("(5)", "(3)")]
    seen: list[set[str]] = []
    done = threading.Event()

    def read() -> None:
        con = sqlite3.connect(project_dir / ".ragtune" / "knowledge.db", timeout=10)
        while not done.is_set():
            texts = [
                r[0]
                for r in con.execute(
                    "SELECT text FROM chunks WHERE document = 'docs/leave.md' AND valid_to IS NULL"
                )
            ]
            marks = {
                m
                for m in ("(25)", "(10)", "(5)", "(30)", "(12)", "(3)")
                if any(m in t for t in texts)
            }
            seen.append(marks)
        con.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(12):
            (project_dir / "docs" / "leave.md").write_text(editions[(i + 1) % 2])
            kb.sync()
    finally:
        done.set()
        reader.join(10)
    assert len(seen) > 12
    assert all(marks in ({"(25)", "(10)", "(5)"}, {"(30)", "(12)", "(3)"}) for marks in seen), [
        m for m in seen if m not in ({"(25)", "(10)", "(5)"}, {"(30)", "(12)", "(3)"})
    ][:3]


def test_build_syncs_the_knowledge(project_dir: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(project_dir), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["knowledge"]["snapshot"] == 1 and len(summary["knowledge"]["added"]) == 3
    assert summary["adapters"] == []  # no behaviour capability: nothing to train
    again = json.loads(runner.invoke(app, ["build", str(project_dir), "--json"]).stdout)
    assert again["knowledge"]["chunks_embedded"] == 0 and again["knowledge"]["unchanged"] == 3


def test_changing_the_embedder_re_embeds_the_store_history_included(project_dir: Path) -> None:
    kb = open_kb(project_dir, HashingEmbedder(256))
    kb.sync()
    (project_dir / "docs" / "leave.md").write_text(LEAVE.replace("ten (10)", "twelve (12)"))
    kb.sync()
    kb.close()
    config = project_dir / "ragtune.yaml"
    config.write_text(config.read_text().replace("embedder: hashing", "embedder: hashing:64"))
    plan = make_plan(load_project(project_dir))
    assert plan.knowledge is not None and plan.knowledge.reembed_all
    assert "embedded again" in plan.summary()
    small = HashingEmbedder(64)
    kb = open_kb(project_dir, small)
    result = kb.sync()
    rows = kb.store.counts()["chunk_versions"]
    assert 0 < small.calls <= rows and result.embedded == 0
    lengths = {len(r[0]) for r in kb.store.db.execute("SELECT vector FROM chunks")}
    assert lengths == {64 * 4}
    assert "twelve (12)" in kb.search("sick leave paid", k=1)[0].text
    assert "ten (10)" in kb.search("sick leave paid", k=1, as_of="1")[0].text


def test_metadata_filters_on_kind_and_title(project_dir: Path) -> None:
    kb = open_kb(project_dir, HashingEmbedder(256))
    kb.sync()
    tables = {h.document for h in kb.search("review fee", k=10, where={"kind": "table"})}
    assert tables == {"tables/fees.csv"}
    titled = {h.document for h in kb.search("policy", k=10, where={"title": "*expenses*"})}
    assert titled == {"docs/expenses.md"}
    with pytest.raises(StoreError, match="unknown field 'author'"):
        kb.search("x", where={"author": "me"})
    result = CliRunner().invoke(
        app,
        ["knowledge", "search", "leave", "-p", str(project_dir), "--where", "kind=markdown",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0
    assert {h["document"] for h in json.loads(result.stdout)} <= {
        "docs/leave.md",
        "docs/expenses.md",
    }
    bad = CliRunner().invoke(
        app, ["knowledge", "search", "x", "-p", str(project_dir), "--where", "kind"]
    )
    assert bad.exit_code == 2 and "FIELD=VALUE" in bad.output


def test_a_store_from_an_older_schema_is_migrated_in_place(project_dir: Path) -> None:
    from ragtune.knowledge.store import migrations

    # A store written before migration 2 existed: only m001 applied.
    first_only = migrations.MIGRATIONS[:1]
    saved = list(migrations.MIGRATIONS)
    migrations.MIGRATIONS[:] = first_only
    try:
        kb = open_kb(project_dir, HashingEmbedder(64))
        kb.sync()
        kb.close()
    finally:
        migrations.MIGRATIONS[:] = saved
    kb = open_kb(project_dir, HashingEmbedder(64))
    names = [r[0] for r in kb.store.db.execute("SELECT name FROM migrations")]
    assert names == ["m001_initial", "m002_visibility_index", "m003_examples"]
    indexes = {r[1] for r in kb.store.db.execute("PRAGMA index_list('chunks')")}
    assert "chunks_visibility" in indexes
    assert kb.search("sick leave", k=1)[0].document == "docs/leave.md"


def test_sync_does_not_follow_links_out_of_the_project(
    project_dir: Path, embedder: HashingEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.md").write_text("# Secret\n\nThe server's private notes: do not serve.\n")
    (outside / "more").mkdir()
    (outside / "more" / "keys.md").write_text("# Keys\n\nsk-live-1234\n")
    docs = project_dir / "docs"
    (docs / "secret.md").symlink_to(outside / "secret.md")
    (docs / "more").symlink_to(outside / "more", target_is_directory=True)
    (project_dir / "shared").mkdir()
    (project_dir / "shared" / "inside.md").write_text("# Inside\n\nShared inside the project.\n")
    (docs / "alias.md").symlink_to(project_dir / "shared" / "inside.md")  # stays inside: used
    config = (project_dir / "ragtune.yaml").read_text()
    (project_dir / "ragtune.yaml").write_text(
        config.replace("sources: [docs/]", f"sources: [docs/, docs/more, {outside}/secret.md]")
    )

    kb = open_kb(project_dir, embedder)
    result = kb.sync()
    documents = kb.store.current_documents()
    assert set(documents) == {
        "docs/alias.md",
        "docs/expenses.md",
        "docs/leave.md",
        "tables/fees.csv",
    }
    hits = kb.search("private notes do not serve sk-live-1234", k=10)
    assert not any("private notes" in h.text or "sk-live" in h.text for h in hits)
    skipped = dict(result.skipped)
    assert "symbolic link to" in skipped["docs/secret.md"]
    assert "outside the project" in skipped["docs/secret.md"]
    assert "outside the project" in skipped["docs/more/keys.md"]
    assert not any(path.startswith("/") for path in skipped)  # names as the project sees them
    kb.close()

    shown = CliRunner().invoke(app, ["knowledge", "sync", str(project_dir)])
    assert shown.exit_code == 0, shown.output
    assert "docs/secret.md" in shown.output and "outside the project" in shown.output


@pytest.mark.slow
def test_a_sync_with_nothing_to_embed_loads_no_model(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """The embedder's model loads on the first text it embeds: an unchanged sync and a keyword
    search in a fresh process import no sentence-transformers (about 10 s here), and a change
    still embeds with it."""
    import subprocess
    import sys

    folder = example_project(tmp_path / "cr", sync=True)  # the default embedder, all-MiniLM
    code = (
        "import sys; from ragtune.knowledge.base import KnowledgeBase; "
        "from ragtune.project import load_project; "
        f"kb = KnowledgeBase(load_project({str(folder)!r})); r = kb.sync(); "
        "hits = kb.search('breach notification', k=1, mode='bm25'); "
        "print(r.embedded, len(hits), 'sentence_transformers' in sys.modules)"
    )
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert quiet.stdout.split() == ["0", "1", "False"], quiet.stderr[-2000:]
    (folder / "knowledge" / "nda.md").write_text(
        (folder / "knowledge" / "nda.md").read_text() + "\n\n## 99. New\n\n99.1 A new clause.\n"
    )
    changed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    embedded, _, loaded = changed.stdout.split()
    assert int(embedded) >= 1 and loaded == "True", changed.stderr[-2000:]

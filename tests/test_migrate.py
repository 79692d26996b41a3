"""``ragtune knowledge migrate``: an SQLite store copied into a real PostgreSQL (``tests/pg.py``),
history included, checked, refused when it should be and undone when it fails."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pg import PostgresServer
from ragtune.cli import app
from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.migrate import MigrationError, migrate_store, switch_store
from ragtune.knowledge.store import StoreError, open_store
from ragtune.knowledge.sync import STORE_ENV
from ragtune.project import load_project

QUERIES = [
    "limitation of liability cap",
    "governing law of the NDA",
    "How long is the notice period for termination?",
]


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)


@pytest.fixture
def synced(example_project: Callable[..., Path], tmp_path: Path) -> Path:
    """The contract-review example with the hashing embedder, synced into SQLite four times:
    as it comes, after an edit, after a deletion, after the file came back."""
    folder = example_project(tmp_path / "project", embedder="hashing")
    kb = KnowledgeBase(load_project(folder))
    try:
        kb.sync()
        msa = folder / "knowledge" / "msa.md"
        msa.write_text(msa.read_text().replace("twelve (12) months", "twenty-four (24) months"))
        kb.sync()
        nda = folder / "knowledge" / "nda.md"
        saved = tmp_path / "nda.md"
        shutil.move(nda, saved)
        kb.sync()
        shutil.move(saved, nda)
        kb.sync()
    finally:
        kb.close()
    return folder


def _tables(server: PostgresServer, url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        ).fetchall()
        ext = conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()
    return [r[0] for r in rows] + [f"ext:{r[0]}" for r in ext]


def _name(url: str) -> str:
    """The database name of one of tests/pg.py's URLs."""
    return url.split("@/", 1)[1].split("?", 1)[0]


def _answers(folder: Path) -> dict[str, Any]:
    """Searches live and as of each snapshot, in every mode, and the history of a document."""
    kb = KnowledgeBase(load_project(folder))
    try:
        out: dict[str, Any] = {"counts": kb.store.counts(), "snapshots": kb.store.snapshots()}
        for at in (None, "1", "2", "3", "4"):
            for mode in ("vector", "bm25"):
                for query in QUERIES:
                    hits = kb.search(query, k=3, as_of=at, mode=mode)  # type: ignore[arg-type]
                    out[f"{mode} {at} {query}"] = [
                        (h.document, h.chunk_id, h.version, h.snapshot) for h in hits
                    ]
        out["nda"] = kb.store.document_versions("knowledge/nda.md")
        out["msa v1"] = kb.store.document_text("knowledge/msa.md", 1)
    finally:
        kb.close()
    return out


def test_migrate_copies_history_and_as_of_answers_alike(synced: Path, fresh_database: str) -> None:
    before = _answers(synced)
    stages: list[str] = []
    report = migrate_store(
        load_project(synced), fresh_database, progress=lambda s, d, t: stages.append(s)
    )
    assert report.copied["snapshots"] == 4
    assert report.copied["documents"] == before["counts"]["documents"] + 2  # msa v1, nda v1
    for name, (there, here) in report.counts.items():
        assert there == here, name
    assert report.counts["retired_chunks"][0] > 0
    assert report.agreed == (len(report.checks), len(report.checks)) and len(report.checks) >= 10
    assert {c.as_of for c in report.checks} >= {None, 1}
    assert {c.kind for c in report.checks} == {"vector", "keyword"}
    assert stages[0] == "copying" and stages[-1] == "checking"
    assert report.open_snapshot is None
    print("same first hit:", report.same_first_hit, f"{report.seconds:.2f} s")
    assert report.same_first_hit["vector"][0] == report.same_first_hit["vector"][1]

    config = synced / "ragtune.yaml"
    original = config.read_text()
    written = switch_store(load_project(synced), fresh_database)
    assert written == config
    assert config.read_text().startswith(original.split("knowledge:")[0])
    assert load_project(synced).config.knowledge.store == fresh_database
    after = _answers(synced)  # the project now reads PostgreSQL
    assert after["counts"] == before["counts"]
    assert after["snapshots"] == before["snapshots"]
    assert after["nda"] == before["nda"] and after["msa v1"] == before["msa v1"]
    vector = [k for k in before if k.startswith("vector ")]
    for key in vector:  # vectors, live and --as-of: the same hits
        assert after[key] == before[key], key
    # Keywords: PostgreSQL's ranking is close to the SQLite store's BM25, not the same
    # (tests/test_store_backends.py), so the top threes share a chunk rather than match.
    for key in [k for k in before if k.startswith("bm25 ")]:
        assert set(after[key]) & set(before[key]), key


def test_a_target_with_data_is_refused_and_left_alone(
    synced: Path, fresh_database: str, postgres_server: PostgresServer
) -> None:
    migrate_store(load_project(synced), fresh_database)
    tables = _tables(postgres_server, fresh_database)
    store = open_store(fresh_database, readonly=True)
    counts = store.counts()
    store.close()
    with pytest.raises(MigrationError, match="not empty") as err:
        migrate_store(load_project(synced), fresh_database)
    assert fresh_database.split("?")[0] in str(err.value)
    assert _tables(postgres_server, fresh_database) == tables
    store = open_store(fresh_database, readonly=True)
    assert store.counts() == counts
    store.close()


def test_foreign_tables_and_the_projects_own_store_are_refused(
    synced: Path,
    fresh_database: str,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_server.execute("CREATE TABLE invoices (id int)", database=_name(fresh_database))
    with pytest.raises(MigrationError, match="invoices"):
        migrate_store(load_project(synced), fresh_database)
    with pytest.raises(MigrationError, match="PostgreSQL"):
        migrate_store(load_project(synced), str(synced / "other.db"))
    monkeypatch.setenv(STORE_ENV, fresh_database)
    with pytest.raises(MigrationError, match="own store"):
        migrate_store(load_project(synced), fresh_database)


def test_a_failed_copy_leaves_the_target_as_it_was(
    synced: Path, fresh_database: str, postgres_server: PostgresServer
) -> None:
    """A copy that breaks half-way writes nothing: no rows, no tables, no extension the target
    did not have. The break is real: SQLite keeps a NUL character in a chunk's text (as a PDF
    may give one), PostgreSQL's text type refuses it, after the snapshots, the documents and
    the chunks before it were written."""
    db = sqlite3.connect(synced / ".ragtune" / "knowledge.db")
    with db:
        db.execute(
            "UPDATE chunks SET text = text || char(0) WHERE id = (SELECT MAX(id) FROM chunks)"
        )
    db.close()
    empty = _tables(postgres_server, fresh_database)
    assert empty == ["ext:plpgsql"]
    with pytest.raises(MigrationError, match=r"copy failed .*(NUL|0x00).* as it was"):
        migrate_store(load_project(synced), fresh_database)
    assert _tables(postgres_server, fresh_database) == empty
    # and with the store's tables there before (an empty store), they stay, empty
    open_store(fresh_database).close()
    tables = _tables(postgres_server, fresh_database)
    with pytest.raises(MigrationError, match=r"NUL|0x00"):
        migrate_store(load_project(synced), fresh_database)
    assert _tables(postgres_server, fresh_database) == tables
    store = open_store(fresh_database, readonly=True)
    assert store.latest_snapshot() == 0 and store.chunk_signature() == (0, 0)
    store.close()


def test_unreachable_target_names_it_without_the_password(synced: Path) -> None:
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"postgresql://ragtune:s3cret@127.0.0.1:{port}/knowledge"
    with pytest.raises(StoreError, match="cannot connect") as err:
        migrate_store(load_project(synced), url)
    assert "s3cret" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)


def test_switch_store_keeps_the_file_and_leaves_the_password_out(tmp_path: Path) -> None:
    text = (
        "# contract review\n"
        "version: 1\n"
        "project: demo\n"
        "knowledge:\n"
        "  embedder: hashing  # tests\n"
        "  store: old.db\n"
        "capabilities:\n"
        "  - name: a\n"
        "    kind: knowledge\n"
        "    description: answers from the docs\n"
        "    sources: [docs]\n"
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "ragtune.yaml").write_text(text)
    url = "postgresql://ragtune:s3cret@db:5432/kb?sslmode=require&password=x"
    switch_store(load_project(tmp_path), url)
    written = (tmp_path / "ragtune.yaml").read_text()
    assert written == text.replace(
        "store: old.db", "store: postgresql://ragtune@db:5432/kb?sslmode=require"
    )
    (tmp_path / "ragtune.yaml").write_text(text.replace("  store: old.db\n", ""))
    switch_store(load_project(tmp_path), "postgresql://u@h/db")
    assert load_project(tmp_path).config.knowledge.store == "postgresql://u@h/db"
    assert load_project(tmp_path).config.knowledge.embedder == "hashing"
    assert "# tests" in (tmp_path / "ragtune.yaml").read_text()
    no_section = text.replace("knowledge:\n  embedder: hashing  # tests\n  store: old.db\n", "")
    (tmp_path / "ragtune.yaml").write_text(no_section)
    switch_store(load_project(tmp_path), "postgresql://u@h/db")
    assert (tmp_path / "ragtune.yaml").read_text().startswith(no_section)
    assert load_project(tmp_path).config.knowledge.store == "postgresql://u@h/db"


def test_cli_migrate_json_switch_and_exit_codes(synced: Path, fresh_database: str) -> None:
    runner = CliRunner()
    base = ["knowledge", "migrate", "-p", str(synced)]
    bad = runner.invoke(app, [*base, "--to", str(synced / "copy.db")])
    assert bad.exit_code == 2 and "PostgreSQL" in bad.output and not (synced / "copy.db").exists()
    assert runner.invoke(app, base).exit_code == 2  # --to is required

    done = runner.invoke(app, [*base, "--to", fresh_database, "--json", "--switch"])
    assert done.exit_code == 0, done.output
    payload = json.loads(done.output)
    assert payload["searches_agreed"] == payload["searches"] > 0
    assert all(there == here for there, here in payload["counts"].values())
    assert payload["copied"]["snapshots"] == 4
    assert payload["switched"] == str(synced / "ragtune.yaml")
    assert load_project(synced).config.knowledge.store == fresh_database

    again = runner.invoke(app, [*base, "--to", fresh_database])  # now the project's own store
    assert again.exit_code == 2 and "own store" in again.output


def test_cli_migrate_says_what_to_set(synced: Path, fresh_database: str) -> None:
    result = CliRunner().invoke(
        app, ["knowledge", "migrate", "-p", str(synced), "--to", fresh_database]
    )
    assert result.exit_code == 0, result.output
    assert "counts equal" in result.output
    assert f"store: {fresh_database}" in result.output.replace("\n", "")
    assert load_project(synced).config.knowledge.store is None  # not switched
    again = CliRunner().invoke(
        app, ["knowledge", "migrate", "-p", str(synced), "--to", fresh_database]
    )
    assert again.exit_code == 2 and "not empty" in again.output


def test_a_copy_whose_searches_disagree_is_rolled_back(
    synced: Path,
    fresh_database: str,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checks run inside the copy's transaction: a disagreement (planted: the comparison
    says no) undoes the copy that had already been written in full."""
    from ragtune.knowledge import migrate

    open_store(fresh_database).close()  # an empty store there already: its tables stay
    tables = _tables(postgres_server, fresh_database)
    monkeypatch.setattr(migrate, "_same_ranking", lambda there, here: False)
    with pytest.raises(MigrationError, match="sample searches answer differently"):
        migrate_store(load_project(synced), fresh_database)
    assert _tables(postgres_server, fresh_database) == tables
    store = open_store(fresh_database, readonly=True)
    assert store.latest_snapshot() == 0 and store.chunk_signature() == (0, 0)
    assert store.get_meta("embedder") is None
    store.close()

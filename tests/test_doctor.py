"""``ragtune doctor``: a healthy example passes; each kind of damage is named with its fix, exit 1.

The example project is synced once per module with the hashing embedder (the checks are about
files and rows, not semantics) and carries the adapter it ships; each test damages a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.doctor import check_packages, diagnose, safetensors_problem

runner = CliRunner()


@pytest.fixture(scope="module")
def healthy(example_project: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contract-review example, synced (hashing embedder), with its shipped adapter."""
    return example_project(tmp_path_factory.mktemp("doctor") / "review", embedder="hashing",
                           sync=True, install=("templates",))  # fmt: skip


@pytest.fixture
def project(healthy: Path, tmp_path: Path) -> Path:
    """A copy of the healthy project for one test to damage."""
    return Path(shutil.copytree(healthy, tmp_path / "review", symlinks=True))


def doctor(folder: Path, *args: str) -> tuple[int, dict]:
    """Run `ragtune doctor --json`; (exit code, report)."""
    result = runner.invoke(app, ["doctor", str(folder), "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def failed(report: dict) -> dict[tuple[str, str], dict]:
    """The failed checks by (area, name)."""
    return {(c["area"], c["name"]): c for c in report["checks"] if c["status"] == "fail"}


def test_healthy_example_passes(healthy: Path) -> None:
    before = (healthy / ".ragtune/knowledge.db").read_bytes()
    code, report = doctor(healthy)
    assert (code, report["ok"], report["problems"]) == (0, True, 0), failed(report)
    areas = {c["area"] for c in report["checks"]}
    assert areas >= {"project", "install", "models", "store", "index", "adapters", "links"}
    by_name = {(c["area"], c["name"]): c for c in report["checks"]}
    assert by_name[("adapters", "templates")]["status"] == "ok"
    assert "SHA-256" in by_name[("adapters", "templates")]["detail"]
    assert by_name[("index", "vector index")]["status"] == "ok"
    assert by_name[("store", "keyword index")]["status"] == "ok"
    backend = by_name[("install", "backend")]["detail"]
    assert "llama.cpp" in backend or "transformers" in backend
    # risk_flags is shipped but not installed yet: served by prompting meanwhile, a warning
    # (not a failure) whose fix installs it
    plan = by_name[("adapters", "plan: risk_flags")]
    assert plan["status"] == "warn" and plan["detail"].startswith("install: adapters/risk_flags")
    assert plan["fix"] == f"ragtune build -p {healthy}"
    assert (healthy / ".ragtune/knowledge.db").read_bytes() == before  # nothing was written

    text = runner.invoke(app, ["doctor", str(healthy)])
    assert text.exit_code == 0, text.output
    assert "all checks passed" in text.output


@pytest.mark.parametrize("damage", ["header", "truncated", "pages"])
def test_corrupted_store(project: Path, damage: str) -> None:
    db = project / ".ragtune/knowledge.db"
    size = db.stat().st_size
    with db.open("r+b") as handle:
        if damage == "header":
            handle.write(b"\x00not a database" * 8)
        elif damage == "truncated":
            handle.truncate(size // 2)
        else:
            handle.seek(size // 2 // 4096 * 4096)
            handle.write(bytes(range(256)) * 48)
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("store", "integrity")]
    assert str(db) in check["detail"]
    assert "knowledge.db.broken" in check["fix"] and "ragtune knowledge sync" in check["fix"]


def test_keyword_index_out_of_step_and_repair(project: Path) -> None:
    db = sqlite3.connect(project / ".ragtune/knowledge.db")
    with db:  # an FTS row for a chunk that does not exist
        db.execute("INSERT INTO chunks_fts (rowid, text, section, title) "
                   "VALUES (999999, 'ghost text', 'ghost', 'ghost')")  # fmt: skip
    db.close()
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("store", "keyword index")]
    assert check["fix"] == f"ragtune doctor --repair -p {project}"

    repaired = runner.invoke(app, ["doctor", str(project), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "keyword index (FTS5) rebuilt" in repaired.output
    assert doctor(project)[0] == 0


@pytest.mark.parametrize(
    ("file", "damage", "said"),
    [
        ("adapter.gguf", "delete", "adapter.gguf is missing"),
        ("adapter.gguf", "append", "changed after training"),
        ("adapter_model.safetensors", "delete", "adapter_model.safetensors is missing"),
        ("adapter_model.safetensors", "truncate", "adapter_model.safetensors is damaged"),
        ("ragtune.json", "garble", "cannot read the adapter manifest"),
    ],
)
def test_damaged_adapter(project: Path, file: str, damage: str, said: str) -> None:
    path = project / ".ragtune/adapters/templates" / file
    if damage == "delete":
        path.unlink()
    elif damage == "append":
        with path.open("ab") as handle:
            handle.write(b"\x00")
    elif damage == "truncate":
        with path.open("r+b") as handle:
            handle.truncate(path.stat().st_size - 1000)
    else:
        path.write_text("{ not json")
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("adapters", "templates")]
    assert said in check["detail"]
    assert check["fix"] == f"ragtune adapter train templates -p {project}"


def test_safetensors_problem_reads_the_header_only(healthy: Path, tmp_path: Path) -> None:
    weights = healthy / ".ragtune/adapters/templates/adapter_model.safetensors"
    assert safetensors_problem(weights) is None
    grown = tmp_path / "grown.safetensors"
    grown.write_bytes(weights.read_bytes() + b"\x00")
    assert "the file has" in (safetensors_problem(grown) or "")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    assert "header length" in (safetensors_problem(garbage) or "")


def test_missing_vector_index_is_rebuilt_by_sync(project: Path) -> None:
    (project / ".ragtune/knowledge.usearch").unlink()
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("index", "vector index")]
    assert "knowledge.usearch is missing" in check["detail"]
    assert check["fix"] == f"ragtune knowledge sync -p {project}"
    synced = runner.invoke(app, ["knowledge", "sync", str(project)])
    assert synced.exit_code == 0, synced.output
    assert doctor(project)[0] == 0  # the fix it names fixes it


def test_stale_vector_index(project: Path) -> None:
    from ragtune.knowledge.embed import HashingEmbedder
    from ragtune.knowledge.store.sqlite import SQLiteStore
    from ragtune.knowledge.sync import knowledge_db, sync
    from ragtune.project import load_project

    nda = project / "knowledge/nda.md"
    nda.write_text(nda.read_text() + "\n\n## 99. Survival\n\nThis clause survives forever.\n")
    loaded = load_project(project)
    store = SQLiteStore(knowledge_db(loaded))
    try:  # the store moves on; the vector index is left where it was
        sync(loaded, store, HashingEmbedder())
    finally:
        store.close()
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("index", "vector index")]
    assert "is stale: built at snapshot 1" in check["detail"] and "snapshot 2" in check["detail"]
    assert check["fix"] == f"ragtune knowledge sync -p {project}"


def test_corrupt_vector_index(project: Path) -> None:
    (project / ".ragtune/knowledge.usearch").write_bytes(b"\x00" * 64)
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("index", "vector index")]
    assert "knowledge.usearch: cannot be loaded" in check["detail"]
    assert check["fix"] == f"ragtune knowledge sync -p {project}"


def test_links_out_of_the_project(project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# Salaries\n\nThe CEO earns a lot.\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "more.md").write_text("# More\n\nNot the project's.\n")
    (project / "knowledge/secret.md").symlink_to(secret)
    (project / "knowledge/elsewhere").symlink_to(outside, target_is_directory=True)
    code, report = doctor(project)
    assert code == 1
    problems = failed(report)
    file_link = problems[("links", "knowledge/secret.md")]
    assert str(secret) in file_link["detail"] and "sync skips it" in file_link["detail"]
    assert problems[("links", "knowledge/elsewhere")]["detail"].startswith("a folder link")
    # the fix it names replaces the link by a copy; the project is then whole again
    for name in ("knowledge/secret.md", "knowledge/elsewhere"):
        subprocess.run(problems[("links", name)]["fix"], shell=True, check=True)
    assert not os.path.islink(project / "knowledge/secret.md")
    assert (project / "knowledge/elsewhere/more.md").read_text().startswith("# More")
    assert doctor(project)[0] == 0


def test_documents_from_outside_in_the_store(project: Path) -> None:
    db = sqlite3.connect(project / ".ragtune/knowledge.db")
    with db:  # what a sync through a link out of the project once stored
        db.execute("INSERT INTO documents (path, version, kind, title, sha256, text, valid_from) "
                   "VALUES ('/etc/hostname', 1, 'text', 'hostname', '0', 'host', 1)")  # fmt: skip
    db.close()
    code, report = doctor(project)
    assert code == 1
    check = failed(report)[("links", "store")]
    assert "/etc/hostname" in check["detail"]
    assert check["fix"] == f"ragtune knowledge sync -p {project}"


def test_missing_models(project: Path) -> None:
    config = project / "ragtune.yaml"
    text = config.read_text().replace("embedder: hashing", "embedder: st:models/minilm")
    config.write_text(text + "model:\n  base_model: models/smollm.gguf\n")
    code, report = doctor(project)
    assert code == 1
    problems = failed(report)
    assert "models/minilm: no such folder" in problems[("models", "embedder")]["detail"]
    assert "knowledge.embedder" in problems[("models", "embedder")]["fix"]
    assert "models/smollm.gguf" in problems[("models", "base model")]["detail"]
    assert "model.base_model" in problems[("models", "base model")]["fix"]
    # the store's vectors were made by another embedder than the one now named
    assert "hashing-256" in problems[("store", "embedder")]["detail"]


def test_store_problems_named_with_their_fix(project: Path) -> None:
    db = sqlite3.connect(project / ".ragtune/knowledge.db")
    with db:
        db.execute("INSERT INTO migrations VALUES ('m999_from_the_future', '2030-01-01')")
        db.execute("INSERT INTO snapshots (started_at) VALUES ('2030-01-01')")  # left open
    db.close()
    code, report = doctor(project)
    assert code == 1
    problems = failed(report)
    assert "m999_from_the_future" in problems[("store", "schema")]["detail"]
    assert problems[("store", "schema")]["fix"] == "pip install -U ragtune"
    assert "is open: a sync was interrupted" in problems[("store", "snapshots")]["detail"]


def test_pending_migration_is_a_warning_and_not_applied(project: Path) -> None:
    path = project / ".ragtune/knowledge.db"
    db = sqlite3.connect(path)
    with db:  # as a store written by the ragtune before m003 looks
        db.execute("DELETE FROM migrations WHERE name = 'm003_examples'")
    db.close()
    code, report = doctor(project)
    schema = next(c for c in report["checks"] if c["name"] == "schema")
    assert (code, schema["status"]) == (0, "warn")
    assert "m003_examples" in schema["detail"] and "knowledge sync" in schema["fix"]
    with sqlite3.connect(path) as db:  # the doctor applied nothing
        assert not db.execute("SELECT 1 FROM migrations WHERE name = 'm003_examples'").fetchone()


def test_no_store_yet(example_project: Callable[..., Path], tmp_path: Path) -> None:
    folder = example_project(tmp_path / "fresh", embedder="hashing")
    code, report = doctor(folder)
    assert code == 1
    assert (
        failed(report)[("store", "knowledge store")]["fix"] == f"ragtune knowledge sync -p {folder}"
    )


def test_unknown_backend(project: Path) -> None:
    config = project / "ragtune.yaml"
    config.write_text(config.read_text() + "model:\n  backend: llamacpp\n")
    code, report = doctor(project)
    check = failed(report)[("install", "backend")]
    assert code == 1 and "llamacpp is not a backend" in check["detail"]
    assert "llama.cpp" in check["detail"] and "transformers" in check["detail"]


def test_missing_package_named_with_pip() -> None:
    checks = check_packages({"x": (("json", "json"), ("ragtune_no_such_module", "no-such-dist"))})
    assert [(c.status, c.detail, c.fix) for c in checks] == [
        ("fail", "not installed: no-such-dist", "pip install no-such-dist")
    ]
    extra = check_packages({"langchain": (("ragtune_no_such_module", "langchain-core"),)})
    assert [(c.status, c.fix) for c in extra] == [("warn", "pip install 'ragtune[langchain]'")]


def test_no_project_still_checks_the_install(tmp_path: Path) -> None:
    report = diagnose(tmp_path)
    assert not report.ok
    assert report.checks[0].area == "project" and "no project file" in report.checks[0].detail
    assert {c.area for c in report.checks} == {"project", "install", "models"}
    result = runner.invoke(app, ["doctor", str(tmp_path)])
    assert result.exit_code == 1 and "FAIL" in result.output and "fix:" in result.output


def test_help_teaches() -> None:
    result = runner.invoke(app, ["doctor", "--help"])
    assert result.exit_code == 0
    for word in ("install", "models", "store", "index", "adapters", "links", "--repair", "--json",
                 "Exit 0"):  # fmt: skip
        assert word in result.output
    assert "doctor" in runner.invoke(app, ["--help"]).output


def test_keyword_index_missing_then_repaired(project: Path) -> None:
    shutil.rmtree(project / ".ragtune/knowledge.keyword")
    code, report = doctor(project)
    check = {(c["area"], c["name"]): c for c in report["checks"]}[("index", "keyword index")]
    assert (code, check["status"]) == (0, "warn")  # FTS5 answers meanwhile: a warning
    assert "knowledge.keyword is missing: FTS5 answers" in check["detail"]
    assert check["fix"] == f"ragtune doctor --repair -p {project}"
    assert runner.invoke(app, ["doctor", str(project), "--repair"]).exit_code == 0
    code, report = doctor(project)
    check = {(c["area"], c["name"]): c for c in report["checks"]}[("index", "keyword index")]
    assert check["status"] == "ok" and "current at snapshot 1" in check["detail"]


def test_keyword_index_missing_rows(project: Path) -> None:
    import tantivy

    from ragtune.knowledge.store.keyword import _register

    index = tantivy.Index.open(str(project / ".ragtune/knowledge.keyword"))
    _register(index)
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    writer.delete_documents_by_query(tantivy.Query.term_query(index.schema, "id", 1))
    writer.commit()
    writer.wait_merging_threads()
    rows = sqlite3.connect(project / ".ragtune/knowledge.db").execute("SELECT COUNT(*) FROM chunks")
    total = rows.fetchone()[0]
    code, report = doctor(project)
    check = failed(report)[("index", "keyword index")]
    assert code == 1
    assert f"{total - 1} chunk versions indexed, the store has {total}" in check["detail"]
    assert runner.invoke(app, ["doctor", str(project), "--repair"]).exit_code == 0
    assert doctor(project)[0] == 0  # the fix it names fixes it

"""``ragtune doctor`` on a project whose store is PostgreSQL (a real server, ``tests/pg.py``):
healthy, then each planted fault named with its fix."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from pg import PostgresServer
from ragtune.cli import app
from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.store import open_store
from ragtune.knowledge.sync import STORE_ENV
from ragtune.project import load_project

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)


@pytest.fixture
def project(example_project: Callable[..., Path], tmp_path: Path, fresh_database: str) -> Path:
    """The contract-review example on PostgreSQL (hashing embedder), synced, with the adapter
    it ships."""
    return example_project(tmp_path / "review", embedder="hashing", store=fresh_database,
                           sync=True, install=("templates",))  # fmt: skip


def doctor(folder: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["doctor", str(folder), "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def checks(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["area"], c["name"]): c for c in report["checks"]}


def test_healthy_postgres_store(project: Path) -> None:
    code, report = doctor(project)
    found = checks(report)
    failed = {k: v for k, v in found.items() if v["status"] == "fail"}
    assert (code, report["ok"]) == (0, True), failed
    for name in ("server", "pgvector", "schema", "snapshots", "keyword index", "embedder"):
        assert found[("store", name)]["status"] == "ok", found[("store", name)]
    assert "PostgreSQL" in found[("store", "server")]["detail"]
    assert "integrity" not in {name for _, name in found}  # SQLite's check is SQLite's
    assert "chunks_hnsw" in found[("index", "vector index")]["detail"]
    assert found[("index", "vector index")]["status"] == "ok"
    assert found[("index", "few-shot examples")]["status"] == "ok"
    assert "live chunks" in found[("store", "contents")]["detail"]
    assert not (project / ".ragtune" / "knowledge.db").exists()  # nothing made on the side


def test_open_snapshot_left_behind(project: Path) -> None:
    """An interrupted sync's snapshot fails the check, and the sync it names finishes it."""
    url = load_project(project).config.knowledge.store
    assert url is not None
    store = open_store(url)
    snapshot = store.begin_snapshot()
    store.close()
    code, report = doctor(project)
    check = checks(report)[("store", "snapshots")]
    assert (code, check["status"]) == (1, "fail")
    assert f"snapshot {snapshot} is open" in check["detail"]
    assert check["fix"].startswith("ragtune knowledge sync")
    kb = KnowledgeBase(load_project(project))
    kb.sync()
    kb.close()
    code, report = doctor(project)
    assert (code, checks(report)[("store", "snapshots")]["status"]) == (0, "ok")


def test_missing_hnsw_index_is_named_with_the_sql_that_makes_it(project: Path) -> None:
    url = load_project(project).config.knowledge.store
    assert url is not None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX chunks_hnsw")
    code, report = doctor(project)
    check = checks(report)[("index", "vector index")]
    assert code == 0 and check["status"] == "warn" and "missing" in check["detail"]
    assert "CREATE INDEX chunks_hnsw" in check["fix"] and check["fix"].startswith("psql ")
    sql = check["fix"].split(" -c ", 1)[1].strip("'")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)
    _, report = doctor(project)
    assert checks(report)[("index", "vector index")]["status"] == "ok"


def test_database_without_pgvector_is_told_to_create_it(
    project: Path, postgres_server: PostgresServer
) -> None:
    postgres_server.execute(
        "DROP DATABASE IF EXISTS novector WITH (FORCE)", "CREATE DATABASE novector"
    )
    url = postgres_server.url("novector")
    config = project / "ragtune.yaml"
    text = config.read_text()
    config.write_text(text[: text.rindex("  store: ")] + f"  store: {url}\n")
    code, report = doctor(project)
    found = checks(report)
    assert code == 1
    assert found[("store", "server")]["status"] == "ok"
    assert found[("store", "pgvector")]["status"] == "fail"
    assert "CREATE EXTENSION vector" in found[("store", "pgvector")]["fix"]
    assert "not created in this database" in found[("store", "pgvector")]["detail"]
    assert found[("store", "knowledge store")]["status"] == "fail"  # nothing synced there
    assert ("index", "vector index") not in found
    with psycopg.connect(url) as conn:  # the doctor created nothing
        assert conn.execute("SELECT to_regclass('migrations')").fetchone()[0] is None
        assert (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None
        )


def test_unreachable_server_is_named_without_its_password(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv(STORE_ENV, f"postgresql://ragtune:s3cret@127.0.0.1:{port}/kb")
    result = runner.invoke(app, ["doctor", str(project), "--json"])
    assert result.exit_code == 1 and "s3cret" not in result.output
    check = checks(json.loads(result.stdout))[("store", "server")]
    assert check["status"] == "fail" and f"127.0.0.1:{port}" in check["detail"]
    assert check["fix"].startswith("psql ")


def test_repair_on_postgres_rebuilds_its_keyword_index(project: Path) -> None:
    result = runner.invoke(app, ["doctor", str(project), "--repair"])
    assert result.exit_code == 0, result.output
    assert "chunks_keywords" in result.output and "REINDEX" in result.output
    assert "all checks passed" in result.output

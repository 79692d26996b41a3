"""A few crash trials in CI: ``scripts/crash_trials.py`` with two trials of sync and of the
server's live upserts, and one each of build and training (about two and a half minutes).

Each trial SIGKILLs a real ``ragtune`` process at a random moment and checks the store's
integrity, its FTS index, the previous snapshot, that every document is whole, the vector index
file, the adapters, that no temporary file outlives the next run and that the next run ends
exactly where an uninterrupted one does. ``python scripts/crash_trials.py`` runs 52 of them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "crash_trials.py"
WRITING = {"mid-sync", "training", "saving-adapter", "mid-swap"}


def crash_trials() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_trials", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_killed_writers_lose_nothing_and_the_next_run_completes(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    trials = crash_trials()
    kinds = ("sync", "serve", "train", "build", "sync", "serve")
    report = trials.run_trials(
        len(kinds),
        kinds,
        seed=16,
        work=tmp_path,
        models=pytestconfig.cache.mkdir("ragtune-models"),
    )
    assert report["failed"] == 0, json.dumps(report["failures"], indent=2)
    assert {kind: figures["trials"] for kind, figures in report["kinds"].items()} == {
        "sync": 2, "serve": 2, "train": 1, "build": 1,
    }  # fmt: skip
    phases = [phase for figures in report["kinds"].values() for phase in figures["phases"]]
    assert WRITING & set(phases), f"no kill landed while something was written: {phases}"


def test_the_checks_catch_a_document_that_is_not_whole(tmp_path: Path) -> None:
    # The check the trials rely on most: a snapshot whose document lacks a chunk is found.
    import sqlite3

    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.project import load_project

    trials = crash_trials()
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "ragtune.yaml").write_text(trials.PROJECT)
    trials.write_corpus(folder, {trials.doc_path(i): trials.policy(i, 1) for i in range(3)})
    (folder / "flags.jsonl").write_text(trials.examples(extra=False))
    kb = KnowledgeBase(load_project(folder))
    kb.sync()
    kb.close()
    db = folder / ".ragtune" / "knowledge.db"
    catalog = trials.catalog_of(db)
    trials.check_documents_whole(db, catalog)  # whole: no error
    con = sqlite3.connect(db)
    con.execute("UPDATE chunks SET valid_to = 1 WHERE id = (SELECT MIN(id) FROM chunks)")
    con.commit()
    con.close()
    with pytest.raises(trials.CheckFailed, match="holds 2 chunks, its text gives 3"):
        trials.check_documents_whole(db, catalog)

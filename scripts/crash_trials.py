"""Crash trials: SIGKILL ragtune's writers at random moments, then check that nothing is lost.

Four kinds of trial, each on a fresh copy of one small project (150 policies synced at revision 1,
a tiny LoRA adapter ``flags`` trained on 12 examples; the hashing embedder, two training steps):

``sync``   ``ragtune knowledge sync`` of revision 2 (100 documents changed, 15 deleted, 5 added)
``build``  ``ragtune build``: the same sync, then the adapter retrained on 13 examples
``train``  ``ragtune adapter train flags`` on the 13 examples
``serve``  ``ragtune serve`` while a client PUTs documents through the HTTP API, one after another

Each command is killed (SIGKILL) at a random moment of one of the stretches of its run, timed
once on an uninterrupted run: while it starts, reads and embeds; while its snapshot is open and
documents are written; while the adapter trains, checkpoints, is saved and swapped into place
(``serve``: within three seconds of the first PUT). What the killed run was doing, by what it
left (``mid-sync``, ``training``, ``saving-adapter``, ``mid-swap``, ``no-write-in-flight``,
``finished``), is counted per kind. Then:

1. ``PRAGMA integrity_check`` is ``ok`` and the FTS5 index agrees with the chunks table
   (``integrity-check`` against the content table).
2. Snapshot 1 - the one before the trial - is exactly as it was, and a search ``as_of`` it
   answers from revision 1 only.
3. Every document of every snapshot (the interrupted one included) is whole: its chunks are
   exactly those a fresh sync of that document's text gives; a live search works and each hit's
   text, version and snapshot are those of one stored row.
4. The vector index file, if there is one, loads and holds the vectors its record says.
5. Every adapter folder is complete (weights, PEFT config, manifest) and is either the adapter
   from before or the one an uninterrupted run makes: never a mix, never a partial one.

Then the command runs again (``serve``: the server restarts and the client re-sends the request
the kill cut off), and:

6. It succeeds; no snapshot is left open; no temporary file is left (``*.tmp``, ``.*.old``,
   ``.*.checkpoint``), in ``.ragtune/`` or among the documents. (A PUT killed mid-write leaves
   its temporary file beside the document, as young as a live write's: a sync removes those
   older than a minute, so the trial ages them by a minute and syncs once more, and counts the
   trials where it had to.)
7. The store holds exactly what an uninterrupted run gives (every live document and chunk:
   text, hashes, tokens, vectors, versions), the vector index holds exactly the live chunks,
   and the adapter's weights are byte for byte those of an uninterrupted run.

Usage::

    python scripts/crash_trials.py                      # 52 trials, 13 of each kind
    python scripts/crash_trials.py --trials 8 --kinds sync,serve --json

The base model's de-quantised weights are shared from ``--models`` (default: pytest's cache
``.pytest_cache/d/ragtune-models`` when it exists, else a folder in the work directory, filled
on the first training: about 20 s).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ragtune.knowledge.sync import ORPHAN_AGE_S

REPO = Path(__file__).resolve().parents[1]
KINDS = ("sync", "build", "train", "serve")
DOCS = 150
NEW_DOCS = 5
REVISIONS = 12  # the serve client's documents go up to this revision
API_KEY = "crash-trials-key"
FILLER = "It is written down so that everyone on the team applies it the same way."

PROJECT = """\
version: 1
project: crash-trials
knowledge:
  embedder: hashing
capabilities:
  - name: handbook
    description: Answer questions about the team's current policies.
    kind: knowledge
    changes_within_6_months: true
    sources: [docs/]
  - name: flags
    description: Flag each clause in our JSON risk format, at high volume.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: false
    calls_per_month: 50000
    examples: flags.jsonl
    train:
      max_steps: 2
      batch_size: 1
      max_length: 48
      eval_max_new_tokens: 0
      checkpoint_every: 1
"""


# -- the project's content ---------------------------------------------------------------------


def policy(i: int, revision: int) -> str:
    """Policy ``i`` at a revision: every section names it, so each revision changes each chunk."""
    return (
        f"# Policy {i}\n\n## 1. Scope\n\nRevision {revision} of policy {i} applies to team "
        f"{i % 7}. {FILLER}\n\n## 2. Rule\n\nRevision {revision}: the rule of policy {i} is rule "
        f"number {i}. {FILLER}\n\n## 3. Review\n\nRevision {revision}: policy {i} is reviewed by "
        f"the board every {i % 5 + 1} months. {FILLER}\n"
    )


def doc_path(i: int) -> str:
    return f"docs/policy-{i:03d}.md"


def corpus(revision: int) -> dict[str, str]:
    """The documents of the project at revision 1 or 2 (2: changes, deletions, additions)."""
    if revision == 1:
        return {doc_path(i): policy(i, 1) for i in range(DOCS)}
    docs = {doc_path(i): policy(i, 2 if i % 3 else 1) for i in range(DOCS) if i % 10 != 9}
    docs.update({doc_path(i): policy(i, 2) for i in range(DOCS, DOCS + NEW_DOCS)})
    return docs


def examples(extra: bool) -> str:
    rows = [
        {"input": f"Clause {i}: term {i} years.", "output": '{"risk": "low"}'} for i in range(12)
    ]
    if extra:
        rows.append({"input": "Clause 12: unlimited liability.", "output": '{"risk": "high"}'})
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_corpus(folder: Path, docs: dict[str, str]) -> None:
    """Make ``docs/`` hold exactly these documents."""
    root = folder / "docs"
    root.mkdir(exist_ok=True)
    for old in root.glob("*.md"):
        if f"docs/{old.name}" not in docs:
            old.unlink()
    for rel, text in docs.items():
        target = folder / rel
        if not target.is_file() or target.read_text() != text:
            target.write_text(text)


def apply_change(folder: Path) -> None:
    """What every trial asks of the project: revision 2 of the documents, one more example."""
    write_corpus(folder, corpus(2))
    (folder / "flags.jsonl").write_text(examples(extra=True))


# -- running ragtune ---------------------------------------------------------------------------


def ragtune(*args: str) -> list[str]:
    return [sys.executable, "-m", "ragtune.cli", *args]


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "sync": lambda folder: ragtune("knowledge", "sync", "-p", str(folder)),
    "build": lambda folder: ragtune("build", "-p", str(folder)),
    "train": lambda folder: ragtune("adapter", "train", "flags", "-p", str(folder)),
}


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(extra or {})}


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(env),
        start_new_session=True,  # its own process group: the kill reaches nothing else
    )


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env(env), timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} exited {done.returncode}:\n{done.stderr}")


def kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# -- reading the store -------------------------------------------------------------------------


def connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def open_snapshot(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with contextlib.closing(connect(db)) as con:
            row = con.execute("SELECT 1 FROM snapshots WHERE status = 'open' LIMIT 1").fetchone()
            return row is not None
    except sqlite3.Error:
        return False


def live_content(db: Path, *, versions: bool) -> list[tuple[Any, ...]]:
    """Every live document and chunk, without row ids (and without versions unless asked)."""
    doc_cols = "path, kind, title, sha256, text" + (", version" if versions else "")
    chunk_cols = "document, chunk_id, ordinal, section, title, text, text_hash, tokens, vector" + (
        ", doc_version" if versions else ""
    )
    with contextlib.closing(connect(db)) as con:
        docs = con.execute(
            f"SELECT 'doc', {doc_cols} FROM documents WHERE valid_to IS NULL ORDER BY path"
        ).fetchall()
        chunks = con.execute(
            f"SELECT 'chunk', {chunk_cols} FROM chunks WHERE valid_to IS NULL "
            "ORDER BY document, ordinal, chunk_id"
        ).fetchall()
    return docs + chunks


def rows_of_snapshot_1(db: Path) -> list[tuple[Any, ...]]:
    """The rows snapshot 1 made, as it made them (a later snapshot may only set valid_to)."""
    with contextlib.closing(connect(db)) as con:
        docs = con.execute(
            "SELECT id, path, version, sha256, text FROM documents WHERE valid_from = 1 ORDER BY id"
        ).fetchall()
        chunks = con.execute(
            "SELECT id, chunk_id, document, text, text_hash, vector FROM chunks "
            "WHERE valid_from = 1 ORDER BY id"
        ).fetchall()
        status = con.execute("SELECT status FROM snapshots WHERE id = 1").fetchall()
    return [*status, *docs, *chunks]


Catalog = dict[tuple[str, str], frozenset[tuple[str, str]]]


def catalog_of(db: Path) -> Catalog:
    """(path, sha256) -> the (chunk id, text hash) of its chunks, for every document version."""
    out: Catalog = {}
    with contextlib.closing(connect(db)) as con:
        versions = con.execute("SELECT path, sha256, valid_from FROM documents").fetchall()
        for path, sha, at in versions:
            rows = con.execute(
                "SELECT chunk_id, text_hash FROM chunks WHERE document = ? AND valid_from <= ? "
                "AND (valid_to IS NULL OR valid_to > ?)",
                (path, at, at),
            ).fetchall()
            out[(path, sha)] = frozenset(rows)
    return out


# -- the references: what uninterrupted runs make ----------------------------------------------


@dataclass(frozen=True)
class Window:
    """A stretch of a run where kills go: it begins when ``trigger`` is seen (``start``: the
    process starts; ``snapshot``: its snapshot opens; ``adapter``: it first writes the adapter's
    checkpoint or staging folder) and lasts ``seconds``; ``weight`` is its share of the kills."""

    trigger: str
    weight: float
    seconds: float


@dataclass
class References:
    template: Path  # the project before a trial: revision 1 synced, the first adapter trained
    after: Path  # the template after an uninterrupted build of the change
    catalog: Catalog
    adapter_before: str  # sha256 of the weights
    adapter_after: str
    durations: dict[str, float]  # seconds an uninterrupted run takes
    windows: dict[str, list[Window]]  # where in a run of each kind the kills go
    snapshot_1: list[tuple[Any, ...]] = field(default_factory=list)


def weights_hash(folder: Path) -> str:
    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


def copy_project(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    return dest


def new_project(folder: Path, models: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "ragtune.yaml").write_text(PROJECT)
    write_corpus(folder, corpus(1))
    (folder / "flags.jsonl").write_text(examples(extra=False))
    (folder / ".ragtune").mkdir()
    (folder / ".ragtune" / "models").symlink_to(models, target_is_directory=True)
    return folder


def triggered(folder: Path, trigger: str) -> bool:
    """Whether a run has reached a window's trigger (see :class:`Window`)."""
    state = folder / ".ragtune"
    if trigger == "snapshot":
        return open_snapshot(state / "knowledge.db")
    if trigger == "adapter":
        return any((state / "adapters").glob(".flags.*"))
    return True


def phase_of(folder: Path) -> str:
    """What a killed run was doing, by what it left: the name of the trial's phase."""
    state = folder / ".ragtune"
    if open_snapshot(state / "knowledge.db"):
        return "mid-sync"
    adapters = state / "adapters"
    if (adapters / ".flags.old").exists():
        return "mid-swap"
    if (adapters / ".flags.tmp").exists():
        return "saving-adapter"
    if (adapters / ".flags.checkpoint").exists():
        return "training"
    return "no-write-in-flight"


def timed(command: list[str], folder: Path) -> tuple[float, dict[str, float]]:
    """Run a command to the end: the seconds it took, and when it opened its snapshot
    (``open``), closed it (``closed``) and began writing the adapter (``adapter``)."""
    started = time.monotonic()
    process = start(command)
    marks: dict[str, float] = {}
    adapters = folder / ".ragtune" / "adapters"
    while process.poll() is None:
        now = time.monotonic() - started
        opened = open_snapshot(folder / ".ragtune" / "knowledge.db")
        if opened:
            marks.setdefault("open", now)
        elif "open" in marks:
            marks.setdefault("closed", now)
        if "adapter" not in marks and any(adapters.glob(".flags.*")):
            marks["adapter"] = now
        time.sleep(0.01)
    total = time.monotonic() - started
    if process.returncode != 0:
        assert process.stderr is not None
        raise RuntimeError(f"{' '.join(command[2:])} failed: {process.stderr.read().decode()}")
    return total, marks


def prepare(work: Path, models: Path, log: Callable[[str], None]) -> References:
    """The template project and what uninterrupted runs make from it, with their timings."""
    log("preparing the template project (sync and a first training)...")
    template = new_project(work / "template", models)
    run(ragtune("build", "-p", str(template)))

    folder = copy_project(template, work / "reference-sync")
    apply_change(folder)
    took, marks = timed(COMMANDS["sync"](folder), folder)
    durations = {"sync": took}
    opened = marks.get("open", took / 2)
    writing = marks.get("closed", took) - opened
    # A fifth of the kills while it starts, reads and embeds; the rest while it writes.
    windows = {"sync": [Window("start", 0.2, opened), Window("snapshot", 0.8, writing * 1.2)]}
    after = copy_project(template, work / "reference-build")
    apply_change(after)
    took, marks = timed(COMMANDS["build"](after), after)
    durations["build"] = took
    opened = marks.get("open", took / 2)
    writing = marks.get("closed", took) - opened
    adapter = marks.get("adapter", took / 2)
    windows["build"] = [
        Window("start", 0.1, opened),
        Window("snapshot", 0.4, writing * 1.2),
        Window("adapter", 0.5, took - adapter),
    ]
    # A training alone is the build without its sync; its first write, the first checkpoint.
    durations["train"] = took - writing
    windows["train"] = [
        Window("start", 0.2, adapter - writing),
        Window("adapter", 0.8, took - adapter),
    ]
    for kind, spans in windows.items():
        shown = ", ".join(f"{w.trigger} {w.seconds:.1f} s" for w in spans)
        log(f"uninterrupted {kind}: {durations[kind]:.1f} s; kill windows: {shown}")

    # Every text a document can have in a trial, synced once: what its chunks must be.
    log("cataloguing the chunks of every document revision...")
    revisions = copy_project(after, work / "reference-revisions")
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.project import load_project

    kb = KnowledgeBase(load_project(revisions))
    try:
        for revision in range(2, REVISIONS + 1):
            docs = {doc_path(i): policy(i, revision) for i in range(DOCS + NEW_DOCS)}
            write_corpus(revisions, docs)
            kb.sync()
    finally:
        kb.close()
    refs = References(
        template=template,
        after=after,
        catalog=catalog_of(revisions / ".ragtune" / "knowledge.db"),
        adapter_before=weights_hash(template / ".ragtune" / "adapters" / "flags"),
        adapter_after=weights_hash(after / ".ragtune" / "adapters" / "flags"),
        durations=durations,
        windows=windows,
    )
    refs.snapshot_1 = rows_of_snapshot_1(template / ".ragtune" / "knowledge.db")
    return refs


# -- the checks --------------------------------------------------------------------------------


class CheckFailed(Exception):
    """One check of a trial failed; the message says which and why."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


def check(name: str, condition: bool, detail: str = "") -> None:
    if not condition:
        raise CheckFailed(name, detail or "failed")


def check_store(folder: Path, refs: References) -> None:
    """Checks 1-4: integrity, FTS, snapshot 1 as it was, every document whole, the index file."""
    db = folder / ".ragtune" / "knowledge.db"
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        result = con.execute("PRAGMA integrity_check").fetchall()
        check("integrity", result == [("ok",)], str(result[:5]))
        try:  # rank 1: also check the index against the content table (chunks)
            con.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as exc:
            raise CheckFailed("fts", str(exc)) from None
    check("snapshot_1", rows_of_snapshot_1(db) == refs.snapshot_1, "the rows of snapshot 1 changed")
    check_documents_whole(db, refs.catalog)
    check_searches(folder)
    check_index_file(folder / ".ragtune" / "knowledge.usearch")


def check_documents_whole(db: Path, catalog: Catalog) -> None:
    """Every document visible at any snapshot has exactly the chunks its text gives."""
    with contextlib.closing(connect(db)) as con:
        snapshots = [row[0] for row in con.execute("SELECT id FROM snapshots ORDER BY id")]
        for at in snapshots:
            docs = con.execute(
                "SELECT path, sha256 FROM documents WHERE valid_from <= :at "
                "AND (valid_to IS NULL OR valid_to > :at)",
                {"at": at},
            ).fetchall()
            chunks: dict[str, set[tuple[str, str]]] = {}
            for document, chunk_id, text_hash in con.execute(
                "SELECT document, chunk_id, text_hash FROM chunks WHERE valid_from <= :at "
                "AND (valid_to IS NULL OR valid_to > :at)",
                {"at": at},
            ):
                chunks.setdefault(document, set()).add((chunk_id, text_hash))
            paths = {path for path, _ in docs}
            orphans = set(chunks) - paths
            check("whole_documents", not orphans, f"snapshot {at}: chunks of no document {orphans}")
            for path, sha in docs:
                expected = catalog.get((path, sha))
                check("whole_documents", expected is not None, f"{path} {sha[:12]}: unknown text")
                check(
                    "whole_documents",
                    chunks.get(path, set()) == expected,
                    f"snapshot {at}: {path} holds {len(chunks.get(path, ()))} chunks, its text "
                    f"gives {len(expected or ())}",
                )


def check_searches(folder: Path) -> None:
    """Snapshot 1 is searchable; a live search works; every hit is labelled by its own row."""
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.project import load_project

    kb = KnowledgeBase(load_project(folder))
    try:
        then = kb.search("which board reviews policy 17", k=5, as_of="1")
        check("snapshot_1_search", len(then) == 5, f"{len(then)} hits as of snapshot 1")
        check(
            "snapshot_1_search",
            all(h.version == 1 and "Revision 1" in h.text for h in then),
            "a hit as of snapshot 1 is not of revision 1",
        )
        now = kb.search("which board reviews policy 17", k=5)
        check("live_search", len(now) == 5, f"{len(now)} live hits")
        db = kb.store.db
        for hit in now:
            found = db.execute(
                "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.path = c.document "
                "WHERE c.document = ? AND c.chunk_id = ? AND c.text = ? AND c.valid_from = ? "
                "AND d.version = ? AND c.valid_from <= d.valid_from AND (c.valid_to IS NULL OR "
                "(d.valid_to IS NOT NULL AND c.valid_to >= d.valid_to))",
                (hit.document, hit.chunk_id, hit.text, hit.snapshot, hit.version),
            ).fetchone()[0]
            check("live_search", found == 1, f"hit of {hit.document} mislabelled")
    finally:
        kb.close()


def check_index_file(path: Path) -> None:
    """The vector index file on disk, if any, is whole: it loads and has the size it records."""
    meta = path.with_name(path.name + ".json")
    if not path.exists():
        return
    from usearch.index import Index

    # A kill between the two replacements may pair a new index with the previous record: the
    # loader then sees the sizes differ and rebuilds. Each file must be whole, though.
    try:
        state = json.loads(meta.read_text())
    except ValueError as exc:
        raise CheckFailed("index_file", f"{meta} is not whole: {exc}") from None
    index = Index(ndim=state["dim"], metric="cos", dtype="f32")
    try:
        index.load(str(path))
    except Exception as exc:  # any failure to load is the finding
        raise CheckFailed("index_file", f"{path} does not load: {exc}") from None


def check_adapters(folder: Path, refs: References) -> None:
    """Check 5: every adapter folder complete and the one before or the one after."""
    root = folder / ".ragtune" / "adapters"
    names = [p.name for p in root.iterdir() if not p.name.startswith(".")] if root.is_dir() else []
    for name in names:
        adapter = root / name
        for required in ("adapter_model.safetensors", "adapter_config.json", "ragtune.json"):
            check("adapter_whole", (adapter / required).is_file(), f"{name} lacks {required}")
        json.loads((adapter / "ragtune.json").read_text())
        json.loads((adapter / "adapter_config.json").read_text())
        digest = weights_hash(adapter)
        check(
            "adapter_whole",
            digest in (refs.adapter_before, refs.adapter_after),
            f"{name}'s weights are neither the previous adapter's nor the new one's",
        )
    if "flags" not in names:
        # Only between the two renames of a swap: the previous adapter waits as .flags.old.
        check("adapter_whole", (root / ".flags.old").is_dir(), "the adapter flags is gone")


def leftovers(folder: Path) -> list[str]:
    """Temporary files in the project: work in progress a finished run must not leave."""
    found = []
    for path in folder.rglob("*"):
        if "models" in path.relative_to(folder).parts[:2]:
            continue
        name = path.name
        if name.endswith(".tmp") or (
            name.startswith(".") and name.endswith((".old", ".checkpoint"))
        ):
            found.append(str(path.relative_to(folder)))
    return sorted(found)


def check_after_next_run(folder: Path, refs: References, kind: str) -> None:
    """Checks 6-7: nothing open, nothing left, the same as an uninterrupted run."""
    db = folder / ".ragtune" / "knowledge.db"
    check("snapshots_complete", not open_snapshot(db), "a snapshot is still open")
    left = leftovers(folder)
    check("temporary_files", not left, ", ".join(left))
    if kind == "serve":
        with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
            fresh = fresh_sync(folder, Path(scratch))
            same = live_content(db, versions=False) == live_content(fresh, versions=False)
        check("same_as_uninterrupted", same, "the store differs from a fresh sync of its files")
    else:
        reference = (refs.template if kind == "train" else refs.after) / ".ragtune" / "knowledge.db"
        same = live_content(db, versions=True) == live_content(reference, versions=True)
        check("same_as_uninterrupted", same, "the store differs from an uninterrupted run's")
    check_index_current(folder)
    if kind in ("build", "train"):
        adapter = folder / ".ragtune" / "adapters" / "flags"
        check(
            "adapter_as_uninterrupted",
            weights_hash(adapter) == refs.adapter_after,
            "the retrained adapter's weights differ from an uninterrupted run's",
        )
    check_store(folder, refs)


def check_index_current(folder: Path) -> None:
    """The vector index file holds exactly the live chunks."""
    import numpy as np
    from usearch.index import Index

    path = folder / ".ragtune" / "knowledge.usearch"
    state = json.loads(path.with_name(path.name + ".json").read_text())
    index = Index(ndim=state["dim"], metric="cos", dtype="f32")
    index.load(str(path))
    with contextlib.closing(connect(folder / ".ragtune" / "knowledge.db")) as con:
        live = {row[0] for row in con.execute("SELECT id FROM chunks WHERE valid_to IS NULL")}
    keys = set(np.asarray(index.keys).tolist()) if len(index) else set()
    check("index_current", keys == live, f"index {len(keys)} vectors, {len(live)} live chunks")


def fresh_sync(folder: Path, fresh: Path) -> Path:
    """A fresh project in ``fresh`` with the same files, synced once: its store."""
    for name in ("ragtune.yaml", "flags.jsonl"):
        shutil.copy(folder / name, fresh / name)
    shutil.copytree(folder / "docs", fresh / "docs", ignore=shutil.ignore_patterns(".*"))
    run(ragtune("knowledge", "sync", "-p", str(fresh)))
    return fresh / ".ragtune" / "knowledge.db"


# -- the trials --------------------------------------------------------------------------------


@dataclass
class Trial:
    """One trial: what was killed when, what it had done, and which check failed (if any)."""

    kind: str
    number: int
    kill_at: float
    window: str = ""  # the Window's trigger the kill was timed from
    phase: str = ""  # what the run was doing when killed: see phase_of
    failed_check: str | None = None
    detail: str = ""
    leftovers_after_kill: list[str] = field(default_factory=list)
    puts_acknowledged: int = 0
    document_temp_files: int = 0  # left beside the documents after the next run (serve)
    seconds: float = 0.0

    @property
    def survived(self) -> bool:
        return self.failed_check is None


def command_trial(kind: str, folder: Path, refs: References, rng: random.Random) -> Trial:
    """Kill a sync, build or training at a random moment of its run; check; run it again."""
    apply_change(folder)
    spans = refs.windows[kind]
    window = rng.choices(spans, weights=[w.weight for w in spans])[0]
    delay = rng.uniform(0.0, max(window.seconds, 0.05))
    started = time.monotonic()
    process = start(COMMANDS[kind](folder))
    while process.poll() is None and not triggered(folder, window.trigger):
        time.sleep(0.005)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    trial = Trial(kind, 0, round(time.monotonic() - started, 3), window=window.trigger)
    if process.poll() is not None:
        trial.phase = "finished"
    else:
        kill(process)
        trial.phase = phase_of(folder)
    verify(trial, folder, refs, lambda: run(COMMANDS[kind](folder)))
    return trial


def verify(trial: Trial, folder: Path, refs: References, next_run: Callable[[], None]) -> None:
    try:
        trial.leftovers_after_kill = leftovers(folder)
        check_adapters(folder, refs)
        check_store(folder, refs)
        try:
            next_run()
        except RuntimeError as exc:
            raise CheckFailed("next_run", str(exc)[-2000:]) from None
        orphans = [path for path in leftovers(folder) if not path.startswith(".ragtune")]
        if orphans:
            # A PUT killed between its temporary file and the replace leaves the file beside
            # the document; a live write's is as young, so a sync removes only those older than
            # a minute. Age them by a minute and sync: the next sync after that removes them.
            trial.document_temp_files = len(orphans)
            aged = time.time() - 2 * ORPHAN_AGE_S
            for path in orphans:
                os.utime(folder / path, (aged, aged))
            run(ragtune("knowledge", "sync", "-p", str(folder)))
        check_after_next_run(folder, refs, trial.kind)
    except CheckFailed as exc:
        trial.failed_check, trial.detail = exc.check, exc.detail
    except Exception as exc:  # a check that crashed is a failure to report
        trial.failed_check, trial.detail = "error", f"{type(exc).__name__}: {exc}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``ragtune serve`` on a free loopback port, up and answering; killed at the end."""
    port = free_port()
    process = start(
        ragtune("serve", "-p", str(folder), "--port", str(port)),
        env={"RAGTUNE_API_KEYS": f"{API_KEY}:write"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise RuntimeError(f"the server exited: {process.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(OSError):
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /healthz within 120 s")
            time.sleep(0.05)
        yield process, port
    finally:
        kill(process)


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        if body is not None:
            headers["Content-Type"] = "text/markdown"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def put(port: int, rel: str, text: str) -> dict[str, Any]:
    status, body = request(port, "PUT", f"/v1/knowledge/documents/{rel}", text.encode())
    if status != 200:
        raise RuntimeError(f"PUT {rel}: {status} {body[:500]!r}")
    return dict(json.loads(body))


def serve_trial(folder: Path, refs: References, rng: random.Random) -> Trial:
    """Kill the server while a client PUTs documents; restart it, re-send the cut request."""
    revision = {i: 1 for i in range(DOCS)}
    acknowledged: list[tuple[str, str, int]] = []  # (path, text, snapshot)
    in_flight: list[tuple[str, str]] = []
    errors: list[str] = []
    stop = threading.Event()
    started = threading.Event()

    picks = random.Random(rng.random())  # the client's own: its draws depend on timing

    def client(port: int) -> None:
        while not stop.is_set():
            candidates = [i for i, r in revision.items() if r < REVISIONS]
            i = picks.choice(candidates)
            rel, text = doc_path(i), policy(i, revision[i] + 1)
            in_flight[:] = [(rel, text)]
            started.set()
            try:
                answer = put(port, rel, text)
            except (OSError, http.client.HTTPException):
                return  # the server is gone: the request stays in flight
            except RuntimeError as exc:
                errors.append(str(exc))
                return
            revision[i] += 1
            in_flight.clear()
            acknowledged.append((rel, text, int(answer["sync"]["snapshot"])))

    kill_at = rng.uniform(0.0, 3.0)
    trial = Trial("serve", 0, round(kill_at, 3))
    with server(folder) as (process, port):
        thread = threading.Thread(target=client, args=(port,), daemon=True)
        thread.start()
        started.wait(30)
        time.sleep(kill_at)
        kill(process)
        trial.phase = phase_of(folder)
        if trial.phase == "no-write-in-flight":
            trial.phase = "put-in-flight" if in_flight else "between-puts"
        stop.set()
        thread.join(60)
    trial.puts_acknowledged = len(acknowledged)
    if errors:
        trial.failed_check, trial.detail = "put", errors[0]
        return trial

    def next_run() -> None:
        with server(folder) as (_, port):
            rel, text = in_flight[0] if in_flight else (doc_path(0), policy(0, revision[0] + 1))
            put(port, rel, text)
            with contextlib.closing(connect(folder / ".ragtune" / "knowledge.db")) as con:
                for rel, text, snapshot in acknowledged:  # every acknowledged write stayed
                    sha = con.execute(
                        "SELECT sha256 FROM documents WHERE path = ? AND valid_from <= ? "
                        "AND (valid_to IS NULL OR valid_to > ?)",
                        (rel, snapshot, snapshot),
                    ).fetchone()
                    digest = hashlib.sha256(text.encode()).hexdigest()
                    if sha is None or sha[0] != digest:
                        raise RuntimeError(
                            f"the acknowledged PUT of {rel} is not in snapshot {snapshot}"
                        )

    verify(trial, folder, refs, next_run)
    return trial


def run_trials(
    trials: int,
    kinds: tuple[str, ...] = KINDS,
    *,
    seed: int = 0,
    work: Path,
    models: Path,
    log: Callable[[str], None] = lambda line: None,
    keep: bool = False,
) -> dict[str, Any]:
    """Run ``trials`` trials, round robin over ``kinds``; returns the report (JSON-able)."""
    began = time.monotonic()
    refs = prepare(work, models, log)
    prepared = time.monotonic() - began
    results: list[Trial] = []
    for number in range(trials):
        kind = kinds[number % len(kinds)]
        folder = copy_project(refs.template, work / f"trial-{number:03d}-{kind}")
        t0 = time.monotonic()
        rng = random.Random(f"{seed}-{number}")  # each trial's draws its own: repeatable
        try:
            if kind == "serve":
                trial = serve_trial(folder, refs, rng)
            else:
                trial = command_trial(kind, folder, refs, rng)
        except Exception as exc:  # the trial could not be run (a server that did not start)
            trial = Trial(kind, number, 0.0, failed_check="run", detail=f"{exc}"[-2000:])
        trial.number, trial.seconds = number, round(time.monotonic() - t0, 2)
        results.append(trial)
        verdict = "survived" if trial.survived else f"FAILED {trial.failed_check}: {trial.detail}"
        log(f"trial {number + 1}/{trials} {kind:5} killed at {trial.kill_at:.2f} s "
            f"({trial.phase}): {verdict}")  # fmt: skip
        if trial.survived and not keep:
            shutil.rmtree(folder, ignore_errors=True)
    per_kind = {}
    for kind in kinds:
        mine = [t for t in results if t.kind == kind]
        phases: dict[str, int] = {}
        for t in mine:
            phases[t.phase] = phases.get(t.phase, 0) + 1
        per_kind[kind] = {
            "trials": len(mine),
            "survived": sum(t.survived for t in mine),
            "failed": sum(not t.survived for t in mine),
            "phases": phases,
            "temporary_files_after_kill": sum(bool(t.leftovers_after_kill) for t in mine),
        }
        if kind == "serve":
            per_kind[kind]["puts_acknowledged"] = sum(t.puts_acknowledged for t in mine)
            per_kind[kind]["document_temp_files_after_next_run"] = sum(
                bool(t.document_temp_files) for t in mine
            )
    return {
        "trials": len(results),
        "survived": sum(t.survived for t in results),
        "failed": sum(not t.survived for t in results),
        "kinds": per_kind,
        "seed": seed,
        "seconds": round(time.monotonic() - began, 1),
        "setup_seconds": round(prepared, 1),
        "uninterrupted_seconds": {k: round(v, 2) for k, v in refs.durations.items()},
        "failures": [asdict(t) for t in results if not t.survived],
    }


def default_models(work: Path) -> Path:
    shared = REPO / ".pytest_cache" / "d" / "ragtune-models"
    return shared if shared.is_dir() else work / "models"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=52, help="trials in all (default 52)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS)
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--workdir", type=Path, help="where the projects go (default: a temp dir)")
    parser.add_argument("--models", type=Path, help="shared base-model cache folder")
    parser.add_argument("--keep", action="store_true", help="keep every trial's project")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"--kinds {args.kinds!r}: choose among {', '.join(KINDS)}")
    if args.trials < 1:
        parser.error("--trials must be 1 or more")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ragtune-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    models = args.models or default_models(work)
    models.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = run_trials(args.trials, kinds, seed=args.seed, work=work, models=models, log=log,
                        keep=args.keep)  # fmt: skip
    report["command"] = " ".join(["python", "scripts/crash_trials.py", *(argv or sys.argv[1:])])
    report["workdir"] = str(work)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['survived']} of {report['trials']} trials survived in {report['seconds']} s"
        )
        for kind, figures in report["kinds"].items():
            survived = f"{figures['survived']}/{figures['trials']} survived"
            print(f"  {kind:5} {survived}; kills: {figures['phases']}")
        for failure in report["failures"]:
            print(f"  FAILED trial {failure['number']} ({failure['kind']}): "
                  f"{failure['failed_check']}: {failure['detail']}")  # fmt: skip
    if not args.workdir and report["failed"] == 0 and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

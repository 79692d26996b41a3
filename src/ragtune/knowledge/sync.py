"""Incremental, versioned sync of a project's knowledge sources into the store.

1. Find every source file the capabilities declare; hash each one.
2. An unchanged hash costs nothing more. A new or changed file is parsed and chunked; its chunks
   are matched to the live ones by stable id and text hash: only new or edited text is embedded
   (and a text embedded before, under any id, reuses its vector).
3. Each document's new version goes into the store in one transaction; deleted files retire their
   chunks. Everything a sync does belongs to one snapshot. A sync that is killed leaves earlier
   snapshots whole; the next sync resumes the open snapshot and finishes it.
4. One sync writes at a time: a sync holds the store's writer lock from reading what is live to
   closing its snapshot, so a second one (another process, the server) waits for it.

:func:`plan_sync` runs steps 1-2 without embedding or writing: what ``ragtune plan`` shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.knowledge.chunk import (
    Chunk,
    chunk_document,
    chunk_table,
    default_tokenizer_json,
    token_counter,
)
from ragtune.knowledge.parse import ParsedDocument, parse_document
from ragtune.knowledge.sources import SourceError, discover, relative_posix
from ragtune.knowledge.store import DocumentRow, KnowledgeStore, NewChunk, StoreError, open_store
from ragtune.knowledge.tables import load_table
from ragtune.knowledge.tools import is_tool_ref
from ragtune.project import Project

if TYPE_CHECKING:
    from ragtune.knowledge.embed import Embedder

log = logging.getLogger("ragtune.knowledge")

# About 120 chunks a second for all-MiniLM-L6-v2 on 2 cores (DESIGN.md); replaced by the rate the
# store measured on its last sync that embedded.
DEFAULT_EMBED_RATE = 120.0
# Texts gathered across documents before one embedding call. sentence-transformers sorts by
# length only within a call, so larger calls pad less (bench: 0.80 of raw at 256).
EMBED_BATCH = 1024

# (chunks embedded, chunks to embed, current document); (0, 0, document) while a changed
# document is read and chunked, before the total is known.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SourceFile:
    """A file a capability draws on, with the capabilities that use it."""

    path: Path
    rel: str
    capabilities: frozenset[str]
    key_column: str | None = None  # for a CSV table: its lookup key


@dataclass
class DocumentChange:
    """What a sync does to one document."""

    path: str
    status: str  # added | changed | deleted | unchanged
    chunks_to_embed: int = 0
    chunks_to_retire: int = 0
    chunks_kept: int = 0


@dataclass
class SyncPlan:
    """What a sync would do now, computed without embedding or writing."""

    changes: list[DocumentChange]
    skipped: list[tuple[str, str]]  # (path, reason)
    embed_rate: float  # chunks a second
    embedder: str
    reembed_all: bool = False

    def of(self, status: str) -> list[DocumentChange]:
        """The documents with one status."""
        return [c for c in self.changes if c.status == status]

    @property
    def chunks_to_embed(self) -> int:
        """Chunks whose text is new or edited."""
        return sum(c.chunks_to_embed for c in self.changes)

    @property
    def chunks_to_retire(self) -> int:
        """Live chunks that the change retires (kept in history)."""
        return sum(c.chunks_to_retire for c in self.changes)

    @property
    def estimate_s(self) -> float:
        """Seconds the embedding will take, at the last measured rate."""
        return self.chunks_to_embed / self.embed_rate if self.embed_rate else 0.0

    @property
    def up_to_date(self) -> bool:
        """Nothing to add, change or delete."""
        return all(c.status == "unchanged" for c in self.changes)


@dataclass
class SyncResult:
    """What a sync did."""

    snapshot: int
    plan: SyncPlan
    embedded: int
    reused_vectors: int
    seconds: float
    embed_seconds: float
    index: str = ""
    resumed: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)


STORE_ENV = "RAGTUNE_STORE"
"""The environment variable naming the store (a URL or a file path); it wins over the file."""


def knowledge_db(project: Project) -> Path:
    """``.ragtune/knowledge.db`` beside the project file: the embedded store's default place."""
    return project.state_dir / "knowledge.db"


def store_location(project: Project) -> str:
    """Where the project's store is: ``RAGTUNE_STORE``, else ``knowledge.store`` in
    ragtune.yaml, else ``.ragtune/knowledge.db``. A relative file path is read from the
    project's folder."""
    configured = os.environ.get(STORE_ENV, "").strip() or (project.config.knowledge.store or "")
    if not configured:
        return str(knowledge_db(project))
    if "://" in configured:
        return configured
    return str(project.resolve(configured))


def open_project_store(project: Project) -> KnowledgeStore:
    """Open the project's store, creating it (and its schema) when there is none yet."""
    return open_store(store_location(project))


def synced_store(project: Project) -> KnowledgeStore | None:
    """The project's store when it has been synced at least once, else None (nothing is
    created)."""
    try:
        store = open_store(store_location(project), readonly=True)
    except StoreError:
        return None
    if store.latest_snapshot() == 0:
        store.close()
        return None
    return store


def source_files(project: Project) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """Every supported file the capabilities declare, and the ones skipped with a reason."""
    root = project.root
    capabilities: dict[Path, set[str]] = {}
    keys: dict[Path, str] = {}
    skipped: list[tuple[str, str]] = []
    for capability in project.config.capabilities:
        refs = [ref for ref in capability.sources if not is_tool_ref(ref)]
        if not refs:
            continue
        found = discover(root, refs)
        for path in found.files:
            capabilities.setdefault(path, set()).add(capability.name)
        keys.update(found.key_columns)
        skipped.extend((relative_posix(p, root), why) for p, why in found.skipped)
    files = [
        SourceFile(path, relative_posix(path, root), frozenset(caps), keys.get(path))
        for path, caps in sorted(
            capabilities.items(), key=lambda item: relative_posix(item[0], root)
        )
    ]
    return files, list(dict.fromkeys(skipped))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Work:
    """A document parsed and chunked, waiting for its vectors."""

    source: SourceFile
    parsed_kind: str
    title: str
    sha256: str
    text: str
    add: list[Chunk]
    retire: list[int]
    version: int


def _parse(
    source: SourceFile,
    root: Path,
    chunk_tokens: int,
    max_tokens: int,
    count: Callable[[str], int],
    max_bytes: int | None = None,
) -> tuple[str, str, str, str, list[Chunk]]:
    """(kind, title, sha256, text, chunks) of one source file; raises SourceError."""
    if source.path.suffix.lower() == ".csv":
        table = load_table(source.path, root, source.key_column, max_bytes=max_bytes)
        chunks = chunk_table(table)
        return "table", source.rel, table.sha256, "\n".join(c.text for c in chunks), chunks
    doc = parse_document(source.path, root, max_bytes=max_bytes)
    chunks = chunk_document(
        doc, target_tokens=chunk_tokens, max_tokens=max_tokens, count_tokens=count
    )
    return doc.kind, doc.title, doc.sha256, document_text(doc), chunks


def document_text(doc: ParsedDocument) -> str:
    """A document's text as stored for history and diffs: headings as Markdown."""
    lines = []
    for block in doc.blocks:
        lines.append(
            ("#" * block.level + " " + block.text) if block.kind == "heading" else block.text
        )
    return "\n\n".join(lines) + "\n"


def embed_key(chunk: Chunk) -> str:
    """The hash of what is embedded: the chunk's text with its context line.

    Stored as the chunk's ``text_hash``: a chunk is new when this changes, and a vector computed
    once is reused for the same key, under any id.
    """
    return hashlib.sha1(chunk.search_text.encode("utf-8")).hexdigest()


def _diff(chunks: list[Chunk], live: dict[tuple[str, str], int]) -> tuple[list[Chunk], list[int]]:
    """Chunks to add and live row ids to retire, matching on (stable id, embed key)."""
    wanted = {(c.chunk_id, embed_key(c)) for c in chunks}
    add = [c for c in chunks if (c.chunk_id, embed_key(c)) not in live]
    retire = [rowid for key, rowid in live.items() if key not in wanted]
    return add, retire


@dataclass
class _Prepared:
    """What a sync found before embedding anything: from one walk of the sources."""

    files: list[SourceFile]
    work: list[_Work]
    changes: list[DocumentChange]
    skipped: list[tuple[str, str]]
    deleted: list[str]


def _prepare(
    project: Project, store: KnowledgeStore, progress: Progress | None = None
) -> _Prepared:
    """Walk the sources once; hash each file, then parse, chunk and diff the changed ones."""
    settings = project.config.knowledge
    files, skipped = source_files(project)
    count = _counter(settings.embedder)
    current = store.current_documents()
    work: list[_Work] = []
    changes: list[DocumentChange] = []
    for source in files:
        old = current.get(source.rel)
        try:
            sha = _sha256(source.path)
        except OSError as exc:
            skipped.append((source.rel, f"cannot read it: {exc.strerror or exc}"))
            continue
        if old is not None and old.sha256 == sha:
            changes.append(DocumentChange(source.rel, "unchanged", chunks_kept=old.chunks))
            continue
        if progress is not None:  # reading and chunking a large file takes a while
            progress(0, 0, source.rel)
        try:
            kind, title, sha, text, chunks = _parse(
                source,
                project.root,
                settings.chunk_tokens,
                settings.max_chunk_tokens,
                count,
                settings.max_document_bytes,
            )
        except SourceError as exc:
            skipped.append((source.rel, exc.reason))
            if old is not None:  # a file that turns bad keeps its last good version
                changes.append(DocumentChange(source.rel, "unchanged", chunks_kept=old.chunks))
            continue
        live = {(c.chunk_id, c.text_hash): c.rowid for c in store.current_chunks(source.rel)}
        add, retire = _diff(chunks, live)
        status = "added" if old is None else "changed"
        changes.append(
            DocumentChange(source.rel, status, len(add), len(retire), len(chunks) - len(add))
        )
        # A document deleted and added back continues its history: the next version, not 1.
        version = (old.version if old is not None else store.last_version(source.rel)) + 1
        work.append(_Work(source, kind, title, sha, text, add, retire, version))
    seen = {source.rel for source in files}
    deleted = [path for path in current if path not in seen]
    for path in deleted:
        changes.append(DocumentChange(path, "deleted", chunks_to_retire=current[path].chunks))
    return _Prepared(files, work, changes, skipped, deleted)


def _counter(embedder_spec: str) -> Callable[[str], int]:
    """Count tokens with the embedder's own tokenizer where it has a file; else approximate."""
    if embedder_spec == "all-MiniLM-L6-v2":
        return token_counter(default_tokenizer_json())
    if embedder_spec.startswith("st:"):
        path = Path(embedder_spec[3:]).expanduser() / "tokenizer.json"
        return token_counter(path if path.exists() else None)
    return token_counter(None)


def _embed_rate(store: KnowledgeStore) -> float:
    value = store.get_meta("embed_rate")
    return float(value) if value else DEFAULT_EMBED_RATE


def _needs_reembed(store: KnowledgeStore, embedder_name: str) -> bool:
    recorded = store.get_meta("embedder")
    return recorded is not None and recorded != embedder_name


def plan_sync(project: Project, store: KnowledgeStore) -> SyncPlan:
    """What a sync would do now: no embedding, no writing."""
    from ragtune.knowledge.embed import embedder_name

    name = embedder_name(project.config.knowledge.embedder)
    reembed = _needs_reembed(store, name)
    prepared = _prepare(project, store)
    return SyncPlan(prepared.changes, prepared.skipped, _embed_rate(store), name, reembed)


def sync(
    project: Project,
    store: KnowledgeStore,
    embedder: Embedder,
    *,
    progress: Progress | None = None,
    lock_timeout: float | None = None,
) -> SyncResult:
    """Bring the store up to date with the project's sources; see the module docstring.

    Holds the store's writer lock throughout (:meth:`KnowledgeStore.writing`): a second sync, in
    this process or another, waits for this one and then sees what it wrote - up to
    ``lock_timeout`` seconds (default ``RAGTUNE_LOCK_TIMEOUT`` or 600; a server answering a
    request may want less).

    Raises:
        StoreError: Another writer held the store longer than the lock timeout.
    """
    with store.writing(lock_timeout):
        return _sync(project, store, embedder, progress)


def _sync(
    project: Project, store: KnowledgeStore, embedder: Embedder, progress: Progress | None
) -> SyncResult:
    """The body of :func:`sync`, run under the store's writer lock."""
    started = time.perf_counter()
    reembed = _needs_reembed(store, embedder.name)
    if reembed:
        reembed_store(store, embedder, progress=progress)
    prepared = _prepare(project, store, progress)
    _remove_orphaned_writes(project.root, [source.path for source in prepared.files])
    plan = SyncPlan(prepared.changes, prepared.skipped, _embed_rate(store), embedder.name, reembed)
    open_before = any(s.status == "open" for s in store.snapshots())
    snapshot = store.begin_snapshot()
    store.set_meta("embedder", embedder.name)
    store.set_meta("dim", str(embedder.dim))

    known = store.vectors_by_hash(embed_key(c) for w in prepared.work for c in w.add)
    writer = _Writer(store, snapshot, embedder, dict(known), progress, total=plan.chunks_to_embed)
    for item in prepared.work:
        writer.add(item)
    writer.flush()

    _finish(store, snapshot, prepared, writer, resumed=open_before)
    return SyncResult(
        snapshot=store.latest_snapshot(),
        plan=plan,
        embedded=writer.embedded,
        reused_vectors=sum(1 for w in prepared.work for c in w.add if embed_key(c) in known),
        seconds=time.perf_counter() - started,
        embed_seconds=writer.embed_seconds,
        resumed=open_before,
        skipped=prepared.skipped,
    )


# A document written through the API goes through a hidden temporary file beside it,
# ``.<name>.<8 random characters>.tmp`` (tempfile.mkstemp), replaced into place within
# milliseconds; one this old was left by a writer that was killed.
ORPHAN_AGE_S = 60.0
_ATOMIC_TMP = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def _remove_orphaned_writes(root: Path, files: list[Path], now: float | None = None) -> list[Path]:
    """Remove the temporary files of atomic writes that a killed writer left in the folders of
    the sources (older than :data:`ORPHAN_AGE_S`: a live writer's is younger)."""
    now = time.time() if now is None else now
    removed = []
    for folder in {path.parent for path in files}:
        if not folder.is_relative_to(root):
            continue
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if _ATOMIC_TMP.fullmatch(tmp.name) and now - tmp.lstat().st_mtime > ORPHAN_AGE_S:
                    tmp.unlink()
                    removed.append(tmp)
    if removed:
        log.info("removed %d temporary files of interrupted writes: %s", len(removed), removed)
    return removed


@dataclass
class _Writer:
    """Embeds the new texts of documents in large batches, then writes each document."""

    store: KnowledgeStore
    snapshot: int
    embedder: Embedder
    vectors: dict[str, bytes]  # by embed key: those stored before, then those computed here
    progress: Progress | None
    total: int  # chunks to embed in this sync, for progress
    embedded: int = 0
    embed_seconds: float = 0.0
    pending: list[_Work] = field(default_factory=list)
    batch: int = 0  # chunks of the pending documents without a vector

    def add(self, item: _Work) -> None:
        """Queue a document; embed and write the queue once it holds a batch of new texts."""
        self.pending.append(item)
        self.batch += sum(1 for c in item.add if embed_key(c) not in self.vectors)
        if self.batch >= EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        """Embed the queued documents' new texts in one call, then write each document."""
        texts: dict[str, str] = {}
        for item in self.pending:
            for chunk in item.add:
                if embed_key(chunk) not in self.vectors:
                    texts.setdefault(embed_key(chunk), chunk.search_text)
        if texts:
            self._embed(texts, self.pending[-1].source.rel)
        for item in self.pending:
            _apply(self.store, self.snapshot, item, self.vectors)
            if self.progress is not None:
                self.progress(self.embedded, self.total, item.source.rel)
        self.pending.clear()
        self.batch = 0

    def _embed(self, texts: dict[str, str], document: str) -> None:
        import numpy as np

        keys, values = list(texts), list(texts.values())
        # One call a batch, progress after each: one large document is many batches.
        for start in range(0, len(values), EMBED_BATCH):
            batch = values[start : start + EMBED_BATCH]
            t0 = time.perf_counter()
            matrix = np.asarray(self.embedder.embed(batch), dtype=np.float32)
            self.embed_seconds += time.perf_counter() - t0
            if matrix.shape != (len(batch), self.embedder.dim):
                from ragtune.knowledge.embed import EmbedderError

                raise EmbedderError(
                    f"embedder {self.embedder.name} returned vectors of shape {matrix.shape} "
                    f"for {len(batch)} texts of dimension {self.embedder.dim}"
                )
            for key, row in zip(keys[start : start + EMBED_BATCH], matrix, strict=True):
                self.vectors[key] = row.tobytes()
            self.embedded += len(batch)
            if self.progress is not None and start + EMBED_BATCH < len(values):
                self.progress(self.embedded, self.total, document)


def _finish(
    store: KnowledgeStore, snapshot: int, prepared: _Prepared, writer: _Writer, *, resumed: bool
) -> None:
    """Retire deleted documents, record who uses what and close the snapshot."""
    for path in prepared.deleted:
        store.retire_document(snapshot, path)
    store.set_capabilities({source.rel: set(source.capabilities) for source in prepared.files})
    changed = prepared.work or prepared.deleted
    store.finish_snapshot(
        snapshot,
        {
            "docs_added": sum(1 for c in prepared.changes if c.status == "added"),
            "docs_changed": sum(1 for c in prepared.changes if c.status == "changed"),
            "docs_deleted": len(prepared.deleted),
            "chunks_embedded": writer.embedded,
            "embed_seconds": writer.embed_seconds,
        },
    )
    if changed:
        store.optimize()
    elif not resumed:
        store.discard_empty_snapshot(snapshot)
    if writer.embedded >= 20 and writer.embed_seconds > 0:
        store.set_meta("embed_rate", f"{writer.embedded / writer.embed_seconds:.1f}")


def reembed_store(
    store: KnowledgeStore, embedder: Embedder, *, progress: Progress | None = None
) -> int:
    """Recompute every stored vector, history included, with a new embedder; returns texts embedded.

    Vectors are derived data: when ``knowledge.embedder`` changes, each distinct text is embedded
    once more and written in place (one transaction), so the history stays searchable.
    """
    import numpy as np

    from ragtune.knowledge.chunk import Chunk

    keys, texts = [], []
    for key, text, section, title in store.texts_by_hash():
        chunk = Chunk("", "", 0, tuple(section.split(" > ")) if section else (), title, text, "", 0)
        keys.append(key)
        texts.append(chunk.search_text)
    vectors: list[bytes] = []
    for start in range(0, len(texts), EMBED_BATCH):
        matrix = np.asarray(embedder.embed(texts[start : start + EMBED_BATCH]), dtype=np.float32)
        vectors.extend(row.tobytes() for row in matrix)
        if progress is not None:
            progress(len(vectors), len(texts), "re-embedding the store")
    store.replace_vectors(dict(zip(keys, vectors, strict=True)))
    store.set_meta("embedder", embedder.name)
    store.set_meta("dim", str(embedder.dim))
    return len(texts)


def _apply(store: KnowledgeStore, snapshot: int, item: _Work, vectors: dict[str, bytes]) -> None:
    add = [
        NewChunk(
            chunk_id=c.chunk_id,
            ordinal=c.ordinal,
            section=" > ".join(c.section_path),
            title=c.title,
            text=c.text,
            text_hash=embed_key(c),
            tokens=c.tokens,
            vector=vectors[embed_key(c)],
        )
        for c in item.add
    ]
    row = DocumentRow(
        path=item.source.rel,
        version=item.version,
        kind=item.parsed_kind,
        title=item.title,
        sha256=item.sha256,
        valid_from=snapshot,
        valid_to=None,
    )
    store.apply_document(snapshot, row, item.text, add, item.retire)

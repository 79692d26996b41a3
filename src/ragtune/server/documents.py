"""Knowledge documents changed through the API: write or remove the file, then sync.

Knowledge lives in files the capabilities' ``sources:`` name. ``PUT
/v1/knowledge/documents/knowledge/dpa.md`` writes that file under the project and runs the same
incremental sync as ``ragtune knowledge sync``: only the chunks whose text changed are embedded,
the earlier version stays in the history, and the next request is answered from the new text -
no restart, no retraining.

Which paths may be written is decided from the project file alone: a path must be relative, stay
inside the project (no ``..``, no absolute path, no hidden part such as ``.ragtune/``), have a
document or table suffix, and be covered by the ``sources:`` of a capability - inside a source
folder, equal to a source file, or matched by a source glob. It must also be a name every file
system takes: valid UTF-8 without control characters, at most :data:`MAX_NAME_BYTES` per part,
:data:`MAX_DEPTH` parts and :data:`MAX_PATH_BYTES` in all, and no part of it an existing file.
Tools (``tool:...``) and every other file of the project are out of reach, so the API can never
write code or configuration.

A file is replaced atomically (a temporary file beside it, then :func:`os.replace`): a reader
sees the old text or the new, never half of one. A document the sync cannot read (a malformed
PDF or CSV) is put back as it was, and the error says why.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_to_bytes

from ragtune.errors import RagtuneError
from ragtune.knowledge.sources import DOCUMENT_SUFFIXES, SUPPORTED_SUFFIXES, covers
from ragtune.knowledge.tools import is_tool_ref

if TYPE_CHECKING:
    from ragtune.knowledge.sync import SyncResult
    from ragtune.project import Project
    from ragtune.runtime.runtime import Runtime

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "DocumentError",
    "DocumentTarget",
    "DocumentUpdate",
    "check_raw_path",
    "delete_document",
    "resolve_document",
    "upsert_document",
]

MAX_NAME_BYTES = 200
"""The longest file or folder name, in UTF-8 bytes: file systems take 255, and the temporary
file a write goes through adds 14 to the document's name."""

MAX_DEPTH = 32
"""The most parts (folders and the file) a document path may have."""

MAX_PATH_BYTES = 1024
"""The longest document path, in UTF-8 bytes."""

_TEXT_SUFFIXES = frozenset(
    s for s, kind in DOCUMENT_SUFFIXES.items() if kind in ("markdown", "text", "html")
) | {".csv"}


class DocumentError(RagtuneError):
    """A document path or body the API refuses.

    Attributes:
        status: The HTTP status that fits: 400 (a malformed path or body), 403 (outside every
            capability's sources), 404 (no such document or capability), 422 (the sync cannot
            read the document).
        param: The request part at fault (``path``, ``capability``, ``body``).
    """

    def __init__(self, message: str, status: int = 400, param: str = "path") -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass(frozen=True)
class DocumentTarget:
    """A document path the API may write.

    Attributes:
        rel: The path relative to the project root, POSIX style (``knowledge/dpa.md``).
        path: The absolute path of the file.
        capabilities: The capabilities whose sources cover it.
    """

    rel: str
    path: Path
    capabilities: tuple[str, ...]


@dataclass
class DocumentUpdate:
    """What a write or removal did, and what the sync after it did.

    Attributes:
        document: The document's path relative to the project.
        action: ``created``, ``replaced`` or ``deleted``.
        bytes: Bytes written (0 for a removal).
        capabilities: The capabilities whose sources cover the document.
        snapshot: The knowledge snapshot now served.
        chunks_embedded: Chunks embedded by the sync (only changed text is embedded).
        reused_vectors: Chunks whose vector was reused from an identical text.
        documents: Per changed document: path, status and chunk counts.
        seconds: Wall time of the sync.
    """

    document: str
    action: Literal["created", "replaced", "deleted"]
    bytes: int
    capabilities: list[str]
    snapshot: int
    chunks_embedded: int
    reused_vectors: int
    documents: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of the endpoint."""
        return {
            "document": self.document,
            "action": self.action,
            "bytes": self.bytes,
            "capabilities": self.capabilities,
            "sync": {
                "snapshot": self.snapshot,
                "chunks_embedded": self.chunks_embedded,
                "reused_vectors": self.reused_vectors,
                "documents": self.documents,
                "seconds": round(self.seconds, 4),
            },
        }


# -- which paths may be written ----------------------------------------------------------------


def resolve_document(project: Project, raw: str, capability: str | None = None) -> DocumentTarget:
    """Check a document path from a request and say which capabilities' sources cover it.

    Args:
        project: The served project.
        raw: The path as the request gave it, relative to the project root.
        capability: Only this capability's sources count (``?capability=NAME``).

    Raises:
        DocumentError: The path is malformed (400), names an unknown capability (404), or lies
            outside every (or the named) capability's sources (403).
    """
    rel = _clean(raw)
    root = project.root.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise DocumentError(
            f"document path {raw!r} leads outside the project through a symbolic link.", 403
        )
    capabilities = project.config.capabilities
    if capability is not None:
        names = [c.name for c in capabilities]
        if capability not in names:
            raise DocumentError(
                f"capability {capability!r} is not in this project; capabilities: "
                f"{', '.join(names)}.",
                404,
                "capability",
            )
        capabilities = [c for c in capabilities if c.name == capability]
    covering = tuple(
        c.name for c in capabilities if any(covers(root, ref, rel) for ref in c.sources)
    )
    if not covering:
        raise DocumentError(
            f"document path {rel!r} is outside the sources of "
            f"{'capability ' + repr(capability) if capability else 'every capability'}. "
            f"Writable sources: {_describe_sources(capabilities)}.",
            403,
        )
    return DocumentTarget(rel, path, covering)


def check_raw_path(raw_path: bytes) -> None:
    """Refuse a request path whose percent-decoded bytes are not UTF-8.

    The server decodes ``%FF`` to U+FFFD, so a name that is not UTF-8 would otherwise become a
    file named with replacement characters; the raw path (the ASGI ``raw_path``, before the
    query) still has the bytes the client sent.

    Raises:
        DocumentError: 400, naming the first byte that is not UTF-8 and where it is.
    """
    data = unquote_to_bytes(raw_path.split(b"?", 1)[0])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"the document path is not UTF-8: byte 0x{data[exc.start]:02X} at position "
            f"{exc.start} of {data[:200]!r} ({exc.reason}). Send the name UTF-8 encoded and "
            "percent-escaped, e.g. caf%C3%A9.md for café.md."
        ) from None


def _clean(raw: str) -> str:
    """The path as a clean relative POSIX path, or a DocumentError (400) saying what is wrong."""
    if not raw or not raw.strip():
        raise DocumentError(
            "the document path is empty: name the file, e.g. "
            "PUT /v1/knowledge/documents/knowledge/dpa.md."
        )
    if "\x00" in raw or "\\" in raw:
        raise DocumentError(
            f"document path {raw!r:.300} holds a backslash or NUL: use '/' between folders."
        )
    _check_name_size(raw)
    if raw.startswith("/") or PurePosixPath(raw).is_absolute():
        raise DocumentError(
            f"document path {raw!r} is absolute: give it relative to the project folder, "
            "e.g. knowledge/dpa.md."
        )
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DocumentError(
            f"document path {raw!r} contains '..': give the path inside the project "
            "without going up a folder."
        )
    hidden = [p for p in parts if p.startswith(".")]
    if hidden:
        raise DocumentError(
            f"document path {raw!r} has a hidden part {hidden[0]!r}: hidden files and folders "
            "(such as .ragtune/) are never knowledge."
        )
    rel = "/".join(parts)
    _check_parts(raw, parts)
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"document path {rel!r} has suffix {suffix or '(none)'!r}; knowledge documents are "
            f"{', '.join(sorted(SUPPORTED_SUFFIXES))}."
        )
    return rel


def _check_name_size(raw: str) -> None:
    """Refuse characters no document name should hold, and paths too long or too deep for a
    file system (before anything touches the disk: the OS would fail, deep ones recursively)."""
    bad = next((c for c in raw if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        what = "a lone UTF-16 surrogate" if unicodedata.category(bad) == "Cs" else "a control"
        raise DocumentError(
            f"document path {raw!r:.300} holds {what} character {bad!r} (U+{ord(bad):04X}) at "
            f"position {raw.index(bad)}: name documents with printable characters."
        )
    size = len(raw.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise DocumentError(
            f"document path {raw[:80]!r}... is {size} bytes long; the limit is {MAX_PATH_BYTES} "
            "bytes (UTF-8): use a shorter path."
        )


def _check_parts(raw: str, parts: list[str]) -> None:
    if len(parts) > MAX_DEPTH:
        raise DocumentError(
            f"document path {raw[:80]!r}... is {len(parts)} folders deep; the limit is "
            f"{MAX_DEPTH}: put the document in a shallower folder."
        )
    for part in parts:
        size = len(part.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise DocumentError(
                f"document path {raw[:80]!r}... has a name of {size} bytes ({part[:40]!r}...); "
                f"a file or folder name may be at most {MAX_NAME_BYTES} bytes (UTF-8): use a "
                "shorter name."
            )


def _describe_sources(capabilities: list[Any]) -> str:
    described = [
        f"{c.name}: {', '.join(r for r in c.sources if not is_tool_ref(r))}"
        for c in capabilities
        if any(not is_tool_ref(r) for r in c.sources)
    ]
    return "; ".join(described) or "none (no capability has document sources)"


# -- writing and syncing -----------------------------------------------------------------------


def upsert_document(runtime: Runtime, target: DocumentTarget, body: bytes) -> DocumentUpdate:
    """Write a document atomically, then sync the knowledge incrementally.

    Runs under the runtime's lock: no request searches the store while it changes, and two
    writes never interleave.

    Raises:
        DocumentError: An empty body or text that is not UTF-8 (400); the sync cannot read the
            new document (422: the previous version, if any, is put back and stays served).
    """
    if not body.strip():
        raise DocumentError(
            f"the body for {target.rel} is empty: send the document's text; to remove the "
            "document, DELETE it.",
            param="body",
        )
    if target.path.suffix.lower() in _TEXT_SUFFIXES:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(
                f"the body for {target.rel} is not UTF-8 text ({exc.reason} at byte "
                f"{exc.start}): send the document as UTF-8.",
                param="body",
            ) from None
    if target.path.is_dir():
        raise DocumentError(f"{target.rel} is a folder, not a document.")
    _check_folders(target)
    with runtime.lock:  # the store's connection is shared with searches
        previous = target.path.read_bytes() if target.path.is_file() else None
        _write_atomic(target.path, body)
        try:
            result = runtime.knowledge.sync()
        except BaseException:
            _restore(target.path, previous)
            raise
        reason = dict(result.skipped).get(target.rel)
        if reason is not None:
            _restore(target.path, previous)
            kept = "the previous version stays in service" if previous else "nothing was added"
            raise DocumentError(f"{target.rel} cannot be indexed: {reason}; {kept}.", 422, "body")
    action: Literal["created", "replaced"] = "created" if previous is None else "replaced"
    return _update(target, action, len(body), result)


def delete_document(runtime: Runtime, target: DocumentTarget) -> DocumentUpdate:
    """Remove a document and sync: its passages leave the live knowledge (history keeps them).

    Raises:
        DocumentError: No such document (404).
    """
    with runtime.lock:
        if not target.path.is_file():
            raise DocumentError(f"no document {target.rel} in the project: nothing to delete.", 404)
        target.path.unlink()
        result = runtime.knowledge.sync()
    return _update(target, "deleted", 0, result)


def _check_folders(target: DocumentTarget) -> None:
    """Refuse a path that puts the document under an existing file (``dpa.md/x.md``)."""
    rel = PurePosixPath(target.rel)
    for depth in range(1, len(rel.parts)):
        folder = PurePosixPath(*rel.parts[:depth])
        on_disk = target.path.parents[len(rel.parts) - 1 - depth]
        if on_disk.exists() and not on_disk.is_dir():
            raise DocumentError(
                f"{target.rel} cannot be written: {folder} is a file, not a folder. Name a "
                f"document beside it instead (e.g. {folder.parent / 'new.md'})."
            )


def _update(
    target: DocumentTarget,
    action: Literal["created", "replaced", "deleted"],
    size: int,
    result: SyncResult,
) -> DocumentUpdate:
    changed = [
        {
            "path": c.path,
            "status": c.status,
            "chunks_embedded": c.chunks_to_embed,
            "chunks_retired": c.chunks_to_retire,
            "chunks_kept": c.chunks_kept,
        }
        for c in result.plan.changes
        if c.status != "unchanged"
    ]
    return DocumentUpdate(
        document=target.rel,
        action=action,
        bytes=size,
        capabilities=list(target.capabilities),
        snapshot=result.snapshot,
        chunks_embedded=result.embedded,
        reused_vectors=result.reused_vectors,
        documents=changed,
        seconds=result.seconds,
    )


def _write_atomic(path: Path, data: bytes) -> None:
    """Write bytes through a hidden temporary file beside ``path`` and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden (leading dot): a sync running meanwhile skips it.
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); a document keeps the mode it had, else 0644.
        os.fchmod(handle, path.stat().st_mode & 0o777 if path.is_file() else 0o644)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _restore(path: Path, previous: bytes | None) -> None:
    """Put a document back as it was before a refused write (or remove a new one)."""
    if previous is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        _write_atomic(path, previous)

"""A document's history: its versions, each with the snapshot that made it, and what changed.

The store keeps every version of every document (``valid_from``/``valid_to`` snapshot ids);
this module reads them as a user asks: which versions, when each was synced, and the diff
between two of them (``ragtune knowledge history``, :meth:`KnowledgeBase.history`).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

from ragtune.knowledge.store import KnowledgeStore, StoreError

__all__ = ["DocumentHistory", "DocumentVersion", "document_history"]


@dataclass(frozen=True)
class DocumentVersion:
    """One version of a document.

    Attributes:
        version: 1 for the first sync that saw it, one more for each change.
        snapshot: The snapshot that made it live.
        synced_at: When that snapshot started (ISO time), None if the snapshot is gone.
        retired_at_snapshot: The snapshot that replaced or deleted it; None while it is live.
        sha256: The hash of the file's bytes.
        chunks: Its chunks.
        title: Its title.
    """

    version: int
    snapshot: int
    synced_at: str | None
    retired_at_snapshot: int | None
    sha256: str
    chunks: int
    title: str


@dataclass(frozen=True)
class DocumentHistory:
    """A document's versions, oldest first, and a unified diff between two of them.

    Attributes:
        document: The document's path in the project.
        versions: Every version, oldest first.
        compared: The two versions diffed, or None when there is only one.
        diff: The unified diff of their texts (headings as Markdown); empty when none.
    """

    document: str
    versions: list[DocumentVersion]
    compared: tuple[int, int] | None
    diff: str

    def to_dict(self) -> dict[str, object]:
        """JSON values: ``document``, ``versions`` and ``diff``."""
        return {
            "document": self.document,
            "versions": [asdict(v) for v in self.versions],
            "diff": self.diff,
        }


def document_history(
    store: KnowledgeStore, document: str, diff: tuple[int, int] | None = None
) -> DocumentHistory:
    """The versions of ``document`` and the diff between two of them.

    Args:
        store: The knowledge store.
        document: The document's path, as in the project (``knowledge/nda.md``).
        diff: The two versions to compare; default: the last two, when there are two.

    Raises:
        StoreError: No such document (lists the documents), or no such version (lists them).
    """
    rows = store.document_versions(document)
    if not rows:
        known = ", ".join(sorted(store.current_documents())) or "none synced yet"
        raise StoreError(f"no document {document!r} in the store (documents: {known}).")
    started = {s.id: s.started_at for s in store.snapshots()}
    versions = [
        DocumentVersion(
            version=row.version,
            snapshot=row.valid_from,
            synced_at=started.get(row.valid_from),
            retired_at_snapshot=row.valid_to,
            sha256=row.sha256,
            chunks=row.chunks,
            title=row.title,
        )
        for row in rows
    ]
    pair = diff or ((rows[-2].version, rows[-1].version) if len(rows) > 1 else None)
    if pair is None:
        return DocumentHistory(document, versions, None, "")
    old, new = (store.document_text(document, number) for number in pair)
    if old is None or new is None:
        numbers = ", ".join(str(v.version) for v in versions)
        raise StoreError(f"--diff {pair[0]} {pair[1]}: versions are {numbers}.")
    patch = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{document} v{pair[0]}",
        tofile=f"{document} v{pair[1]}",
    )
    return DocumentHistory(document, versions, pair, "".join(patch))

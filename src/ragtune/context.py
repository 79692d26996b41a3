"""Retrieved passages as the model reads them: numbered, with where each comes from.

One format for every place a model meets retrieved text - context-aware adapter training
(:mod:`ragtune.behavior.raft`) and the runtime's prompt - so an adapter is trained on exactly the
layout it is served with. The passages are placed in the user turn inside ``<context>`` tags by
:func:`ragtune.behavior.fewshot.format_user`, which marks them as data, not instructions.

A passage reads::

    [1] knowledge/msa.md > 11. Liability (version 3)
    11.2 Each party's total liability ... shall not exceed ...

and an answer cites it as ``[1]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Passage", "clip", "format_context", "text_sha1"]


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk with its provenance (what a citation names).

    Attributes:
        text: The chunk's text.
        document: The source document, relative to the project.
        section: The section path (``"Title > 11. Liability"``).
        chunk_id: The chunk's stable id (its place in the document).
        text_hash: SHA-1 of ``text``: it changes when and only when the text does.
        version: The document version the text was read from.
        snapshot: The knowledge snapshot in which this text appeared.
    """

    text: str
    document: str
    section: str
    chunk_id: str
    text_hash: str
    version: int = 0
    snapshot: int = 0

    def label(self) -> str:
        """``document > section (version N)`` for the passage's header line."""
        if not self.document:
            return ""
        section = self.section.split(" > ", 1)[-1] if " > " in self.section else self.section
        where = f"{self.document} > {section}" if section else self.document
        return f"{where} (version {self.version})" if self.version else where

    def citation(self) -> dict[str, object]:
        """The JSON shape of a citation."""
        return {
            "document": self.document,
            "section": self.section,
            "version": self.version,
            "snapshot": self.snapshot,
            "chunk_id": self.chunk_id,
        }


def text_sha1(text: str) -> str:
    """SHA-1 of a text (hex), as the knowledge store keys chunk texts."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def clip(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters at a word boundary, marked with an ellipsis."""
    if len(text) <= chars:
        return text
    cut = text[:chars].rsplit(None, 1)[0] if " " in text[:chars] else text[:chars]
    return cut.rstrip(" ,;:") + " ..."


def format_context(passages: Sequence[Passage], chars: int | None = None) -> str:
    """Passages numbered from 1, each with its header line; ``chars`` clips each text."""
    blocks = []
    for number, passage in enumerate(passages, start=1):
        text = passage.text.strip() if chars is None else clip(passage.text.strip(), chars)
        blocks.append(f"[{number}] {passage.label()}".rstrip() + f"\n{text}")
    return "\n\n".join(blocks)

"""Retrieved passages as the model reads them: numbered, with where each comes from.

One format for every place a model meets retrieved text - context-aware adapter training
(:mod:`ragtune.behavior.raft`) and the runtime's prompt - so an adapter is trained on exactly the
layout it is served with. The passages are placed in the user turn inside ``<context>`` tags by
:func:`ragtune.prompt.format_user`, which marks them as data, not instructions.

Retrieved text is data, whatever it contains. :func:`defuse` breaks everything in it that a
model or a chat template could read as structure: chat control tokens (``<|im_start|>``,
``[INST]``, ``<start_of_turn>``, ...), the ``<context>`` fence in any case or spacing, and lines
that would pass for a passage header. It inserts a backslash after the first character, so the
text still reads the same to a person and tokenises as plain text with any tokenizer.

A passage reads::

    [1] knowledge/msa.md > 11. Liability (version 3)
    11.2 Each party's total liability ... shall not exceed ...

and an answer cites it as ``[1]``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["PASSAGES", "Passage", "clip", "defuse", "defuse_tokens", "format_context", "text_sha1"]

PASSAGES = 4
"""Passages retrieved per request (and in each prompt a reader adapter trains on): enough for
the answer and its neighbours (recall@5 is measured on the example), few enough for a small
model's context."""

# The control tokens of the common chat-template families: ChatML and Llama 3 (``<|im_start|>``,
# ``<|eot_id|>``, ``<|start_header_id|>``), Llama 2 / Mistral (``[INST]``, ``<<SYS>>``, ``<s>``),
# Gemma (``<start_of_turn>``), DeepSeek's full-width bars and the usual sentence markers. A
# remote server applies its own template and may parse these inside a message, so they are
# defused for every backend; the local backend also defuses its own tokenizer's special tokens
# (:func:`defuse_tokens`).
CONTROL_TOKEN = re.compile(
    r"<[|｜][^\s<>|｜]{1,64}[|｜]>"
    r"|\[\s*/?\s*INST\s*\]|<<\s*/?\s*SYS\s*>>"
    r"|<\s*/?\s*(?:s|bos|eos|pad|unk|start_of_turn|end_of_turn|turn|eot)\s*>",
    re.IGNORECASE,
)
# The fence around retrieved text, opening or closing, in any case or spacing.
FENCE_TAG = re.compile(r"<\s*/?\s*context\b[^<>]{0,64}>", re.IGNORECASE)
# A line inside a passage that would read as the header line of another passage (``[2] ...``).
HEADER_LINE = re.compile(r"^([ \t]*)\[(\d+)\]", re.MULTILINE)


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


def _break(match: re.Match[str]) -> str:
    """A matched token with a backslash after its first character: it reads the same, parses
    as nothing."""
    token = match.group(0)
    return token[0] + "\\" + token[1:]


def defuse(text: str) -> str:
    """``text`` with chat control tokens and ``<context>`` fence tags broken, so that no backend's
    template or tokenizer reads them as structure."""
    return FENCE_TAG.sub(_break, CONTROL_TOKEN.sub(_break, text))


def defuse_tokens(text: str, tokens: Iterable[str]) -> str:
    """``text`` with every occurrence of these literal tokens (a tokenizer's special tokens)
    broken the way :func:`defuse` breaks them; tokens shorter than two characters are left."""
    wanted = sorted({t for t in tokens if len(t) >= 2}, key=len, reverse=True)
    if not wanted or not any(t in text for t in wanted):
        return text
    return re.sub("|".join(map(re.escape, wanted)), _break, text)


def format_context(passages: Sequence[Passage], chars: int | None = None) -> str:
    """Passages numbered from 1, each with its header line; ``chars`` clips each text.

    A passage's own text is data: a line in it that starts like a header (``[2] ...``) is
    escaped (``\\[2] ...``), so only the real header lines number passages.
    """
    blocks = []
    for number, passage in enumerate(passages, start=1):
        text = passage.text.strip() if chars is None else clip(passage.text.strip(), chars)
        text = HEADER_LINE.sub(r"\1\\[\2]", text)
        blocks.append(f"[{number}] {passage.label()}".rstrip() + f"\n{text}")
    return "\n\n".join(blocks)

"""Long sections into parts: at paragraphs, then sentences, then lines, then runs of words.

A section longer than ``max_tokens`` is packed into parts of about ``target_tokens``; no unit
is cut inside unless it alone is longer than the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text (the embedder's tokenizer, or a word count without one)."""

_SENTENCE_END = re.compile(r"[.!?][\"”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {"inc", "ltd", "co", "corp", "llc", "plc", "no", "nos", "mr", "mrs", "ms", "dr", "st", "vs",
     "etc", "e.g", "i.e", "cf", "sec", "art", "jr", "sr", "u.s"}
)  # fmt: skip


def sentences(paragraph: str) -> list[str]:
    """Split prose at sentence ends, not after common abbreviations or initials."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        before = paragraph[start : match.start()].split()
        word = before[-1].lower().lstrip("(\"'“") if before else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        end = match.start() + len(match.group(0).rstrip())
        pieces.append(paragraph[start:end].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def _words(text: str, limit: int, count: TokenCounter) -> list[str]:
    """Split text with no usable boundary into runs of words of at most ``limit`` tokens."""
    runs: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        n = max(count(word), 1)
        if current and used + n > limit:
            runs.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += n
    if current:
        runs.append(" ".join(current))
    return runs


def _units(piece: str, limit: int, count: TokenCounter) -> list[tuple[str, str]]:
    """A paragraph as ``(separator, text)`` units of at most ``limit`` tokens."""
    if count(piece) <= limit:
        return [("\n\n", piece)]
    units: list[tuple[str, str]] = []
    for sentence in sentences(piece):
        if count(sentence) <= limit:
            units.append((" ", sentence))
            continue
        for line in sentence.split("\n"):
            if not line.strip():
                continue
            if count(line) <= limit:
                units.append(("\n", line))
            else:
                units.extend((" ", run) for run in _words(line, limit, count))
    if units:
        units[0] = ("\n\n", units[0][1])
    return units


def split_section(
    pieces: list[str],
    heading: str | None,
    *,
    target: int,
    limit: int,
    min_tokens: int,
    count: TokenCounter,
) -> list[str]:
    """Pack paragraphs (long ones cut at sentences) into parts of about ``target`` tokens.

    Every part after the first starts with "<heading> (continued)" so that it reads on its
    own; a last part under ``min_tokens`` joins the one before if they fit in ``limit``.

    Args:
        pieces: The section's paragraphs, its heading line first where it has one.
        heading: The section's title, repeated on every later part; None for none.
        target: The tokens a part aims at.
        limit: No paragraph, sentence or run of words in a part is longer than this.
        min_tokens: A last part under this joins the part before it.
        count: Counts a text's tokens.

    Returns:
        The parts' texts, in order.
    """
    prefix = f"{heading} (continued)" if heading else ""
    budget_after_first = max(target - (count(prefix) if prefix else 0), 1)
    units = [u for piece in pieces for u in _units(piece, limit, count)]
    parts: list[list[tuple[str, str]]] = [[]]
    used = 0
    budget = target
    for separator, text in units:
        n = count(text)
        if parts[-1] and used + n > budget:
            parts.append([])
            used, budget = 0, budget_after_first
        parts[-1].append((separator, text))
        used += n

    def join(part: list[tuple[str, str]]) -> str:
        return "".join(sep + text if i else text for i, (sep, text) in enumerate(part))

    if len(parts) > 1:
        last, before = join(parts[-1]), join(parts[-2])
        if count(last) < min_tokens and count(before) + count(last) <= limit:
            parts[-2].extend(parts.pop())
    texts = [join(part) for part in parts]
    return [texts[0]] + [f"{prefix}\n\n{t}" if prefix else t for t in texts[1:]]

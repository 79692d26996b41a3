"""What a contract clause says: its number, its body and its answer.

A template is a list of numbered clauses (``6.1 Provider shall notify ...``). The reader's
training pairs (:mod:`ragtune.behavior.reader`) and the quoted answers
(:mod:`ragtune.runtime.quote`) both need the same three things from a passage's text: where each
numbered clause starts, which of its sentences answer a question on it (those stating a figure,
date or duration, else its first), and that answer clipped to a readable length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ragtune.facts import find_facts

__all__ = ["ANSWER_CHARS", "COUNT", "clause_answer", "clauses", "figure_sentences", "sentences"]

_CLAUSE = re.compile(
    r"(?ms)^(\d{1,3}(?:\.\d{1,3})+)\.?[ \t]+(.+?)(?=^\d{1,3}(?:\.\d{1,3})+\.?[ \t]|\Z)"
)
_SENTENCE = re.compile(r"(?<=[.;:])\s+(?=[A-Z(\"])")
COUNT = re.compile(
    r"\(?\b\d{1,3}\)?\s*(%|(?:percent|(?:business |calendar |working )?(?:days?|hours?|weeks?|"
    r"months?|years?|minutes?))\b)|\(\d{1,3}\)",
    re.IGNORECASE,
)
"""A small count with its unit ("five (5) days", "6 hours", "99.9%"): group 1 is the unit."""
ANSWER_CHARS = 320
"""The longest answer a clause gives, in characters (cut at a word)."""


def clauses(text: str) -> Iterator[tuple[str, str]]:
    """Each numbered clause of ``text`` (a line starting ``6.1`` or ``6.1.``) as its number and
    its body, white space folded; a clause runs to the next one or the end."""
    for match in _CLAUSE.finditer(text):
        yield match.group(1), " ".join(match.group(2).split())


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split after ``.``, ``;`` or ``:`` before a capital, a
    parenthesis or a quote)."""
    return _SENTENCE.split(" ".join(text.split()))


def figure_sentences(body: str) -> str | None:
    """The clause's sentences that state a figure (at most two), clipped; None when none does."""
    stating = [s for s in _SENTENCE.split(body) if _states_figure(s)]
    return _clipped(" ".join(stating[:2])) if stating else None


def clause_answer(body: str) -> str:
    """What a clause answers: :func:`figure_sentences`, else its first sentence, clipped; empty
    for an empty clause."""
    return figure_sentences(body) or _clipped(_SENTENCE.split(body, maxsplit=1)[0])


def _clipped(text: str) -> str:
    """An answer's text: without its closing punctuation, cut at a word within
    :data:`ANSWER_CHARS`."""
    text = text.rstrip(" .;:")
    if len(text) > ANSWER_CHARS:
        text = text[:ANSWER_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:")
    return text


def _states_figure(sentence: str) -> bool:
    """A figure, date or amount (:func:`find_facts`), or a small count with its unit ("five (5)
    days", "6 hours") that the fact finder leaves out as list numbering."""
    return bool(find_facts(sentence) or COUNT.search(sentence))

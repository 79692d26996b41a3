"""Quoted answers: a knowledge capability answered in its documents' own words.

With ``answer: quote`` in ragtune.yaml, a knowledge question is answered by the clause of the
retrieved passages that matches it best, quoted word for word with its citation. The runtime
retrieves as for any knowledge question; each passage offers what it can answer - each numbered
clause its answer (the sentences stating a figure, else its first, as
:func:`ragtune.knowledge.clauses.clause_answer` reads them: the text the reader adapter is
trained to copy), a passage without numbered clauses each of its sentences - and the one whose
embedding is closest to the question's is quoted. No model writes the answer, so it cannot
misstate a figure or a party: it can only quote the wrong clause, and then the citation shows
which.

When no offer comes within :data:`QUOTE_FLOOR` of the question the answer says that the
documents hold nothing close, with no citation. A request that brings its own output contract
(an API client's ``response_format``) is generated as usual: a quote cannot be JSON.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragtune.context import Passage
from ragtune.generate.backend import Generation
from ragtune.knowledge.clauses import clause_answer, clauses, sentences

if TYPE_CHECKING:
    from ragtune.knowledge.embed import Embedder

__all__ = ["NOT_FOUND", "QUOTED", "QUOTE_FLOOR", "Offer", "offers", "quote"]

QUOTE_FLOOR = 0.25
"""The least cosine similarity between the question and the quoted text (all-MiniLM-L6-v2)."""

QUOTED = "quote"
"""The ``model`` of a quoted answer's :class:`~ragtune.generate.backend.Generation`."""

NOT_FOUND = "The documents hold no passage close enough to this question to quote."

_SHORTEST = 20
"""Characters of the shortest sentence worth quoting (a heading or a list marker is not)."""


@dataclass(frozen=True)
class Offer:
    """One text a passage can answer with.

    Attributes:
        passage: The passage's number in the context (1 for the first).
        text: The words quoted.
        clause: The clause's number (``6.1``), or None for a sentence of unnumbered text.
    """

    passage: int
    text: str
    clause: str | None = None

    def answer(self, passages: Sequence[Passage]) -> str:
        """The quote with its citation: ``text (DPA 6.1) [1].``"""
        source = passages[self.passage - 1]
        where = f" ({document_name(source)} {self.clause})" if self.clause else ""
        return f"{self.text}{where} [{self.passage}]."


def offers(passages: Sequence[Passage]) -> list[Offer]:
    """What the passages can answer with, in their order, each text once: the answers of their
    numbered clauses where any passage has some (a contract's preamble, cover and signature
    block answer nothing), else every sentence of their paragraphs that are not headings."""
    numbered = [
        Offer(number, text, clause)
        for number, passage in enumerate(passages, start=1)
        for clause, body in clauses(passage.text)
        if (text := clause_answer(body))
    ]
    offered = numbered or [
        Offer(number, text)
        for number, passage in enumerate(passages, start=1)
        for paragraph in passage.text.split("\n\n")
        if not paragraph.lstrip().startswith("#")
        for sentence in sentences(paragraph)
        if len(text := sentence.rstrip(" .;:")) >= _SHORTEST
    ]
    first: dict[str, Offer] = {}
    for offer in offered:
        first.setdefault(offer.text, offer)
    return list(first.values())


def quote(question: str, passages: Sequence[Passage], embedder: Embedder) -> Generation:
    """The answer quoting the offer closest to ``question`` (:data:`NOT_FOUND` when none comes
    within :data:`QUOTE_FLOOR`), as a generation of no tokens by :data:`QUOTED`."""
    import numpy as np

    started = time.perf_counter()
    text = NOT_FOUND
    offered = offers(passages)
    if offered:
        vectors = np.asarray(embedder.embed([question] + [o.text for o in offered]))
        similarity = vectors[1:] @ vectors[0]
        best = int(np.argmax(similarity))  # the earliest passage on a tie
        if float(similarity[best]) >= QUOTE_FLOOR:
            text = offered[best].answer(passages)
    return Generation(text, 0, 0, "stop", QUOTED, time.perf_counter() - started)


def document_name(passage: Passage) -> str:
    """What a citation calls a passage's document (:func:`ragtune.knowledge.search.short_title`
    of the title its section path starts with)."""
    from ragtune.knowledge.search import short_title

    return short_title(passage.section.split(" > ", 1)[0].strip(), passage.document)

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
from typing import TYPE_CHECKING

from ragtune.context import Passage
from ragtune.generate.backend import Generation
from ragtune.knowledge.offers import offers, similarities

if TYPE_CHECKING:
    from ragtune.knowledge.embed import Embedder

__all__ = ["NOT_FOUND", "QUOTED", "QUOTE_FLOOR", "quote"]

QUOTE_FLOOR = 0.25
"""The least cosine similarity between the question and the quoted text (all-MiniLM-L6-v2)."""

QUOTED = "quote"
"""The ``model`` of a quoted answer's :class:`~ragtune.generate.backend.Generation`."""

NOT_FOUND = "The documents hold no passage close enough to this question to quote."


def quote(question: str, passages: Sequence[Passage], embedder: Embedder) -> Generation:
    """The answer quoting the offer closest to ``question`` (:data:`NOT_FOUND` when none comes
    within :data:`QUOTE_FLOOR`), as a generation of no tokens by :data:`QUOTED`."""
    started = time.perf_counter()
    text = NOT_FOUND
    offered = offers(passages)
    if offered:
        similarity = similarities(question, [o.text for o in offered], embedder)
        best = max(range(len(offered)), key=lambda i: (similarity[i], -i))  # earliest on a tie
        if similarity[best] >= QUOTE_FLOOR:
            text = offered[best].answer(passages)
    return Generation(text, 0, 0, "stop", QUOTED, time.perf_counter() - started)

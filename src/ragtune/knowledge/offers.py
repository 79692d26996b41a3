"""What retrieved passages can answer with, and passages ordered by it.

Each numbered clause of a passage offers its answer - the sentences stating a figure, else its
first (:func:`ragtune.knowledge.clauses.clause_answer`: the text a reader adapter is trained to
copy) - and a passage without numbered clauses each of its sentences (:func:`offers`). A
question is closest to the offer whose embedding is nearest to its own: the quoted answer
(:mod:`ragtune.runtime.quote`) is that offer, word for word.

:func:`rerank` orders retrieved passages by their closest offer. The search ranks whole chunks
by their words and vectors; a clause's own sentence is a sharper match for a question than the
chunk around it, so a reader trained with ``context_order: reranked`` is trained and served
with the passages in this order (:mod:`ragtune.behavior.raft`, :mod:`ragtune.runtime.pipeline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragtune.context import Passage
from ragtune.knowledge.clauses import clause_answer, clauses, sentences

if TYPE_CHECKING:
    from ragtune.knowledge.embed import Embedder

__all__ = ["Offer", "document_name", "offers", "rerank", "similarities"]

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


def similarities(question: str, texts: Sequence[str], embedder: Embedder) -> list[float]:
    """The cosine similarity of each text to the question (the embedder's vectors are
    normalised), in one embedding call."""
    import numpy as np

    if not texts:
        return []
    vectors = np.asarray(embedder.embed([question, *texts]), dtype=np.float32)
    return [float(v) for v in vectors[1:] @ vectors[0]]


def rerank(question: str, passages: Sequence[Passage], embedder: Embedder) -> list[Passage]:
    """The passages ordered by their offer closest to the question (:func:`offers` over them
    all, so a contract's preamble, which offers nothing beside numbered clauses, goes last);
    the search's order on a tie."""
    if len(passages) < 2:
        return list(passages)
    offered = offers(passages)
    scores = similarities(question, [o.text for o in offered], embedder)
    best = [float("-inf")] * len(passages)
    for offer, score in zip(offered, scores, strict=True):
        best[offer.passage - 1] = max(best[offer.passage - 1], score)
    order = sorted(range(len(passages)), key=lambda i: (-best[i], i))
    return [passages[i] for i in order]


def document_name(passage: Passage) -> str:
    """What a citation calls a passage's document (:func:`ragtune.knowledge.search.short_title`
    of the title its section path starts with)."""
    from ragtune.knowledge.search import short_title

    return short_title(passage.section.split(" > ", 1)[0].strip(), passage.document)

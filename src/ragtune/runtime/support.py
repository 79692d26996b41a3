"""Whether a reader's answer is supported by the passages it was written from.

A reader adapter is trained to answer by copying from the retrieved passages; at 135M
parameters it sometimes writes a sentence no passage holds ("The courts hear the dispute in the
State Court of the State of Delaware", citing a clause that names Wilmington) or a figure the
passages do not state ("We have 2 hours", citing a clause that says seventy-two). Before such an
answer is served it is checked (:func:`support`): it is **supported** when the passages state
every number it states, in figures or words (:func:`ragtune.facts.stated_figures`: "72 hours"
is covered by "seventy-two (72) hours", and "2 hours" by nothing there) and one passage holds at
least :data:`SUPPORTED_WORDS` of its words - the passage it was read from.

An unsupported answer is not served: the runtime quotes the clause of the same passages closest
to the question instead (:mod:`ragtune.runtime.quote`), and the result keeps what the reader
wrote (``Result.unsupported``). A streamed answer cannot be taken back; it is flagged
(``Result.supported``) as a streamed contract violation is. Only a reader's answers are
checked: it is trained to copy, so its answer should be found in its passages, where the base
model (plain RAG) paraphrases freely.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ragtune.context import Passage
from ragtune.facts import content_words, stated_figures

__all__ = ["SUPPORTED_WORDS", "Support", "support"]

SUPPORTED_WORDS = 0.5
"""The least share of an answer's words (four letters or more) one passage must hold: most of
them. Set before it was measured, not fitted to the example's questions."""

_CITATION = re.compile(r"\s*(?:\[\d+\]|\((?:[A-Z][\w&.-]*\s)+(?:\d+(?:\.\d+)*[a-z]?)\))")


@dataclass(frozen=True)
class Support:
    """How well the passages support an answer.

    Attributes:
        supported: The passages state its figures and one holds most of its words.
        passage: The passage holding most of its words (1 for the first); None without any.
        share: The share of its words that passage holds.
        novel: The numbers it states that no passage does, by their numeric core (``"2"``).
    """

    supported: bool
    passage: int | None
    share: float
    novel: tuple[str, ...] = ()


def support(answer: str, passages: Sequence[Passage]) -> Support:
    """Whether ``passages`` support ``answer`` (its citations - ``[1]``, ``(DPA 6.1)`` - left
    out of the comparison)."""
    text = _CITATION.sub("", answer)
    stated = set().union(*(stated_figures(p.text) for p in passages))
    novel = tuple(sorted(stated_figures(text) - stated))
    words = content_words(text)
    if not passages:
        return Support(False, None, 0.0, novel)
    shares = [len(words & content_words(p.text)) / len(words) if words else 1.0 for p in passages]
    best = max(range(len(passages)), key=lambda i: (shares[i], -i))
    supported = not novel and shares[best] >= SUPPORTED_WORDS
    return Support(supported, best + 1, shares[best], novel)

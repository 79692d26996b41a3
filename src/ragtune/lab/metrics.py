"""Scoring one answer: the expected facts it holds, whether it is stale, and the summaries.

Facts are compared after :func:`normalise`: lower case, numbers written in words turned into
digits (``text2num``), "seventy-two (72)" folded to "72", thousands separators dropped and
punctuation taken out. A fact is present when its normalised words occur in the normalised
answer as whole words, in order.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["fact_score", "facts_present", "is_stale", "normalise", "percentile", "spread"]

_REPEATED = re.compile(r"\b(\d+(?:\.\d+)?)\s*\(\s*\1\s*\)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PUNCT = re.compile(r"[^\w$%.]+|(?<!\d)\.|\.(?!\d)")


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """Text as facts are compared: lower case, number words as digits, punctuation out."""
    from text_to_num import alpha2digit

    lowered = text.lower().replace("\u2019", "'").replace("-", " ")
    digits = alpha2digit(lowered, "en", threshold=0)
    digits = _REPEATED.sub(r"\1", digits)
    digits = _THOUSANDS.sub("", digits)
    return " ".join(_PUNCT.sub(" ", digits).replace("_", " ").split())


def facts_present(answer: str, facts: Sequence[str]) -> list[bool]:
    """For each fact, whether the answer holds it (after :func:`normalise`)."""
    padded = f" {normalise(answer)} "
    return [f" {normalise(fact)} " in padded for fact in facts]


def fact_score(answer: str, facts: Sequence[str]) -> float | None:
    """The share of the facts the answer holds; None when there are none to look for."""
    if not facts:
        return None
    found = facts_present(answer, facts)
    return sum(found) / len(found)


def is_stale(answer: str, old: Sequence[str], new: Sequence[str]) -> bool:
    """Whether an answer still gives the superseded fact: it holds one of the old facts and
    not all of the new ones."""
    return any(facts_present(answer, old)) and not all(facts_present(answer, new))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float] | None:
    """Mean, standard deviation, minimum and maximum of a metric over seeds."""
    if not values:
        return None
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }

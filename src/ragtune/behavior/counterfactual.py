"""Counterfactual figures: training prompts whose figures a model cannot have memorised.

A reader adapter trained on the team's documents sees each clause's figures many times over
and learns them: after legal revises "seventy-two (72) hours" to forty-eight, it may still
answer seventy-two, the fact in its weights winning over the passage in its prompt (Longpre et
al., 2021, "Entity-Based Knowledge Conflicts in Question Answering"; Zhou et al., 2023,
"Context-faithful Prompting for Large Language Models"). In a share of the training prompts
(:func:`ragtune.behavior.raft.add_context`, ``counterfactual``), each figure the answer states
is changed to another value of its kind in the passages and the answer alike: copying from the
passage is then the only way to be right.

A figure here is a count with its unit, in words and digits or in digits ("thirty (30) days",
"72 hours", "5%"), or an amount of money ("$5,000,000"). Clause numbers, section references,
dates and decimals are left as they are.
"""

from __future__ import annotations

import random
import re
from functools import cache
from typing import Any

__all__ = ["change_figures"]

_UNIT = (
    r"\s*(?:%|percent\b|(?:business |calendar |working )?"
    r"(?:days?|hours?|weeks?|months?|years?|minutes?)\b)"
)
_FIGURE = re.compile(
    # "thirty (30)" - the words are checked to spell the digits
    r"\b(?P<words>[A-Za-z]+(?:-[A-Za-z]+)*) \((?P<spelled>\d{1,3})\)"
    # "$5,000,000"
    r"|\$(?P<money>\d{1,3}(?:,\d{3})+|\d+)\b(?!\.\d)"
    # "72 hours", "5%": a whole number with its unit
    r"|(?<![\d.,$])(?P<count>\d{1,3})(?=" + _UNIT + ")",
    re.IGNORECASE,
)


@cache
def _engine() -> Any:
    import inflect

    return inflect.engine()


@cache
def _spelled(value: int) -> str:
    """A number in words, as contracts write it ("seventy-two"); every bracketed figure of
    every prompt asks, so each number is spelled once."""
    return str(_engine().number_to_words(value, andword=""))


def _value(match: re.Match[str]) -> tuple[str, int] | None:
    """``(kind, value)`` of a figure, or None for a bracketed number its words do not spell
    ("Section (3)")."""
    if match.group("spelled"):
        value = int(match.group("spelled"))
        return ("count", value) if match.group("words").lower() == _spelled(value) else None
    if match.group("money"):
        return "money", int(match.group("money").replace(",", ""))
    return "count", int(match.group("count"))


def _other(kind: str, value: int, rng: random.Random) -> int:
    """Another plausible value of the same kind: a count from about half to about twice it, an
    amount two to four times it or half of it."""
    if kind == "money":
        return value * rng.choice((2, 3, 4)) if value < 10 or rng.random() < 0.7 else value // 2
    low = max(2, value // 2) if value > 1 else 1  # "three (3) years" never becomes "one (1) years"
    choices = [n for n in range(low, value * 2 + 3) if n != value]
    return rng.choice(choices)


def change_figures(
    texts: tuple[str, ...], answer: str, rng: random.Random
) -> tuple[tuple[str, ...], str] | None:
    """``texts`` and ``answer`` with each figure the answer states changed to another value,
    the same one wherever it appears; None when the answer states none.

    Args:
        texts: The texts the answer is read from (the formatted context).
        answer: The answer.
        rng: Chooses the new values.
    """
    found = [v for m in _FIGURE.finditer(answer) if (v := _value(m)) is not None]
    if not found:
        return None
    new: dict[tuple[str, int], int] = {}
    for kind, value in dict.fromkeys(found):
        new[(kind, value)] = _other(kind, value, rng)

    def swap(match: re.Match[str]) -> str:
        figure = _value(match)
        if figure is None or figure not in new:
            return match.group(0)
        value = new[figure]
        if match.group("spelled"):
            words = _spelled(value)
            if match.group("words")[0].isupper():
                words = words[0].upper() + words[1:]
            return f"{words} ({value})"
        if match.group("money"):
            return f"${value:,}"
        return str(value)

    return tuple(_FIGURE.sub(swap, t) for t in texts), _FIGURE.sub(swap, answer)

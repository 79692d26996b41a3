"""Scoring one answer (the expected facts it holds, whether it is stale) and an arm's figures over
its answers: fact accuracy, contract compliance, latency, tokens, cost and the spread over seeds.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragtune.lab.model import Call, Lab

__all__ = [
    "arm_summary",
    "call_metrics",
    "fact_score",
    "facts_present",
    "is_stale",
    "mean",
    "normalise",
    "percentile",
    "rate",
    "spread",
]

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


# -- an arm's figures over its calls ------------------------------------------------------------


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def rate(values: Sequence[bool | None]) -> float | None:
    """The share of True among the flags that are not None; None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _cost_per_1k(lab: Lab, calls: Sequence[Call]) -> float | None:
    if not calls:
        return None
    prices = lab.project.config.prices
    per_call = statistics.fmean(
        c.prompt_tokens * prices.input_usd_per_1m_tokens
        + c.completion_tokens * prices.output_usd_per_1m_tokens
        for c in calls
    )
    return per_call * 1000 / 1e6


def call_metrics(lab: Lab, calls: Sequence[Call]) -> dict[str, Any]:
    """Fact accuracy, contract compliance, p50 latency, tokens and cost of a set of calls."""
    latency = percentile([c.seconds for c in calls], 50)
    return {
        "fact_accuracy": mean([c.fact_score for c in calls]),
        "contract_compliance": rate([c.contract_ok for c in calls]),
        "latency_p50_s": latency,
        "tokens_per_call": (
            statistics.fmean(c.prompt_tokens + c.completion_tokens for c in calls)
            if calls
            else None
        ),
        "cost_per_1k": _cost_per_1k(lab, calls),
    }


def arm_summary(lab: Lab, arm: str, calls: Sequence[Call]) -> dict[str, Any]:
    """One arm's figures over its calls: overall, spread over seeds, per capability, and how
    it served each capability."""
    summary: dict[str, Any] = {"name": arm, **call_metrics(lab, calls)}
    seeds = lab.settings.run_seeds
    if len(seeds) > 1:
        per_seed = [[c for c in calls if c.seed == s] for s in seeds]
        facts = [v for v in (mean([c.fact_score for c in g]) for g in per_seed) if v is not None]
        ok = [v for v in (rate([c.contract_ok for c in g]) for g in per_seed) if v is not None]
        summary["spread"] = {"fact_accuracy": spread(facts), "contract_compliance": spread(ok)}
    else:
        summary["spread"] = None
    by_capability: dict[str, Any] = {}
    setup: dict[str, str] = {}
    adapters: list[str] = []
    for name in dict.fromkeys(c.item.capability for c in calls):
        of = [c for c in calls if c.item.capability == name]
        metrics = call_metrics(lab, of)
        by_capability[name] = {
            "items": len({id(c.item) for c in of}),
            "fact_accuracy": metrics["fact_accuracy"],
            "contract_compliance": metrics["contract_compliance"],
            "latency_p50_s": metrics["latency_p50_s"],
        }
        plan = lab.plans[(arm, name)]
        setup[name] = plan.setup
        if plan.route.adapter and plan.route.adapter not in adapters:
            adapters.append(plan.route.adapter)
    summary.update(by_capability=by_capability, setup=setup, adapters=adapters)
    return summary

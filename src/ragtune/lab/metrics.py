"""Scoring one answer (the expected facts it holds, whether it is stale) and an arm's figures over
its answers: fact accuracy, contract compliance, latency, tokens, cost and the spread over seeds.

Facts are compared after :func:`normalise`: lower case, numbers written in words turned into
digits (``text2num``), "seventy-two (72)" folded to "72", thousands separators dropped and
punctuation taken out. A fact is present when its normalised words occur in the normalised
answer as whole words, in order.

An arm's scores are over the items it did not train on (*unseen*); for an arm that serves an
adapter the *seen* and *rephrased* items are scored apart (:class:`ragtune.lab.results.Scores`).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ragtune.lab.model import ARMS, arm_spec
from ragtune.lab.results import ArmResult, CapabilityResult, Scores, Spread

if TYPE_CHECKING:
    from ragtune.lab.model import Call, Lab

__all__ = [
    "CallMetrics",
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


def spread(values: Sequence[float]) -> Spread | None:
    """Mean, standard deviation, minimum and maximum of a metric over seeds."""
    if not values:
        return None
    return Spread(
        mean=statistics.fmean(values),
        std=statistics.pstdev(values) if len(values) > 1 else 0.0,
        min=min(values),
        max=max(values),
    )


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


@dataclass(frozen=True)
class CallMetrics:
    """Fact accuracy, contract compliance, p50 latency, tokens and cost of a set of calls."""

    fact_accuracy: float | None
    contract_compliance: float | None
    latency_p50_s: float | None
    tokens_per_call: float | None
    cost_per_1k: float | None


def call_metrics(lab: Lab, calls: Sequence[Call]) -> CallMetrics:
    """Fact accuracy, contract compliance, p50 latency, tokens and cost of a set of calls."""
    return CallMetrics(
        fact_accuracy=mean([c.fact_score for c in calls]),
        contract_compliance=rate([c.contract_ok for c in calls]),
        latency_p50_s=percentile([c.seconds for c in calls], 50),
        tokens_per_call=(
            statistics.fmean(c.prompt_tokens + c.completion_tokens for c in calls)
            if calls
            else None
        ),
        cost_per_1k=_cost_per_1k(lab, calls),
    )


def _items(calls: Sequence[Call]) -> int:
    """Distinct items among the calls (each is asked once per seed)."""
    return len({(c.item.where, c.item.input) for c in calls})


def _scores(calls: Sequence[Call]) -> Scores:
    return Scores(
        _items(calls), mean([c.fact_score for c in calls]), rate([c.contract_ok for c in calls])
    )


def _apart(
    calls: Sequence[Call], serves_adapter: bool, known: bool
) -> tuple[list[Call], Scores | None, Scores | None]:
    """The unseen calls, and the seen and rephrased scores (None for an arm without adapter,
    or one whose adapters do not say what they trained on)."""
    unseen = [c for c in calls if c.exposure == "unseen"]
    if not (serves_adapter and known):
        return unseen, None, None
    seen = _scores([c for c in calls if c.exposure == "seen"])
    rephrased = _scores([c for c in calls if c.exposure == "rephrased"])
    return unseen, seen, rephrased


def arm_summary(lab: Lab, arm: str, calls: Sequence[Call]) -> ArmResult:
    """One arm's figures over its calls: scores on the unseen items (and the seen and
    rephrased ones apart, for an arm that serves an adapter), cost and latency over all its
    calls, the spread over seeds, the same per capability, and how it served each capability."""
    plans = [lab.plans[(arm, n)] for n in dict.fromkeys(c.item.capability for c in calls)]
    adapters = tuple(dict.fromkeys(p.route.adapter for p in plans if p.route.adapter))
    serves_adapter = arm_spec(arm).adapter if arm in ARMS else bool(adapters)
    known = all(lab.trained_on.get(a) is not None for a in adapters)
    unseen, seen, rephrased = _apart(calls, serves_adapter, known)
    overall = call_metrics(lab, calls)
    fact_spread = compliance_spread = None
    seeds = lab.settings.run_seeds
    if len(seeds) > 1:
        per_seed = [[c for c in unseen if c.seed == s] for s in seeds]
        facts = [v for v in (mean([c.fact_score for c in g]) for g in per_seed) if v is not None]
        ok = [v for v in (rate([c.contract_ok for c in g]) for g in per_seed) if v is not None]
        fact_spread, compliance_spread = spread(facts), spread(ok)
    by_capability: dict[str, CapabilityResult] = {}
    for plan in plans:
        of = [c for c in calls if c.item.capability == plan.capability]
        cap_unseen, cap_seen, cap_rephrased = _apart(of, serves_adapter, known)
        by_capability[plan.capability] = CapabilityResult(
            items=_items(cap_unseen),
            fact_accuracy=mean([c.fact_score for c in cap_unseen]),
            contract_compliance=rate([c.contract_ok for c in cap_unseen]),
            latency_p50_s=percentile([c.seconds for c in of], 50),
            seen=cap_seen,
            rephrased=cap_rephrased,
        )
    return ArmResult(
        name=arm,
        fact_accuracy=mean([c.fact_score for c in unseen]),
        contract_compliance=rate([c.contract_ok for c in unseen]),
        items=_items(unseen),
        seen=seen,
        rephrased=rephrased,
        seen_known=known,
        latency_p50_s=overall.latency_p50_s,
        tokens_per_call=overall.tokens_per_call,
        cost_per_1k=overall.cost_per_1k,
        fact_spread=fact_spread,
        compliance_spread=compliance_spread,
        by_capability=by_capability,
        setup={p.capability: p.setup for p in plans},
        adapters=adapters,
    )

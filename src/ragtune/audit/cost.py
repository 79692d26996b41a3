"""Cost projection: the recommended plan against fine-tuning everything and prompting everything.

Each strategy puts a capability on one approach and pays three kinds of cost, month by month:

1. a set-up at month 0: the first fine-tune run, the first index, or writing the prompt;
2. one update per change of the capability: a fine-tune run for an adapter (weights cannot
   follow a change any other way), a re-index for retrieval, a prompt edit for the rest;
3. tokens on every call: the generated answer, plus the context the approach adds to the prompt
   (retrieved chunks, examples, a system prompt, or whole documents pasted in).

Changes are spread evenly: by the end of month ``m`` there have been ``floor(rate * m / 12)``.
All prices come from :class:`ragtune.prices.Prices`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ragtune.audit.model import Answers, CostProjection, StrategyCost, StrategyName
from ragtune.prices import Prices

APPROACH_OF_DECISION = {"retrieval": "retrieval", "few-shot": "few-shot", "lora": "lora"}


def changes_by_month(changes_per_year: float, horizon_months: int) -> list[int]:
    """How many changes have happened by the end of each month 0..horizon."""
    return [math.floor(changes_per_year * m / 12 + 1e-9) for m in range(horizon_months + 1)]


def context_tokens(approach: str, kind: str, answers: Answers, prices: Prices) -> int:
    """Prompt tokens an approach adds to every call of a capability."""
    if approach == "retrieval":
        return prices.retrieval_context_tokens
    if approach == "few-shot":
        return prices.fewshot_context_tokens
    if approach == "lora":
        return 0
    # prompt: knowledge pasted whole into the prompt, or a behaviour described in a system prompt
    if kind == "knowledge":
        return int(answers.prompt_knowledge_tokens.value)
    stated = int(answers.system_prompt_tokens.value)
    return stated if stated > 0 else prices.instruction_prompt_tokens


def update_usd(approach: str, prices: Prices) -> float:
    """USD for the set-up, and again for each change, of an approach."""
    if approach == "lora":
        return prices.finetune_run_usd()
    if approach == "retrieval":
        return prices.reindex_usd()
    return prices.prompt_change_usd()


def strategy_cost(
    strategy: StrategyName,
    approach: str,
    kind: str,
    answers: Answers,
    prices: Prices,
    horizon_months: int,
) -> StrategyCost:
    """The month-by-month cost of running one capability on one approach."""
    calls = int(answers.calls_per_month.value)
    tokens = context_tokens(approach, kind, answers, prices)
    per_call = prices.input_usd(tokens) + (
        prices.output_tokens_per_call / 1e6 * prices.output_usd_per_1m_tokens
    )
    per_month = calls * per_call
    per_update = update_usd(approach, prices)
    changes = changes_by_month(float(answers.changes_per_year.value), horizon_months)
    cumulative = [per_update * (1 + n) + per_month * m for m, n in enumerate(changes)]
    updates = 1 + changes[-1]
    return StrategyCost(
        strategy=strategy,
        approach=approach,
        finetune_runs=updates if approach == "lora" else 0,
        reindexes=updates if approach == "retrieval" else 0,
        prompt_updates=updates if approach in ("few-shot", "prompt") else 0,
        context_tokens_per_call=tokens,
        usd_per_call=per_call,
        token_usd_per_month=per_month,
        cumulative=cumulative,
    )


def break_even_month(plan: Sequence[float], other: Sequence[float]) -> int | None:
    """The first month from which the plan costs no more than ``other`` to the horizon's end.

    ``None`` when the plan still costs more at the end of the horizon.
    """
    month: int | None = None
    for m in range(len(plan) - 1, -1, -1):
        if plan[m] <= other[m] + 1e-9:
            month = m
        else:
            break
    return month


def project_capability(
    decision: str, kind: str, answers: Answers, prices: Prices, horizon_months: int
) -> CostProjection:
    """Project the plan, fine-tune-everything and prompt-everything for one capability."""
    strategies = {
        "plan": strategy_cost(
            "plan", APPROACH_OF_DECISION[decision], kind, answers, prices, horizon_months
        ),
        "fine-tune everything": strategy_cost(
            "fine-tune everything", "lora", kind, answers, prices, horizon_months
        ),
        "prompt everything": strategy_cost(
            "prompt everything", "prompt", kind, answers, prices, horizon_months
        ),
    }
    return _projection(
        strategies,
        horizon_months,
        calls=int(answers.calls_per_month.value),
        changes_per_year=float(answers.changes_per_year.value),
        prices=prices,
    )


def project_portfolio(
    projections: Sequence[CostProjection], prices: Prices, horizon_months: int
) -> CostProjection:
    """Add up the capabilities' projections, strategy by strategy, month by month."""
    strategies: dict[str, StrategyCost] = {}
    calls = sum(p.calls_per_month for p in projections)
    for name in ("plan", "fine-tune everything", "prompt everything"):
        parts = [p.strategies[name] for p in projections]
        approaches = {s.approach for s in parts}
        token_usd = sum(s.token_usd_per_month for s in parts)
        # Per call across the project: weighted by each capability's share of the calls.
        weighted_tokens = sum(
            s.context_tokens_per_call * p.calls_per_month
            for s, p in zip(parts, projections, strict=True)
        )
        strategies[name] = StrategyCost(
            strategy=parts[0].strategy,
            approach=approaches.pop() if len(approaches) == 1 else "mixed",
            finetune_runs=sum(s.finetune_runs for s in parts),
            reindexes=sum(s.reindexes for s in parts),
            prompt_updates=sum(s.prompt_updates for s in parts),
            context_tokens_per_call=round(weighted_tokens / calls) if calls else 0,
            usd_per_call=token_usd / calls if calls else 0.0,
            token_usd_per_month=token_usd,
            cumulative=[sum(vals) for vals in zip(*(s.cumulative for s in parts), strict=True)],
        )
    return _projection(
        strategies,
        horizon_months,
        calls=calls,
        changes_per_year=sum(p.changes_per_year for p in projections),
        prices=prices,
    )


def _projection(
    strategies: dict[str, StrategyCost],
    horizon_months: int,
    *,
    calls: int,
    changes_per_year: float,
    prices: Prices,
) -> CostProjection:
    plan = strategies["plan"]
    run_usd = prices.finetune_run_usd()
    saved_runs = strategies["fine-tune everything"].finetune_runs - plan.finetune_runs
    return CostProjection(
        horizon_months=horizon_months,
        calls_per_month=calls,
        changes_per_year=changes_per_year,
        strategies=strategies,
        break_even_month={
            name: break_even_month(plan.cumulative, s.cumulative)
            for name, s in strategies.items()
            if name != "plan"
        },
        retraining_saved_usd=saved_runs * run_usd,
        finetune_run_usd=run_usd,
    )

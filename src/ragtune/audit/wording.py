"""What every format of the audit report says about costs, in the same words and figures.

The terminal table, the Markdown, the HTML page and the chart legend all describe a
:class:`CostProjection` with these helpers, so the formats never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.audit.model import STRATEGIES, CostProjection

ALTERNATIVES = STRATEGIES[1:]

COST_HEADERS = (
    "strategy",
    "approach",
    "fine-tune runs",
    "re-indexes",
    "context tokens / call",
    "USD / month in tokens",
    "total USD",
)


def usd(value: float) -> str:
    """Dollars and cents with thousands separators: ``$1,234.50``."""
    return f"${value:,.2f}"


def or_dash(value: str | None) -> str:
    """The value, or a dash when there is none."""
    return value if value else "—"


def break_even(cost: CostProjection, alternative: str) -> str:
    """When the plan becomes (and stays) no dearer than ``alternative``, in a few words."""
    if cost.strategies["plan"].cumulative == cost.strategies[alternative].cumulative:
        return "costs the same"
    month = cost.break_even_month.get(alternative)
    if month is None:
        return f"dearer at month {cost.horizon_months}"
    if month == 0:
        return "cheaper from the start"
    return f"cheaper from month {month}"


def break_even_sentence(cost: CostProjection) -> str:
    """When the plan pays back against each alternative, in one line."""
    parts = [f"{name}: {break_even(cost, name)}" for name in ALTERNATIVES]
    return "Break-even — plan vs " + "; vs ".join(parts) + "."


def changes_a_year(rate: float) -> str:
    """``about 4 changes a year``."""
    return f"about {rate:g} change{'' if rate == 1 else 's'} a year"


def retraining_saved(cost: CostProjection) -> str:
    """What the plan saves in fine-tune runs against fine-tuning everything, with the runs."""
    runs = (
        cost.strategies["fine-tune everything"].finetune_runs
        - cost.strategies["plan"].finetune_runs
    )
    if runs <= 0:
        return f"{usd(cost.retraining_saved_usd)} (no fine-tune run avoided)"
    plural = "run" if runs == 1 else "runs"
    return (
        f"{usd(cost.retraining_saved_usd)} ({runs} fine-tune {plural} avoided at "
        f"{usd(cost.finetune_run_usd)} each)"
    )


def _checkpoints(horizon: int) -> list[int]:
    """Months shown in the cumulative table: every 3 months (every 12 past 3 years), and the end."""
    step = 3 if horizon <= 36 else 12
    months = list(range(0, horizon + 1, step))
    if months[-1] != horizon:
        months.append(horizon)
    return months


@dataclass(frozen=True)
class CostRow:
    """One strategy's line of the cost table, formatted (columns as :data:`COST_HEADERS`)."""

    strategy: str
    approach: str
    finetune_runs: int
    reindexes: int
    context_tokens: str
    token_usd_per_month: str
    total: str


def cost_rows(cost: CostProjection) -> list[CostRow]:
    """The cost table: one row per strategy, in the order of :data:`STRATEGIES`."""
    return [
        CostRow(
            strategy=name,
            approach=s.approach,
            finetune_runs=s.finetune_runs,
            reindexes=s.reindexes,
            context_tokens=f"{s.context_tokens_per_call:,}",
            token_usd_per_month=usd(s.token_usd_per_month),
            total=usd(s.total),
        )
        for name, s in ((n, cost.strategies[n]) for n in STRATEGIES)
    ]


def cumulative_rows(cost: CostProjection) -> list[tuple[int, list[str]]]:
    """(month, cumulative cost of each strategy) at the months of the cumulative table."""
    return [
        (m, [usd(cost.strategies[name].cumulative[m]) for name in STRATEGIES])
        for m in _checkpoints(cost.horizon_months)
    ]

"""Cost arithmetic against cases worked by hand (the default prices, see ragtune/prices.py)."""

from __future__ import annotations

import pytest

from ragtune.audit.cost import (
    break_even_month,
    changes_by_month,
    project_capability,
    project_portfolio,
)
from ragtune.audit.model import Answer, Answers
from ragtune.prices import Prices


def given(value: object) -> Answer:
    return Answer(value, "given", 1.0, "")


def answers(calls: int, rate: float, prompt: int = 0, knowledge_tokens: int = 6000) -> Answers:
    return Answers(
        kind=given("knowledge"),
        changes_within_6_months=given(rate >= 2),
        accurate_in_12_months=given(rate < 1),
        shown_by_examples=given(False),
        high_volume=given(True),
        calls_per_month=given(calls),
        changes_per_year=given(rate),
        system_prompt_tokens=given(prompt),
        prompt_knowledge_tokens=given(knowledge_tokens),
        knowledge_in_examples=given(0.0),
    )


def test_default_unit_costs_worked_by_hand() -> None:
    prices = Prices()
    # 4 GPU hours x $2.50 + $25 evaluation + 6 engineer hours x $100 = $635
    assert prices.finetune_run_usd() == pytest.approx(635.0)
    # 50,000 tokens x $0.02/1M + 0.25 h x $100 = $0.001 + $25 = $25.001
    assert prices.reindex_usd() == pytest.approx(25.001)
    # 0.5 h x $100
    assert prices.prompt_change_usd() == pytest.approx(50.0)


def test_changes_are_spread_evenly_over_the_months() -> None:
    assert changes_by_month(4, 12) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    assert changes_by_month(12, 3) == [0, 1, 2, 3]
    assert changes_by_month(0, 2) == [0, 0, 0]


def test_quarterly_knowledge_worked_by_hand() -> None:
    """10,000 calls a month, 4 changes a year, 12 months, default prices."""
    cost = project_capability("retrieval", "knowledge", answers(10_000, 4), Prices(), 12)
    plan = cost.strategies["plan"]
    tune = cost.strategies["fine-tune everything"]
    prompt = cost.strategies["prompt everything"]

    # Output: 250 tokens x $1.50/1M = $0.000375 a call, in every strategy.
    # Retrieval: 800 tokens x $0.50/1M = $0.0004 + $0.000375 = $0.000775 a call -> $7.75 a month.
    assert plan.usd_per_call == pytest.approx(0.000775)
    assert plan.token_usd_per_month == pytest.approx(7.75)
    # 1 + 4 re-indexes x $25.001 + 12 x $7.75 = 125.005 + 93 = 218.005
    assert plan.reindexes == 5
    assert plan.total == pytest.approx(218.005)
    # Fine-tune: 1 + 4 runs x $635 + 12 x $3.75 = 3175 + 45 = 3220
    assert tune.finetune_runs == 5
    assert tune.cumulative[0] == pytest.approx(635.0)
    assert tune.cumulative[3] == pytest.approx(2 * 635 + 3 * 3.75)
    assert tune.total == pytest.approx(3220.0)
    # Prompt: 6,000 tokens x $0.50/1M = $0.003 + $0.000375 -> $33.75 a month;
    # 5 prompt edits x $50 + 12 x $33.75 = 250 + 405 = 655
    assert prompt.total == pytest.approx(655.0)
    # The plan is cheaper from month 0 against both, and saves 5 runs of $635.
    assert cost.break_even_month == {"fine-tune everything": 0, "prompt everything": 0}
    assert cost.retraining_saved_usd == pytest.approx(5 * 635.0)


def test_behaviour_prompt_uses_the_stated_system_prompt() -> None:
    cost = project_capability("lora", "behavior", answers(100_000, 1, prompt=2000), Prices(), 12)
    prompt = cost.strategies["prompt everything"]
    # 2,000 x $0.50/1M = $0.001 + $0.000375 = $0.001375 a call -> $137.50 a month
    assert prompt.token_usd_per_month == pytest.approx(137.5)
    # 2 edits x $50 + 12 x 137.5 = 1750
    assert prompt.total == pytest.approx(1750.0)
    plan = cost.strategies["plan"]
    # LoRA: 2 runs x $635 + 12 x $37.50 = 1270 + 450 = 1720.
    assert plan.total == pytest.approx(1720.0)
    # Before the change at month 12: plan 635 + 37.5 m against prompt 50 + 137.5 m, so the plan
    # is cheaper from 585 <= 100 m, month 6; at month 12, 1720 <= 1750 still.
    assert cost.break_even_month["prompt everything"] == 6
    assert cost.break_even_month["fine-tune everything"] == 0


def test_break_even_month_is_the_first_month_the_plan_stays_cheaper() -> None:
    assert break_even_month([10, 8, 6, 4], [5, 6, 7, 8]) == 2
    assert break_even_month([1, 2, 3], [2, 3, 4]) == 0
    assert break_even_month([1, 5, 9], [2, 3, 4]) is None
    # Cheaper, then dearer again at the end: no break-even within the horizon.
    assert break_even_month([1, 5, 2, 9], [2, 3, 4, 5]) is None


def test_portfolio_adds_capabilities_month_by_month() -> None:
    prices = Prices()
    one = project_capability("retrieval", "knowledge", answers(10_000, 4), prices, 12)
    two = project_capability("lora", "behavior", answers(100_000, 1, prompt=2000), prices, 12)
    total = project_portfolio([one, two], prices, 12)
    for name in ("plan", "fine-tune everything", "prompt everything"):
        expected = [
            a + b
            for a, b in zip(
                one.strategies[name].cumulative, two.strategies[name].cumulative, strict=True
            )
        ]
        assert total.strategies[name].cumulative == pytest.approx(expected)
    assert total.strategies["plan"].approach == "mixed"
    assert total.strategies["fine-tune everything"].finetune_runs == 5 + 2
    assert total.retraining_saved_usd == pytest.approx(5 * 635.0)
    assert total.calls_per_month == 110_000
    # Per call across the project, weighted by calls: (800 x 10k + 0 x 100k) / 110k = 73 tokens.
    assert total.strategies["plan"].context_tokens_per_call == 73
    plan_tokens = (
        one.strategies["plan"].token_usd_per_month + two.strategies["plan"].token_usd_per_month
    )
    assert total.strategies["plan"].usd_per_call == pytest.approx(plan_tokens / 110_000)


def test_prices_override_changes_the_projection() -> None:
    cheap = Prices(engineer_usd_per_hour=0, eval_usd_per_run=0, gpu_usd_per_hour=1)
    cost = project_capability("lora", "behavior", answers(0, 0), cheap, 6)
    # one run of 4 GPU hours x $1 and nothing else
    assert cost.strategies["plan"].cumulative == pytest.approx([4.0] * 7)

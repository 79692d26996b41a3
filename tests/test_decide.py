"""Every branch of the decision tree, and the warnings each mistake raises."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ragtune.audit.decide import Q_ACCURATE, Q_CHANGES, Q_KIND, Q_SHOWN, Q_VOLUME, decide
from ragtune.audit.model import Answer, Answers
from ragtune.prices import Prices
from ragtune.project import Capability


def given(value: object) -> Answer:
    return Answer(value, "given", 1.0, "stated in ragtune.yaml")


def answers(**overrides: object) -> Answers:
    base = Answers(
        kind=given("behavior"),
        changes_within_6_months=given(False),
        accurate_in_12_months=given(True),
        shown_by_examples=given(False),
        high_volume=given(True),
        calls_per_month=given(20_000),
        changes_per_year=given(1.0),
        system_prompt_tokens=given(0),
        prompt_knowledge_tokens=given(6000),
        knowledge_in_examples=given(0.0),
    )
    return replace(base, **{k: given(v) for k, v in overrides.items()})


def cap(**fields: object) -> Capability:
    return Capability(name="c", description="a capability", **fields)  # type: ignore[arg-type]


def codes(decision: object) -> list[str]:
    return [w.code for w in decision.warnings]  # type: ignore[attr-defined]


@pytest.mark.parametrize("changes", [True, False])
def test_knowledge_always_goes_to_retrieval(changes: bool) -> None:
    result = decide(cap(), answers(kind="knowledge", changes_within_6_months=changes), Prices())
    assert result.decision == "retrieval"
    assert [s.question for s in result.path] == [Q_KIND, Q_CHANGES, Q_ACCURATE]
    assert result.path[0].answer == "what it knows"
    assert result.path[1].answer == ("yes" if changes else "no")


def test_behaviour_that_changes_goes_to_few_shot_with_a_warning() -> None:
    result = decide(cap(), answers(changes_within_6_months=True, changes_per_year=12.0), Prices())
    assert result.decision == "few-shot"
    assert [s.question for s in result.path] == [Q_KIND, Q_CHANGES]
    assert codes(result) == ["behaviour-changes-often"]
    assert "retrained at each change" in result.warnings[0].message


def test_behaviour_that_examples_show_goes_to_few_shot() -> None:
    result = decide(cap(), answers(shown_by_examples=True), Prices())
    assert result.decision == "few-shot"
    assert [s.question for s in result.path] == [Q_KIND, Q_CHANGES, Q_SHOWN]
    assert codes(result) == []


def test_stable_behaviour_at_volume_goes_to_lora() -> None:
    result = decide(cap(), answers(), Prices())
    assert result.decision == "lora"
    assert [s.question for s in result.path] == [Q_KIND, Q_CHANGES, Q_SHOWN, Q_VOLUME]
    assert all(s.source == "given" and s.confidence == 1.0 for s in result.path)


def test_stable_behaviour_at_low_volume_stays_few_shot() -> None:
    result = decide(cap(), answers(high_volume=False, calls_per_month=50), Prices())
    assert result.decision == "few-shot"
    assert "not pay back" in result.summary


def test_fine_tuning_changing_knowledge_warns_twice() -> None:
    result = decide(
        cap(current_approach="fine-tune"),
        answers(kind="knowledge", changes_within_6_months=True, accurate_in_12_months=False),
        Prices(),
    )
    assert codes(result) == ["finetune-changing-knowledge", "fails-12-month-test"]


def test_fine_tuning_stable_knowledge_that_fails_the_12_month_test() -> None:
    result = decide(
        cap(current_approach="fine-tune"),
        answers(kind="knowledge", changes_within_6_months=False, accurate_in_12_months=False),
        Prices(),
    )
    assert codes(result) == ["fails-12-month-test"]


def test_retrieving_changing_knowledge_raises_no_warning() -> None:
    result = decide(
        cap(current_approach="retrieval"),
        answers(kind="knowledge", changes_within_6_months=True, accurate_in_12_months=False),
        Prices(),
    )
    assert codes(result) == []


def test_long_system_prompt_on_a_format_is_a_lora_candidate_with_its_monthly_cost() -> None:
    result = decide(cap(), answers(system_prompt_tokens=2000, calls_per_month=100_000), Prices())
    assert codes(result) == ["long-system-prompt"]
    # 2,000 tokens x 100,000 calls = 200M tokens at $0.50 per 1M = $100.00 a month
    assert "200.0M prompt tokens" in result.warnings[0].message
    assert "$100.00 a month" in result.warnings[0].message
    # a $635 run against $100 a month of prompt tokens
    assert "repaid in 6.3 months" in result.warnings[0].message


def test_short_system_prompt_is_not_flagged() -> None:
    result = decide(cap(), answers(system_prompt_tokens=999), Prices())
    assert "long-system-prompt" not in codes(result)


def test_threshold_of_long_prompt_comes_from_prices() -> None:
    prices = Prices(long_prompt_tokens=500)
    result = decide(cap(), answers(system_prompt_tokens=600), prices)
    assert codes(result) == ["long-system-prompt"]


def test_examples_that_teach_facts_warn_when_headed_for_an_adapter() -> None:
    result = decide(cap(), answers(knowledge_in_examples=0.4), Prices())
    assert result.decision == "lora"
    assert codes(result) == ["knowledge-in-examples"]
    assert "40%" in result.warnings[0].message

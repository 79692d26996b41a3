"""Counterfactual figures in context-aware training: changed in the passages and the answer
alike, clause numbers and references left alone, and the share of prompts honoured."""

from __future__ import annotations

import random
import re

from ragtune.behavior.counterfactual import change_figures
from ragtune.behavior.examples import Example, ExampleSet
from ragtune.behavior.raft import ContextSettings, add_context
from ragtune.context import Passage
from ragtune.facts import source_keys

CONTEXT = """[1] knowledge/dpa.md > 6. Personal Data Breach > 6.1 Provider shall notify (version 2)
6.1 Provider shall notify Customer within seventy-two (72) hours after becoming aware of a
breach. Section (3) applies. Sub-processors are notified thirty (30) days ahead.

[2] knowledge/msa.md > 13. Insurance > 13.1 During the term (version 1)
13.1 Cyber liability insurance of at least $5,000,000 per claim; uptime 99.9% of each month;
fees rise by no more than 5% a year on 2026-07-01."""


def test_each_figure_of_the_answer_changes_in_the_context_and_the_answer_alike() -> None:
    answer = "Within seventy-two (72) hours; cover of $5,000,000 and 5% a year (DPA 6.1)."
    for seed in range(20):
        changed = change_figures((CONTEXT,), answer, random.Random(seed))
        assert changed is not None
        (context,), new_answer = changed
        hours = re.search(r"within ([a-z -]+) \((\d+)\) hours", context)
        assert hours is not None and hours.group(2) != "72"
        assert f"Within {hours.group(1)} ({hours.group(2)}) hours" in new_answer
        money = re.search(r"\$([\d,]+) per claim", context)
        assert money is not None and money.group(1) != "5,000,000"
        assert f"${money.group(1)}" in new_answer
        rise = re.search(r"no more than (\d+)% a year", context)
        assert (
            rise is not None and rise.group(1) != "5" and f"{rise.group(1)}% a year" in new_answer
        )
        # What the answer does not state, and what is no figure, stays.
        for kept in ("thirty (30) days", "Section (3)", "99.9%", "2026-07-01", "(version 2)",
                     "6.1 Provider shall", "13.1 Cyber", "[2] knowledge/msa.md"):  # fmt: skip
            assert kept in context
        assert new_answer.endswith("(DPA 6.1).")
        # The answer's figures are now read only from the changed context.
        assert source_keys(new_answer) - {"6.1", "6", "1"} <= source_keys(context)
    same = change_figures((CONTEXT,), answer, random.Random(3))
    assert same == change_figures((CONTEXT,), answer, random.Random(3))


def test_an_answer_without_figures_is_left_alone() -> None:
    assert change_figures((CONTEXT,), "The laws of Delaware (NDA 11.1).", random.Random(0)) is None
    # Words that do not spell the bracketed number are no figure.
    assert change_figures((CONTEXT,), "As Section (3) says.", random.Random(0)) is None


def test_add_context_changes_the_figures_of_a_share_of_the_prompts_with_their_passage() -> None:
    passage = Passage(
        "Leave: twenty-five (25) days a year.", "docs/leave.md", "Leave", "c1", "h", 1
    )
    examples = ExampleSet(
        "x.jsonl",
        [Example(f"Question {n}?", "Twenty-five (25) days (LP 1.1).", line=n) for n in range(40)],
        "sha",
    )

    def retrieve(query: str, k: int) -> list[Passage]:
        return [passage]

    def run(share: float, oracle: float = 1.0) -> tuple[list[Example], int]:
        settings = ContextSettings(
            passages=1, oracle_share=oracle, pool=1, counterfactual=share, order="retrieved"
        )
        out, record = add_context(examples, retrieve, settings, capabilities=["x"], snapshot=1)
        assert record.to_record().counterfactual == record.counterfactual
        return out.examples, record.counterfactual

    rows, changed = run(0.5)
    assert 10 < changed < 30
    moved = [e for e in rows if "(25)" not in (e.context or "")]
    assert len(moved) == changed
    for example in moved:
        figure = re.search(r"\((\d+)\) days", example.output)
        assert figure is not None and f"({figure.group(1)}) days a year" in (example.context or "")
    assert run(0.0)[1] == 0 and all("(25)" in (e.context or "") for e in run(0.0)[0])
    # Without its passage an example keeps its answer: there is nothing to read it from.
    assert run(1.0, oracle=0.0)[1] == 0

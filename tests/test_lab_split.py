"""The lab tests on what it did not train on: the split, what the knowledge adapters learn from,
the seen / unseen / rephrased columns, verdicts on unseen items only, ``--arms``, the estimate
and the eval set's ``rephrased`` field. All fast: hand-made items and calls, no model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.holdout import input_key, is_held_out
from ragtune.lab.evalset import EvalError, EvalItem, default_eval_paths, load_eval
from ragtune.lab.metrics import arm_summary, fact_score
from ragtune.lab.model import ARMS, ArmPlan, Call, Lab, LabError, LabSettings, parse_arms
from ragtune.lab.records import Estimate
from ragtune.lab.results import ArmResult, LabResult, Scores
from ragtune.lab.runner import _split
from ragtune.lab.train import _reference_examples, split_lines
from ragtune.lab.verdict import audit_verdicts
from ragtune.project import load_project
from ragtune.runtime.runtime import Route

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "contract-review"
runner = CliRunner()


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    return load_project(EXAMPLE)


def _lab(project: Any, items: list[EvalItem], settings: LabSettings | None = None) -> Lab:
    """A lab over ``items`` with a stand-in runtime: knowledge capabilities answer from
    sources, the audit chose retrieval for templates."""
    caps = {
        "templates": SimpleNamespace(answers_from_sources=True, context_from=[]),
        "risk_flags": SimpleNamespace(answers_from_sources=False, context_from=["playbook"]),
    }
    runtime = SimpleNamespace(capability=caps.__getitem__, decisions={"templates": "retrieval"})
    return Lab(project, project, runtime, settings or LabSettings(), items, None, items)  # type: ignore[arg-type]


def _call(arm: str, item: EvalItem, answer: str, lab: Lab, adapter: str | None) -> Call:
    return Call(
        arm, item, answer, fact_score(answer, item.expected), None, None, 1.0, 100, 10, None,
        "before", lab.exposure(adapter, item),
    )  # fmt: skip


# --- the split and what the knowledge adapters train on -----------------------------------------


def test_the_knowledge_adapters_train_on_the_train_lines_only(example) -> None:  # type: ignore[no-untyped-def]
    items = [i for i in load_eval(default_eval_paths(example), example) if i.answer]
    lab = _lab(example, items)
    train, held = split_lines(lab, "templates")
    assert train and held
    assert all(not is_held_out(i.input) for i in train) and all(is_held_out(i.input) for i in held)
    examples = _reference_examples(lab, "templates", revised=False)
    trained = {e.input for e in examples.examples}
    assert trained == {i.input for i in train}
    assert not trained & {i.input for i in held}  # a held-out line is never trained on
    # After the change the same lines are trained on, with their revised answers.
    revised = _reference_examples(lab, "templates", revised=True)
    assert {e.input for e in revised.examples} == trained
    assert {e.output for e in revised.examples} != {e.output for e in examples.examples}
    # Another seed, another split: the adapters learn from other lines.
    other = _lab(example, items, LabSettings(split_seed=7))
    assert {e.input for e in _reference_examples(other, "templates", revised=False).examples} != (
        trained
    )


def test_the_split_is_recorded_with_its_seed_share_and_counts(example) -> None:  # type: ignore[no-untyped-def]
    items = load_eval(default_eval_paths(example), example)
    lab = _lab(example, items, LabSettings(split_seed=3))
    record = _split(lab)
    assert (record.seed, record.share) == (3, 0.5)
    for name in ("templates", "risk_flags"):
        of = [i for i in items if i.capability == name]
        held = sum(is_held_out(i.input, seed=3) for i in of)
        assert record.by_capability[name] == {"train": len(of) - held, "held_out": held}
    assert LabResult(split=record).to_dict()["split"]["by_capability"]["templates"]["train"] > 0


def test_no_train_line_to_learn_from_is_an_error_that_says_what_to_do(example) -> None:  # type: ignore[no-untyped-def]
    held = [i for i in load_eval(default_eval_paths(example), example) if is_held_out(i.input)]
    lab = _lab(example, [i for i in held if i.capability == "templates"])
    with pytest.raises(LabError, match=r"none of its \d+ evaluated lines is a train line.*--arms"):
        _reference_examples(lab, "templates", revised=False)


# --- seen, unseen and rephrased -----------------------------------------------------------------


def test_seen_unseen_and_rephrased_are_scored_apart(example) -> None:  # type: ignore[no-untyped-def]
    trained = EvalItem("templates", "How long is the NDA?", ("2 years",), rephrased=("NDA term?",))
    other = EvalItem("templates", "Which law governs?", ("Delaware",), rephrased=("Law?",))
    lab = _lab(example, [trained, other])
    adapter = "lab-templates-lora"
    lab.plans[("LoRA", "templates")] = ArmPlan(
        "LoRA", "templates", Route("templates", "lora", (), adapter), None, "x"
    )
    lab.plans[("RAG", "templates")] = ArmPlan(
        "RAG", "templates", Route("templates", "retrieval", ("templates",)), None, "x"
    )
    lab.trained_on[adapter] = frozenset({input_key(trained.input)})
    (rephrasing,) = trained.rephrasings()
    assert rephrasing.original == trained.input and rephrasing.expected == trained.expected
    assert [lab.exposure(adapter, i) for i in (trained, other, rephrasing)] == [
        "seen", "unseen", "rephrased",
    ]  # fmt: skip
    assert lab.exposure(adapter, other.rephrasings()[0]) == "unseen"
    assert lab.exposure(None, trained) == "unseen"  # no adapter: nothing is seen
    from ragtune.lab.arms import asked

    # The adapter arm is asked the rephrasing of what it trained on, the RAG arm is not.
    assert [i.input for i in asked(lab, "LoRA", [trained, other], "before")] == [
        "How long is the NDA?", "NDA term?", "Which law governs?",
    ]  # fmt: skip
    assert len(asked(lab, "RAG", [trained, other], "before")) == 2
    assert len(asked(lab, "LoRA", [trained, other], "after")) == 2

    calls = [
        _call("LoRA", trained, "two (2) years", lab, adapter),  # memorised
        _call("LoRA", rephrasing, "I do not know", lab, adapter),  # not in other words
        _call("LoRA", other, "New York", lab, adapter),  # never trained on
    ]
    lora = arm_summary(lab, "LoRA", calls)
    assert (lora.fact_accuracy, lora.items) == (0.0, 1)  # the unseen score ranks
    assert lora.seen == Scores(1, 1.0, None)
    assert lora.rephrased == Scores(1, 0.0, None)
    assert lora.by_capability["templates"].seen == Scores(1, 1.0, None)
    rag = arm_summary(lab, "RAG", [_call("RAG", i, "2 years", lab, None) for i in (trained, other)])
    assert (rag.fact_accuracy, rag.items, rag.seen, rag.rephrased) == (0.5, 2, None, None)

    # An older adapter that does not say what it trained on: all unseen, "seen" unknown.
    lab.trained_on[adapter] = None
    assert lab.exposure(adapter, trained) == "unseen"
    blind = arm_summary(lab, "LoRA", [_call("LoRA", trained, "2 years", lab, adapter)])
    assert (blind.seen_known, blind.seen, blind.fact_accuracy) == (False, None, 1.0)


# --- verdicts on unseen items only --------------------------------------------------------------


def _arm(name: str, unseen: float | None, items: int, seen: float | None = None) -> ArmResult:
    from ragtune.lab.results import CapabilityResult

    seen_scores = None if seen is None else Scores(4, seen, None)
    return ArmResult(
        name,
        fact_accuracy=unseen,
        items=items,
        seen=seen_scores,
        by_capability={"templates": CapabilityResult(items, unseen, None, 1.0, seen_scores)},
    )


def test_a_seen_score_never_makes_an_arm_the_best(example) -> None:  # type: ignore[no-untyped-def]
    lab = _lab(example, [EvalItem("templates", "q", ("a",))])
    arms = [_arm("RAG", 0.5, 4), _arm("LoRA", None, 0, seen=1.0), _arm("zero-shot", 0.25, 4)]
    (verdict,) = audit_verdicts(lab, arms, None)
    assert verdict.best == "RAG" and verdict.agrees is True
    assert "LoRA" not in verdict.scores and verdict.unranked == ("LoRA",)
    assert "LoRA left out: scored only on questions its adapter trained on" in verdict.text
    # With an unseen score, the LoRA arm is ranked on it, not on its seen 100%.
    arms[1] = _arm("LoRA", 0.0, 4, seen=1.0)
    (verdict,) = audit_verdicts(lab, arms, None)
    assert verdict.scores["LoRA"] == 0.0 and verdict.best == "RAG"
    assert "against LoRA 0.00" in verdict.text


def test_an_audit_arm_with_only_seen_items_cannot_be_judged(example) -> None:  # type: ignore[no-untyped-def]
    lab = _lab(example, [EvalItem("templates", "q", ("a",))])
    lab.runtime.decisions["templates"] = "lora"  # type: ignore[attr-defined]
    arms = [_arm("RAG", 0.5, 4), _arm("LoRA", None, 0, seen=1.0)]
    (verdict,) = audit_verdicts(lab, arms, None)
    assert verdict.agrees is None and verdict.best is None
    assert "the lab cannot judge: LoRA was scored only on questions its adapter trained on" in (
        verdict.text
    )


# --- --arms and the estimate --------------------------------------------------------------------


def test_arms_are_chosen_by_name_in_any_case_and_kept_in_order() -> None:
    assert parse_arms("lora, FEW-SHOT") == ("few-shot", "LoRA")
    assert parse_arms("rag+lora,rag") == ("RAG", "RAG+LoRA")
    with pytest.raises(LabError, match=r"unknown arm 'lora-only'; the arms are zero-shot, "):
        parse_arms("few-shot,lora-only")
    with pytest.raises(LabError, match="names no arm"):
        parse_arms(" , ")
    with pytest.raises(LabError, match="unknown arm 'nope'"):
        LabSettings(arms=("nope",))
    assert LabSettings().arms == ARMS


def test_lab_cli_refuses_an_unknown_arm_with_the_valid_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["lab", str(EXAMPLE), "--arms", "few-shot,lorra"])
    assert result.exit_code == 2
    assert "unknown arm 'lorra'" in result.output
    assert "zero-shot, few-shot, RAG, LoRA, RAG+LoRA" in result.output
    help_text = runner.invoke(app, ["lab", "--help"]).output
    assert "--arms" in help_text and "--split-seed" in help_text


def test_the_estimate_says_it_is_one() -> None:
    estimate = Estimate(
        seconds=1800.0, adapters=2, steps=120, seconds_per_step=3.0, step_measured=False,
        calls=600, seconds_per_call=2.4,
    )  # fmt: skip
    text = estimate.text()
    assert text.startswith("estimate: about 30 min (2 adapters to train x 120 steps x 3.0 s")
    assert "(assumed)" in text and "an estimate, not a measurement" in text
    assert Estimate.from_dict(estimate.to_dict()) == estimate


# --- the eval set's rephrased field -------------------------------------------------------------


def test_rephrased_is_checked_line_by_line(tmp_path: Path, example) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "eval.jsonl"
    head = '{"capability": "templates", "input": "How long is the NDA?", "expected": ["2 years"]'
    path.write_text(
        "\n".join(
            [
                head + ', "rephrased": ["What is the NDA term?", "NDA duration?"]}',
                head + ', "rephrased": "What is the NDA term?"}',
                head + ', "rephrased": ["", 3]}',
                head + ', "rephrased": ["how long is  the NDA?"]}',
                head + ', "rephrased": ["NDA term?", "nda term?"]}',
                head + ', "rephrase": ["NDA term?"]}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(EvalError) as caught:
        load_eval([path], example)
    text = str(caught.value)
    assert "5 problems" in text
    assert "eval.jsonl:2: field 'rephrased' must be a list of non-empty strings" in text
    assert "eval.jsonl:3: field 'rephrased' must be a list of non-empty strings" in text
    assert "eval.jsonl:4: field 'rephrased[1]' is the 'input' itself" in text
    assert "eval.jsonl:5: field 'rephrased[2]' repeats an earlier rephrasing" in text
    assert "eval.jsonl:6: unknown field 'rephrase' (did you mean 'rephrased'?)" in text
    path.write_text(head + ', "rephrased": ["What is the NDA term?"]}\n', encoding="utf-8")
    (item,) = load_eval([path], example)
    assert item.rephrased == ("What is the NDA term?",)
    (again,) = item.rephrasings()
    assert again.where == item.where + "~1" and again.expected == item.expected


def test_the_example_lines_carry_rephrasings_of_the_same_question(example) -> None:  # type: ignore[no-untyped-def]
    items = load_eval(
        [EXAMPLE / "eval" / "templates.jsonl", EXAMPLE / "eval" / "changed.jsonl"], example
    )
    assert items and all(1 <= len(i.rephrased) <= 2 for i in items)
    for item in items:
        assert all(r.lower() != item.input.lower() for r in item.rephrased), item.where

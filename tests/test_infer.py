"""The inference from descriptions, measured on labelled sets written apart from the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.audit import infer
from ragtune.audit.answers import resolve_answers
from ragtune.audit.decide import decide
from ragtune.prices import Prices
from ragtune.project import Capability, Project, ProjectConfig

DATA = Path(__file__).resolve().parent / "data"
SETS = [
    "capabilities_dev.jsonl",
    "capabilities_holdout.jsonl",
    "capabilities_blind.jsonl",
    "capabilities_blind2.jsonl",
    "capabilities_blind3.jsonl",
    "capabilities_blind4.jsonl",
    "capabilities_blind5.jsonl",
    "capabilities_blind6.jsonl",
    "capabilities_blind7.jsonl",
]


def _load(name: str) -> list[dict[str, object]]:
    path = DATA / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _decide_from_text(description: str, tmp_path: Path) -> str:
    """The full audit path (answers -> tree) for a capability given only its description."""
    capability = Capability(name="c", description=description)
    config = ProjectConfig(version=1, project="p", capabilities=[capability])
    project = Project(config=config, path=tmp_path / "ragtune.yaml")
    answers = resolve_answers(project, capability)
    return decide(capability, answers, Prices()).decision


@pytest.mark.parametrize("name", SETS)
def test_labelled_set_decided_at_least_90_percent_right(name: str, tmp_path: Path) -> None:
    rows = _load(name)
    assert len(rows) >= 50
    assert {r["decision"] for r in rows} == {"retrieval", "few-shot", "lora"}
    wrong = [
        (r["decision"], got, r["description"])
        for r in rows
        if (got := _decide_from_text(str(r["description"]), tmp_path)) != r["decision"]
    ]
    accuracy = 1 - len(wrong) / len(rows)
    assert accuracy >= 0.9, f"{accuracy:.0%} right on {name}; wrong: {wrong}"


@pytest.mark.parametrize("name", SETS)
def test_labelled_kind_at_least_90_percent_right(name: str) -> None:
    rows = _load(name)
    right = sum(infer.infer_kind(str(r["description"])).value == r["kind"] for r in rows)
    assert right / len(rows) >= 0.9


def test_labelled_volatility_of_knowledge() -> None:
    rows = [
        r
        for name in SETS[:2]
        for r in _load(name)
        if r["kind"] == "knowledge" and r.get("volatile") is not None
    ]
    assert len(rows) >= 20
    right = sum(
        infer.infer_changes(str(r["description"]), "knowledge").value == r["volatile"] for r in rows
    )
    assert right / len(rows) >= 0.9


def test_every_inferred_answer_names_the_words_it_rests_on() -> None:
    result = infer.infer_kind(
        "Quote shipping rates from the carrier tables we update every quarter."
    )
    assert result.value == "knowledge"
    assert '"rates"' in result.reason or '"shipping rates"' in result.reason
    change = infer.infer_changes("Quote shipping rates we update every quarter.", "knowledge")
    assert change.value is True and "update" in change.reason


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("prices updated quarterly", 4.0),
        ("the menu franchisees edit weekly", 52.0),
        ("a guide we revise every month", 12.0),
        ("guidelines revised every five years", 0.2),
        ("tables the team pushes a few times a year", 4.0),
    ],
)
def test_change_rate_read_from_words(text: str, rate: float) -> None:
    found = infer.change_rate(text)
    assert found is not None and found.value == rate


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("each of our 50k daily support replies", 1_500_000),
        ("roughly 3 million lines an hour", 2_190_000_000),
        ("on all 300k monthly conversations", 300_000),
        ("the 8,000 filings we process each week", 34_640),
        ("42 reason codes across roughly two million cases a month", 2_000_000),
        ("for every gift processed, over a hundred thousand a year", 8_333),
        ("for 60 branches, thousands per month", 2_000),
    ],
)
def test_volume_read_from_words(text: str, calls: int) -> None:
    found = infer.calls_per_month(text)
    assert found is not None and found.value == calls


def test_years_and_token_counts_are_not_volumes() -> None:
    assert infer.calls_per_month("Incoterms 2020 definitions explained each day") is None
    assert infer.calls_per_month("a 2,500-token prompt per day") is None
    tokens = infer.system_prompt_tokens("our 1,800-token system prompt describes the format")
    assert tokens is not None and tokens.value == 1800


def test_behaviour_that_is_rewritten_is_not_a_behaviour_that_changes() -> None:
    task = infer.infer_changes("Rewrite job postings in our inclusive house style.", "behavior")
    moving = infer.infer_changes(
        "The marketing team rewrites the tone guide every month; blurbs follow it.", "behavior"
    )
    assert task.value is False
    assert moving.value is True


def test_negated_examples_count_against_few_shot() -> None:
    shown = infer.infer_shown_by_examples("two examples never get the nuance right")
    assert shown is not None and shown.value is False
    shown = infer.infer_shown_by_examples("a couple of samples make it obvious")
    assert shown is not None and shown.value is True

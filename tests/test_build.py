"""plan and build as a library step: the audit's decisions alone, then sync and train."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from ragtune.audit import decisions, run_audit
from ragtune.build import build, make_plan
from ragtune.project import load_project

PROJECT = """
version: 1
project: built
knowledge:
  embedder: hashing
capabilities:
  - name: policies
    description: Answer questions about our current leave policy.
    kind: knowledge
    changes_within_6_months: true
    sources: [docs/]
  - name: flags
    description: Flag each clause in our JSON risk format, at high volume.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: false
    calls_per_month: 50000
    examples: flags.jsonl
    train: {max_steps: 3, batch_size: 2, max_length: 96, eval_max_new_tokens: 0}
  - name: summary
    description: Summarise one clause in plain English for account managers.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: true
    calls_per_month: 300
    examples: summaries.jsonl
"""


@pytest.fixture
def folder(write_project: Callable[..., Path]) -> Path:
    folder = write_project(PROJECT)
    (folder / "docs").mkdir()
    (folder / "docs" / "leave.md").write_text("# Leave\n\n## 1. Annual\n\nTwenty-five days.\n")
    flags = [
        {"input": f"Clause {i}: term {i} years.", "output": '{"risk": "low"}'} for i in range(12)
    ]
    (folder / "flags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flags))
    rows = [{"input": "Notices by email.", "output": "Send notices by email."}] * 3
    (folder / "summaries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_decisions_are_the_audits_for_the_capabilities_asked(folder: Path) -> None:
    project = load_project(folder)
    full = {c.name: c.decision for c in run_audit(project).capabilities}
    assert decisions(project) == full == {
        "policies": "retrieval", "flags": "lora", "summary": "few-shot",
    }  # fmt: skip
    assert decisions(project, ["flags"]) == {"flags": "lora"}


def test_build_without_training_syncs_only(folder: Path) -> None:
    project = load_project(folder)
    built = build(project, train=False)
    assert built.knowledge is not None and built.knowledge.snapshot == 1
    assert built.adapters == [] and built.planned == []
    assert make_plan(project).knowledge.up_to_date  # type: ignore[union-attr]


@pytest.mark.slow
def test_build_trains_what_the_plan_lists_then_nothing(
    folder: Path, pytestconfig: pytest.Config
) -> None:
    # The base model's de-quantised weights, shared across test runs: 20 s once, 1 s after.
    (folder / ".ragtune").mkdir()
    (folder / ".ragtune" / "models").symlink_to(pytestconfig.cache.mkdir("ragtune-models"))
    project = load_project(folder)
    announced: list[str] = []
    steps: list[int] = []

    @contextmanager
    def training(adapter):  # type: ignore[no-untyped-def]
        announced.append(f"{adapter.capability}:{adapter.action}")
        yield lambda step, total, loss: steps.append(step)

    built = build(project, training=training)
    assert announced == ["flags:train"] and steps == [1, 2, 3]  # the bar is fed every step
    assert [done.capability for done in built.adapters] == ["flags"]
    assert built.knowledge is not None and built.knowledge.embedded > 0

    again = build(project, training=training)
    assert again.adapters == [] and announced == ["flags:train"]
    assert [(a.capability, a.action) for a in again.planned] == [("flags", "none")]
    assert again.knowledge is not None and again.knowledge.embedded == 0

    # New examples: a retrain, here on a budget that `configure` sets.
    with (folder / "flags.jsonl").open("a") as handle:
        handle.write(json.dumps({"input": "Clause 9: term 9 years.", "output": '{"risk": "low"}'}))
    budget = build(
        project, training=training, configure=lambda cap, config: replace(config, max_steps=1)
    )
    assert announced == ["flags:train", "flags:retrain"] and steps[-1] == 1
    assert budget.adapters[0].result.manifest.training.steps == 1

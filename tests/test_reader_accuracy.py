"""templates against issue 14's target (fact accuracy >= 0.8 on held-out questions, before and
after legal's revision), as the example serves it and with the reader the example ships.

The example answers templates with quotes (``answer: quote``: the clause of the retrieved
passages closest to the question, word for word): 0.91 of the 11 held-out questions before the
revision (0.74 of their 19 rephrasings) and 1.00 of the 6 it changes after it (0.78 of 9), 37
of 45 right. The target holds; :data:`QUOTE_FLOORS` is it.

The shipped reader writing the answer instead (``answer: generate``; 99 steps over the team's
13 train-side pairs and 117 pairs made from the templates' clauses, passages reranked), its
answers checked against their passages as the runtime serves them (an unsupported one replaced
by the closest clause's quote, :mod:`ragtune.runtime.support`), answers 0.82 and 0.83 (0.68 and
0.67 of the rephrasings): 33 of 45 right, where plain RAG with the base model gets 0.09 and 0.00
and the reader unchecked 0.64 and 0.50. The test holds about that level (:data:`FLOORS`, one
answer of slack) so that a regression fails.

The scoring is ``scripts/score_reader.py``'s (:func:`score`: the served runtime on a copy of the
project, the change set applied as the lab's drift test applies it), loaded from the script so
the test and the script measure the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ragtune.examples import example_path
from ragtune.holdout import input_key
from ragtune.project import load_project
from scripts_loader import load_script

EXAMPLE = example_path("contract-review")
SHIPPED = EXAMPLE / "adapters" / "templates"
FLOORS = {"before": 0.72, "after": 0.66}
"""Fact accuracy on the held-out questions the shipped reader holds, checked as served, per
phase (measured 0.82 and 0.83; one answer of slack each)."""
QUOTE_FLOORS = {"before": 0.8, "after": 0.8}
"""Fact accuracy of the quoted answers per phase: issue 14's target (measured 0.91 and 1.00)."""


def _scoring() -> ModuleType:
    """``scripts/score_reader.py`` as a module."""
    return load_script("score_reader")


def test_only_questions_the_shipped_reader_never_trained_on_are_scored() -> None:
    """The held-out side of the reader's split: none of its inputs is among those the shipped
    reader's manifest says it trained on; the after phase is the lines the change set revises."""
    from ragtune.adapters import MANIFEST

    score = _scoring()
    project = load_project(EXAMPLE)
    before = score.held_out_items(project, "templates", after=False)
    after = score.held_out_items(project, "templates", after=True)
    trained = set(json.loads((SHIPPED / MANIFEST).read_text())["dataset"]["inputs"])
    assert len(before) == 11 and len(after) == 6
    assert {i.input for i in after} <= {i.input for i in before}
    assert all(i.after is not None for i in after)
    assert not {input_key(i.input) for i in before} & trained
    assert sum(len(i.rephrased) for i in before) == 19


def test_the_held_out_lines_come_from_the_readers_own_question_files(
    write_project: Callable[..., Path],
) -> None:
    """A reader with ``questions:`` is scored on the held-out side of those files only, as its
    team pairs are read from them."""
    from ragtune.holdout import is_held_out

    folder = write_project(
        """
        version: 1
        project: reading
        capabilities:
          - name: policies
            description: Answer questions about our current leave policy.
            kind: knowledge
            changes_within_6_months: true
            sources: [docs/]
            reader: {questions: [eval/mine.jsonl]}
        """
    )
    (folder / "docs").mkdir()
    (folder / "docs" / "leave.md").write_text("# Leave\n\n1.1 Twenty-five (25) days.\n")
    (folder / "eval").mkdir()
    asked = [f"How many leave days does policy {n} give?" for n in range(40)]
    held = [q for q in asked if is_held_out(q)]
    for name, questions in (("mine", asked[:20]), ("other", asked[20:])):
        lines = [
            json.dumps({"capability": "policies", "input": q, "expected": ["25 days"]})
            for q in questions
        ]
        (folder / "eval" / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    items = _scoring().held_out_items(load_project(folder), "policies", after=False)
    assert [i.input for i in items] == [q for q in held if q in asked[:20]] != []


def test_a_capability_without_held_out_lines_is_named() -> None:
    score = _scoring()
    with pytest.raises(score.RagtuneError, match=r"'rates' has no eval line held out"):
        score.held_out_items(load_project(EXAMPLE), "rates", after=False)


@pytest.mark.slow
def test_the_shipped_reader_holds_its_measured_accuracy_before_and_after_the_revision(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """Served as the server serves it (the shipped reader installed, four passages reranked,
    llama.cpp, greedy, its answers checked against their passages), on the held-out questions:
    at least :data:`FLOORS` per phase."""
    from ragtune.build import install_shipped

    score = _scoring()
    project = load_project(example_project(tmp_path / "cr", sync=True))
    install_shipped(project, "templates")
    phases = score.score(project, "templates", drift=project.root / "changes", answer="generate")
    shown = score.report(phases, "templates")
    assert [p.name for p in phases] == ["before", "after"], shown
    assert all(a.adapter == "templates" for p in phases for a in p.asked), shown
    for phase in phases:
        assert (phase.accuracy() or 0.0) >= FLOORS[phase.name], shown
    # What the check replaced was the reader's, and is now a cited clause of its passages.
    for replaced in (a for p in phases for a in p.asked if a.unsupported is not None):
        assert replaced.answer != replaced.unsupported and replaced.answer.endswith("]."), shown
    # The original's documents were not touched: the revision went to the lab's copy.
    assert "within seventy-two (72)" in (project.root / "knowledge" / "dpa.md").read_text()


def test_the_example_quotes_the_right_clause_before_and_after_the_revision(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """The example as it is served (``answer: quote``): at least :data:`QUOTE_FLOORS` per phase
    on the held-out questions, no model loaded, every answer cited."""
    score = _scoring()
    project = load_project(example_project(tmp_path / "cr", sync=True))
    phases = score.score(project, "templates", drift=project.root / "changes")
    shown = score.report(phases, "templates")
    assert shown.startswith("templates: RAG, quoted"), shown
    assert all(a.strategy == "quote" and a.answer.endswith("].") for p in phases for a in p.asked)
    for phase in phases:
        assert (phase.accuracy() or 0.0) >= QUOTE_FLOORS[phase.name], shown

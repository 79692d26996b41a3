"""risk_flags against issue 14's targets (guided compliance >= 98%, category accuracy >= 90%) on
the example's held-out eval clauses and on 30 clauses written for this test
(``tests/data/risk_flag_clauses.jsonl``), with the adapter the example ships.

The category is picked by the capability's label classifier (``classify: category``, tuned here
as ``ragtune build`` tunes it) and the shipped adapter (2 epochs with 3 worked examples a
clause) writes the risk and the rationale: 28 of 30 new clauses and 12 of 12 eval clauses were
measured right, so both sets are held to the 90% target. Without the classifier the adapter
names 24 of 30 (README, "Behaviour in weights").

The scoring is ``scripts/score_risk_flags.py``'s (:func:`score`, the runtime as the server runs
it), loaded here from the script so the test and the script measure the same way.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ragtune.examples import example_path
from ragtune.project import load_project
from scripts_loader import load_script

CLAUSES = Path(__file__).resolve().parent / "data" / "risk_flag_clauses.jsonl"
EXAMPLE = example_path("contract-review")
SHIPPED = EXAMPLE / "adapters" / "risk_flags"


def _scoring() -> ModuleType:
    """``scripts/score_risk_flags.py`` as a module."""
    return load_script("score_risk_flags")


def _grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9$%£]+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _inputs(path: Path) -> list[str]:
    return [json.loads(line)["input"] for line in path.read_text().splitlines() if line.strip()]


# -- the new clauses -----------------------------------------------------------------------------


def test_the_new_clauses_are_thirty_valid_flags_over_the_trained_categories() -> None:
    """30 clauses, each with a category of the contract's enum that the training set teaches, a
    risk level and a note; spread over at least 15 categories."""
    score = _scoring()
    project = load_project(EXAMPLE)
    clauses = score.load_clauses(CLAUSES, score.categories(project))
    assert len(clauses) == 30
    trained = {
        json.loads(json.loads(line)["output"])["category"]
        for line in (EXAMPLE / "behavior" / "risk_flags.jsonl").read_text().splitlines()
    }
    spread = Counter(c.category for c in clauses)
    assert set(spread) <= trained and len(spread) >= 15, spread
    assert max(spread.values()) <= 3, spread
    assert {c.risk for c in clauses} == {"low", "medium", "high"}
    notes = [json.loads(line)["note"] for line in CLAUSES.read_text().splitlines()]
    assert all(isinstance(n, str) and len(n) > 20 for n in notes)


def test_the_new_clauses_are_not_copies_of_training_or_eval_lines() -> None:
    """No new clause shares more than a fifth of its word 5-grams with any training example or
    eval line (a copy or a light paraphrase shares most of them), nor repeats one of them."""
    new = _inputs(CLAUSES)
    seen = _inputs(EXAMPLE / "behavior" / "risk_flags.jsonl") + _inputs(
        EXAMPLE / "eval" / "clauses.jsonl"
    )
    assert len(set(new)) == len(new)
    seen_grams = [_grams(text) for text in seen]
    for text in new:
        mine = _grams(text)
        shared = max(len(mine & other) / len(mine) for other in seen_grams)
        assert shared <= 0.2, (round(shared, 2), text)


def test_a_clauses_file_with_an_unknown_category_is_refused_naming_the_line(
    tmp_path: Path,
) -> None:
    score = _scoring()
    bad = tmp_path / "clauses.jsonl"
    line = {"input": "Either party may assign to an Affiliate.", "category": "Anti-Assigment"}
    bad.write_text(json.dumps({**line, "category": "Anti-Assignment"}) + "\n" + json.dumps(line))
    with pytest.raises(score.ClauseError, match=r"clauses.jsonl:2: category 'Anti-Assigment'"):
        score.load_clauses(bad, score.categories(load_project(EXAMPLE)))
    bad.write_text(json.dumps({**line, "category": "Anti-Assignment", "risk": "severe"}))
    with pytest.raises(score.ClauseError, match=r"clauses.jsonl:1: risk 'severe'"):
        score.load_clauses(bad, score.categories(load_project(EXAMPLE)))


def test_an_answer_kept_from_the_repair_is_not_first_attempt_compliance() -> None:
    """Compliance counts the first answer only: an answer the runtime had to repair is not
    compliant, even though the kept one is valid; the category is scored on the kept answer."""
    from ragtune.runtime.runtime import Result, Route

    score = _scoring()
    clause = score.Clause("Neither party may assign ...", "Anti-Assignment", "low", "x:1")
    answer = '{"category": "Anti-Assignment", "risk": "low", "rationale": "Mutual: consent."}'
    route = Route("risk_flags", "lora", ("playbook",), "risk_flags")
    first = score.flag(clause, Result(answer, route, contract_ok=True), 1.0)
    repaired = score.flag(clause, Result(answer, route, contract_ok=True, repaired=True), 1.0)
    broken = score.flag(clause, Result("{not json", route, contract_ok=False), 1.0)
    wrong = score.flag(
        clause, Result(answer.replace("Anti-Assignment", "Parties"), route, contract_ok=True), 1.0
    )
    assert (first.first_ok, first.category_right, first.risk_right) == (True, True, True)
    assert (repaired.first_ok, repaired.ok, repaired.category_right) == (False, True, True)
    assert (broken.first_ok, broken.category) == (False, None)
    measured = score.Score(flagged=[first, repaired, broken, wrong])
    assert measured.compliance == 0.5 and measured.compliance_after_repair == 0.75
    assert measured.category_accuracy == 0.5 and not measured.meets_targets
    assert measured.misses() == [repaired, broken, wrong]


# -- the shipped adapter meets the targets ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_the_shipped_risk_flags_adapter_meets_the_targets_on_new_and_held_out_clauses(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """Served as the server serves it (the shipped adapter installed, the classifier tuned, the
    playbook retrieved, guided decoding, llama.cpp on one thread): >= 98% of first answers valid
    against the schema and >= 90% of categories right, on both sets."""
    from ragtune.adapters import MANIFEST
    from ragtune.build import install_shipped

    if not (SHIPPED / MANIFEST).is_file():
        pytest.skip(
            f"the example does not ship the risk_flags adapter yet ({SHIPPED} has no {MANIFEST})"
        )
    score = _scoring()
    project = load_project(example_project(tmp_path / "cr", sync=True, shared_models=True))
    install_shipped(project, "risk_flags")
    allowed = score.categories(project)
    for label, clauses in (
        ("the 30 new clauses", score.load_clauses(CLAUSES, allowed)),
        ("the eval clauses", score.load_eval_clauses(project, allowed)),
    ):
        measured = score.score(project, clauses, threads=1)
        shown = score.report(measured, label)
        assert (measured.strategy, measured.adapter) == ("lora", "risk_flags"), shown
        assert measured.classifier == "category", shown
        assert measured.compliance >= score.COMPLIANCE_TARGET, shown
        assert measured.category_accuracy >= score.CATEGORY_TARGET, shown

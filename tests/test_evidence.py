"""Measured answers: git history of real repositories made here, sources' text, examples."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.audit import evidence, run_audit
from ragtune.project import load_project

DAY = 86_400
NOW = time.time()


def git(repo: Path, *args: str, days_ago: float = 0) -> None:
    stamp = f"@{int(NOW - days_ago * DAY)} +0000"
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def commit(repo: Path, path: str, text: str, days_ago: float) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", path, days_ago=days_ago)
    git(repo, "commit", "-q", "-m", f"edit {path}", days_ago=days_ago)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    return tmp_path


def test_churn_counts_changes_in_6_and_12_months(repo: Path) -> None:
    commit(repo, "docs/prices.md", "v1", days_ago=400)
    commit(repo, "docs/prices.md", "v2", days_ago=300)
    commit(repo, "docs/prices.md", "v3", days_ago=90)
    commit(repo, "docs/prices.md", "v4", days_ago=10)
    commit(repo, "other.md", "unrelated", days_ago=5)
    churn = evidence.git_churn([repo / "docs" / "prices.md"], now=NOW)
    assert churn is not None
    assert (churn.changes_6m, churn.changes_12m) == (2, 3)
    assert churn.history_days == pytest.approx(400, abs=0.01)


def test_adding_a_file_is_not_a_change(repo: Path) -> None:
    commit(repo, "a.md", "a", days_ago=30)
    churn = evidence.git_churn([repo / "a.md"], now=NOW)
    assert churn is not None and churn.changes_6m == 0


def test_outside_git_there_is_no_churn(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("a")
    assert evidence.git_churn([tmp_path / "a.md"]) is None


PROJECT = """
version: 1
project: evidence
capabilities:
  - name: docs
    description: Answer questions about the product handbook.
    sources: [docs/]
"""


def _changes_answer(folder: Path) -> tuple[object, str, str]:
    audit = run_audit(load_project(folder), now=NOW)
    answer = audit.capabilities[0].answers.changes_within_6_months
    return answer.value, answer.source, answer.reason


def test_audit_measures_change_from_git(repo: Path) -> None:
    (repo / "ragtune.yaml").write_text(PROJECT)
    commit(repo, "docs/handbook.md", "# Handbook\nLeave rules.", days_ago=500)
    commit(repo, "docs/handbook.md", "# Handbook\nNew leave rules.", days_ago=40)
    value, source, reason = _changes_answer(repo)
    assert (value, source) == (True, "measured")
    assert "1 commits changed" in reason
    audit = run_audit(load_project(repo), now=NOW)
    rate = audit.capabilities[0].answers.changes_per_year
    assert (rate.value, rate.source) == (1.0, "measured")


def test_audit_measures_stability_from_git(repo: Path) -> None:
    (repo / "ragtune.yaml").write_text(PROJECT)
    commit(repo, "docs/handbook.md", "# Handbook\nLeave rules.", days_ago=500)
    commit(repo, "docs/handbook.md", "# Handbook\nLeave rules, fixed typo.", days_ago=400)
    value, source, reason = _changes_answer(repo)
    assert (value, source) == (False, "measured")
    assert "no commit changed" in reason


def test_given_answer_beats_measured(repo: Path) -> None:
    (repo / "ragtune.yaml").write_text(PROJECT + "    changes_within_6_months: false\n")
    commit(repo, "docs/handbook.md", "v1", days_ago=500)
    commit(repo, "docs/handbook.md", "v2", days_ago=3)
    value, source, _ = _changes_answer(repo)
    assert (value, source) == (False, "given")


def test_volatile_content_in_sources_is_measured(write_project: Callable[..., Path]) -> None:
    folder = write_project(PROJECT)
    (folder / "docs").mkdir()
    (folder / "docs" / "fees.md").write_text(
        "# Fees (version 3.2, as of 2026-07-01)\n"
        "Standard review: $450. Rush: $900 (+25%). Effective Q3 2026.\n"
    )
    value, source, reason = _changes_answer(folder)
    assert (value, source) == (True, "measured")
    assert "money" in reason and "percentage" in reason


TABLE_PROJECT = PROJECT.replace("sources: [docs/]", "sources: [tables/fees.csv#matter]")


def test_a_keyed_table_source_has_change_history(repo: Path) -> None:
    """``tables/fees.csv#matter`` names the table: its commits are evidence, as for any file."""
    (repo / "ragtune.yaml").write_text(TABLE_PROJECT)
    commit(repo, "tables/fees.csv", "matter,fee\nreview,standard\n", days_ago=500)
    commit(repo, "tables/fees.csv", "matter,fee\nreview,reduced\n", days_ago=40)
    assert evidence.source_files(repo, ["tables/fees.csv#matter"]) == [repo / "tables" / "fees.csv"]
    value, source, reason = _changes_answer(repo)
    assert (value, source) == (True, "measured")
    assert "1 commits changed the 1 source files" in reason


def test_a_keyed_table_source_has_content_evidence(write_project: Callable[..., Path]) -> None:
    folder = write_project(TABLE_PROJECT)
    (folder / "tables").mkdir()
    (folder / "tables" / "fees.csv").write_text(
        "matter,fee,as_of\nreview,$450,2026-07-01\nrush,$900 (+25%),2026-07-01\n"
    )
    value, source, reason = _changes_answer(folder)
    assert (value, source) == (True, "measured")
    assert "money" in reason and "date" in reason


def test_sources_are_the_files_the_knowledge_sync_uses(tmp_path: Path) -> None:
    """Hidden folders, unsupported files and tools: skipped by the audit as by the sync."""
    for rel in ("docs/a.md", "docs/.cache/b.md", "docs/notes.odt", "docs/sub/c.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("text")
    files = evidence.source_files(tmp_path, ["docs", "docs/*.md", "tool:tools/x.py:lookup"])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["docs/a.md", "docs/sub/c.txt"]


def test_prose_without_volatile_facts_falls_back_to_the_description(
    write_project: Callable[..., Path],
) -> None:
    folder = write_project(PROJECT.replace("the product handbook", "the stable glossary"))
    (folder / "docs").mkdir()
    (folder / "docs" / "glossary.md").write_text("# Glossary\n" + "A term means a thing. " * 200)
    value, source, _ = _changes_answer(folder)
    assert (value, source) == (False, "inferred")


def _examples(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = folder / "ex.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    return path


def test_examples_with_one_structure_are_behaviour(tmp_path: Path) -> None:
    categories = [f"Category {chr(65 + i)}" for i in range(12)]
    rows = [
        {
            "input": f"Clause {i}: the supplier may terminate on notice.",
            "output": json.dumps({"category": categories[i % 12], "risk": "high", "why": "terse"}),
        }
        for i in range(24)
    ]
    scan = evidence.scan_examples(_examples(tmp_path, rows))
    assert scan is not None
    assert scan.count == 24 and scan.bad_lines == 1
    assert scan.structure_share == 1.0 and "category, risk, why" in scan.structure
    assert (scan.widest_field, scan.widest_field_values) == ("category", 12)
    assert scan.leak_share == 0.0


def test_examples_that_teach_facts_are_caught(tmp_path: Path) -> None:
    rows = [
        {"input": f"What is the fee for matter {i}?", "output": f"The fee is ${400 + i} a review."}
        for i in range(10)
    ]
    scan = evidence.scan_examples(_examples(tmp_path, rows))
    assert scan is not None
    assert scan.leak_share == 1.0
    assert "ex.jsonl:1" in scan.leak_examples[0]


def test_audit_reads_kind_and_range_from_examples(write_project: Callable[..., Path]) -> None:
    folder = write_project(
        """
        version: 1
        project: flags
        capabilities:
          - name: flags
            description: Handle each clause for the review team.
            calls_per_month: 50000
            examples: ex.jsonl
        """
    )
    rows = [
        {"input": f"Clause {i}.", "output": json.dumps({"category": f"C{i % 15}", "risk": "low"})}
        for i in range(30)
    ]
    _examples(folder, rows)
    audit = run_audit(load_project(folder)).capabilities[0]
    assert (audit.answers.kind.value, audit.answers.kind.source) == ("behavior", "measured")
    shown = audit.answers.shown_by_examples
    assert (shown.value, shown.source) == (False, "measured")
    assert "15 values of `category`" in shown.reason
    assert audit.decision == "lora"


def test_legal_wording_of_figures_is_not_a_leak(tmp_path: Path) -> None:
    rows = [
        {
            "input": "Either party may terminate on sixty (60) days' notice; liability is capped "
            "at $50,000.",
            "output": "Watch: 60-day notice and a $50,000, cap.",
        },
        {"input": "Notice within seventy-two hours.", "output": "Watch: 72 hours."},
        {"input": "Fees are due net 30.", "output": "Watch: fees due in 45 days."},
    ]
    scan = evidence.scan_examples(_examples(tmp_path, rows))
    assert scan is not None
    assert scan.leak_share == pytest.approx(1 / 3)
    assert scan.leak_examples == ["ex.jsonl:3: number: 45"]


def test_audit_and_the_leak_guard_agree(write_project: Callable[..., Path]) -> None:
    """The audit's share and warning come from the guard's check: the same examples, the same
    verdict, at the same threshold (`adapter train` refuses what audit warns about)."""
    from ragtune.behavior.capability import check_leaks

    folder = write_project(
        """
        version: 1
        project: flags
        capabilities:
          - name: flags
            description: Flag each clause in our format.
            kind: behavior
            changes_within_6_months: false
            calls_per_month: 50000
            examples: ex.jsonl
        """
    )
    rows = [
        {"input": f"Clause {i}.", "output": json.dumps({"category": f"C{i % 15}", "risk": "low"})}
        for i in range(24)
    ]
    # 3 of 27 (11%) state a figure no input gives: just above the 10% threshold.
    rows += [
        {
            "input": "Fees are due net 30.",
            "output": json.dumps({"category": "C1", "risk": "45 days"}),
        }
    ] * 3
    path = folder / "ex.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    project = load_project(folder)
    guard = check_leaks(project, project.config.capabilities[0])
    audit = run_audit(project).capabilities[0]
    assert guard.exceeds
    assert audit.answers.knowledge_in_examples.value == round(guard.share, 3)
    assert "knowledge-in-examples" in [w.code for w in audit.warnings]

    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:26]))  # 2 of 26: under it
    project = load_project(folder)
    guard = check_leaks(project, project.config.capabilities[0])
    audit = run_audit(project).capabilities[0]
    assert not guard.exceeds and guard.leaking
    assert audit.answers.knowledge_in_examples.value == round(guard.share, 3)
    assert "knowledge-in-examples" not in [w.code for w in audit.warnings]

"""The audit shows what the last lab run measured: each arm's unseen score, the lab's verdict,
and for a knowledge capability the gap a reader adapter makes (RAG against RAG+reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.audit import run_audit
from ragtune.audit.report import render_html, render_markdown
from ragtune.cli import app
from ragtune.examples import copy_example
from ragtune.lab.records import Verdict
from ragtune.lab.results import ArmResult, CapabilityResult, LabResult
from ragtune.project import load_project


def lab_run(rag: float, reader: float, rag_after: float, reader_after: float) -> LabResult:
    """A lab run over ``templates`` (with a reader) and ``playbook`` (without one)."""

    def arm(name: str, score: float) -> ArmResult:
        per = {
            "templates": CapabilityResult(items=11, fact_accuracy=score),
            "playbook": CapabilityResult(items=4, fact_accuracy=score),
        }
        return ArmResult(name, fact_accuracy=score, items=15, by_capability=per)

    after = {"zero-shot": 0.0, "RAG": rag_after, "RAG+LoRA": reader_after}
    return LabResult(
        project="contract-review",
        created_at="2026-11-28T12:00:00+00:00",
        arms=(arm("zero-shot", 0.0), arm("RAG", rag), arm("RAG+LoRA", reader)),
        verdicts=(
            Verdict(
                "templates",
                "retrieval",
                "RAG+LoRA",
                "RAG+LoRA",
                "fact accuracy after the change",
                after,
                (),
                True,
                "the lab agrees",
            ),
            Verdict(
                "playbook",
                "retrieval",
                "RAG+LoRA",
                "RAG+LoRA",
                "fact accuracy",
                {"zero-shot": 0.0, "RAG": rag, "RAG+LoRA": reader},
                (),
                True,
                "the lab agrees",
            ),
        ),
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_example("contract-review", tmp_path / "cr")


def write_lab(folder: Path, lab: LabResult) -> Path:
    path = folder / ".ragtune" / "lab" / "lab.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(lab.to_dict()))
    return path


def test_without_a_lab_run_the_audit_measures_nothing(project: Path) -> None:
    report = run_audit(load_project(project))
    assert all(c.measured is None for c in report.capabilities)
    assert "Measured by the lab" not in render_markdown(report)


def test_the_audit_shows_the_lab_and_the_readers_gap(project: Path) -> None:
    write_lab(project, lab_run(rag=0.27, reader=0.45, rag_after=0.0, reader_after=0.5))
    report = run_audit(load_project(project))
    by_name = {c.name: c for c in report.capabilities}

    templates = by_name["templates"].measured
    assert templates is not None and templates.agrees is True
    assert templates.scores == {"zero-shot": 0.0, "RAG": 0.0, "RAG+LoRA": 0.5}
    gap = templates.reader_gap
    assert gap is not None and gap.has_reader
    assert (gap.rag, gap.reader, gap.items) == (0.27, 0.45, 11)
    assert gap.gap == pytest.approx(0.5)  # measured after the change, where it was taken
    assert "adds +0.50" in gap.sentence() and "pays for itself" in gap.sentence()

    playbook = by_name["playbook"].measured
    assert playbook is not None and playbook.reader_gap is not None
    assert not playbook.reader_gap.has_reader and playbook.reader_gap.gap == pytest.approx(0.18)
    assert "add `reader: true`" in playbook.reader_gap.sentence()
    assert by_name["risk_flags"].measured is None  # the lab did not judge it

    markdown = render_markdown(report)
    assert "Measured by the lab (.ragtune/lab/lab.json, 2026-11-28" in markdown
    assert "RAG 0.27 -> RAG+reader 0.45 on 11 held-out questions" in markdown
    assert "after the change 0.00 -> 0.50" in markdown
    assert "Measured by the lab" in render_html(report)
    payload = report.to_dict()
    measured = {c["name"]: c["measured"] for c in payload["capabilities"]}
    assert measured["templates"]["reader_gap"]["gap"] == 0.5
    assert measured["rates"] is None


def test_a_reader_that_adds_nothing_is_called_so(project: Path) -> None:
    write_lab(project, lab_run(rag=0.5, reader=0.5, rag_after=0.5, reader_after=0.48))
    gap = {c.name: c for c in run_audit(load_project(project)).capabilities}["templates"]
    assert gap.measured is not None and gap.measured.reader_gap is not None
    assert "consider removing `reader:`" in gap.measured.reader_gap.sentence()


def test_the_cli_prints_the_gap_and_a_broken_lab_file_is_ignored(project: Path) -> None:
    path = write_lab(project, lab_run(rag=0.27, reader=0.45, rag_after=0.0, reader_after=0.5))
    shown = CliRunner().invoke(app, ["audit", str(project)])
    assert shown.exit_code == 0, shown.output
    assert "adds +0.50 fact accuracy" in " ".join(shown.output.split())
    path.write_text("{not json")
    again = CliRunner().invoke(app, ["audit", str(project), "--json"])
    assert again.exit_code == 0, again.output
    assert all(c["measured"] is None for c in json.loads(again.output)["capabilities"])

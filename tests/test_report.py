"""The audit report in every format: JSON, Markdown, HTML with inline charts, the Rich table."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from rich.console import Console

from ragtune.audit import run_audit
from ragtune.audit.model import (
    STRATEGIES,
    AuditReport,
    CostProjection,
    StrategyCost,
    StrategyName,
)
from ragtune.audit.report import (
    FORMATS,
    chart_svg,
    render,
    render_html,
    render_json,
    render_markdown,
    render_table,
    write_report,
)
from ragtune.project import load_project

PROJECT_YAML = """\
version: 1
project: report-test
horizon_months: 12
capabilities:
  - name: clause-library
    description: The current contract templates and standard clauses; legal updates them monthly.
    kind: knowledge
    changes_within_6_months: true
    calls_per_month: 20000
    current_approach: fine-tune
  - name: citation-style
    description: Cite each clause as [Section N] after the sentence that uses it.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: true
    calls_per_month: 20000
  - name: risk-flags
    description: Flag risky clauses as JSON with a severity and a one-line reason.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: false
    calls_per_month: 20000
    system_prompt_tokens: 1500
"""


def _write_project(folder: Path) -> Path:
    (folder / "ragtune.yaml").write_text(PROJECT_YAML, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def report(project_dir: Path) -> AuditReport:
    audit = run_audit(load_project(project_dir), now=1_800_000_000.0)
    decisions = {c.name: c.decision for c in audit.capabilities}
    # The fixture is only useful if it exercises every decision and raises warnings.
    assert decisions == {
        "clause-library": "retrieval",
        "citation-style": "few-shot",
        "risk-flags": "lora",
    }
    by_name = {c.name: c for c in audit.capabilities}
    assert by_name["clause-library"].warnings
    assert by_name["risk-flags"].warnings
    return audit


@pytest.fixture(scope="module")
def html(report: AuditReport) -> str:
    return render_html(report)


def _projection(plan: list[float], finetune: list[float], prompt: list[float]) -> CostProjection:
    """A hand-made projection whose break-even months are known."""
    from ragtune.audit.cost import break_even_month

    def strategy(name: StrategyName, approach: str, values: list[float]) -> StrategyCost:
        return StrategyCost(
            strategy=name,
            approach=approach,
            finetune_runs=2 if approach == "lora" else 0,
            reindexes=0,
            prompt_updates=0,
            context_tokens_per_call=0,
            usd_per_call=0.0,
            token_usd_per_month=0.0,
            cumulative=values,
        )

    strategies = {
        "plan": strategy("plan", "retrieval", plan),
        "fine-tune everything": strategy("fine-tune everything", "lora", finetune),
        "prompt everything": strategy("prompt everything", "prompt", prompt),
    }
    return CostProjection(
        horizon_months=len(plan) - 1,
        calls_per_month=1000,
        changes_per_year=4.0,
        strategies=strategies,
        break_even_month={
            name: break_even_month(plan, s.cumulative)
            for name, s in strategies.items()
            if name != "plan"
        },
        retraining_saved_usd=1270.0,
        finetune_run_usd=635.0,
    )


# -- JSON -----------------------------------------------------------------------------------------


def test_json_has_the_public_keys(report: AuditReport) -> None:
    data = json.loads(render_json(report))
    assert data["project"] == "report-test"
    assert len(data["capabilities"]) == 3
    for capability in data["capabilities"]:
        assert {"name", "decision", "path", "warnings", "cost"} <= capability.keys()
        assert capability["path"]
        for step in capability["path"]:
            assert {"question", "answer", "source", "confidence", "reason"} <= step.keys()
        assert set(capability["cost"]["strategies"]) == set(STRATEGIES)
    assert set(data["portfolio"]["strategies"]) == set(STRATEGIES)
    assert data == report.to_dict()


# -- Markdown -------------------------------------------------------------------------------------


def test_markdown_names_every_capability_decision_and_warning(report: AuditReport) -> None:
    text = render_markdown(report)
    assert text.startswith("# ragtune audit: report-test")
    for capability in report.capabilities:
        assert f"### {capability.name}: {capability.decision}" in text
        assert f"| {capability.name} | {capability.decision} |" in text
        for step in capability.path:
            assert step.question in text
        for warning in capability.warnings:
            assert f"**{warning.code}**: {warning.message}" in text
    assert "## Portfolio" in text
    plan_total = report.portfolio.strategies["plan"].total
    assert f"**${plan_total:,.2f}**" in text


def test_markdown_cumulative_table_every_three_months(report: AuditReport) -> None:
    text = render_markdown(report)
    table = text.split("### Cumulative cost by month", 1)[1]
    months = [int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)]
    assert months == [0, 3, 6, 9, 12]
    plan_at_6 = report.portfolio.strategies["plan"].cumulative[6]
    assert f"| 6 | ${plan_at_6:,.2f} |" in table


def test_markdown_escapes_pipes_in_cells(report: AuditReport) -> None:
    first = report.capabilities[0]
    step = dataclasses.replace(first.path[0], reason="stated | inferred, a pipe in the reason")
    changed = dataclasses.replace(first, path=[step, *first.path[1:]])
    text = render_markdown(dataclasses.replace(report, capabilities=[changed]))
    assert "stated \\| inferred, a pipe in the reason" in text
    # Every row of every table keeps the column count of its header.
    for block in re.findall(r"(?:^\|.*\|\n?)+", text, flags=re.MULTILINE):
        rows = block.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, block


# -- HTML -----------------------------------------------------------------------------------------


def test_html_has_a_section_per_capability(report: AuditReport, html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    sections = soup.select("section.capability")
    assert [s["id"] for s in sections] == [f"cap-{c.name}" for c in report.capabilities]
    for section, capability in zip(sections, report.capabilities, strict=True):
        assert section.h2 is not None
        assert capability.name in section.h2.get_text()
        assert section.select_one(".badge").get_text() == capability.decision
        text = section.get_text(" ")
        for step in capability.path:
            assert step.question in text
        items = [li.get_text(" ") for li in section.select("ul.warnings li")]
        assert len(items) == len(capability.warnings)
        for item, warning in zip(items, capability.warnings, strict=True):
            assert warning.code in item
            assert " ".join(warning.message.split()) in " ".join(item.split())
        assert section.find("svg") is not None


def test_html_portfolio_chart_is_inline_svg_with_every_strategy(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    portfolio = soup.select_one("section.portfolio")
    assert portfolio is not None
    svg = portfolio.find("svg")
    assert svg is not None
    labels = svg.get_text(" ")
    for name in STRATEGIES:
        assert name in labels
    assert len(soup.find_all("svg")) == 1 + len(soup.select("section.capability"))


def test_html_is_self_contained(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("link") is None
    assert soup.find("script") is None
    assert soup.find("style") is not None
    for tag in soup.find_all(True):
        for attr in ("src", "href", "xlink:href"):
            value = tag.get(attr)
            if value is None:
                continue
            assert not re.match(r"^\s*(https?:)?//", str(value)), (tag.name, attr, value)
    assert "@import" not in html
    assert "url(http" not in html
    # Element ids stay unique though every chart is its own matplotlib figure.
    ids = [tag["id"] for tag in soup.find_all(id=True)]
    assert len(ids) == len(set(ids))


def test_html_escapes_project_text(report: AuditReport) -> None:
    hostile = dataclasses.replace(report, project="<script>alert(1)</script>")
    soup = BeautifulSoup(render_html(hostile), "html.parser")
    assert soup.find("script") is None
    assert "<script>alert(1)</script>" in soup.title.get_text()


# -- charts ---------------------------------------------------------------------------------------


def test_chart_svg_marks_the_break_even_month() -> None:
    cost = _projection(
        plan=[100.0, 110.0, 120.0, 130.0, 140.0],
        finetune=[600.0, 700.0, 800.0, 900.0, 1000.0],
        prompt=[10.0, 50.0, 90.0, 130.0, 170.0],
    )
    assert cost.break_even_month == {"fine-tune everything": 0, "prompt everything": 3}
    svg = chart_svg(cost, "made-up costs")
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg
    assert "made-up costs" in svg
    for name in STRATEGIES:
        assert name in svg
    assert "break-even vs prompt everything: month 3" in svg
    # Month 0 is not a crossing: the legend says so instead of a marker.
    assert "break-even vs fine-tune everything" not in svg
    assert "plan cheaper from the start" in svg


def test_importing_the_report_does_not_import_matplotlib(project_dir: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import ragtune.audit.report as report
        assert "matplotlib" not in sys.modules, "imported by ragtune.audit.report"
        from rich.console import Console
        from ragtune.audit import run_audit
        from ragtune.project import load_project
        audit = run_audit(load_project(sys.argv[1]))
        report.render_table(audit, Console(file=open("/dev/null", "w")))
        report.render_markdown(audit)
        report.render_json(audit)
        assert "matplotlib" not in sys.modules, "imported by a format without charts"
        report.chart_svg(audit.portfolio, "x")
        assert "matplotlib" in sys.modules, "the check above would pass vacuously"
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(project_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# -- terminal -------------------------------------------------------------------------------------


def test_rich_table_shows_names_decisions_and_warnings(report: AuditReport) -> None:
    console = Console(record=True, width=100, color_system=None)
    render_table(report, console)
    text = console.export_text()
    for capability in report.capabilities:
        assert capability.name in text
        assert capability.decision in text
        for warning in capability.warnings:
            assert warning.code in text
    for name in STRATEGIES:
        assert name in " ".join(text.split())
    assert "Retraining saved" in text
    assert max(len(line) for line in text.splitlines()) <= 100


# -- files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_report_leaves_only_the_report(report: AuditReport, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "reports" / f"audit.{fmt}"
    write_report(report, fmt, out)
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    text = out.read_text(encoding="utf-8")
    assert text.rstrip("\n") == render(report, fmt).rstrip("\n")
    if fmt == "json":
        assert json.loads(text)["project"] == "report-test"
    write_report(report, fmt, out)  # overwriting is atomic too
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_write_report_failure_keeps_the_old_file(
    report: AuditReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "audit.md"
    out.write_text("old report\n", encoding="utf-8")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_report(report, "markdown", out)
    assert [p.name for p in tmp_path.iterdir()] == ["audit.md"]
    assert out.read_text(encoding="utf-8") == "old report\n"


def test_write_report_rejects_an_unknown_format(report: AuditReport, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="markdown, html, json"):
        write_report(report, "pdf", tmp_path / "audit.pdf")
    assert list(tmp_path.iterdir()) == []


def test_html_of_a_large_project_draws_only_the_portfolio_chart(report: AuditReport) -> None:
    from dataclasses import replace

    from ragtune.audit.report import MAX_CAPABILITY_CHARTS

    many = replace(report, capabilities=report.capabilities * (MAX_CAPABILITY_CHARTS // 3 + 1))
    assert len(many.capabilities) > MAX_CAPABILITY_CHARTS
    soup = BeautifulSoup(render_html(many), "html.parser")
    assert len(soup.find_all("svg")) == 1
    assert len(soup.select("section.capability")) == len(many.capabilities)

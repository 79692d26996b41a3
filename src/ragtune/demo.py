"""``ragtune demo``: the contract-review example end to end, offline, on the embedded defaults."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ragtune.audit import AuditReport, run_audit
from ragtune.examples import copy_example
from ragtune.project import load_project

EXAMPLE = "contract-review"


def run_demo(directory: Path, console: Console) -> AuditReport:
    """Copy the example to ``directory``, audit it, print the report and write its files."""
    from ragtune.audit.report import render_table, write_report

    project_dir = copy_example(EXAMPLE, directory / EXAMPLE, force=True)
    console.rule(f"[bold]ragtune demo[/]: auditing {project_dir}")
    report = run_audit(load_project(project_dir))
    render_table(report, console)
    reports = directory / "reports"
    written = []
    for fmt, name in (("markdown", "audit.md"), ("html", "audit.html"), ("json", "audit.json")):
        path = reports / name
        write_report(report, fmt, path)
        written.append(path)
    console.rule("reports")
    for path in written:
        console.print(f"  {path.resolve()}")
    return report

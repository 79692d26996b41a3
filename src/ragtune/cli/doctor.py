"""``ragtune doctor``: a thin command over :mod:`ragtune.doctor`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from ragtune.cli.kit import JsonOption, ProjectArgument, ProjectFlag, console, either_project, fail
from ragtune.errors import RagtuneError

_MARK = {"ok": "[green]ok[/]  ", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def doctor_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    as_json: JsonOption = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rebuild the derived indexes (the keyword index, the vector file; on "
            "PostgreSQL its keyword index) from the store first; the store itself is never "
            "changed.",
        ),
    ] = False,
) -> None:
    """Check the install and the project, and say for each problem the command that fixes it.

    Checks, in the order to fix them in: **install** (the packages each feature needs; the
    backend `model.backend` resolves to), **models** (the embedder and the base model on disk,
    no network), **store** (SQLite and FTS5 integrity, or on PostgreSQL the server, pgvector and
    the GIN and HNSW indexes; schema migrations, interrupted syncs),
    **index** (the vector index against the store's live chunks and snapshot), **adapters**
    (manifests, safetensors weights, the GGUF LoRA against its recorded SHA-256, the base model
    they were trained on, what `ragtune plan` would train) and **links** (symbolic links out of
    the project in the knowledge sources, which sync skips).

    Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the options are
    wrong. Nothing is written unless `--repair` is given.

    Example: `ragtune doctor my-review --json | jq '.checks[] | select(.status != "ok")'`
    """
    target = either_project(project, project_flag)
    from ragtune.doctor import diagnose
    from ragtune.doctor import repair as rebuild

    if repair:
        try:
            for line in rebuild(target):
                if not as_json:
                    console.print(f"repaired: {escape(line)}", highlight=False)
        except RagtuneError as exc:
            fail(exc)
    report = diagnose(target)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        raise typer.Exit(0 if report.ok else 1)
    if report.project is not None:
        console.print(f"[bold]ragtune doctor[/]: {escape(report.project)} ({report.root})")
    width = max(len(f"{c.area} {c.name}") for c in report.checks)
    for check in report.checks:
        label = f"{check.area} {check.name}".ljust(width)
        console.print(
            f"{_MARK[check.status]} {escape(label)}  {escape(check.detail)}",
            highlight=False,
            soft_wrap=True,
        )
        if check.fix:
            console.print(
                f"      fix: [bold]{escape(check.fix)}[/]", highlight=False, soft_wrap=True
            )
    problems, warnings = len(report.problems), len(report.warnings)
    if problems:
        console.print(f"[bold red]{problems} problem(s)[/], {warnings} warning(s)")
    else:
        console.print(f"[green]all checks passed[/] ({warnings} warning(s))")
    raise typer.Exit(0 if report.ok else 1)

"""``ragtune init``, ``ragtune schema`` and ``ragtune audit``: the project file and the decision
per capability."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ragtune.cli.kit import ProjectArgument, ProjectFlag, console, either_project, errors, fail
from ragtune.errors import RagtuneError


class FailOn(StrEnum):
    """What makes ``ragtune audit`` exit 1."""

    warning = "warning"


class Format(StrEnum):
    """Output formats of the audit report."""

    table = "table"
    markdown = "markdown"
    html = "html"
    json = "json"


def audit_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="table (terminal), markdown, html or json.")
    ] = Format.table,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the report to this file (format from --format, else from the suffix: "
            ".md, .html, .json).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")] = False,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            "--fail-on",
            help="`warning`: exit 1 when any capability has a warning (for CI pipelines).",
        ),
    ] = None,
) -> None:
    """Decide retrieval, few-shot or LoRA for every capability, and show why and what it costs.

    For each capability the audit walks the tree - what the model knows goes to retrieval;
    a behaviour that 1-2 examples show goes to few-shot; a stable behaviour that must hold
    across thousands of calls goes to a LoRA adapter - and prints every question on the way
    with its answer and where the answer came from: **given** in ragtune.yaml, **measured**
    from your files (git history of the sources, volatile facts in them, the structure of
    your examples) or **inferred** from the description.

    It warns about fine-tuning knowledge that changes, long system prompts spent on a format,
    and knowledge that fails the 12-month test headed for the weights; and projects the cost
    of the plan against fine-tuning everything and prompting everything, month by month.

    Examples:

        ragtune audit examples/contract-review

        ragtune audit --format html --out audit.html

        ragtune audit --format json | jq '.capabilities[].decision'

        ragtune audit --fail-on warning    # in CI
    """
    project = either_project(project, project_flag)
    from ragtune.audit import run_audit
    from ragtune.audit.report import render_json, render_table, write_report
    from ragtune.project import load_project

    if as_json:
        fmt = Format.json
    try:
        report = run_audit(load_project(project))
    except RagtuneError as exc:
        fail(exc)
    if out is not None:
        if fmt is Format.table:
            fmt = {".md": Format.markdown, ".html": Format.html, ".json": Format.json}.get(
                out.suffix.lower(), Format.markdown
            )
        write_report(report, fmt.value, out)
        errors.print(f"wrote {fmt.value} report to {out}")
    elif fmt is Format.table:
        render_table(report, console)
    elif fmt is Format.json:
        sys.stdout.write(render_json(report) + "\n")
    else:
        from ragtune.audit.report import render_html, render_markdown

        sys.stdout.write(render_markdown(report) if fmt is Format.markdown else render_html(report))
    if fail_on is FailOn.warning and report.warnings:
        errors.print(
            f"[yellow]{len(report.warnings)} warning(s): failing as asked (--fail-on warning)[/]"
        )
        raise typer.Exit(1)


def schema_command() -> None:
    """Print the JSON Schema of ragtune.yaml, for editors and linters.

    Save it and point your editor at it, e.g. with the YAML language server:
    `# yaml-language-server: $schema=ragtune.schema.json` at the top of ragtune.yaml.
    """
    from ragtune.project import project_json_schema

    sys.stdout.write(json.dumps(project_json_schema(), indent=2) + "\n")


def init_command(
    directory: Annotated[
        Path, typer.Argument(help="Where to write ragtune.yaml (default: the current folder).")
    ] = Path("."),
    example: Annotated[
        str | None,
        typer.Option("--example", help="Copy an example project instead, e.g. contract-review."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="The project's name.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing ragtune.yaml.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print what was written as JSON (the questions go to stderr)."),
    ] = False,
) -> None:
    """Write a ragtune.yaml by answering the audit's questions (the 30-minute audit).

    For each capability you name, ragtune asks what it is, whether it is knowledge or
    behaviour, whether it changes within 6 months, whether it will be accurate in 12, whether
    1-2 examples show it, its volume and what you do today. Leave any answer blank: the audit
    infers it and says so.

    `ragtune init --example contract-review DIR` copies the example project instead.
    """
    from ragtune.cli.questionnaire import run_questionnaire
    from ragtune.project import PROJECT_FILE, dump_project, load_project, write_atomic

    try:
        if example is not None:
            from ragtune.examples import copy_example

            dest = copy_example(example, directory, force=force)
            if as_json:
                done = {"project_file": str(dest / PROJECT_FILE), "example": example}
                sys.stdout.write(json.dumps(done) + "\n")
                return
            console.print(f"copied the {example} example to {dest}; next: ragtune audit {dest}")
            return
        target = directory / PROJECT_FILE
        if target.exists() and not force:
            raise RagtuneError(f"{target} already exists; pass --force to overwrite it.")
        config = run_questionnaire(
            lambda question, default: typer.prompt(
                question, default=default, show_default=bool(default), err=as_json
            ),
            lambda hint: (errors if as_json else console).print(f"[yellow]{hint}[/]"),
            project_name=name,
        )
        write_atomic(target, dump_project(config))
        load_project(target, check_files=False)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        capabilities = [c.name for c in config.capabilities]
        sys.stdout.write(
            json.dumps({"project_file": str(target), "capabilities": capabilities}) + "\n"
        )
        return
    console.print(f"wrote {target}; next: ragtune audit {directory}")

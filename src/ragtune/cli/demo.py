"""``ragtune demo``: the contract-review example end to end, offline, on the embedded defaults.

1. audit: the decision for each capability, written as Markdown, HTML and JSON;
2. build: sync the templates and the playbook into the store, install the adapters the example
   ships (the templates' reader and the risk-flag adapter, trained by ``ragtune build`` at the
   example's settings); an adapter that is not shipped, or no longer matches, is trained on a
   demo budget of steps; the risk flags' category classifier is tuned (about 45 s);
3. ask: a question answered with citations, and a clause flagged in the house style;
4. lab: the five arms on the example's eval sets, then the drift test on a copy of the project
   (legal's revision lands, the knowledge re-syncs, the LoRA-only arm stays stale);
5. drift, for real: the revision lands in the demo project; one sync later the new answer is
   served - seconds of re-indexing, no retraining - and the old one is still there ``--as-of``
   the earlier snapshot.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ragtune.adapters import TrainConfig, load_manifest
from ragtune.audit import AuditReport, run_audit
from ragtune.cli import kit
from ragtune.errors import RagtuneError
from ragtune.examples import copy_example
from ragtune.project import Capability, Project, load_project

if TYPE_CHECKING:
    from ragtune.lab.results import LabResult

EXAMPLE = "contract-review"
QUESTION = "How many hours do we have to notify the customer of a personal data breach?"
DEMO_TRAIN_STEPS = 8
"""Steps of an adapter the demo trains (one the example does not ship, or no longer matches);
``ragtune build`` trains the full one."""
DEMO_LAB_ITEMS = 4
"""Eval items per capability in the demo's lab (the changed questions first)."""


@dataclass
class DemoOptions:
    """How much of the story runs, and on what budget."""

    train_steps: int = DEMO_TRAIN_STEPS
    knowledge_steps: int | None = None
    lab: bool = True
    lab_items: int = DEMO_LAB_ITEMS
    max_tokens: int = 64


@dataclass
class DemoResult:
    """What the demo produced."""

    report: AuditReport
    reports: list[Path]
    answer_before: str
    answer_after: str
    resync_seconds: float
    lab: LabResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of ``ragtune demo --json``."""
        return {
            "decisions": {c.name: c.decision for c in self.report.capabilities},
            "reports": [str(p.resolve()) for p in self.reports],
            "answer_before": self.answer_before,
            "answer_after": self.answer_after,
            "resync_seconds": round(self.resync_seconds, 3),
            "verdicts": [v.to_dict() for v in self.lab.verdicts] if self.lab else None,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


def run_demo(directory: Path, console: Console, options: DemoOptions | None = None) -> DemoResult:
    """Copy the example to ``directory`` and run the story; prints as it goes."""
    from ragtune.audit.report import render_table, write_report

    options = options or DemoOptions()
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    project_dir = copy_example(EXAMPLE, directory / EXAMPLE, force=True)
    console.rule(f"[bold]1. audit[/]: {project_dir}")
    project = load_project(project_dir)
    report = run_audit(project)
    render_table(report, console)
    written = []
    for fmt, name in (("markdown", "audit.md"), ("html", "audit.html"), ("json", "audit.json")):
        path = directory / "reports" / name
        write_report(report, fmt, path)
        written.append(path)
    seconds["audit"] = time.perf_counter() - started

    lab = None
    if options.lab:
        clock = time.perf_counter()
        _build(project, console, options)
        seconds["build"] = time.perf_counter() - clock
        clock = time.perf_counter()
        _ask(project, console, options)
        seconds["ask"] = time.perf_counter() - clock
        clock = time.perf_counter()
        lab, lab_files = _lab(project, directory / "reports", console, options)
        written.extend(lab_files)
        seconds["lab"] = time.perf_counter() - clock

    clock = time.perf_counter()
    before, after, resync = _knowledge_story(project, console, options)
    seconds["drift"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - started

    console.rule("reports")
    for path in written:
        console.print(f"  {path.resolve()}")
    console.print(f"[dim]demo wall time {seconds['total']:.0f} s[/]")
    return DemoResult(report, written, before, after, resync, lab, seconds)


def _build(project: Project, console: Console, options: DemoOptions) -> None:
    from dataclasses import replace

    from ragtune.build import build
    from ragtune.cli.kit import training_bar

    console.rule("[bold]2. build[/]: sync the knowledge, install (or train) the adapters")

    def budget(capability: Capability, config: TrainConfig) -> TrainConfig:
        return replace(config, max_steps=options.train_steps, batch_size=2, eval_max_new_tokens=0)

    built = build(
        project,
        configure=budget,
        training=lambda adapter: training_bar(f"train {adapter.capability}", quiet=False),
        tuning=lambda planned: training_bar(f"tune {planned.capability} classifier", quiet=False),
    )
    for name in built.installed:
        manifest = load_manifest(project.adapters_dir, name)
        console.print(
            f"adapter {name}: shipped with the example ({manifest.training.steps} steps, "
            f"{manifest.dataset.examples} pairs, trained by `ragtune build` at the example's "
            f"settings; installed, not trained; `ragtune adapter train {name}` reproduces it)"
        )
    synced = built.knowledge
    if synced is not None:
        console.print(
            f"snapshot {synced.snapshot}: {synced.embedded} chunks embedded in "
            f"{synced.seconds:.1f} s"
        )
    for tuned in built.classifiers:
        console.print(
            f"classifier {tuned.capability}.{tuned.field}: tuned on {tuned.trained} labelled "
            f"examples in {tuned.seconds:.0f} s, {tuned.held_out_accuracy or 0:.0%} of "
            f"{tuned.tested} held-out ones right; it picks the {tuned.field}, the adapter writes "
            "the rest"
        )
    for done in built.adapters:
        console.print(
            f"adapter {done.capability}: {done.result.steps} steps in {done.result.seconds:.0f} s "
            f"({done.result.size_bytes / 1e6:.1f} MB, safetensors) - a demo budget; "
            "`ragtune build` trains the full adapter (the README gives its figures)."
        )


def _ask(project: Project, console: Console, options: DemoOptions) -> None:
    from ragtune.runtime.pipeline import run
    from ragtune.runtime.runtime import Request, Runtime

    console.rule("[bold]3. ask[/]: a question with citations, a clause flagged")
    clause = json.loads(
        (project.root / "eval" / "clauses.jsonl").read_text(encoding="utf-8").splitlines()[0]
    )["input"]
    runtime = Runtime(project)
    try:
        for question, capability in ((QUESTION, "templates"), (clause, "risk_flags")):
            result = run(runtime, Request(question, capability, max_tokens=options.max_tokens))
            console.print(f"[bold]Q[/] ({capability}): {escape(question)}")
            console.print(f"[bold]A[/] ({_served_by(result.route)}): {escape(result.text)}")
            for cite in result.citations()[:2]:
                console.print(
                    escape(f"  [{cite['number']}] {cite['document']} > {cite['section']}")
                    + f" [dim](version {cite['version']})[/]"
                )
            if result.passages and capability == "templates":
                first = " ".join(result.passages[0].text.split())
                console.print(f"  [dim]passage [1]: {escape(first[:240])}[/]", highlight=False)
            if result.contract_ok is not None:
                console.print(
                    "  contract: "
                    + ("[green]ok[/]" if result.contract_ok else "[yellow]violated[/]")
                )
    finally:
        runtime.close(backend=True)


def _lab(
    project: Project, folder: Path, console: Console, options: DemoOptions
) -> tuple[LabResult, list[Path]]:
    from ragtune.cli.lab import LabProgress, print_lab
    from ragtune.lab.evalset import default_eval_paths, load_eval, shown_path
    from ragtune.lab.model import LabSettings
    from ragtune.lab.report import write_reports
    from ragtune.lab.runner import run

    console.rule("[bold]4. lab[/]: five arms on the eval sets, then the drift test")
    settings = LabSettings(
        drift=project.root / "changes",
        max_items=options.lab_items,
        max_tokens=options.max_tokens,
        train_steps=options.train_steps,
        knowledge_steps=options.knowledge_steps,
    )
    paths = default_eval_paths(project)
    items = load_eval(paths, project)
    with LabProgress(quiet=bool(kit.state["quiet"])) as progress:
        data = run(
            project,
            items,
            settings,
            eval_files=[shown_path(p, project.root) for p in paths],
            progress=progress,
        )
    written = write_reports(data, folder / "lab")
    print_lab(data, written, settings)
    return data, list(written.values())


def _knowledge_story(
    project: Project, console: Console, options: DemoOptions
) -> tuple[str, str, float]:
    """Sync, answer, land legal's revision, sync again, answer again. With the lab's models on,
    the served runtime answers (a quote where the capability answers so, else through the reader
    adapter where there is one); with ``--no-lab`` the retrieved passage is shown instead (no
    model loads)."""
    from ragtune.runtime.runtime import Runtime

    console.rule("[bold]5. knowledge[/]: the current templates, then legal's revision")
    runtime = Runtime(project)
    kb = runtime.knowledge
    try:
        first = kb.sync()
        if first.embedded:
            console.print(
                f"snapshot {first.snapshot}: {len(first.plan.of('added'))} documents, "
                f"{first.embedded} chunks embedded in {first.seconds:.1f} s"
            )
        else:
            console.print(f"snapshot {first.snapshot}: the store is current (synced by build)")
        before = _answer(runtime, console, options)

        console.rule("[bold]drift[/]: legal revises the templates")
        for path in sorted((project.root / "changes").glob("*.md")):
            if path.name != "CHANGES.md":
                shutil.copy(path, project.root / "knowledge" / path.name)
        second = kb.sync()
        console.print(
            f"snapshot {second.snapshot}: {len(second.plan.of('changed'))} documents changed, "
            f"{second.embedded} chunks re-embedded in {second.seconds:.2f} s. No adapter was "
            "retrained: knowledge lives in the index, not the weights."
        )
        after = _answer(runtime, console, options)
        then = kb.search(QUESTION, k=1, as_of=str(first.snapshot))
        if then:
            console.print(
                f"[dim]as of snapshot {first.snapshot} the same question still finds "
                f"{then[0].document} v{then[0].version}, {then[0].section.split(' > ')[-1]}[/]"
            )
        return before, after, second.seconds
    finally:
        runtime.close(backend=True)


def _served_by(route: Any) -> str:
    """``retrieval, reader templates``, ``lora``...: the strategy, and the reader adapter of a
    retrieval route that has one."""
    if route.strategy == "retrieval" and route.adapter:
        return f"retrieval, reader {route.adapter}"
    return str(route.strategy)


def _answer(runtime: Any, console: Console, options: DemoOptions) -> str:
    """The demo question, answered by the runtime (``options.lab``) or shown as the retrieved
    passage; returns what was shown."""
    from ragtune.runtime.pipeline import run
    from ragtune.runtime.runtime import Request

    hits = runtime.knowledge.search(QUESTION, k=1)
    if not hits:
        console.print("no answer found")
        return ""
    hit = hits[0]
    console.print(f"[bold]Q:[/] {QUESTION}")
    console.print(
        "[bold]retrieved[/] "
        + escape(
            f"[{hit.document} v{hit.version}, {hit.section.split(' > ')[-1]}, "
            f"snapshot {hit.snapshot}]"
        )
    )
    console.print(f"  {hit.text}", highlight=False)
    if not options.lab:
        return str(hit.text)
    result = run(runtime, Request(QUESTION, "templates", max_tokens=options.max_tokens))
    console.print(f"[bold]A[/] ({_served_by(result.route)}): {escape(result.text)}")
    for cite in result.citations()[:1]:
        console.print(
            escape(f"  [{cite['number']}] {cite['document']} > {cite['section']}")
            + f" [dim](version {cite['version']})[/]"
        )
    return result.text


def demo_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to put the demo project and its reports.")
    ] = Path("ragtune-demo"),
    train_steps: Annotated[
        int,
        typer.Option(
            "--train-steps", min=1, help="Steps of each behaviour adapter the demo trains."
        ),
    ] = 8,
    lab_items: Annotated[
        int, typer.Option("--lab-items", min=1, help="Eval items per capability in the lab.")
    ] = 4,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Token budget of each answer.")
    ] = 64,
    no_lab: Annotated[
        bool,
        typer.Option("--no-lab", help="Audit and the knowledge story only (seconds, no models)."),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A smoke run of every step (2 training steps, 1 lab item per capability, short "
            "answers): a few minutes; its figures mean nothing.",
        ),
    ] = False,
    as_json: kit.JsonOption = False,
) -> None:
    """Run the contract-review example end to end, offline, on the embedded defaults.

    Copies the example project to --dir, then: audit (Markdown, HTML, JSON reports) -> build
    (sync the knowledge, install the shipped adapters) -> ask (a question with
    citations, a clause flagged) -> lab (five arms, then the drift test) -> legal's revision
    lands and one sync serves the new answer. Prints where each report is. About 6 minutes
    on 2 CPU cores; --no-lab takes seconds.
    """
    options = (
        DemoOptions(train_steps=2, knowledge_steps=2, lab=not no_lab, lab_items=1, max_tokens=16)
        if quick
        else DemoOptions(
            train_steps=train_steps, lab=not no_lab, lab_items=lab_items, max_tokens=max_tokens
        )
    )
    # With --json the story goes to stderr and stdout holds only the summary, for scripts.
    console = kit.errors if as_json else kit.console
    try:
        result = run_demo(directory, console, options)
    except RagtuneError as exc:
        kit.fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")

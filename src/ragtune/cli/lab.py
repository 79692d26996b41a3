"""``ragtune lab``: prove the audit's choices on the team's own eval set."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ragtune.cli.kit import (
    JsonOption,
    ProjectArgument,
    ProjectFlag,
    console,
    either_project,
    errors,
    fail,
    project_or_fail,
    state,
)
from ragtune.errors import RagtuneError
from ragtune.holdout import SPLIT_SEED

if TYPE_CHECKING:
    from ragtune.lab.model import LabSettings, Progress
    from ragtune.lab.results import LabResult


def lab_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    eval_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help="Eval set: a JSONL file or a folder of them (repeatable); default: the "
            "project's eval/ folder.",
        ),
    ] = None,
    drift: Annotated[
        Path | None,
        typer.Option(
            "--drift",
            help="Folder of revised documents (matched by file name) to apply after the "
            "adapters are trained; then the changed questions are asked again.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for lab.md, lab.html, lab.json (default: .ragtune/lab)."
        ),
    ] = None,
    max_items: Annotated[
        int | None,
        typer.Option(
            "--max-items", min=1, help="At most N items per capability (changed ones first)."
        ),
    ] = None,
    train_steps: Annotated[
        int | None,
        typer.Option(
            "--train-steps",
            min=1,
            help="Cap on the steps of each behaviour adapter the lab trains (the reduced "
            "setting; default: the capability's train: settings).",
        ),
    ] = None,
    knowledge_steps: Annotated[
        int | None,
        typer.Option(
            "--knowledge-steps",
            min=1,
            help="Steps of each knowledge adapter the lab trains (default: 24 epochs over the "
            "reference answers of the split's train lines).",
        ),
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Token budget of every answer.")
    ] = 80,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature", min=0.0, help="0 decodes greedily; above 0 samples per seed."
        ),
    ] = 0.0,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="Seeds per arm when sampling (temperature > 0).")
    ] = 3,
    no_retrain: Annotated[
        bool,
        typer.Option(
            "--no-retrain",
            help="Skip retraining the LoRA arm on the new facts after the drift (its time to "
            "correct is then not measured).",
        ),
    ] = False,
    arms: Annotated[
        str | None,
        typer.Option(
            "--arms",
            help="Arms to run, comma-separated, any case (e.g. few-shot,lora); default: "
            "zero-shot, few-shot, RAG, LoRA and RAG+LoRA.",
        ),
    ] = None,
    split_seed: Annotated[
        int,
        typer.Option(
            "--split-seed",
            help="Seed of the train / held-out split of the eval set: the lab's knowledge "
            "adapters train on the train lines only (recorded in lab.json).",
        ),
    ] = SPLIT_SEED,
    as_json: JsonOption = False,
) -> None:
    """Compare zero-shot, few-shot, RAG, LoRA and RAG+LoRA on your eval set, then run the
    drift test.

    Every arm answers the same eval items with the same base model and generation settings.
    Per arm: fact accuracy (the expected facts found in the answer, numbers normalised),
    contract compliance, p50 latency, tokens per call and cost per 1,000 calls at the
    project's prices. The LoRA arms of a knowledge capability are adapters the lab trains on
    the reference answers of the eval set's train lines (a seeded split, --split-seed; the
    held-out lines are only scored) - the facts-in-the-weights approach at its best; those of
    a behaviour capability are the project's adapter (RAG+LoRA) and one trained without
    retrieved context (LoRA). An arm that serves an adapter is scored apart on the questions
    its adapter trained on (seen), on those it did not (unseen) and on seen questions asked in
    other words (an eval line's "rephrased"); only unseen scores rank the arms.

    Before training, the lab prints an estimate of its time (adapters x steps x seconds a
    step, plus calls x seconds a call; measured where an adapter records it, else assumed).

    With --drift, the revised documents replace the old ones in a copy of the project, the
    knowledge re-syncs (no retraining) and the questions whose answers changed (eval lines
    with "after") are asked again: accuracy before and after, the share of stale answers, and
    the time to correct - the re-sync's seconds against the measured retraining of the LoRA.

    Eval set lines (JSONL): {"capability": "templates", "input": "...", "expected": ["48
    hours"], "answer": "...", "after": {"expected": [...], "answer": "..."}, "rephrased":
    ["...", "..."]}.

    Writes lab.md, lab.html (charts) and lab.json, and prints the verdict against the audit.

    Example: `ragtune lab examples/contract-review --drift examples/contract-review/changes`
    """
    project = either_project(project, project_flag)
    from ragtune.lab.evalset import default_eval_paths, load_eval, shown_path
    from ragtune.lab.model import ARMS, LabSettings, parse_arms
    from ragtune.lab.report import write_reports
    from ragtune.lab.runner import run

    try:
        chosen = parse_arms(arms) if arms is not None else ARMS
    except RagtuneError as exc:
        fail(exc)
    loaded = project_or_fail(project)
    try:
        settings = LabSettings(
            drift=drift,
            max_items=max_items,
            max_tokens=max_tokens,
            temperature=temperature,
            seeds=tuple(range(seeds)),
            train_steps=train_steps,
            knowledge_steps=knowledge_steps,
            retrain=not no_retrain,
            arms=chosen,
            split_seed=split_seed,
        )
        paths = list(eval_paths) if eval_paths else default_eval_paths(loaded)
        items = load_eval(paths, loaded)
        shown = [shown_path(p, loaded.root) for p in paths]
        with LabProgress(quiet=as_json or bool(state["quiet"])) as progress:
            data = run(
                loaded,
                items,
                settings,
                eval_files=shown,
                progress=progress,
                on_estimate=lambda e: errors.print(f"[dim]{escape(e.text())}[/]"),
            )
        folder = out if out is not None else loaded.state_dir / "lab"
        written = write_reports(data, folder)
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(data.to_dict(), indent=2))
        return
    print_lab(data, written, settings)


class LabProgress:
    """A Rich progress bar over the lab's steps (training and the arms), on stderr."""

    def __init__(self, *, quiet: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=errors,
            transient=True,
            disable=quiet,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        self._bar.__enter__()

        def progress(step: str, done: int, total: int) -> None:
            if step not in self._tasks:
                self._tasks[step] = self._bar.add_task(step, total=total)
            self._bar.update(self._tasks[step], completed=done, total=total)

        return progress

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def print_lab(
    data: LabResult | Mapping[str, Any], written: dict[str, Path], settings: LabSettings
) -> None:
    """The lab's tables and verdicts in the terminal: unseen, seen and rephrased accuracy side
    by side, the drift test, the verdicts (on unseen questions only)."""
    from rich.table import Table

    from ragtune.lab.results import as_result
    from ragtune.lab.tables import exposure_cell

    result = as_result(data)
    items = result.eval.get("items")
    table = Table(title=f"lab: {result.project} ({items} eval items)")
    columns = ("arm", "unseen", "seen", "rephrased", "compliance", "p50 latency", "tokens/call")
    for column in (*columns, "$/1k"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm in result.arms:
        spread = arm.fact_spread
        fact = _pct(arm.fact_accuracy) + (
            f" ± {spread.std:.0%}" if spread and spread.std is not None else ""
        )
        table.add_row(
            arm.name,
            fact,
            exposure_cell(arm.seen, arm.seen_known),
            exposure_cell(arm.rephrased, arm.seen_known),
            _pct(arm.contract_compliance),
            "n/a" if arm.latency_p50_s is None else f"{arm.latency_p50_s:.2f} s",
            "n/a" if arm.tokens_per_call is None else f"{arm.tokens_per_call:.0f}",
            "n/a" if arm.cost_per_1k is None else f"${arm.cost_per_1k:.4f}",
        )
    console.print(table)
    if result.split is not None:
        console.print(
            f"[dim]fact accuracy: unseen = questions the arm did not train on (they rank the "
            f"arms); seen = those its adapter trained on; split seed {result.split.seed}, "
            f"{result.split.share:.0%} held out[/]"
        )
    drift = result.drift
    if drift:
        dt = Table(
            title=f"drift: {drift.questions} changed questions, re-sync "
            f"{drift.resync_seconds or 0:.2f} s"
            + (
                f", LoRA retraining {drift.retrain_seconds:.0f} s"
                if drift.retrain_seconds is not None
                else ""
            )
        )
        for column in ("arm", "before", "after", "after: unseen / seen", "stale", "to correct"):
            dt.add_column(column, justify="left" if column == "arm" else "right")
        for row in drift.arms:
            ttc = row.time_to_correct_s
            apart = (
                f"{_pct(row.unseen_fact_accuracy)} / {_pct(row.seen_fact_accuracy)}"
                if row.adapter
                else "—"
            )
            dt.add_row(
                row.name,
                _pct(row.fact_accuracy_before),
                _pct(row.fact_accuracy),
                apart,
                _pct(row.stale_share),
                "n/a" if ttc is None else f"{ttc:.2f} s",
            )
        retrained = drift.retrained
        if retrained:
            dt.add_row(
                retrained.name, "", _pct(retrained.fact_accuracy), "",
                _pct(retrained.stale_share), f"{retrained.seconds or 0:.0f} s",
            )  # fmt: skip
        console.print(dt)
    for verdict in result.verdicts:
        if verdict.agrees is None:
            mark = "[dim]cannot judge[/]"
        else:
            mark = "[green]agrees[/]" if verdict.agrees else "[yellow]disagrees[/]"
        console.print(f"{mark}: {escape(verdict.text)}")
    for kind, path in written.items():
        console.print(f"  {kind}: {path}")

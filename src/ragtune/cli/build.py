"""``ragtune plan`` and ``ragtune build``: thin commands over :mod:`ragtune.build`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from ragtune.cli.kit import (
    JsonOption,
    ProjectArgument,
    ProjectFlag,
    console,
    either_project,
    errors,
    fail,
    project_or_fail,
    training_bar,
)
from ragtune.cli.knowledge import print_sync, sync_bar, sync_summary
from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    from ragtune.behavior.classify import ClassifierPlan
    from ragtune.behavior.staleness import AdapterPlan
    from ragtune.behavior.train import ProgressCallback


def plan_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    as_json: JsonOption = False,
) -> None:
    """Show what `ragtune build` would do now, and why; nothing is changed.

    Lists the documents added, changed and deleted since the last sync, the chunks to embed and
    the seconds it will take, and says in words that a knowledge change needs no retraining.
    Lists the adapters to train or retrain and why (examples, base model or training settings
    changed) with an estimated time, and warns when knowledge an adapter saw in training has
    been superseded since. Lists the label classifiers (`classify:`) to tune and why.
    """
    project = either_project(project, project_flag)
    from ragtune.build import make_plan
    from ragtune.project import load_project

    try:
        plan = make_plan(load_project(project))
    except RagtuneError as exc:
        fail(exc)
    knowledge = plan.knowledge
    if as_json:
        payload: dict[str, object] = {"project": plan.project, "summary": plan.summary()}
        if knowledge is not None:
            payload["knowledge"] = {
                "documents": [c.__dict__ for c in knowledge.changes],
                "chunks_to_embed": knowledge.chunks_to_embed,
                "chunks_to_retire": knowledge.chunks_to_retire,
                "estimate_s": round(knowledge.estimate_s, 2),
                "skipped": [{"path": p, "reason": r} for p, r in knowledge.skipped],
                "retraining_needed": False,
            }
        payload["adapters"] = [a.to_dict() for a in plan.adapters]
        payload["classifiers"] = [c.to_dict() for c in plan.classifiers]
        payload["training_needed"] = plan.training_needed
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    if knowledge is not None and not knowledge.up_to_date:
        rows = [
            (c.path, c.status, str(c.chunks_to_embed), str(c.chunks_to_retire))
            for c in knowledge.changes
            if c.status != "unchanged"
        ]
        _table("knowledge", ("document", "change", "chunks to embed", "chunks to retire"), rows)
    if plan.adapters:
        rows = []
        for adapter in plan.adapters:
            why = "\n".join(adapter.reasons) or "examples, base model and settings unchanged"
            trains = adapter.action in ("train", "retrain")
            estimate = f"{adapter.estimate_s / 60:.0f} min" if trains else "-"
            rows.append((adapter.capability, adapter.action, why, estimate))
        _table("adapters", ("adapter", "action", "why", "estimate"), rows)
        for adapter in plan.adapters:
            for warning in adapter.warnings:
                console.print(f"[yellow]warning[/] {adapter.capability}: {warning}")
    if plan.classifiers:
        rows = [
            (c.capability, c.field, c.action, "\n".join(c.reasons) or "unchanged")
            for c in plan.classifiers
        ]
        _table("classifiers", ("classifier", "decides", "action", "why"), rows)
    console.print(plan.summary())
    if knowledge is not None:
        for path, reason in knowledge.skipped:
            errors.print(f"[yellow]will skip[/] {path}: {reason}", highlight=False)


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def build_command(
    project: ProjectArgument = None,
    project_flag: ProjectFlag = None,
    train: Annotated[
        bool,
        typer.Option("--train/--no-train", help="Train the adapters the plan lists (default)."),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Carry out the plan: sync the knowledge, then train the adapters that need it.

    Incremental: only what `ragtune plan` lists is done. A knowledge change re-indexes the
    changed sections in seconds and never retrains an adapter; an adapter is trained when it
    does not exist yet or its examples, base model or `train:` settings changed; a label
    classifier (`classify:`) is tuned, in about 45 s, when its examples, field or settings changed.
    """
    project = either_project(project, project_flag)
    from ragtune.behavior.staleness import SHIPPED_ADAPTERS
    from ragtune.build import build

    loaded = project_or_fail(project)

    @contextmanager
    def shown(line: str, label: str) -> Iterator[ProgressCallback]:
        if not as_json:
            console.print(line)
        with training_bar(label, quiet=as_json) as progress:
            yield progress

    def announce(adapter: AdapterPlan) -> AbstractContextManager[ProgressCallback]:
        why = "; ".join(adapter.reasons)
        line = f"training {adapter.capability} ({adapter.action}: {why}), about "
        return shown(f"{line}{adapter.estimate_s / 60:.0f} min", adapter.capability)

    def tune(planned: ClassifierPlan) -> AbstractContextManager[ProgressCallback]:
        why = "; ".join(planned.reasons)
        line = f"tuning the {planned.capability} classifier of {planned.field!r} "
        return shown(
            f"{line}({planned.action}: {why}), about 1 min", f"{planned.capability} classifier"
        )

    try:
        with sync_bar(quiet=as_json) as sync_progress:
            built = build(
                loaded, train=train, sync_progress=sync_progress, training=announce, tuning=tune
            )
    except RagtuneError as exc:
        fail(exc)
    if as_json:
        payload = {
            "project": built.project,
            **({"knowledge": sync_summary(built.knowledge)} if built.knowledge else {}),
            "adapters": [done.summary() for done in built.adapters],
            "installed": built.installed,
            "classifiers": [asdict(m) for m in built.classifiers],
            "registered": [asdict(r) for r in built.registered],
        }
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    if built.knowledge is not None:
        print_sync(built.knowledge)
    else:
        console.print("no capability declares knowledge sources: nothing to index")
    for name in built.installed:
        console.print(f"adapter {name}: installed from {SHIPPED_ADAPTERS}/{name}, not trained")
    for done in built.adapters:
        result, scores = done.result, ""
        if result.adapter is not None and result.adapter.compliance is not None:
            base = result.base.compliance if result.base is not None else None
            scores = f", contract compliance {result.adapter.compliance:.0%}" + (
                f" (base {base:.0%})" if base is not None else ""
            )
        console.print(f"adapter {done.capability}: {result.steps} steps at {result.path}{scores}")
    for tuned in built.classifiers:
        accuracy = tuned.held_out_accuracy
        scored = (
            f", {accuracy:.0%} of {tuned.tested} held-out examples right"
            if accuracy is not None
            else ""
        )
        console.print(
            f"classifier {tuned.capability}.{tuned.field}: {len(tuned.labels)} labels from "
            f"{tuned.trained} examples in {tuned.seconds:.0f} s{scored}"
        )
    for registration in built.registered:
        console.print(registration.describe(), highlight=False)
    if train and not built.adapters and not built.installed:
        console.print("adapters: nothing behavioural changed, no training needed")

"""The drift test: the change set's documents replace the ones they revise in the lab's copy of
the project, the knowledge re-syncs, and every arm answers the changed questions again; the
LoRA arm's knowledge adapter is retrained on the new answers to measure its time to correct.
An adapter arm's accuracy after the change is also given on the unseen and the seen questions
apart: the verdict uses the unseen ones only."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from ragtune.lab.arms import run_arms
from ragtune.lab.evalset import EvalItem
from ragtune.lab.metrics import call_metrics, mean, rate
from ragtune.lab.model import AdapterJob, Call, Lab, LabError, arm_spec
from ragtune.lab.records import DriftArm, DriftResult, Retrained
from ragtune.lab.train import refresh_trained_on, train_lab_adapter
from ragtune.project import Project

__all__ = ["apply_change_set", "change_set", "drift_test"]


def change_set(project: Project, folder: Path) -> list[tuple[Path, str]]:
    """The change set's files and the project document each replaces (matched by file name
    among the knowledge capabilities' source files).

    Raises:
        LabError: No such folder, no documents in it, or a file that matches no document (or
            several).
    """
    from ragtune.knowledge.tools import is_tool_ref

    if not folder.is_dir():
        raise LabError(f"--drift {folder}: no such folder (give a folder of revised documents)")
    documents: dict[str, list[str]] = {}
    for cap in project.config.capabilities:
        for ref in cap.sources:
            if is_tool_ref(ref):
                continue
            source = project.resolve(ref)
            files = [source] if source.is_file() else sorted(source.rglob("*"))
            for path in files:
                if path.is_file():
                    rel = path.relative_to(project.root).as_posix()
                    documents.setdefault(path.name, []).append(rel)
    pairs: list[tuple[Path, str]] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in {".md", ".txt", ".html", ".pdf"}:
            continue
        matches = sorted(set(documents.get(path.name, [])))
        if len(matches) == 1:
            pairs.append((path, matches[0]))
        elif not matches and path.name.upper().startswith(("CHANGES", "README")):
            continue  # the change set's own notes
        elif not matches:
            raise LabError(
                f"--drift {folder}: {path.name} matches no document of the project's knowledge "
                f"sources; documents: {', '.join(sorted(documents)) or 'none'}"
            )
        else:
            raise LabError(
                f"--drift {folder}: {path.name} matches several documents ({', '.join(matches)})"
            )
    if not pairs:
        raise LabError(f"--drift {folder}: no revised documents in it (.md, .txt, .html, .pdf)")
    return pairs


def apply_change_set(work: Project, changes: Sequence[tuple[Path, str]]) -> list[str]:
    """Copy the change set's files over the documents they revise in the lab's copy; returns
    the documents changed."""
    for source, rel in changes:
        target = work.root / rel
        tmp = target.with_name(f".{target.name}.lab-tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    return [rel for _, rel in changes]


def drift_test(
    lab: Lab, changes: Sequence[tuple[Path, str]], before: Sequence[Call]
) -> tuple[DriftResult, list[Call]]:
    """Apply the change set to the lab's copy, re-sync its knowledge and ask the changed
    questions again with every chosen arm; returns the drift test's result and the calls made
    after the change.

    Raises:
        LabError: No eval item says how the change set revises its answer (``after``).
    """
    changed = [i for i in lab.items if i.after is not None]
    if not changed:
        raise LabError(
            "--drift needs eval items whose answers the change set revises: lines with 'after' "
            '(e.g. "after": {"expected": ["48 hours"]}); the eval set has none'
        )
    documents = apply_change_set(lab.work, changes)
    with lab.runtime.lock:
        resync = lab.runtime.knowledge.sync()
    after = run_arms(lab, changed, "after")
    retrain_seconds, retrained, again = _retrain_lora(lab, changed)
    after = after + again
    lab.after_calls = after
    rows = _arm_rows(lab, changed, before, after, resync.seconds, retrain_seconds)
    folder = lab.settings.drift
    result = DriftResult(
        change_set=str(folder) if folder is not None else None,
        documents=tuple(documents),
        questions=len(changed),
        resync_seconds=round(resync.seconds, 3),
        reembedded=resync.embedded,
        retrain_seconds=None if retrain_seconds is None else round(retrain_seconds, 3),
        arms=tuple(rows),
        retrained=retrained,
    )
    return result, after


RETRAINED = "LoRA (retrained)"


def _retrain_lora(
    lab: Lab, changed: Sequence[EvalItem]
) -> tuple[float | None, Retrained | None, list[Call]]:
    """Retrain the LoRA arm's knowledge adapters on the revised answers (of the same train
    lines) and ask the changed questions again: the seconds it took, the retrained arm's
    figures and its calls (none of them when ``--no-retrain``, the LoRA arm was not chosen or
    no knowledge capability changed)."""
    lora_knowledge = [
        p
        for p in lab.plans.values()
        if p.arm == "LoRA"
        and p.route.adapter
        and lab.runtime.capability(p.capability).answers_from_sources
        and any(i.capability == p.capability for i in changed)
    ]
    if not (lab.settings.retrain and lora_knowledge):
        return None, None, []
    retrain_seconds = 0.0
    for plan in lora_knowledge:
        job = AdapterJob(plan.route.adapter or "", plan.capability, "LoRA", False, "lab")
        seconds, _ = train_lab_adapter(lab, job, revised=True)
        retrain_seconds += seconds
        refresh_trained_on(lab, job.name)
        if not lab.runtime.backend.is_remote:
            lab.runtime.backend.reload_adapter(job.name)
    again = run_arms(lab, changed, "after", ["LoRA"])
    for call in again:
        call.arm = RETRAINED
    retrained = Retrained(
        name=RETRAINED,
        fact_accuracy=mean([c.fact_score for c in again]),
        stale_share=rate([c.stale for c in again]),
        seconds=round(retrain_seconds, 3),
    )
    return retrain_seconds, retrained, again


def _arm_rows(
    lab: Lab,
    changed: Sequence[EvalItem],
    before: Sequence[Call],
    after: Sequence[Call],
    resync_seconds: float,
    retrain_seconds: float | None,
) -> list[DriftArm]:
    """Per arm, on the changed questions: fact accuracy before and after the change (after
    also on the unseen and seen items apart), the share of stale answers and the time to
    correct (the re-sync for an arm that retrieves, the retraining for the LoRA arm)."""
    ids = {id(i) for i in changed}
    rows: list[DriftArm] = []
    for arm in lab.settings.arms:
        spec = arm_spec(arm)
        old = [c for c in before if c.arm == arm and id(c.item) in ids]
        new = [c for c in after if c.arm == arm]
        metrics = call_metrics(lab, new)
        if spec.retrieval:
            to_correct: float | None = resync_seconds
        elif spec.adapter:
            to_correct = retrain_seconds
        else:
            to_correct = None
        seen = [c.fact_score for c in new if c.exposure == "seen"]
        rows.append(
            DriftArm(
                name=arm,
                adapter=spec.adapter,
                fact_accuracy_before=mean([c.fact_score for c in old]),
                fact_accuracy=metrics.fact_accuracy,
                unseen_fact_accuracy=mean([c.fact_score for c in new if c.exposure == "unseen"]),
                seen_fact_accuracy=mean(seen) if spec.adapter else None,
                contract_compliance=metrics.contract_compliance,
                latency_p50_s=metrics.latency_p50_s,
                cost_per_1k=metrics.cost_per_1k,
                stale_share=rate([c.stale for c in new]),
                time_to_correct_s=None if to_correct is None else round(to_correct, 3),
            )
        )
    return rows

"""``ragtune lab``: the five arms (or those ``--arms`` names) on the same eval set, the same base
model and the same generation settings; then the drift test.

A run, step by step, each in its module: plan the arms and answer with each
(:mod:`ragtune.lab.arms`), estimate the time (:mod:`ragtune.lab.estimate`), train the adapters
they need on the train side of the split (:mod:`ragtune.lab.train`), score the
answers (:mod:`ragtune.lab.metrics`), apply the change set and ask again
(:mod:`ragtune.lab.drift`), then hold the results against the audit's decisions
(:mod:`ragtune.lab.verdict`). :func:`run` returns a :class:`~ragtune.lab.results.LabResult`;
:mod:`ragtune.lab.report` renders it.

The lab works on a copy of the project under ``.ragtune/lab/work``: the drift change set is
applied there, and the lab's own adapters live there. The project itself is never changed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any

from ragtune import __version__, holdout
from ragtune.generate.backend import BackendFactory
from ragtune.lab.arms import plan_arms, run_arms
from ragtune.lab.drift import change_set, drift_test
from ragtune.lab.estimate import estimate
from ragtune.lab.evalset import EvalItem
from ragtune.lab.metrics import arm_summary
from ragtune.lab.model import Lab, LabSettings, Progress
from ragtune.lab.records import Estimate, SplitRecord
from ragtune.lab.results import LabResult
from ragtune.lab.train import split_lines, train_adapters
from ragtune.lab.verdict import audit_verdicts
from ragtune.project import Project, load_project
from ragtune.runtime.runtime import Runtime

__all__ = ["run", "workspace"]


def run(
    project: Project,
    items: Sequence[EvalItem],
    settings: LabSettings,
    *,
    eval_files: Sequence[str] = (),
    progress: Progress | None = None,
    backend_factory: BackendFactory | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
) -> LabResult:
    """Run the chosen arms (and the drift test) and return what they found.

    Args:
        project: The project; it is copied, never changed.
        items: The eval set (:func:`ragtune.lab.evalset.load_eval`).
        settings: How to run.
        eval_files: The eval files, as shown in the report.
        progress: Called while arms run and adapters train.
        backend_factory: Makes the generation backend for the lab's copy of the project, when
            the first arm generates; default: the one ``model.backend`` names, with the copy's
            adapters.
        on_estimate: Called with the estimate of the lab's time, before any training.

    Raises:
        LabError: A bad change set, or an eval set without a capability the lab can serve.
    """
    chosen = _reduce(list(items), settings.max_items, settings)
    changes = change_set(project, settings.drift) if settings.drift is not None else None
    work = workspace(project)
    from ragtune.audit import decisions

    if progress:
        progress("knowledge sync", 0, 1)
    # The arms are the strategies themselves: no label classifier (classify:) picks a field
    # for them, so a category scored is the arm's own, and a reader's answer is not replaced
    # by a quote when its passages do not support it, so RAG+reader scores the reader.
    runtime = Runtime(
        work,
        backend=backend_factory,
        decisions=decisions(project),
        classifiers=False,
        support=False,
    )
    first_sync = runtime.knowledge.sync()
    snapshot = runtime.knowledge.store.latest_snapshot()
    lab = Lab(project, work, runtime, settings, chosen, progress, list(items))
    try:
        plan_arms(lab)
        expected = estimate(lab)
        if on_estimate:
            on_estimate(expected)
        train_adapters(lab)

        calls = run_arms(lab, chosen, "before")
        arms = [arm_summary(lab, arm, [c for c in calls if c.arm == arm]) for arm in settings.arms]
        drift = None
        if changes is not None:
            drift, after_calls = drift_test(lab, changes, calls)
            calls += after_calls
        verdicts = audit_verdicts(lab, arms, drift)
        return LabResult(
            **_made_from(lab, eval_files, round(first_sync.seconds, 3), snapshot),
            split=_split(lab),
            estimate=expected,
            arms=tuple(arms),
            adapters=tuple(lab.adapters),
            drift=drift,
            verdicts=tuple(verdicts),
            calls=tuple(c.to_dict() for c in calls),
        )
    finally:
        runtime.close(backend=True)


def _split(lab: Lab) -> SplitRecord:
    """The split's seed and share, and per capability its train and held-out lines."""
    counts = {}
    for name in dict.fromkeys(i.capability for i in lab.items):
        train, held = split_lines(lab, name)
        counts[name] = {"train": len(train), "held_out": len(held)}
    return SplitRecord(lab.settings.split_seed, lab.settings.split_share, counts)


def _made_from(
    lab: Lab, eval_files: Sequence[str], first_sync_seconds: float, snapshot: int
) -> dict[str, Any]:
    """What the result was made from: the project, the base model (with its hash once the
    backend loaded it), the knowledge snapshot, the eval set and the settings."""
    project, settings, chosen = lab.project, lab.settings, lab.items
    return {
        "project": project.config.project,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ragtune_version": __version__,
        "base_model": {
            "name": project.config.model.base_model,
            "sha256": lab.runtime.backend.model_sha256,
        },
        "knowledge_snapshot": snapshot,
        "eval": {
            "files": list(eval_files),
            "items": len(chosen),
            "by_capability": _count_by_capability(chosen),
        },
        "settings": {
            "arms": list(settings.arms),
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
            "seeds": [s for s in settings.run_seeds if s is not None],
            "train_steps": settings.train_steps,
            "max_items": settings.max_items,
            "first_sync_seconds": first_sync_seconds,
        },
    }


def _reduce(items: list[EvalItem], limit: int | None, settings: LabSettings) -> list[EvalItem]:
    """At most ``limit`` items per capability, the changed ones (``after``) first so the
    drift test keeps its questions, and train and held-out lines of the split taken in turn
    so that an adapter has lines to learn from and both seen and unseen ones are scored."""
    if limit is None:
        return items
    kept: list[EvalItem] = []
    for name in dict.fromkeys(i.capability for i in items):
        of = [i for i in items if i.capability == name]
        ordered = [i for i in of if i.after] + [i for i in of if not i.after]
        train, held = holdout.split(
            ordered, key=lambda i: i.input, seed=settings.split_seed, share=settings.split_share
        )
        turns = [i for pair in zip_longest(train, held) for i in pair if i is not None]
        keep = set(map(id, turns[:limit]))
        kept.extend(i for i in of if id(i) in keep)
    return kept


def _count_by_capability(items: Sequence[EvalItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.capability] = counts.get(item.capability, 0) + 1
    return counts


def workspace(project: Project) -> Project:
    """A copy of the project under ``.ragtune/lab/work``: its files, its knowledge store and
    its trained adapters; the de-quantised base model is shared, not copied."""
    state = project.state_dir
    work_root = state / "lab" / "work"
    if work_root.exists():
        shutil.rmtree(work_root)
    ignore = shutil.ignore_patterns(state.name, ".git", "__pycache__")
    shutil.copytree(project.root, work_root, ignore=ignore)
    work_state = work_root / state.name
    work_state.mkdir(parents=True, exist_ok=True)
    for name in ("knowledge.db", "knowledge.db-wal", "knowledge.db-shm"):
        if (state / name).is_file():
            shutil.copy2(state / name, work_state / name)
    for path in state.glob("*.usearch*"):
        shutil.copy2(path, work_state / path.name)
    if (state / "adapters").is_dir():
        shutil.copytree(
            state / "adapters", work_state / "adapters", ignore=shutil.ignore_patterns(".*")
        )
    models = state / "models"
    models.mkdir(parents=True, exist_ok=True)
    (work_state / "models").symlink_to(models.resolve(), target_is_directory=True)
    return load_project(work_root)

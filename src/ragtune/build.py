"""``ragtune plan`` and ``ragtune build``: what is stale and why, then sync and train.

Knowledge and behaviour are planned apart on purpose: a knowledge change re-indexes a few chunks
in seconds and never retrains an adapter; an adapter is retrained only when its examples, its
base model or its training settings change (:mod:`ragtune.behavior.staleness`). :func:`build`
carries the plan out: the knowledge sync first, then the adapters the plan lists, then the label
classifiers (``classify:``, :mod:`ragtune.behavior.classify`) whose examples or settings changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ragtune.adapters import TrainConfig
from ragtune.behavior.classify import ClassifierPlan, classifier_plan
from ragtune.behavior.staleness import SHIPPED_ADAPTERS, AdapterPlan, plan_adapters
from ragtune.knowledge.store import open_store
from ragtune.knowledge.sync import SyncPlan, plan_sync, synced_store
from ragtune.project import Capability, Project

if TYPE_CHECKING:
    from ragtune.behavior.capability import CapabilityTraining
    from ragtune.behavior.classify import ClassifierManifest
    from ragtune.behavior.classify import Progress as ClassifierProgress
    from ragtune.behavior.train import ProgressCallback
    from ragtune.generate.remote_adapters import Registration
    from ragtune.knowledge.sync import Progress, SyncResult

__all__ = [
    "NO_RETRAINING",
    "BuildResult",
    "ProjectPlan",
    "build",
    "install_shipped",
    "make_plan",
    "tune_classifiers",
]

CLASSIFIER_SECONDS = 45.0
"""Seconds to tune one classifier on two cores (the example's 262 training clauses: 40-45 s)."""

NO_RETRAINING = (
    "A knowledge change needs no retraining: adapters hold behaviour, not facts, and the "
    "retrieval index serves the new text on the next request."
)


@dataclass
class ProjectPlan:
    """The plan for a project: the knowledge sync, the adapters and the label classifiers to
    (re)train."""

    project: str
    knowledge: SyncPlan | None  # None when no capability declares sources
    adapters: list[AdapterPlan] = field(default_factory=list)
    classifiers: list[ClassifierPlan] = field(default_factory=list)

    @property
    def training_needed(self) -> bool:
        """Whether any adapter or classifier must be trained or retrained."""
        return any(a.action in ("train", "retrain") for a in self.adapters) or any(
            c.action != "none" for c in self.classifiers
        )

    def summary(self) -> str:
        """One paragraph in words a user understands."""
        parts = (self._knowledge(), self._training(), self._classifiers())
        return " ".join(part for part in parts if part)

    def _classifiers(self) -> str:
        todo = [c for c in self.classifiers if c.action != "none"]
        if not todo:
            return ""
        listed = "; ".join(f"{c.capability}.{c.field} ({', '.join(c.reasons)})" for c in todo)
        count = f"{len(todo)} classifier{'s' if len(todo) != 1 else ''}"
        return f"Tune {count}, about {CLASSIFIER_SECONDS * len(todo) / 60:.0f} min: {listed}."

    def _training(self) -> str:
        if not self.adapters:
            return ""
        todo = [a for a in self.adapters if a.action in ("train", "retrain")]
        shipped = [a.capability for a in self.adapters if a.action == "install"]
        install = (
            f"Install {', '.join(shipped)} as shipped in {SHIPPED_ADAPTERS}/." if shipped else ""
        )
        if not todo:
            if shipped:
                return install
            names = ", ".join(a.capability for a in self.adapters)
            return f"Adapters ({names}): nothing behavioural changed, no training needed."
        minutes = sum(a.estimate_s for a in todo) / 60
        listed = "; ".join(f"{a.capability} ({a.action}: {', '.join(a.reasons)})" for a in todo)
        count = f"{len(todo)} adapter{'s' if len(todo) != 1 else ''}"
        return " ".join(
            p for p in (install, f"Train {count}, about {minutes:.0f} min: {listed}.") if p
        )

    def _knowledge(self) -> str:
        plan = self.knowledge
        if plan is None:
            return "No capability declares knowledge sources: nothing to index."
        if plan.reembed_all:
            return (
                f"The embedder changed to {plan.embedder}: every stored chunk will be embedded "
                "again, history included, before the sync. " + NO_RETRAINING
            )
        if plan.up_to_date:
            return "Knowledge is up to date: nothing to embed. " + NO_RETRAINING
        parts = []
        for status in ("added", "changed", "deleted"):
            docs = plan.of(status)
            if docs:
                parts.append(f"{len(docs)} document{'s' if len(docs) != 1 else ''} {status}")
        return (
            f"{', '.join(parts)}: re-index {plan.chunks_to_embed} chunk"
            f"{'s' if plan.chunks_to_embed != 1 else ''} (about {plan.estimate_s:.1f} s of "
            f"embedding) and retire {plan.chunks_to_retire} (kept in history). " + NO_RETRAINING
        )


def make_plan(project: Project) -> ProjectPlan:
    """Compute the plan without embedding, training or writing anything.

    Only the capabilities that could have an adapter (those with examples) are audited, for
    their decision alone: no cost projection, no report.

    Raises:
        ExamplesError: An examples file has bad lines (each named with its line), whatever its
            capability's decision: training and few-shot serving both refuse it.
    """
    from ragtune.audit import decisions
    from ragtune.behavior.examples import load_examples

    for capability in project.config.capabilities:
        if capability.examples:  # a few-shot file too: serving reads it, as training does
            load_examples(project.resolve(capability.examples), project.root)
    candidates = [c.name for c in project.config.capabilities if c.examples]
    lora = {name for name, d in decisions(project, candidates).items() if d == "lora"}
    adapters = plan_adapters(project, lora)
    classifiers = [
        classifier_plan(project, c) for c in project.config.capabilities if c.classify is not None
    ]
    if not any(c.sources for c in project.config.capabilities):
        return ProjectPlan(project.config.project, None, adapters, classifiers)
    # Planning a project never synced must not create its store: plan against an empty one.
    store = synced_store(project) or open_store(":memory:")
    try:
        return ProjectPlan(project.config.project, plan_sync(project, store), adapters, classifiers)
    finally:
        store.close()


@dataclass
class BuildResult:
    """What :func:`build` did.

    Attributes:
        project: The project's name.
        knowledge: The sync; None when no capability declares sources.
        adapters: One entry per adapter trained, in the plan's order.
        planned: The adapters the plan listed (trained or not), with the reasons.
        installed: The adapters copied from the project's ``adapters/`` folder instead of
            trained (shipped, and current for the examples, base model and settings).
        registered: The adapters trained or installed now, registered with the project's
            server (``model.server``; none without one).
        classifiers: One manifest per label classifier tuned (``classify:``).
    """

    project: str
    knowledge: SyncResult | None
    adapters: list[CapabilityTraining] = field(default_factory=list)
    planned: list[AdapterPlan] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    registered: list[Registration] = field(default_factory=list)
    classifiers: list[ClassifierManifest] = field(default_factory=list)


TrainingProgress = Callable[[AdapterPlan], AbstractContextManager["ProgressCallback | None"]]
Configure = Callable[[Capability, TrainConfig], TrainConfig]
Tuning = Callable[[ClassifierPlan], AbstractContextManager["ClassifierProgress | None"]]


def build(
    project: Project,
    *,
    train: bool = True,
    sync_progress: Progress | None = None,
    training: TrainingProgress | None = None,
    configure: Configure | None = None,
    tuning: Tuning | None = None,
) -> BuildResult:
    """Carry out the plan: sync the knowledge, then train the adapters that need it.

    Incremental: a knowledge change re-indexes the changed sections and never retrains an
    adapter; an adapter is trained when it does not exist yet or its examples, base model or
    ``train:`` settings changed. The plan is made after the sync, so a context-aware adapter
    trains on the current text.

    Args:
        project: The loaded project.
        train: False syncs the knowledge only.
        sync_progress: Called as documents are embedded (``done, total, document``).
        training: Gives, for each adapter about to train, a context manager that yields the
            trainer's progress callback (a progress bar) or None.
        configure: Adjusts each adapter's settings (``train:`` over the defaults) before it
            trains: a budget for a demo, overrides from the command line.
        tuning: Gives, for each label classifier about to be tuned, a context manager that
            yields its progress callback (``done, total, loss``) or None.

    Returns:
        The sync and the adapters trained.

    Raises:
        RagtuneError: A source, store, example or training setting is bad; what finished
            before it stays finished (each document and each adapter is written whole).
        RegistrationError: The server of ``model.server`` did not take an adapter just
            trained; the adapters stay trained (``ragtune adapter register`` tries again).
    """
    from ragtune.behavior.capability import capability_of, train_capability
    from ragtune.behavior.staleness import train_config_for
    from ragtune.generate.remote_adapters import register_adapters
    from ragtune.knowledge.base import KnowledgeBase

    knowledge = None
    if any(c.sources for c in project.config.capabilities):
        kb = KnowledgeBase(project)
        try:
            knowledge = kb.sync(sync_progress)
        finally:
            kb.close()
    result = BuildResult(project.config.project, knowledge)
    if not train:
        return result
    plan = make_plan(project)
    result.planned = plan.adapters
    for adapter in result.planned:
        if adapter.action == "none":
            continue
        if adapter.action == "install":
            install_shipped(project, adapter.capability)
            result.installed.append(adapter.capability)
            continue
        capability = capability_of(project, adapter.capability)
        config = train_config_for(project, capability)
        if configure is not None:
            config = configure(capability, config)
        with training(adapter) if training is not None else nullcontext(None) as progress:
            result.adapters.append(
                train_capability(project, adapter.capability, config, progress=progress)
            )
    result.classifiers = tune_classifiers(project, plan.classifiers, tuning=tuning)
    fresh = [*result.installed, *(done.capability for done in result.adapters)]
    result.registered = register_adapters(project, fresh)  # raises after trying each
    return result


def tune_classifiers(
    project: Project, plans: Sequence[ClassifierPlan], *, tuning: Tuning | None = None
) -> list[ClassifierManifest]:
    """Tune the label classifiers that ``plans`` (:func:`make_plan`'s) list as missing or stale,
    each written whole; returns their manifests in the plans' order.

    Args:
        project: The loaded project.
        plans: The classifiers' plans; those whose action is ``none`` are skipped.
        tuning: Gives, for each classifier about to be tuned, a context manager that yields
            its progress callback (``done, total, loss``) or None.
    """
    from ragtune.behavior.capability import capability_of
    from ragtune.behavior.classify import train_classifier

    tuned = []
    for planned in plans:
        if planned.action == "none":
            continue
        with tuning(planned) if tuning is not None else nullcontext(None) as progress:
            capability = capability_of(project, planned.capability)
            tuned.append(train_classifier(project, capability, progress=progress))
    return tuned


def install_shipped(project: Project, name: str) -> Path:
    """Copy the adapter ``name`` the project ships (``adapters/<name>/`` beside ragtune.yaml)
    into its state (``.ragtune/adapters/<name>``), whole or not at all: it is copied into a
    staging folder and swapped in as a trained adapter is; returns where it now is."""
    import shutil

    from ragtune.adapters import adapter_path, staging_path
    from ragtune.behavior.checkpoint import swap_into_place

    target = adapter_path(project.adapters_dir, name)
    stage = staging_path(target)
    shutil.rmtree(stage, ignore_errors=True)
    stage.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(project.root / SHIPPED_ADAPTERS / name, stage)
        swap_into_place(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target

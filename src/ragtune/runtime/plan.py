"""``ragtune plan``: what ``ragtune build`` would do now, and why; nothing is changed.

Knowledge and behaviour are planned apart on purpose: a knowledge change re-indexes a few chunks
in seconds and never retrains an adapter; an adapter is retrained only when its examples, its
base model or its training settings change (:mod:`ragtune.behavior.staleness`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ragtune.behavior.staleness import AdapterPlan, plan_adapters
from ragtune.knowledge.store.sqlite import SQLiteStore
from ragtune.knowledge.sync import SyncPlan, knowledge_db, plan_sync
from ragtune.project import Project

NO_RETRAINING = (
    "A knowledge change needs no retraining: adapters hold behaviour, not facts, and the "
    "retrieval index serves the new text on the next request."
)


@dataclass
class ProjectPlan:
    """The plan for a project: the knowledge sync and the adapters to (re)train."""

    project: str
    knowledge: SyncPlan | None  # None when no capability declares sources
    adapters: list[AdapterPlan] = field(default_factory=list)

    @property
    def training_needed(self) -> bool:
        """Whether any adapter must be trained or retrained."""
        return any(a.action != "none" for a in self.adapters)

    def summary(self) -> str:
        """One paragraph in words a user understands."""
        return " ".join(part for part in (self._knowledge(), self._training()) if part)

    def _training(self) -> str:
        if not self.adapters:
            return ""
        todo = [a for a in self.adapters if a.action != "none"]
        if not todo:
            names = ", ".join(a.capability for a in self.adapters)
            return f"Adapters ({names}): nothing behavioural changed, no training needed."
        minutes = sum(a.estimate_s for a in todo) / 60
        listed = "; ".join(f"{a.capability} ({a.action}: {', '.join(a.reasons)})" for a in todo)
        count = f"{len(todo)} adapter{'s' if len(todo) != 1 else ''}"
        return f"Train {count}, about {minutes:.0f} min: {listed}."

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
    """Compute the plan without embedding, training or writing anything."""
    from ragtune.audit import run_audit

    lora = {c.name for c in run_audit(project).capabilities if c.decision == "lora"}
    adapters = plan_adapters(project, lora)
    if not any(c.sources for c in project.config.capabilities):
        return ProjectPlan(project.config.project, None, adapters)
    path = knowledge_db(project)
    # Planning a project never synced must not create its store: plan against an empty one.
    store = SQLiteStore(path if path.exists() else Path(":memory:"))
    try:
        return ProjectPlan(project.config.project, plan_sync(project, store), adapters)
    finally:
        store.close()

"""``ragtune plan``: what ``ragtune build`` would do now, and why; nothing is changed.

Knowledge and behaviour are planned apart on purpose: a knowledge change re-indexes a few chunks
in seconds and never retrains an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ragtune.knowledge.store.sqlite import SQLiteStore
from ragtune.knowledge.sync import SyncPlan, knowledge_db, plan_sync
from ragtune.project import Project

NO_RETRAINING = (
    "A knowledge change needs no retraining: adapters hold behaviour, not facts, and the "
    "retrieval index serves the new text on the next request."
)


@dataclass
class ProjectPlan:
    """The plan for a project: the knowledge sync (adapters come with the behaviour stage)."""

    project: str
    knowledge: SyncPlan | None  # None when no capability declares sources

    def summary(self) -> str:
        """One paragraph in words a user understands."""
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
    """Compute the plan without embedding, training or writing anything but the empty store."""
    if not any(c.sources for c in project.config.capabilities):
        return ProjectPlan(project.config.project, None)
    path = knowledge_db(project)
    # Planning a project never synced must not create its store: plan against an empty one.
    store = SQLiteStore(path if path.exists() else Path(":memory:"))
    try:
        return ProjectPlan(project.config.project, plan_sync(project, store))
    finally:
        store.close()

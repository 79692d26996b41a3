"""What the last lab run measured, shown beside the audit's decision.

The audit decides from the two questions and the project's own files; the lab (``ragtune lab``)
measures on the team's eval set. When a lab run exists (``.ragtune/lab/lab.json``), the audit
shows for each capability the lab judged: each arm's score on the items no adapter trained on,
and whether the lab agreed with the decision. For a knowledge capability it also shows the gap
a context-reading adapter makes - plain RAG against RAG with the reader (the lab's ``RAG+LoRA``
arm), on held-out questions, before and after the change - which is what tells a team whether
``reader:`` pays for itself.

Only JSON is read: no torch, no model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.project import Project

__all__ = ["LAB_FILE", "Measured", "ReaderGap", "measured_by_lab"]

LAB_FILE = Path("lab") / "lab.json"
"""Where ``ragtune lab`` writes its results by default, under the project's state folder."""

RAG, READER = "RAG", "RAG+LoRA"
"""The lab's arms without and with an adapter over retrieved passages (for a knowledge
capability, the adapter is its reader)."""

WORTH = 0.05
"""A reader is worth its training when it adds at least this much fact accuracy."""


@dataclass(frozen=True)
class ReaderGap:
    """Plain RAG against RAG with the reader, on held-out questions of one capability.

    Attributes:
        rag, reader: Fact accuracy of the two before the change (None when not measured).
        items: Held-out questions behind ``reader``.
        rag_after, reader_after: The same after the change, when the drift test ran.
        has_reader: Whether the capability declares ``reader:`` today.
    """

    rag: float | None
    reader: float | None
    items: int | None
    rag_after: float | None = None
    reader_after: float | None = None
    has_reader: bool = False

    @property
    def gap(self) -> float | None:
        """What the reader adds, after the change when measured there, else before."""
        pairs = [(self.rag_after, self.reader_after), (self.rag, self.reader)]
        for rag, reader in pairs:
            if rag is not None and reader is not None:
                return reader - rag
        return None

    def sentence(self) -> str:
        """The gap in words, with what to do about it."""
        parts = []
        if self.rag is not None and self.reader is not None:
            parts.append(
                f"RAG {self.rag:.2f} -> RAG+reader {self.reader:.2f} on {self.items or 0} "
                "held-out questions"
            )
        if self.rag_after is not None and self.reader_after is not None:
            parts.append(f"after the change {self.rag_after:.2f} -> {self.reader_after:.2f}")
        gap = self.gap
        if gap is None:
            return "The lab did not score RAG and RAG+reader both."
        measured = "; ".join(parts)
        if gap >= WORTH:
            advice = (
                "the reader pays for itself"
                if self.has_reader
                else "add `reader: true` to this capability: the lab's RAFT adapter showed it"
            )
            return (
                f"A context-reading adapter adds {gap:+.2f} fact accuracy ({measured}): {advice}."
            )
        advice = (
            "the reader does not pay for itself here; consider removing `reader:`"
            if self.has_reader
            else "plain retrieval is enough"
        )
        return f"A context-reading adapter adds {gap:+.2f} fact accuracy ({measured}): {advice}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "rag": self.rag,
            "reader": self.reader,
            "items": self.items,
            "rag_after": self.rag_after,
            "reader_after": self.reader_after,
            "gap": None if self.gap is None else round(self.gap, 4),
            "has_reader": self.has_reader,
        }


@dataclass(frozen=True)
class Measured:
    """What one lab run measured on one capability.

    Attributes:
        lab_file: The lab.json read.
        created_at: When the lab ran.
        metric: What the scores are (fact accuracy, after the change or not; contract
            compliance).
        scores: Each arm's score on items no adapter of it trained on.
        agrees: Whether the lab's best arm carries out the audit's decision (None: it could not
            judge).
        verdict: The lab's verdict in words.
        reader_gap: For a knowledge capability, RAG against RAG+reader.
    """

    lab_file: str
    created_at: str | None
    metric: str | None
    scores: dict[str, float] = field(default_factory=dict)
    agrees: bool | None = None
    verdict: str = ""
    reader_gap: ReaderGap | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab_file": self.lab_file,
            "created_at": self.created_at,
            "metric": self.metric,
            "scores": dict(self.scores),
            "agrees": self.agrees,
            "verdict": self.verdict,
            "reader_gap": None if self.reader_gap is None else self.reader_gap.to_dict(),
        }


def measured_by_lab(project: Project, lab_file: Path | None = None) -> dict[str, Measured]:
    """Per capability, what the lab run in ``lab_file`` (default ``.ragtune/lab/lab.json``)
    measured; empty when there is no lab run, or its file cannot be read (the audit never fails
    on it)."""
    from ragtune.lab.results import LabResult

    path = lab_file if lab_file is not None else project.state_dir / LAB_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    lab = LabResult.from_dict(data)
    shown = _shown(path, project.root)
    known = {c.name: c for c in project.config.capabilities}
    found: dict[str, Measured] = {}
    for verdict in lab.verdicts:
        capability = known.get(verdict.capability)
        if capability is None:
            continue
        gap = None
        if capability.answers_from_sources:
            gap = _reader_gap(lab, verdict, capability.reader is not None)
        found[verdict.capability] = Measured(
            shown,
            lab.created_at,
            verdict.metric,
            dict(verdict.scores),
            verdict.agrees,
            verdict.text,
            gap,
        )
    return found


def _reader_gap(lab: Any, verdict: Any, has_reader: bool) -> ReaderGap | None:
    """RAG against RAG+reader on one capability: unseen items before the change (the arms'
    per-capability scores), and after it when the verdict was taken there."""
    name = verdict.capability
    rag, reader = lab.arm(RAG), lab.arm(READER)
    before_rag = rag.by_capability.get(name) if rag is not None else None
    before_reader = reader.by_capability.get(name) if reader is not None else None
    after = verdict.metric is not None and "after" in verdict.metric
    gap = ReaderGap(
        before_rag.fact_accuracy if before_rag is not None else None,
        before_reader.fact_accuracy if before_reader is not None else None,
        before_reader.items if before_reader is not None else None,
        verdict.scores.get(RAG) if after else None,
        verdict.scores.get(READER) if after else None,
        has_reader,
    )
    return gap if gap.gap is not None else None


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)

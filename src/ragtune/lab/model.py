"""What the lab's steps share: the arms, the settings, how an arm serves a capability, the
adapters it needs, one answer (a :class:`Call`) and the state of one run (:class:`Lab`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.behavior.examples import Example
from ragtune.errors import RagtuneError
from ragtune.lab.evalset import EvalItem
from ragtune.project import Project
from ragtune.runtime.runtime import Route, Runtime

__all__ = ["ARMS", "AdapterJob", "ArmPlan", "Call", "Lab", "LabError", "LabSettings", "Progress"]

ARMS = ("zero-shot", "few-shot", "RAG", "LoRA", "RAG+LoRA")
"""The arms, in report order."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while arms run and adapters train."""


class LabError(RagtuneError):
    """The lab cannot run: a bad setting, an eval set that does not fit, a change set that
    names no document of the project."""


@dataclass
class LabSettings:
    """How the lab runs.

    Attributes:
        drift: A folder of new versions of the project's documents (by file name), applied
            after the adapters are trained; None skips the drift test.
        max_items: At most this many eval items per capability (the reduced setting); None: all.
        max_tokens: Token budget of each answer, the same for every arm.
        temperature: 0 decodes greedily (one run); above 0 samples, once per seed.
        seeds: Seeds of the sampled runs (used only when ``temperature`` > 0).
        train_steps: Cap on the steps of each behaviour adapter the lab trains; None: the
            capability's ``train:`` settings. Knowledge adapters train
            :data:`~ragtune.lab.train.KNOWLEDGE_EPOCHS` epochs over the reference answers (a few
            dozen short steps).
        knowledge_steps: Steps of each knowledge adapter the lab trains; None:
            :data:`~ragtune.lab.train.KNOWLEDGE_EPOCHS` epochs over the evaluated items'
            reference answers.
        retrain: Retrain the LoRA arm's knowledge adapter on the new facts after the drift,
            to measure its time to correct.
    """

    drift: Path | None = None
    max_items: int | None = None
    max_tokens: int = 80
    temperature: float = 0.0
    seeds: tuple[int, ...] = (0, 1, 2)
    train_steps: int | None = None
    knowledge_steps: int | None = None
    retrain: bool = True

    def __post_init__(self) -> None:
        if self.max_items is not None and self.max_items < 1:
            raise LabError(f"--max-items must be at least 1, got {self.max_items}")
        if self.max_tokens < 1:
            raise LabError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise LabError(f"--temperature must be 0 or more, got {self.temperature}")
        if self.train_steps is not None and self.train_steps < 1:
            raise LabError(f"--train-steps must be at least 1, got {self.train_steps}")
        if self.knowledge_steps is not None and self.knowledge_steps < 1:
            raise LabError(f"--knowledge-steps must be at least 1, got {self.knowledge_steps}")
        if not self.seeds:
            raise LabError("--seeds must name at least one seed")

    @property
    def run_seeds(self) -> tuple[int | None, ...]:
        """The seeds the arms run with: one greedy run, or one sampled run per seed."""
        return tuple(self.seeds) if self.temperature > 0 else (None,)


@dataclass(frozen=True)
class ArmPlan:
    """How one arm serves one capability."""

    arm: str
    capability: str
    route: Route
    shots: str | None  # "examples", "reference" or None
    setup: str


@dataclass(frozen=True)
class AdapterJob:
    """An adapter an arm needs: trained by the lab, or the project's own."""

    name: str
    capability: str
    arm: str
    context: bool
    source: str  # "lab" or "project"


@dataclass
class Call:
    """One answer of one arm to one eval item."""

    arm: str
    item: EvalItem
    answer: str
    fact_score: float | None
    contract_ok: bool | None
    stale: bool | None
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    seed: int | None
    phase: str  # "before" or "after"

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "capability": self.item.capability,
            "where": self.item.where,
            "input": self.item.input,
            "answer": self.answer,
            "fact_score": self.fact_score,
            "contract_ok": self.contract_ok,
            "stale": self.stale,
            "seconds": round(self.seconds, 4),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seed": self.seed,
            "phase": self.phase,
        }


@dataclass
class Lab:
    """What one lab run shares."""

    project: Project
    work: Project
    runtime: Runtime
    settings: LabSettings
    items: list[EvalItem]
    progress: Progress | None
    pool: list[EvalItem]  # every item, also beyond --max-items: the reference answers
    plans: dict[tuple[str, str], ArmPlan] = field(default_factory=dict)
    adapters: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, list[Example]] = field(default_factory=dict)
    after_calls: list[Call] = field(default_factory=list)
    reference_vectors: dict[str, Any] = field(default_factory=dict)

"""What the lab's steps share: the arms (one table, :data:`ARM_SPECS`), the settings, how an arm
serves a capability, the adapters it needs, one answer (a :class:`Call`) and the state of one run
(:class:`Lab`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.behavior.examples import Example
from ragtune.errors import RagtuneError
from ragtune.holdout import HELD_OUT_SHARE, SPLIT_SEED, input_key
from ragtune.lab.evalset import EvalItem
from ragtune.lab.records import AdapterRecord
from ragtune.project import Project
from ragtune.runtime.runtime import Route, Runtime

__all__ = [
    "ARMS",
    "ARM_SPECS",
    "AdapterJob",
    "ArmPlan",
    "ArmSpec",
    "Call",
    "Lab",
    "LabError",
    "LabSettings",
    "Progress",
    "arm_spec",
    "parse_arms",
]


@dataclass(frozen=True)
class ArmSpec:
    """What an arm adds to the base model; :mod:`ragtune.lab.arms` turns it into a route.

    Attributes:
        name: The arm, as reports and ``--arms`` name it.
        retrieval: Serves retrieved passages (a knowledge capability's own, a behaviour
            capability's ``context_from``).
        shots: Shows examples in the prompt (reference answers, or the examples file).
        adapter: Serves an adapter: the lab's, or the project's where one fits.
        knowledge_setup: How it serves a knowledge capability, for the report.
        behaviour_setup: How it serves a behaviour capability (``{passages}`` says what is
            retrieved).
    """

    name: str
    retrieval: bool
    shots: bool
    adapter: bool
    knowledge_setup: str
    behaviour_setup: str


ARM_SPECS = (
    ArmSpec(
        "zero-shot", False, False, False, "base model, no context", "base model, instructions only"
    ),
    ArmSpec(
        "few-shot",
        False,
        True,
        False,
        "base model, {shots} reference answers of similar eval questions",
        "base model, {shots} most similar examples",
    ),
    ArmSpec("RAG", True, False, False, "base model, retrieved passages", "base model, {passages}"),
    ArmSpec(
        "LoRA",
        False,
        False,
        True,
        "adapter trained on the reference answers of the split's train lines, no retrieval",
        "adapter trained without retrieved context",
    ),
    ArmSpec(
        "RAG+LoRA",
        True,
        False,
        True,
        "adapter trained on the reference answers of the split's train lines with retrieved "
        "context (RAFT), with retrieval",
        "the project's context-aware adapter, {passages}",
    ),
)
"""The arms, in report order."""

ARMS = tuple(spec.name for spec in ARM_SPECS)
"""The arms' names, in report order."""


def arm_spec(name: str) -> ArmSpec:
    """The spec of arm ``name`` (as :data:`ARMS` spells it)."""
    return next(spec for spec in ARM_SPECS if spec.name == name)


def parse_arms(text: str) -> tuple[str, ...]:
    """``--arms``: comma-separated arm names, any case, as :data:`ARMS` spells them and in its
    order.

    Raises:
        LabError: An unknown or missing name; the message lists the arms.
    """
    by_lower = {name.lower(): name for name in ARMS}
    asked = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [a for a in asked if a.lower() not in by_lower]
    if unknown or not asked:
        what = f"unknown arm{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
        raise LabError(
            f"--arms {text!r}: {what if unknown else 'names no arm'}; the arms are "
            + ", ".join(ARMS)
        )
    chosen = {by_lower[a.lower()] for a in asked}
    return tuple(name for name in ARMS if name in chosen)


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
        arms: The arms to run (``--arms``), in :data:`ARMS` order.
        split_seed: The seed of the train / held-out split (:mod:`ragtune.holdout`); the lab's
            knowledge adapters train on the train lines only.
        split_share: The share of lines held out.
    """

    drift: Path | None = None
    max_items: int | None = None
    max_tokens: int = 80
    temperature: float = 0.0
    seeds: tuple[int, ...] = (0, 1, 2)
    train_steps: int | None = None
    knowledge_steps: int | None = None
    retrain: bool = True
    arms: tuple[str, ...] = ARMS
    split_seed: int = SPLIT_SEED
    split_share: float = HELD_OUT_SHARE

    def __post_init__(self) -> None:
        parse_arms(",".join(self.arms))  # names each unknown arm
        if not 0.0 <= self.split_share <= 1.0:
            raise LabError(f"the held-out share must be from 0 to 1, got {self.split_share}")
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
    """One answer of one arm to one eval item.

    ``exposure`` says whether the adapter that answered trained on the item: "seen" (its input
    is among the adapter's training inputs), "rephrased" (a rephrasing of such an input) or
    "unseen" (no adapter, or one that did not train on it).
    """

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
    exposure: str = "unseen"  # "unseen", "seen" or "rephrased"

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
            "exposure": self.exposure,
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
    adapters: list[AdapterRecord] = field(default_factory=list)
    reference: dict[str, list[Example]] = field(default_factory=dict)
    after_calls: list[Call] = field(default_factory=list)
    reference_vectors: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """Per adapter served, the :func:`~ragtune.holdout.input_key` of the inputs it trained on;
    None when its manifest does not say (an older adapter)."""

    def exposure(self, adapter: str | None, item: EvalItem) -> str:
        """Whether ``adapter`` trained on ``item``: "seen", "rephrased" or "unseen"."""
        inputs = self.trained_on.get(adapter) if adapter else None
        if not inputs:
            return "unseen"
        if item.original is not None:
            return "rephrased" if input_key(item.original) in inputs else "unseen"
        return "seen" if input_key(item.input) in inputs else "unseen"

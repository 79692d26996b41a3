"""The smaller records of a lab run - the adapters it served, the split, the time estimate, the
drift test and the verdicts - and the lenient readers :mod:`ragtune.lab.results` reads
``lab.json`` back with (a missing entry or a null takes the default or None)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AdapterRecord",
    "DriftArm",
    "DriftResult",
    "Estimate",
    "Retrained",
    "SplitRecord",
    "Verdict",
    "as_mapping",
    "flag",
    "listed",
    "number",
    "text",
    "whole",
]


# -- lenient readers ------------------------------------------------------------------------------


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def number(value: Any) -> float | None:
    """``value`` as a float if it is a number (not a bool), else None."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def whole(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text(value: Any) -> str | None:
    """``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None


def flag(value: Any) -> bool | None:
    """``value`` if it is a bool, else None."""
    return value if isinstance(value, bool) else None


def listed(value: Any) -> list[Any]:
    """``value`` as a list if it is a list or tuple, else an empty one."""
    return list(value) if isinstance(value, list | tuple) else []


@dataclass(frozen=True)
class AdapterRecord:
    """An adapter an arm served: trained by the lab (``source`` "lab") or the project's own.

    ``inputs`` counts the inputs its manifest says it trained on; None for an older manifest
    that does not say (the lab then counts every item as unseen).
    """

    name: str
    capability: str | None = None
    arm: str | None = None
    context: bool | None = None
    steps: int | None = None
    seconds: float | None = None
    source: str | None = None
    inputs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "capability": self.capability,
            "arm": self.arm,
            "context": self.context,
            "steps": self.steps,
            "seconds": self.seconds,
            "source": self.source,
            "inputs": self.inputs,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AdapterRecord:
        d = as_mapping(data)
        return cls(
            str(d.get("name")),
            text(d.get("capability")),
            text(d.get("arm")),
            flag(d.get("context")),
            whole(d.get("steps")),
            number(d.get("seconds")),
            text(d.get("source")),
            whole(d.get("inputs")),
        )


@dataclass(frozen=True)
class SplitRecord:
    """The train / held-out split of the eval set (:mod:`ragtune.holdout`): its seed, the share
    held out, and per capability how many evaluated lines fell on each side."""

    seed: int
    share: float
    by_capability: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "share": self.share,
            "by_capability": {k: dict(v) for k, v in self.by_capability.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> SplitRecord | None:
        if not isinstance(data, Mapping):
            return None
        counts = {
            str(k): {str(s): n for s, n in as_mapping(v).items() if isinstance(n, int)}
            for k, v in as_mapping(data.get("by_capability")).items()
        }
        return cls(whole(data.get("seed")) or 0, number(data.get("share")) or 0.0, counts)


@dataclass(frozen=True)
class Estimate:
    """How long the lab expects to take, said before it trains: the adapters to train times
    their steps times the seconds a step takes (measured on an earlier adapter when one
    records it, else assumed), plus the calls times an assumed time per call."""

    seconds: float
    adapters: int
    steps: int
    seconds_per_step: float
    step_measured: bool
    calls: int
    seconds_per_call: float

    def text(self) -> str:
        """One line for the terminal, saying it is an estimate."""
        how = "measured" if self.step_measured else "assumed"
        minutes = self.seconds / 60
        return (
            f"estimate: about {minutes:,.0f} min ({self.adapters} adapter"
            f"{'' if self.adapters == 1 else 's'} to train x {self.steps:,} steps x "
            f"{self.seconds_per_step:.1f} s a step ({how}) + {self.calls:,} calls x "
            f"{self.seconds_per_call:.1f} s a call (assumed)); an estimate, not a measurement"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "adapters": self.adapters,
            "steps": self.steps,
            "seconds_per_step": self.seconds_per_step,
            "step_measured": self.step_measured,
            "calls": self.calls,
            "seconds_per_call": self.seconds_per_call,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Estimate | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            number(data.get("seconds")) or 0.0,
            whole(data.get("adapters")) or 0,
            whole(data.get("steps")) or 0,
            number(data.get("seconds_per_step")) or 0.0,
            bool(data.get("step_measured")),
            whole(data.get("calls")) or 0,
            number(data.get("seconds_per_call")) or 0.0,
        )


@dataclass(frozen=True)
class DriftArm:
    """One arm on the changed questions: accuracy before and after the change (after also on
    the unseen and the seen items apart, for an arm that serves an ``adapter``), stale answers
    and the time to correct."""

    name: str
    adapter: bool = False
    fact_accuracy_before: float | None = None
    fact_accuracy: float | None = None
    unseen_fact_accuracy: float | None = None
    seen_fact_accuracy: float | None = None
    contract_compliance: float | None = None
    latency_p50_s: float | None = None
    cost_per_1k: float | None = None
    stale_share: float | None = None
    time_to_correct_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "adapter": self.adapter,
            "fact_accuracy_before": self.fact_accuracy_before,
            "fact_accuracy": self.fact_accuracy,
            "unseen_fact_accuracy": self.unseen_fact_accuracy,
            "seen_fact_accuracy": self.seen_fact_accuracy,
            "contract_compliance": self.contract_compliance,
            "latency_p50_s": self.latency_p50_s,
            "cost_per_1k": self.cost_per_1k,
            "stale_share": self.stale_share,
            "time_to_correct_s": self.time_to_correct_s,
        }

    @classmethod
    def from_dict(cls, data: Any) -> DriftArm:
        d = as_mapping(data)
        return cls(
            str(d.get("name")),
            bool(d.get("adapter")),
            *(
                number(d.get(k))
                for k in (
                    "fact_accuracy_before",
                    "fact_accuracy",
                    "unseen_fact_accuracy",
                    "seen_fact_accuracy",
                    "contract_compliance",
                    "latency_p50_s",
                    "cost_per_1k",
                    "stale_share",
                    "time_to_correct_s",
                )
            ),
        )


@dataclass(frozen=True)
class Retrained:
    """The LoRA arm retrained on the revised answers, asked the changed questions again."""

    name: str = "LoRA (retrained)"
    fact_accuracy: float | None = None
    stale_share: float | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fact_accuracy": self.fact_accuracy,
            "stale_share": self.stale_share,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Retrained | None:
        if not isinstance(data, Mapping) or not data:
            return None
        return cls(
            text(data.get("name")) or "LoRA (retrained)",
            number(data.get("fact_accuracy")),
            number(data.get("stale_share")),
            number(data.get("seconds")),
        )


@dataclass(frozen=True)
class DriftResult:
    """The drift test: the change set, the re-sync, each arm on the changed questions."""

    change_set: str | None = None
    documents: tuple[str, ...] = ()
    questions: int | None = None
    resync_seconds: float | None = None
    reembedded: int | None = None
    retrain_seconds: float | None = None
    arms: tuple[DriftArm, ...] = ()
    retrained: Retrained | None = None

    def arm(self, name: str) -> DriftArm | None:
        """The row of arm ``name``, or None."""
        return next((a for a in self.arms if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_set": self.change_set,
            "documents": list(self.documents),
            "questions": self.questions,
            "resync_seconds": self.resync_seconds,
            "reembedded": self.reembedded,
            "retrain_seconds": self.retrain_seconds,
            "arms": [a.to_dict() for a in self.arms],
            "retrained": None if self.retrained is None else self.retrained.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> DriftResult | None:
        if not isinstance(data, Mapping) or not data:
            return None
        return cls(
            text(data.get("change_set")),
            tuple(str(d) for d in listed(data.get("documents"))),
            whole(data.get("questions")),
            number(data.get("resync_seconds")),
            whole(data.get("reembedded")),
            number(data.get("retrain_seconds")),
            tuple(
                DriftArm.from_dict(a) for a in listed(data.get("arms")) if isinstance(a, Mapping)
            ),
            Retrained.from_dict(data.get("retrained")),
        )


@dataclass(frozen=True)
class Verdict:
    """Does the lab agree with the audit on one capability? Judged on unseen items only.

    Attributes:
        scores: Each ranked arm's unseen score on ``metric``.
        unranked: Arms left out of the ranking: they were scored only on items they trained
            on (no unseen item), so their score is memorisation.
        agrees: None when the lab cannot judge (the audit's arm has no unseen score).
    """

    capability: str
    decision: str | None = None
    arm: str | None = None
    best: str | None = None
    metric: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    unranked: tuple[str, ...] = ()
    agrees: bool | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "capability": self.capability,
            "decision": self.decision,
            "arm": self.arm,
            "best": self.best,
            "metric": self.metric,
            "scores": dict(self.scores),
            "unranked": list(self.unranked),
            "agrees": self.agrees,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Verdict:
        d = as_mapping(data)
        scores = {
            str(k): float(v)
            for k, v in as_mapping(d.get("scores")).items()
            if number(v) is not None
        }
        return cls(
            str(d.get("capability") or ""),
            text(d.get("decision")),
            text(d.get("arm")),
            text(d.get("best")),
            text(d.get("metric")),
            scores,
            tuple(str(a) for a in listed(d.get("unranked"))),
            flag(d.get("agrees")),
            str(d.get("text") or d.get("capability") or ""),
        )

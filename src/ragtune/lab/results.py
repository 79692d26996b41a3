"""What a lab run found, as frozen dataclasses: each arm's scores, the adapters, the split, the
time estimate, the drift test and the verdicts (:class:`LabResult` holds them all).

They become JSON only at the edge: :meth:`LabResult.to_dict` is what ``lab.json`` and
``ragtune lab --json`` hold, :meth:`LabResult.from_dict` reads it back for the reports. Reading
is lenient - a missing entry or a null metric takes the field's default or None, so a report of
an older or partial ``lab.json`` shows "n/a" instead of failing.

An arm's ``fact_accuracy`` and ``contract_compliance`` are over the items it did **not** train
on (*unseen*); for an arm that serves an adapter, ``seen`` holds the scores on the items the
adapter trained on (memorisation) and ``rephrased`` those on trained-on questions asked in other
words. Arms without an adapter have only the unseen scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AdapterRecord",
    "ArmResult",
    "CapabilityResult",
    "DriftArm",
    "DriftResult",
    "Estimate",
    "LabResult",
    "Retrained",
    "Scores",
    "SplitRecord",
    "Spread",
    "Verdict",
    "as_result",
]


# -- lenient readers ------------------------------------------------------------------------------


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


# -- the records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Fact accuracy and contract compliance over one group of an arm's items."""

    items: int | None = 0
    fact_accuracy: float | None = None
    contract_compliance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "fact_accuracy": self.fact_accuracy,
            "contract_compliance": self.contract_compliance,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Scores | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            _int(data.get("items")),
            _num(data.get("fact_accuracy")),
            _num(data.get("contract_compliance")),
        )


def _scores(value: Scores | None) -> dict[str, Any] | None:
    return None if value is None else value.to_dict()


@dataclass(frozen=True)
class Spread:
    """A metric over seeds: mean, standard deviation, minimum and maximum."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max}

    @classmethod
    def from_dict(cls, data: Any) -> Spread | None:
        if not isinstance(data, Mapping):
            return None
        return cls(*(_num(data.get(k)) for k in ("mean", "std", "min", "max")))


@dataclass(frozen=True)
class CapabilityResult:
    """One arm on one capability: its unseen scores, latency, and seen / rephrased apart."""

    items: int | None = None
    fact_accuracy: float | None = None
    contract_compliance: float | None = None
    latency_p50_s: float | None = None
    seen: Scores | None = None
    rephrased: Scores | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "fact_accuracy": self.fact_accuracy,
            "contract_compliance": self.contract_compliance,
            "latency_p50_s": self.latency_p50_s,
            "seen": _scores(self.seen),
            "rephrased": _scores(self.rephrased),
        }

    @classmethod
    def from_dict(cls, data: Any) -> CapabilityResult:
        d = _map(data)
        return cls(
            _int(d.get("items")),
            _num(d.get("fact_accuracy")),
            _num(d.get("contract_compliance")),
            _num(d.get("latency_p50_s")),
            Scores.from_dict(d.get("seen")),
            Scores.from_dict(d.get("rephrased")),
        )


@dataclass(frozen=True)
class ArmResult:
    """One arm's figures.

    Attributes:
        name: The arm.
        fact_accuracy: Over the items the arm did not train on (all of them, for an arm
            without an adapter); None when there are none or no facts to look for.
        contract_compliance: The same, for the output contract.
        items: Unseen items scored (per seed).
        seen: Scores on the items its adapters trained on; None for an arm without adapter.
        rephrased: Scores on trained-on questions asked in other words; None when none.
        seen_known: False when an adapter's manifest does not record what it trained on (an
            older adapter): every item then counts as unseen, and "seen" is unknown.
        latency_p50_s, tokens_per_call, cost_per_1k: Over every call of the arm.
        fact_spread, compliance_spread: The unseen scores over seeds, when the lab sampled.
        by_capability: The same per capability.
        setup: How the arm served each capability.
        adapters: The adapters it served.
    """

    name: str
    fact_accuracy: float | None = None
    contract_compliance: float | None = None
    items: int | None = None
    seen: Scores | None = None
    rephrased: Scores | None = None
    seen_known: bool = True
    latency_p50_s: float | None = None
    tokens_per_call: float | None = None
    cost_per_1k: float | None = None
    fact_spread: Spread | None = None
    compliance_spread: Spread | None = None
    by_capability: dict[str, CapabilityResult] = field(default_factory=dict)
    setup: dict[str, str] = field(default_factory=dict)
    adapters: tuple[str, ...] = ()

    @property
    def sampled(self) -> bool:
        """Whether the lab ran this arm once per seed (a spread exists)."""
        return self.fact_spread is not None or self.compliance_spread is not None

    def to_dict(self) -> dict[str, Any]:
        spread = (
            {
                "fact_accuracy": None if self.fact_spread is None else self.fact_spread.to_dict(),
                "contract_compliance": (
                    None if self.compliance_spread is None else self.compliance_spread.to_dict()
                ),
            }
            if self.sampled
            else None
        )
        return {
            "name": self.name,
            "fact_accuracy": self.fact_accuracy,
            "contract_compliance": self.contract_compliance,
            "items": self.items,
            "seen": _scores(self.seen),
            "rephrased": _scores(self.rephrased),
            "seen_known": self.seen_known,
            "latency_p50_s": self.latency_p50_s,
            "tokens_per_call": self.tokens_per_call,
            "cost_per_1k": self.cost_per_1k,
            "spread": spread,
            "by_capability": {k: v.to_dict() for k, v in self.by_capability.items()},
            "setup": dict(self.setup),
            "adapters": list(self.adapters),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ArmResult:
        d = _map(data)
        spread = _map(d.get("spread"))
        known = _flag(d.get("seen_known"))
        return cls(
            name=str(d.get("name")),
            fact_accuracy=_num(d.get("fact_accuracy")),
            contract_compliance=_num(d.get("contract_compliance")),
            items=_int(d.get("items")),
            seen=Scores.from_dict(d.get("seen")),
            rephrased=Scores.from_dict(d.get("rephrased")),
            seen_known=True if known is None else known,
            latency_p50_s=_num(d.get("latency_p50_s")),
            tokens_per_call=_num(d.get("tokens_per_call")),
            cost_per_1k=_num(d.get("cost_per_1k")),
            fact_spread=Spread.from_dict(spread.get("fact_accuracy")),
            compliance_spread=Spread.from_dict(spread.get("contract_compliance")),
            by_capability={
                str(k): CapabilityResult.from_dict(v)
                for k, v in _map(d.get("by_capability")).items()
            },
            setup={str(k): str(v) for k, v in _map(d.get("setup")).items() if v is not None},
            adapters=tuple(str(a) for a in _list(d.get("adapters"))),
        )


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
        d = _map(data)
        return cls(
            str(d.get("name")),
            _str(d.get("capability")),
            _str(d.get("arm")),
            _flag(d.get("context")),
            _int(d.get("steps")),
            _num(d.get("seconds")),
            _str(d.get("source")),
            _int(d.get("inputs")),
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
            str(k): {str(s): n for s, n in _map(v).items() if isinstance(n, int)}
            for k, v in _map(data.get("by_capability")).items()
        }
        return cls(_int(data.get("seed")) or 0, _num(data.get("share")) or 0.0, counts)


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
            _num(data.get("seconds")) or 0.0,
            _int(data.get("adapters")) or 0,
            _int(data.get("steps")) or 0,
            _num(data.get("seconds_per_step")) or 0.0,
            bool(data.get("step_measured")),
            _int(data.get("calls")) or 0,
            _num(data.get("seconds_per_call")) or 0.0,
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
        d = _map(data)
        return cls(
            str(d.get("name")),
            bool(d.get("adapter")),
            *(
                _num(d.get(k))
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
            _str(data.get("name")) or "LoRA (retrained)",
            _num(data.get("fact_accuracy")),
            _num(data.get("stale_share")),
            _num(data.get("seconds")),
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
            _str(data.get("change_set")),
            tuple(str(d) for d in _list(data.get("documents"))),
            _int(data.get("questions")),
            _num(data.get("resync_seconds")),
            _int(data.get("reembedded")),
            _num(data.get("retrain_seconds")),
            tuple(DriftArm.from_dict(a) for a in _list(data.get("arms")) if isinstance(a, Mapping)),
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
        d = _map(data)
        scores = {str(k): float(v) for k, v in _map(d.get("scores")).items() if _num(v) is not None}
        return cls(
            str(d.get("capability") or ""),
            _str(d.get("decision")),
            _str(d.get("arm")),
            _str(d.get("best")),
            _str(d.get("metric")),
            scores,
            tuple(str(a) for a in _list(d.get("unranked"))),
            _flag(d.get("agrees")),
            str(d.get("text") or d.get("capability") or ""),
        )


@dataclass(frozen=True)
class LabResult:
    """Everything one lab run found and what it was made from.

    ``base_model``, ``eval`` and ``settings`` are plain records of what the run was made from
    (shown as they are); ``calls`` holds every answer, one JSON object each.
    """

    project: str | None = None
    created_at: str | None = None
    ragtune_version: str | None = None
    base_model: dict[str, Any] = field(default_factory=dict)
    knowledge_snapshot: int | None = None
    eval: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    split: SplitRecord | None = None
    estimate: Estimate | None = None
    arms: tuple[ArmResult, ...] = ()
    adapters: tuple[AdapterRecord, ...] = ()
    drift: DriftResult | None = None
    verdicts: tuple[Verdict, ...] = ()
    calls: tuple[dict[str, Any], ...] = ()

    def arm(self, name: str) -> ArmResult | None:
        """The arm called ``name``, or None."""
        return next((a for a in self.arms if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``lab.json`` holds."""
        return {
            "project": self.project,
            "created_at": self.created_at,
            "ragtune_version": self.ragtune_version,
            "base_model": dict(self.base_model),
            "knowledge_snapshot": self.knowledge_snapshot,
            "eval": dict(self.eval),
            "settings": dict(self.settings),
            "split": None if self.split is None else self.split.to_dict(),
            "estimate": None if self.estimate is None else self.estimate.to_dict(),
            "arms": [a.to_dict() for a in self.arms],
            "adapters": [a.to_dict() for a in self.adapters],
            "drift": None if self.drift is None else self.drift.to_dict(),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "calls": [dict(c) for c in self.calls],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabResult:
        """Read ``lab.json`` back (leniently: what is missing or null shows as "n/a")."""
        return cls(
            project=_str(data.get("project")),
            created_at=_str(data.get("created_at")),
            ragtune_version=_str(data.get("ragtune_version")),
            base_model=dict(_map(data.get("base_model"))),
            knowledge_snapshot=_int(data.get("knowledge_snapshot")),
            eval=dict(_map(data.get("eval"))),
            settings=dict(_map(data.get("settings"))),
            split=SplitRecord.from_dict(data.get("split")),
            estimate=Estimate.from_dict(data.get("estimate")),
            arms=tuple(ArmResult.from_dict(a) for a in _list(data.get("arms")) if _map(a)),
            adapters=tuple(
                AdapterRecord.from_dict(a) for a in _list(data.get("adapters")) if _map(a)
            ),
            drift=DriftResult.from_dict(data.get("drift")),
            verdicts=tuple(Verdict.from_dict(v) for v in _list(data.get("verdicts")) if _map(v)),
            calls=tuple(dict(c) for c in _list(data.get("calls")) if isinstance(c, Mapping)),
        )


def as_result(data: LabResult | Mapping[str, Any]) -> LabResult:
    """``data`` as a :class:`LabResult`: itself, or read from its JSON."""
    return data if isinstance(data, LabResult) else LabResult.from_dict(data)

"""What a lab run found, as frozen dataclasses: each arm's scores here, and the adapters, the
split, the time estimate, the drift test and the verdicts in :mod:`ragtune.lab.records`
(:class:`LabResult` holds them all).

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

from ragtune.lab.records import (
    AdapterRecord,
    DriftResult,
    Estimate,
    SplitRecord,
    Verdict,
    as_mapping,
    flag,
    listed,
    number,
    text,
    whole,
)

__all__ = ["ArmResult", "CapabilityResult", "LabResult", "Scores", "Spread", "as_result"]


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
            whole(data.get("items")),
            number(data.get("fact_accuracy")),
            number(data.get("contract_compliance")),
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
        return cls(*(number(data.get(k)) for k in ("mean", "std", "min", "max")))


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
        d = as_mapping(data)
        return cls(
            whole(d.get("items")),
            number(d.get("fact_accuracy")),
            number(d.get("contract_compliance")),
            number(d.get("latency_p50_s")),
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
        d = as_mapping(data)
        spread = as_mapping(d.get("spread"))
        known = flag(d.get("seen_known"))
        return cls(
            name=str(d.get("name")),
            fact_accuracy=number(d.get("fact_accuracy")),
            contract_compliance=number(d.get("contract_compliance")),
            items=whole(d.get("items")),
            seen=Scores.from_dict(d.get("seen")),
            rephrased=Scores.from_dict(d.get("rephrased")),
            seen_known=True if known is None else known,
            latency_p50_s=number(d.get("latency_p50_s")),
            tokens_per_call=number(d.get("tokens_per_call")),
            cost_per_1k=number(d.get("cost_per_1k")),
            fact_spread=Spread.from_dict(spread.get("fact_accuracy")),
            compliance_spread=Spread.from_dict(spread.get("contract_compliance")),
            by_capability={
                str(k): CapabilityResult.from_dict(v)
                for k, v in as_mapping(d.get("by_capability")).items()
            },
            setup={str(k): str(v) for k, v in as_mapping(d.get("setup")).items() if v is not None},
            adapters=tuple(str(a) for a in listed(d.get("adapters"))),
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
            project=text(data.get("project")),
            created_at=text(data.get("created_at")),
            ragtune_version=text(data.get("ragtune_version")),
            base_model=dict(as_mapping(data.get("base_model"))),
            knowledge_snapshot=whole(data.get("knowledge_snapshot")),
            eval=dict(as_mapping(data.get("eval"))),
            settings=dict(as_mapping(data.get("settings"))),
            split=SplitRecord.from_dict(data.get("split")),
            estimate=Estimate.from_dict(data.get("estimate")),
            arms=tuple(ArmResult.from_dict(a) for a in listed(data.get("arms")) if as_mapping(a)),
            adapters=tuple(
                AdapterRecord.from_dict(a) for a in listed(data.get("adapters")) if as_mapping(a)
            ),
            drift=DriftResult.from_dict(data.get("drift")),
            verdicts=tuple(
                Verdict.from_dict(v) for v in listed(data.get("verdicts")) if as_mapping(v)
            ),
            calls=tuple(dict(c) for c in listed(data.get("calls")) if isinstance(c, Mapping)),
        )


def as_result(data: LabResult | Mapping[str, Any]) -> LabResult:
    """``data`` as a :class:`LabResult`: itself, or read from its JSON."""
    return data if isinstance(data, LabResult) else LabResult.from_dict(data)

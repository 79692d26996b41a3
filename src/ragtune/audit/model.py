"""The dataclasses the audit stages hand to each other: answers, the path, warnings, costs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ragtune.audit.measured import Measured

AnswerSource = Literal["given", "measured", "inferred"]
DecisionName = Literal["retrieval", "few-shot", "lora"]
StrategyName = Literal["plan", "fine-tune everything", "prompt everything"]
STRATEGIES: tuple[StrategyName, ...] = ("plan", "fine-tune everything", "prompt everything")

# The order of trust when several sources answer the same question.
TRUST: dict[str, int] = {"given": 3, "measured": 2, "inferred": 1}


@dataclass(frozen=True)
class Answer:
    """One answer to one audit question, with where it came from and why it is believed."""

    value: Any
    source: AnswerSource
    confidence: float
    reason: str


@dataclass(frozen=True)
class Answers:
    """Everything the decision tree and the cost projection need to know about a capability."""

    kind: Answer  # "knowledge" | "behavior"
    changes_within_6_months: Answer  # bool
    accurate_in_12_months: Answer  # bool
    shown_by_examples: Answer  # bool
    high_volume: Answer  # bool: must hold across thousands of calls
    calls_per_month: Answer  # int
    changes_per_year: Answer  # float
    system_prompt_tokens: Answer  # int
    prompt_knowledge_tokens: Answer  # int: tokens of the sources if pasted into a prompt
    knowledge_in_examples: Answer  # float: share of examples teaching facts (0 when none)


@dataclass(frozen=True)
class Step:
    """One question on the decision path, as the report shows it."""

    question: str
    answer: str
    source: AnswerSource
    confidence: float
    reason: str


@dataclass(frozen=True)
class AuditWarning:
    """A mistake the audit exists to catch, with what to do about it."""

    code: str
    message: str


@dataclass
class MonthlyCost:
    """Cumulative USD by month (index 0 is set-up, index m the end of month m)."""

    cumulative: list[float]

    @property
    def total(self) -> float:
        """Cumulative USD at the end of the horizon."""
        return self.cumulative[-1]


@dataclass
class StrategyCost:
    """The cost of one strategy for one capability (or the whole project) over the horizon."""

    strategy: StrategyName
    approach: str  # retrieval | few-shot | lora | prompt | mixed
    finetune_runs: int
    reindexes: int
    prompt_updates: int
    context_tokens_per_call: int
    usd_per_call: float
    token_usd_per_month: float
    cumulative: list[float]

    @property
    def total(self) -> float:
        """Cumulative USD at the end of the horizon."""
        return self.cumulative[-1]


@dataclass
class CostProjection:
    """Costs of the recommended plan against the two uniform strategies."""

    horizon_months: int
    calls_per_month: int
    changes_per_year: float
    strategies: dict[str, StrategyCost]
    break_even_month: dict[str, int | None]  # alternative -> first month the plan is cheaper
    retraining_saved_usd: float  # fine-tune-everything runs the plan avoids, in USD
    finetune_run_usd: float


@dataclass
class CapabilityAudit:
    """The audit of one capability: the decision, its path, warnings and cost."""

    name: str
    description: str
    decision: DecisionName
    kind: str
    summary: str
    path: list[Step]
    warnings: list[AuditWarning]
    cost: CostProjection
    answers: Answers
    current_approach: str | None = None
    measured: Measured | None = None
    """What the last lab run measured on this capability (None: no lab run judged it)."""


@dataclass
class AuditReport:
    """The whole audit of a project."""

    project: str
    project_file: str
    horizon_months: int
    capabilities: list[CapabilityAudit]
    portfolio: CostProjection
    ragtune_version: str
    generated_at: str
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[tuple[str, AuditWarning]]:
        """Every warning with the name of its capability."""
        return [(c.name, w) for c in self.capabilities for w in c.warnings]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape scripts rely on (keys are part of the public contract)."""
        return {
            "project": self.project,
            "project_file": self.project_file,
            "horizon_months": self.horizon_months,
            "ragtune_version": self.ragtune_version,
            "generated_at": self.generated_at,
            "capabilities": [
                {
                    "name": c.name,
                    "description": c.description,
                    "kind": c.kind,
                    "decision": c.decision,
                    "current_approach": c.current_approach,
                    "summary": c.summary,
                    "path": [asdict(s) for s in c.path],
                    "warnings": [asdict(w) for w in c.warnings],
                    "cost": _cost_dict(c.cost),
                    "measured": None if c.measured is None else c.measured.to_dict(),
                }
                for c in self.capabilities
            ],
            "portfolio": _cost_dict(self.portfolio),
        }


def _cost_dict(cost: CostProjection) -> dict[str, Any]:
    return {
        "horizon_months": cost.horizon_months,
        "calls_per_month": cost.calls_per_month,
        "changes_per_year": cost.changes_per_year,
        "finetune_run_usd": round(cost.finetune_run_usd, 2),
        "retraining_saved_usd": round(cost.retraining_saved_usd, 2),
        "break_even_month": dict(cost.break_even_month),
        "strategies": {
            name: {
                "approach": s.approach,
                "total_usd": round(s.total, 2),
                "finetune_runs": s.finetune_runs,
                "reindexes": s.reindexes,
                "prompt_updates": s.prompt_updates,
                "context_tokens_per_call": s.context_tokens_per_call,
                "usd_per_call": round(s.usd_per_call, 6),
                "token_usd_per_month": round(s.token_usd_per_month, 2),
                "cumulative_usd": [round(v, 2) for v in s.cumulative],
            }
            for name, s in cost.strategies.items()
        },
    }

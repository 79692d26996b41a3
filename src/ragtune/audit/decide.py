"""The decision tree: knowledge in context, behaviour in weights.

::

    what the model knows (a fact, policy, current information)     -> retrieval
    how it behaves (a format, a style, a task prior):
        changes within 6 months?                                   -> few-shot (an adapter would
                                                                      be retrained at each change)
        1-2 examples in the prompt show it?                        -> few-shot
        must hold across thousands of calls?                       -> lora
        otherwise (low volume)                                     -> few-shot

Knowledge never goes into the weights; the two screening questions (changes within 6 months,
accurate in 12) are still asked of it, because their answers raise the warnings.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.audit.model import Answer, Answers, AuditWarning, DecisionName, Step
from ragtune.behavior.leak import DEFAULT_THRESHOLD as LEAK_THRESHOLD
from ragtune.prices import Prices
from ragtune.project import Capability

Q_KIND = "Is it about what the model knows or how it behaves?"
Q_CHANGES = "Will it change in the next 6 months?"
Q_ACCURATE = "Will it still be accurate in 12 months?"
Q_SHOWN = "Can 1-2 examples in the prompt show it?"
Q_VOLUME = "Must it hold consistently across thousands of calls?"


@dataclass(frozen=True)
class Decision:
    """A decision with the path that led to it and the warnings raised on the way."""

    decision: DecisionName
    kind: str
    summary: str
    path: list[Step]
    warnings: list[AuditWarning]


def _yes(value: object) -> str:
    return "yes" if value else "no"


def _step(question: str, answer: Answer, shown: str | None = None) -> Step:
    return Step(
        question=question,
        answer=shown if shown is not None else _yes(answer.value),
        source=answer.source,
        confidence=round(answer.confidence, 2),
        reason=answer.reason,
    )


def decide(capability: Capability, answers: Answers, prices: Prices) -> Decision:
    """Walk the tree for one capability and collect the warnings its answers raise."""
    kind = str(answers.kind.value)
    path = [
        _step(Q_KIND, answers.kind, "what it knows" if kind == "knowledge" else "how it behaves")
    ]
    changes = bool(answers.changes_within_6_months.value)
    decision: DecisionName
    if kind == "knowledge":
        path.append(_step(Q_CHANGES, answers.changes_within_6_months))
        path.append(_step(Q_ACCURATE, answers.accurate_in_12_months))
        decision = "retrieval"
        if changes or not answers.accurate_in_12_months.value:
            summary = "Knowledge that changes: keep it out of the weights and retrieve it."
        else:
            summary = "Knowledge: retrieve it at query time, where it can be cited and updated."
    else:
        path.append(_step(Q_CHANGES, answers.changes_within_6_months))
        if changes:
            decision = "few-shot"
            summary = (
                "A behaviour that changes often: show it with examples, edit them as it moves."
            )
        else:
            path.append(_step(Q_SHOWN, answers.shown_by_examples))
            if answers.shown_by_examples.value:
                decision = "few-shot"
                summary = "A behaviour 1-2 examples show: put them in the prompt."
            else:
                path.append(_step(Q_VOLUME, answers.high_volume))
                if answers.high_volume.value:
                    decision = "lora"
                    summary = (
                        "A stable behaviour that must hold across thousands of calls: "
                        "train a small LoRA adapter."
                    )
                else:
                    decision = "few-shot"
                    summary = (
                        "A stable behaviour at low volume: an adapter would not pay back; "
                        "use examples and revisit if the volume grows."
                    )
    return Decision(
        decision=decision,
        kind=kind,
        summary=summary,
        path=path,
        warnings=_warnings(capability, answers, decision, prices),
    )


def _warnings(
    capability: Capability, answers: Answers, decision: DecisionName, prices: Prices
) -> list[AuditWarning]:
    """The warnings one capability's answers raise, in the order the report lists them."""
    kind = answers.kind.value
    run_usd = prices.finetune_run_usd()
    if kind == "knowledge":
        return _knowledge_warnings(capability, answers, run_usd)
    if kind == "behavior":
        found = [
            _leak_warning(answers, decision),
            _long_prompt_warning(answers, prices, run_usd),
            _changing_behaviour_warning(answers, run_usd),
        ]
        return [w for w in found if w is not None]
    return []


def _knowledge_warnings(
    capability: Capability, answers: Answers, run_usd: float
) -> list[AuditWarning]:
    """Knowledge headed for the weights that changes, or that fails the 12-month test."""
    if capability.current_approach != "fine-tune":
        return []
    out: list[AuditWarning] = []
    if answers.changes_within_6_months.value:
        rate = float(answers.changes_per_year.value)
        out.append(
            AuditWarning(
                "finetune-changing-knowledge",
                f"Fine-tuning is planned or in use for knowledge that changes within 6 months "
                f"(about {rate:g} changes a year): every change means another training run "
                f"(about ${run_usd:,.0f} each) and the model answers from stale weights in "
                "between. Retrieve it instead; a knowledge change then needs no retraining.",
            )
        )
    if not answers.accurate_in_12_months.value:
        out.append(
            AuditWarning(
                "fails-12-month-test",
                "Knowledge that will not be accurate in 12 months is headed for the weights "
                "(the 30-minute audit): whatever is trained in today is wrong within the year. "
                "Keep it in the retrieval index.",
            )
        )
    return out


def _leak_warning(answers: Answers, decision: DecisionName) -> AuditWarning | None:
    """Examples an adapter would train on carry facts: the leak guard would refuse them."""
    leak = float(answers.knowledge_in_examples.value)
    if decision == "lora" and leak > LEAK_THRESHOLD:
        return AuditWarning(
            "knowledge-in-examples",
            f"{leak:.0%} of the training examples teach facts their inputs do not contain "
            f"({answers.knowledge_in_examples.reason}), above the {LEAK_THRESHOLD:.0%} the "
            "leak guard allows: `ragtune adapter train` will refuse them. Those facts would "
            "be baked into the adapter and go stale: move them to retrieval and keep only "
            "the behaviour in the examples.",
        )
    return None


def _long_prompt_warning(answers: Answers, prices: Prices, run_usd: float) -> AuditWarning | None:
    """A long system prompt spent on a stable behaviour at volume: a LoRA candidate."""
    prompt_tokens = int(answers.system_prompt_tokens.value)
    if (
        prompt_tokens < prices.long_prompt_tokens
        or not answers.high_volume.value
        or answers.changes_within_6_months.value
    ):
        return None
    calls = int(answers.calls_per_month.value)
    monthly = prices.input_usd(prompt_tokens) * calls
    payback = run_usd / monthly if monthly else float("inf")
    pays = (
        f"a ${run_usd:,.0f} training run is repaid in {payback:.1f} months of saved tokens"
        if payback < 120
        else "the tokens saved alone do not repay a training run; consistency does"
    )
    return AuditWarning(
        "long-system-prompt",
        f"A {prompt_tokens:,}-token system prompt is spent on a behaviour that must hold "
        f"across {calls:,} calls a month: {prompt_tokens * calls / 1e6:,.1f}M prompt "
        f"tokens, about ${monthly:,.2f} a month, and a prompted format still drifts. A "
        f"LoRA candidate: train the behaviour into a small adapter and drop the prompt "
        f"({pays}).",
    )


def _changing_behaviour_warning(answers: Answers, run_usd: float) -> AuditWarning | None:
    """A behaviour that changes goes to few-shot: say why, and when to revisit."""
    if not answers.changes_within_6_months.value:
        return None
    rate = float(answers.changes_per_year.value)
    return AuditWarning(
        "behaviour-changes-often",
        f"The behaviour itself changes (about {rate:g} times a year): an adapter would be "
        f"retrained at each change (about ${run_usd:,.0f} a run), so it goes to few-shot "
        "examples, which are edited in minutes. Revisit when it settles.",
    )

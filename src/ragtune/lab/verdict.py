"""Does the lab agree with the audit? For each capability of the eval set, the arm that carries
out the audit's decision is held against the best arm: knowledge on fact accuracy (after the
change, when the drift test ran), behaviour on contract compliance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragtune.lab.metrics import mean
from ragtune.lab.model import ARMS, Lab
from ragtune.project import Capability

__all__ = ["AGREE_MARGIN", "audit_verdicts"]

AGREE_MARGIN = 0.05
"""The audit's arm agrees with the lab when it scores within this of the best arm."""

_ARMS_OF = {
    "retrieval": ("RAG", "RAG+LoRA"),
    "few-shot": ("few-shot",),
    "prompt": ("zero-shot",),
}
"""The arms that carry out each decision of the audit. Retrieval is knowledge in context, with
or without an adapter that teaches the model to read it (RAFT)."""


def _chosen_arms(cap: Capability, decision: str) -> tuple[str, ...]:
    if decision == "lora":
        return ("RAG+LoRA",) if cap.context_from else ("LoRA",)
    return _ARMS_OF.get(decision, ("zero-shot",))


def audit_verdicts(
    lab: Lab, arms: Sequence[dict[str, Any]], drift: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """For each capability of the eval set: does the lab's best arm carry out the audit's
    decision? Knowledge is judged on fact accuracy (after the change, when the drift test ran),
    behaviour on contract compliance."""
    verdicts = []
    for name in dict.fromkeys(i.capability for i in lab.items):
        verdict = _verdict(lab, name, arms, drift)
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts


def _scores(
    lab: Lab, name: str, arms: Sequence[dict[str, Any]], drift: dict[str, Any] | None
) -> tuple[dict[str, float | None], str, bool]:
    """Each arm's score on a capability, the metric it is, and whether it was taken after the
    change."""
    knowledge = lab.runtime.capability(name).answers_from_sources
    after_drift = bool(
        knowledge and drift is not None and any(i.capability == name and i.after for i in lab.items)
    )
    if after_drift:
        scores = _drift_scores(lab, name)
        metric = "fact accuracy after the change"
    elif knowledge:
        scores = {a["name"]: a["by_capability"][name]["fact_accuracy"] for a in arms}
        metric = "fact accuracy"
    else:
        scores = {a["name"]: a["by_capability"][name]["contract_compliance"] for a in arms}
        metric = "contract compliance"
    return scores, metric, after_drift


def _verdict(
    lab: Lab, name: str, arms: Sequence[dict[str, Any]], drift: dict[str, Any] | None
) -> dict[str, Any] | None:
    """One capability's verdict; None when no arm that carries out the decision was scored."""
    cap = lab.runtime.capability(name)
    decision = lab.runtime.decisions.get(name, "prompt")
    scores, metric, after_drift = _scores(lab, name, arms, drift)
    known = {k: v for k, v in scores.items() if v is not None}
    candidates = [a for a in _chosen_arms(cap, decision) if a in known]
    if not known or not candidates:
        return None
    chosen = max(candidates, key=lambda a: known[a])
    best = max(known, key=lambda k: known[k])
    agrees = known[chosen] >= known[best] - AGREE_MARGIN
    head = f"the audit chose {decision} for `{name}`"
    siblings = [a for a in candidates if a != chosen]
    also = "".join(f" ({a} {known[a]:.2f})" for a in siblings)
    if agrees:
        rival = _rival(chosen, decision, known)
        against = f" against {rival} {known[rival]:.2f}" if rival else ""
        when = " after the change" if after_drift else ""
        text = f"{head}; the lab agrees: {chosen} {known[chosen]:.2f}{also}{against}{when}"
        if after_drift and "LoRA" in known and rival == "LoRA":
            stale = _lora_stale_share(drift)
            if stale is not None:
                text += f", where {stale:.0%} of the LoRA arm's answers are stale"
    else:
        text = (
            f"{head}; the lab disagrees: {best} scores {known[best]:.2f} against "
            f"{chosen} {known[chosen]:.2f}{also} on {metric}. " + _why(lab, name, chosen, best)
        )
    return {
        "capability": name,
        "decision": decision,
        "arm": chosen,
        "best": best,
        "metric": metric,
        "scores": known,
        "agrees": agrees,
        "text": text,
    }


def _lora_stale_share(drift: dict[str, Any] | None) -> float | None:
    """The share of the LoRA arm's answers that are stale after the change."""
    return next(
        (r["stale_share"] for r in (drift or {}).get("arms", []) if r["name"] == "LoRA"),
        None,
    )


def _drift_scores(lab: Lab, name: str) -> dict[str, float | None]:
    """Fact accuracy per arm over a capability's changed questions, after the change."""
    calls = [c for c in lab.after_calls if c.item.capability == name]
    return {arm: mean([c.fact_score for c in calls if c.arm == arm]) for arm in ARMS}


def _rival(chosen: str, decision: str, scores: dict[str, float]) -> str | None:
    """The arm the audit's choice is set against: LoRA (facts in the weights) for retrieval,
    the best prompted arm for a LoRA choice, else the best other arm."""
    if decision == "retrieval" and "LoRA" in scores:
        return "LoRA"
    others = {k: v for k, v in scores.items() if k != chosen}
    if chosen in ("LoRA", "RAG+LoRA"):
        prompted = {k: v for k, v in others.items() if "LoRA" not in k}
        others = prompted or others
    return max(others, key=lambda k: others[k]) if others else None


def _why(lab: Lab, name: str, chosen: str, best: str) -> str:
    steps = lab.settings.train_steps
    if "LoRA" in chosen and steps is not None:
        return (
            f"The lab trained its adapters for at most {steps} steps (--train-steps); a full "
            "`ragtune build` may close the gap."
        )
    if chosen == "RAG":
        return "Check the retrieval: the passages may miss the clause (see the calls table)."
    return "The eval set may not exercise what the audit weighed (volume, change rate, cost)."

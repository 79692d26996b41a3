"""Does the lab agree with the audit? For each capability of the eval set, the arm that carries
out the audit's decision is held against the best arm: knowledge on fact accuracy (after the
change, when the drift test ran), behaviour on contract compliance.

Only unseen items count: an arm's score on the questions its adapter trained on is
memorisation, so it never makes an arm the best. An arm scored only on such questions is left
out of the ranking, and the verdict says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragtune.lab.metrics import mean
from ragtune.lab.model import Lab
from ragtune.lab.records import DriftResult, Verdict
from ragtune.lab.results import ArmResult
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


def audit_verdicts(lab: Lab, arms: Sequence[ArmResult], drift: DriftResult | None) -> list[Verdict]:
    """For each capability of the eval set: does the lab's best arm carry out the audit's
    decision? Knowledge is judged on fact accuracy (after the change, when the drift test ran),
    behaviour on contract compliance; both on unseen items only."""
    verdicts = []
    for name in dict.fromkeys(i.capability for i in lab.items):
        verdict = _verdict(lab, name, arms, drift)
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts


def _scores(
    lab: Lab, name: str, arms: Sequence[ArmResult], drift: DriftResult | None
) -> tuple[dict[str, float | None], list[str], str, bool]:
    """Each arm's unseen score on a capability, the arms scored only on seen items, the metric
    and whether it was taken after the change."""
    knowledge = lab.runtime.capability(name).answers_from_sources
    after_drift = bool(
        knowledge and drift is not None and any(i.capability == name and i.after for i in lab.items)
    )
    if after_drift:
        calls = [c for c in lab.after_calls if c.item.capability == name]
        scores = {
            arm: mean([c.fact_score for c in calls if c.arm == arm and c.exposure == "unseen"])
            for arm in lab.settings.arms
        }
        seen_only = [
            arm
            for arm in lab.settings.arms
            if scores[arm] is None and any(c.arm == arm and c.exposure == "seen" for c in calls)
        ]
        return scores, seen_only, "fact accuracy after the change", True
    scores = {}
    seen_only = []
    for arm in arms:
        of = arm.by_capability.get(name)
        if of is None:
            continue
        scores[arm.name] = of.fact_accuracy if knowledge else of.contract_compliance
        if not of.items and of.seen is not None and of.seen.items:
            seen_only.append(arm.name)
    return scores, seen_only, "fact accuracy" if knowledge else "contract compliance", False


def _verdict(
    lab: Lab, name: str, arms: Sequence[ArmResult], drift: DriftResult | None
) -> Verdict | None:
    """One capability's verdict; None when no arm that carries out the decision was scored."""
    cap = lab.runtime.capability(name)
    decision = lab.runtime.decisions.get(name, "prompt")
    scores, seen_only, metric, after_drift = _scores(lab, name, arms, drift)
    known = {k: v for k, v in scores.items() if v is not None}
    chosen_arms = [a for a in _chosen_arms(cap, decision) if a in scores]
    candidates = [a for a in chosen_arms if a in known]
    head = f"the audit chose {decision} for `{name}`"
    left_out = (
        f" ({', '.join(seen_only)} left out: scored only on questions "
        f"{'its adapter' if len(seen_only) == 1 else 'their adapters'} trained on)"
        if seen_only
        else ""
    )
    if not candidates:
        blind = [a for a in chosen_arms if a in seen_only]
        if not blind:
            return None
        text = (
            f"{head}; the lab cannot judge: {', '.join(blind)} "
            f"{'was' if len(blind) == 1 else 'were'} scored only on questions "
            "its adapter trained on (no unseen question)"
        )
        return Verdict(name, decision, blind[0], None, metric, known, tuple(seen_only), None, text)
    chosen = max(candidates, key=lambda a: known[a])
    best = max(known, key=lambda k: known[k])
    agrees = known[chosen] >= known[best] - AGREE_MARGIN
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
        text += left_out
    else:
        text = (
            f"{head}; the lab disagrees: {best} scores {known[best]:.2f} against "
            f"{chosen} {known[chosen]:.2f}{also} on {metric}{left_out}. "
            + _why(lab, name, chosen, best)
        )
    return Verdict(
        capability=name,
        decision=decision,
        arm=chosen,
        best=best,
        metric=f"{metric} on unseen questions",
        scores=known,
        unranked=tuple(seen_only),
        agrees=agrees,
        text=text,
    )


def _lora_stale_share(drift: DriftResult | None) -> float | None:
    """The share of the LoRA arm's answers that are stale after the change."""
    row = drift.arm("LoRA") if drift is not None else None
    return None if row is None else row.stale_share


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

"""The five arms: how each serves a capability, and each arm's answers to the eval items.

The arms, per capability of the eval set:

=========  =====================================  =========================================
arm        knowledge capability                   behaviour capability
=========  =====================================  =========================================
zero-shot  base model, the capability's            base model, instructions and contract
           description as the system prompt
few-shot   + the 2 reference answers of the        + the 2 most similar examples of its
           most similar other eval questions       examples file
RAG        base model + retrieved passages         base model + passages of ``context_from``
LoRA       an adapter trained on the eval          an adapter trained without retrieved
           questions' reference answers (facts     context
           in the weights), no retrieval
RAG+LoRA   an adapter trained on the answers       the project's context-aware adapter
           with retrieved context (RAFT), served   (trained by ``build``), served with
           with retrieval                          retrieval
=========  =====================================  =========================================

Generation is the runtime's (:mod:`ragtune.runtime.pipeline` steps); answers are scored on
their first attempt - no repair - so the arms are compared as they generate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ragtune.behavior.examples import Example
from ragtune.lab.evalset import EvalItem
from ragtune.lab.metrics import fact_score, is_stale
from ragtune.lab.model import ARMS, ArmPlan, Call, Lab
from ragtune.project import Capability
from ragtune.runtime.pipeline import build_prompt, generate, retrieve
from ragtune.runtime.runtime import Request, Route

__all__ = ["SHOTS", "plan_arms", "run_arms"]

SHOTS = 2


def plan_arms(lab: Lab) -> None:
    """How each arm serves each capability of the eval set, into ``lab.plans``."""
    for name in dict.fromkeys(item.capability for item in lab.items):
        for arm in ARMS:
            lab.plans[(arm, name)] = _plan(lab.runtime.capability(name), arm)


def _plan(cap: Capability, arm: str) -> ArmPlan:
    """How one arm serves one capability (the table above)."""
    if cap.answers_from_sources:
        return _knowledge_plan(cap.name, arm)
    return _behaviour_plan(cap, arm)


def _knowledge_plan(name: str, arm: str) -> ArmPlan:
    if arm == "zero-shot":
        return ArmPlan(arm, name, Route(name, "prompt"), None, "base model, no context")
    if arm == "few-shot":
        return ArmPlan(
            arm,
            name,
            Route(name, "few-shot"),
            "reference",
            f"base model, {SHOTS} reference answers of similar eval questions",
        )
    if arm == "RAG":
        return ArmPlan(
            arm, name, Route(name, "retrieval", (name,)), None, "base model, retrieved passages"
        )
    if arm == "LoRA":
        adapter = f"lab-{name}-lora"
        return ArmPlan(
            arm,
            name,
            Route(name, "lora", (), adapter),
            None,
            "adapter trained on the reference answers, no retrieval",
        )
    adapter = f"lab-{name}-rag-lora"
    return ArmPlan(
        arm,
        name,
        Route(name, "lora", (name,), adapter),
        None,
        "adapter trained on the reference answers with retrieved context (RAFT), with retrieval",
    )


def _behaviour_plan(cap: Capability, arm: str) -> ArmPlan:
    name = cap.name
    knowledge = tuple(cap.context_from)
    if arm == "zero-shot":
        return ArmPlan(arm, name, Route(name, "prompt"), None, "base model, instructions only")
    if arm == "few-shot":
        return ArmPlan(
            arm,
            name,
            Route(name, "few-shot"),
            "examples",
            f"base model, {SHOTS} most similar examples",
        )
    if arm == "RAG":
        setup = (
            f"base model, passages from {', '.join(knowledge)}"
            if knowledge
            else "base model (no context_from: nothing to retrieve)"
        )
        return ArmPlan(arm, name, Route(name, "prompt", knowledge), None, setup)
    if arm == "LoRA":
        adapter = f"lab-{name}-lora" if knowledge else name
        return ArmPlan(
            arm,
            name,
            Route(name, "lora", (), adapter),
            None,
            "adapter trained without retrieved context",
        )
    return ArmPlan(
        arm,
        name,
        Route(name, "lora", knowledge, name),
        None,
        "the project's context-aware adapter with retrieval"
        if knowledge
        else "the project's adapter (no context_from: nothing to retrieve)",
    )


def _shots(lab: Lab, plan: ArmPlan, item: EvalItem) -> list[Example]:
    if plan.shots == "examples":
        return lab.runtime.shots_for(plan.capability, item.input, SHOTS)
    if plan.shots != "reference":
        return []
    import numpy as np

    others = [i for i in lab.pool if i.capability == plan.capability and i.answer and i is not item]
    if not others:
        return []
    key = plan.capability
    if key not in lab.reference_vectors:
        pool = [i for i in lab.pool if i.capability == key and i.answer]
        vectors = np.asarray(lab.runtime.embedder.embed([i.input for i in pool]), np.float32)
        lab.reference_vectors[key] = (pool, vectors)
    pool, vectors = lab.reference_vectors[key]
    query = np.asarray(lab.runtime.embedder.embed([item.input]), np.float32)[0]
    order = np.argsort(-(vectors @ query))
    shots = [pool[int(i)] for i in order if pool[int(i)] is not item][:SHOTS]
    return [Example(s.input, s.answer or "") for s in shots]


def run_arms(
    lab: Lab, items: Sequence[EvalItem], phase: str, arms: Sequence[str] = ARMS
) -> list[Call]:
    """Each of ``arms`` answers every item, once per seed; ``phase`` is "before" or "after"."""
    calls: list[Call] = []
    total = len(items) * len(arms) * len(lab.settings.run_seeds)
    done = 0
    for arm in arms:
        for seed in lab.settings.run_seeds:
            for item in items:
                calls.append(_call(lab, lab.plans[(arm, item.capability)], item, seed, phase))
                done += 1
                if lab.progress:
                    lab.progress(f"{phase}: {arm}", done, total)
    return calls


def _call(lab: Lab, plan: ArmPlan, item: EvalItem, seed: int | None, phase: str) -> Call:
    runtime = lab.runtime
    settings = lab.settings
    request = Request(
        item.input,
        item.capability,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
    )
    started = time.perf_counter()
    passages = retrieve(runtime, plan.route, request)
    shots = _shots(lab, plan, item)
    messages = build_prompt(runtime, plan.route, request, passages, shots)
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    generation = generate(runtime, plan.route, messages, request)
    seconds = time.perf_counter() - started
    contract = runtime.contracts.get(item.capability)
    after = phase == "after" and item.after is not None
    expected = item.after.expected if after and item.after else item.expected
    return Call(
        arm=plan.arm,
        item=item,
        answer=generation.text,
        fact_score=fact_score(generation.text, expected),
        contract_ok=contract.validate(generation.text).ok if contract is not None else None,
        stale=(
            is_stale(generation.text, item.expected, item.after.expected)
            if after and item.after
            else None
        ),
        seconds=seconds,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        seed=seed,
        phase=phase,
    )

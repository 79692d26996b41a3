"""The five arms: how each serves a capability, and each arm's answers to the eval items.

The arms come from one table (:data:`ragtune.lab.model.ARM_SPECS`: what each adds - retrieval,
shots, an adapter); per capability of the eval set they serve it so:

=========  =====================================  =========================================
arm        knowledge capability                   behaviour capability
=========  =====================================  =========================================
zero-shot  base model, the capability's            base model, instructions and contract
           description as the system prompt
few-shot   + the 2 reference answers of the        + the 2 most similar examples of its
           most similar other eval questions       examples file
RAG        base model + retrieved passages         base model + passages of ``context_from``
LoRA       an adapter trained on the reference     an adapter trained without retrieved
           answers of the split's train lines      context
           (facts in the weights), no retrieval
RAG+LoRA   the project's reader adapter where      the project's context-aware adapter
           ``build`` trained one, else one the     (trained by ``build``), served with
           lab trains on the train lines with      retrieval
           retrieved context (RAFT); retrieval
=========  =====================================  =========================================

Each answer of an arm that serves an adapter is *seen* (the adapter's manifest lists its input
among those it trained on) or *unseen*; before the change, such an arm is also asked the
rephrasings of its seen lines (*rephrased*: the adapter saw the fact, not the words).

Generation is the runtime's (:mod:`ragtune.runtime.pipeline` steps; an adapter trained with shots
is shown as many, chosen as the runtime chooses them); answers are scored on their first attempt
- no repair - so the arms are compared as they generate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ragtune.behavior.examples import Example
from ragtune.lab.evalset import EvalItem
from ragtune.lab.metrics import fact_score, is_stale
from ragtune.lab.model import ArmPlan, ArmSpec, Call, Lab, arm_spec
from ragtune.project import Capability
from ragtune.runtime.pipeline import build_prompt, generate, retrieve, select_shots
from ragtune.runtime.runtime import Request, Route, Runtime, Strategy

__all__ = ["SHOTS", "asked", "plan_arms", "run_arms"]

SHOTS = 2


def plan_arms(lab: Lab) -> None:
    """How each chosen arm serves each capability of the eval set, into ``lab.plans``."""
    for name in dict.fromkeys(item.capability for item in lab.items):
        cap = lab.runtime.capability(name)
        for arm in lab.settings.arms:
            lab.plans[(arm, name)] = _plan(lab.runtime, cap, arm_spec(arm))


def _plan(runtime: Runtime, cap: Capability, spec: ArmSpec) -> ArmPlan:
    """How one arm serves one capability (the table above), from what the arm adds."""
    knowledge = cap.answers_from_sources
    sources = (cap.name,) if knowledge else tuple(cap.context_from)
    retrieved = sources if spec.retrieval else ()
    adapter = _adapter(runtime, cap, spec) if spec.adapter else None
    kind: Strategy
    if knowledge and adapter == cap.name:
        kind = "retrieval"  # build's reader, served as the runtime serves it (its prompt)
    elif adapter is not None:
        kind = "lora"
    elif spec.shots:
        kind = "few-shot"
    elif retrieved and knowledge:
        kind = "retrieval"
    else:
        kind = "prompt"
    shots = ("reference" if knowledge else "examples") if spec.shots else None
    if not knowledge:
        passages = f"passages from {', '.join(sources)}" if sources else None
        setup = spec.behaviour_setup.format(
            shots=SHOTS, passages=passages or "no context_from: nothing to retrieve"
        )
    elif adapter == cap.name:
        setup = "the project's reader adapter (trained by `ragtune build`), with retrieval"
    else:
        setup = spec.knowledge_setup.format(shots=SHOTS)
    return ArmPlan(spec.name, cap.name, Route(cap.name, kind, retrieved, adapter), shots, setup)


def _adapter(runtime: Runtime, cap: Capability, spec: ArmSpec) -> str:
    """The adapter an arm serves a capability with. With retrieval: the project's own (a
    behaviour capability's, or a knowledge capability's reader adapter where ``build`` trained
    one), else one the lab trains with retrieved context. Without: one the lab trains without
    context, except for a behaviour capability that retrieves nothing anyway."""
    if spec.retrieval:
        if not cap.answers_from_sources or runtime.adapter_for(cap.name) is not None:
            return cap.name
        return f"lab-{cap.name}-rag-lora"
    if cap.answers_from_sources or cap.context_from:
        return f"lab-{cap.name}-lora"
    return cap.name


def _shots(lab: Lab, plan: ArmPlan, item: EvalItem) -> list[Example]:
    """The examples an arm shows: its own (the few-shot arm), else those its adapter is served
    with (an adapter trained with ``shots`` gets as many, chosen as the runtime chooses them)."""
    if plan.shots == "examples":
        return lab.runtime.shots_for(plan.capability, item.input, SHOTS)
    if plan.shots != "reference":
        return select_shots(lab.runtime, plan.route, Request(item.input, item.capability))
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


def asked(lab: Lab, arm: str, items: Sequence[EvalItem], phase: str) -> list[EvalItem]:
    """What ``arm`` is asked: the items and, before the change, for an arm that serves an
    adapter, the rephrasings of the lines that adapter trained on (its "rephrased" column)."""
    out: list[EvalItem] = []
    for item in items:
        out.append(item)
        adapter = lab.plans[(arm, item.capability)].route.adapter
        if phase == "before" and adapter is not None:
            out += [r for r in item.rephrasings() if lab.exposure(adapter, r) == "rephrased"]
    return out


def run_arms(
    lab: Lab, items: Sequence[EvalItem], phase: str, arms: Sequence[str] | None = None
) -> list[Call]:
    """Each of ``arms`` (default: the chosen ones) answers every item, once per seed;
    ``phase`` is "before" or "after"."""
    questions = {arm: asked(lab, arm, items, phase) for arm in arms or lab.settings.arms}
    calls: list[Call] = []
    total = sum(map(len, questions.values())) * len(lab.settings.run_seeds)
    done = 0
    for arm, of in questions.items():
        for seed in lab.settings.run_seeds:
            for item in of:
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
        exposure=lab.exposure(plan.route.adapter, item),
    )

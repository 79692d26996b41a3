"""The adapters the arms need, trained into the lab's copy of the project before any answer: a
knowledge capability's on the evaluated items' reference answers, a behaviour capability's on
its examples. Where an arm serves the project's own adapter (a behaviour capability's RAG+LoRA
arm), the one ``build`` trained is used as it is; the lab trains it only when it is missing."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ragtune.adapters import load_manifest
from ragtune.behavior.examples import Example, ExampleSet, load_examples
from ragtune.context import Passage
from ragtune.lab.model import AdapterJob, Lab, LabError
from ragtune.project import Capability
from ragtune.runtime.runtime import Route, Runtime

if TYPE_CHECKING:
    from ragtune.adapters import TrainConfig

__all__ = ["KNOWLEDGE_EPOCHS", "train_adapters", "train_lab_adapter"]

KNOWLEDGE_EPOCHS = 24
"""Passes of the lab's knowledge adapters over the reference answers of the evaluated items:
enough for the base model to reproduce them (measured: 12 passes leave most facts unlearnt) -
the best case of fine-tuning facts in."""


def train_adapters(lab: Lab) -> None:
    """Train what the arms need that is not trained yet, before any generation (the lab's
    backend then loads them all)."""
    jobs: dict[str, AdapterJob] = {}
    for plan in lab.plans.values():
        adapter = plan.route.adapter
        if adapter is None or adapter in jobs:
            continue
        context = bool(plan.route.knowledge)
        exists = lab.runtime.adapter_for(adapter) is not None
        source = "project" if adapter == plan.capability and exists else "lab"
        jobs[adapter] = AdapterJob(adapter, plan.capability, plan.arm, context, source)
    for job in jobs.values():
        if job.source == "project":
            training = load_manifest(lab.runtime.adapters_root, job.name).training
            lab.adapters.append(
                {
                    "name": job.name,
                    "capability": job.capability,
                    "arm": job.arm,
                    "context": job.context,
                    "steps": training.steps,
                    "seconds": training.seconds,
                    "source": "project",
                }
            )
            continue
        seconds, steps = train_lab_adapter(lab, job, revised=False)
        lab.adapters.append(
            {
                "name": job.name,
                "capability": job.capability,
                "arm": job.arm,
                "context": job.context,
                "steps": steps,
                "seconds": round(seconds, 2),
                "source": "lab",
            }
        )


def _reference_examples(lab: Lab, capability: str, *, revised: bool) -> ExampleSet:
    """The evaluated items' reference answers of a knowledge capability as training examples
    (the answers after the change set when ``revised``)."""
    rows: list[Example] = []
    for item in lab.items:
        if item.capability != capability:
            continue
        answer = item.answer
        if revised and item.after is not None and item.after.answer:
            answer = item.after.answer
        if answer:
            rows.append(Example(item.input, answer, None, len(rows) + 1))
    if not rows:
        raise LabError(
            f"the LoRA arms of {capability!r} train on the evaluated items' reference answers, "
            "but none of them has an 'answer': add one to each line"
        )
    import hashlib

    digest = hashlib.sha256("\n".join(r.input + r.output for r in rows).encode()).hexdigest()
    return ExampleSet(f"lab:{capability}", rows, digest)


def train_lab_adapter(lab: Lab, job: AdapterJob, *, revised: bool) -> tuple[float, int]:
    """Train one lab adapter into the workspace; returns (seconds, steps)."""
    from ragtune.behavior.train import train_adapter
    from ragtune.generate.base import load_base_model

    started = time.perf_counter()
    runtime = lab.runtime
    cap = runtime.capability(job.capability)
    context = None
    if cap.answers_from_sources:
        examples, config = _knowledge_training(lab, cap, job, revised=revised)
        knowledge: tuple[str, ...] = (cap.name,)
    else:
        examples, config = _behaviour_training(lab, cap, job)
        knowledge = tuple(cap.context_from)
    if job.context and config.context_passages:
        from ragtune.behavior.raft import ContextSettings, add_context

        kb = runtime.knowledge

        def search(query: str, k: int) -> list[Passage]:
            return [h.passage() for h in kb.search(query, k=k, capability=list(knowledge))]

        examples, context = add_context(
            examples,
            search,
            ContextSettings(
                passages=config.context_passages,
                oracle_share=config.context_oracle_share,
                pool=max(8, config.context_passages + 2),
                chars=config.context_chars,
            ),
            capabilities=list(knowledge),
            snapshot=kb.store.latest_snapshot(),
            seed=config.seed,
        )
    settings = lab.work.config.model
    loaded = load_base_model(
        settings.base_model, cache_root=lab.work.state_dir / "models", device=settings.device
    )
    total = [0]

    def step(done: int, of: int, loss: float) -> None:
        total[0] = of
        if lab.progress:
            lab.progress(f"train {job.name}", done, of)

    result = train_adapter(
        loaded,
        examples,
        runtime.adapters_root / job.name,
        config,
        None,
        progress=step,
        context=context,
    )
    return time.perf_counter() - started, result.steps


def _knowledge_training(
    lab: Lab, cap: Capability, job: AdapterJob, *, revised: bool
) -> tuple[ExampleSet, TrainConfig]:
    """A knowledge adapter's examples (the reference answers) and its settings:
    :data:`KNOWLEDGE_EPOCHS` passes, with retrieved context when the job asks for it."""
    from ragtune.adapters import TrainConfig

    system = _system_prompt(lab.runtime, Route(cap.name, "lora", (), job.name))
    examples = _reference_examples(lab, cap.name, revised=revised)
    config = TrainConfig(
        r=16,
        alpha=32,
        learning_rate=1e-3,
        epochs=KNOWLEDGE_EPOCHS,
        max_steps=lab.settings.knowledge_steps,
        batch_size=4,
        max_length=768,
        held_out=0.0,
        eval_max_new_tokens=0,
        checkpoint_every=0,
        system_prompt=system,
        context_passages=2 if job.context else 0,
    )
    return examples, config


def _behaviour_training(
    lab: Lab, cap: Capability, job: AdapterJob
) -> tuple[ExampleSet, TrainConfig]:
    """A behaviour adapter's examples (its examples file) and the capability's ``train:``
    settings, capped at ``--train-steps``, with no held-out evaluation or checkpoints."""
    from ragtune.behavior.staleness import train_config_for

    steps_cap = lab.settings.train_steps
    examples = load_examples(lab.work.resolve(cap.examples or ""), lab.work.root)
    config = replace(
        train_config_for(lab.work, cap),
        max_steps=steps_cap,
        eval_max_new_tokens=0,
        held_out=0.0,
        checkpoint_every=0,
    )
    if not job.context:
        config = replace(config, context_passages=0)
    return examples, config


def _system_prompt(runtime: Runtime, route: Route) -> str | None:
    from ragtune.runtime.pipeline import system_prompt

    return system_prompt(runtime, route)

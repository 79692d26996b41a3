"""The adapters the arms need, trained into the lab's copy of the project before any answer: a
knowledge capability's on the reference answers of the evaluated items that the split
(:mod:`ragtune.holdout`) puts on the *train* side - the held-out lines are only ever scored - a
behaviour capability's on its examples. Where an arm serves the project's own adapter (a
behaviour capability's, or a knowledge capability's reader adapter), the one ``build`` trained
is used as it is; the lab trains it only when it is missing. Either way the adapter's manifest
says what it trained on (``dataset.inputs``), which the arms' seen / unseen columns rest on."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ragtune import holdout
from ragtune.adapters import AdapterError, load_manifest
from ragtune.behavior.examples import Example, ExampleSet, load_examples
from ragtune.context import Passage
from ragtune.lab.evalset import EvalItem
from ragtune.lab.model import AdapterJob, Lab, LabError
from ragtune.lab.records import AdapterRecord
from ragtune.project import Capability
from ragtune.runtime.runtime import Route, Runtime

if TYPE_CHECKING:
    from ragtune.adapters import TrainConfig

__all__ = [
    "KNOWLEDGE_EPOCHS",
    "adapter_jobs",
    "job_steps",
    "refresh_trained_on",
    "split_lines",
    "train_adapters",
    "train_lab_adapter",
]

KNOWLEDGE_EPOCHS = 24
"""Passes of the lab's knowledge adapters over the reference answers of their train lines:
enough for the base model to reproduce them (measured: 12 passes leave most facts unlearnt) -
the best case of fine-tuning facts in."""


def adapter_jobs(lab: Lab) -> list[AdapterJob]:
    """The adapters the planned arms serve, each once: the project's own where it exists and
    fits, else one the lab trains."""
    jobs: dict[str, AdapterJob] = {}
    for plan in lab.plans.values():
        adapter = plan.route.adapter
        if adapter is None or adapter in jobs:
            continue
        context = bool(plan.route.knowledge)
        exists = lab.runtime.adapter_for(adapter) is not None
        source = "project" if adapter == plan.capability and exists else "lab"
        jobs[adapter] = AdapterJob(adapter, plan.capability, plan.arm, context, source)
    return list(jobs.values())


def train_adapters(lab: Lab) -> None:
    """Train what the arms need that is not trained yet, before any generation (the lab's
    backend then loads them all); record each adapter and what it trained on."""
    for job in adapter_jobs(lab):
        if job.source == "project":
            steps, seconds = None, None
        else:
            took, steps = train_lab_adapter(lab, job, revised=False)
            seconds = round(took, 2)
        manifest = load_manifest(lab.runtime.adapters_root, job.name)
        inputs = frozenset(manifest.dataset.inputs)
        lab.trained_on[job.name] = inputs or None
        lab.adapters.append(
            AdapterRecord(
                name=job.name,
                capability=job.capability,
                arm=job.arm,
                context=job.context,
                steps=manifest.training.steps if steps is None else steps,
                seconds=manifest.training.seconds if seconds is None else seconds,
                source=job.source,
                inputs=len(inputs) if inputs else None,
            )
        )


def refresh_trained_on(lab: Lab, name: str) -> None:
    """Read again what adapter ``name`` trained on (after it was retrained)."""
    try:
        inputs = frozenset(load_manifest(lab.runtime.adapters_root, name).dataset.inputs)
    except AdapterError:
        inputs = frozenset()
    lab.trained_on[name] = inputs or None


def split_lines(lab: Lab, capability: str) -> tuple[list[EvalItem], list[EvalItem]]:
    """A capability's evaluated lines as ``(train, held_out)`` by the lab's split."""
    of = [i for i in lab.items if i.capability == capability]
    seed, share = lab.settings.split_seed, lab.settings.split_share
    return holdout.split(of, key=lambda i: i.input, seed=seed, share=share)


def _reference_examples(lab: Lab, capability: str, *, revised: bool) -> ExampleSet:
    """The reference answers of a knowledge capability's train lines as training examples (the
    answers after the change set when ``revised``); the held-out lines are never trained on."""
    train, held = split_lines(lab, capability)
    rows: list[Example] = []
    for item in train:
        answer = item.answer
        if revised and item.after is not None and item.after.answer:
            answer = item.after.answer
        if answer:
            rows.append(Example(item.input, answer, None, len(rows) + 1))
    if not rows:
        settings = lab.settings
        raise LabError(
            f"the LoRA arms of {capability!r} train on the reference answers of the split's "
            f"train lines, but none of its {len(train) + len(held)} evaluated lines is a train "
            f"line with an 'answer' (split seed {settings.split_seed}, {settings.split_share:.0%} "
            "held out): add lines with 'answer', raise --max-items, choose another "
            "--split-seed, or leave the LoRA arms out with --arms"
        )
    import hashlib

    digest = hashlib.sha256("\n".join(r.input + r.output for r in rows).encode()).hexdigest()
    return ExampleSet(f"lab:{capability}", rows, digest)


def job_steps(lab: Lab, job: AdapterJob) -> int:
    """The optimiser steps a lab adapter will take (0 for the project's own), for the
    estimate; read from the same examples and settings as the training."""
    from ragtune.behavior.encode import total_steps

    if job.source == "project":
        return 0
    cap = lab.runtime.capability(job.capability)
    if cap.answers_from_sources:
        examples, config = _knowledge_training(lab, cap, job, revised=False)
    else:
        examples, config = _behaviour_training(lab, cap, job)
    return total_steps(len(examples.examples), config)


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
        shape = ContextSettings.of(config)

        def search(query: str, k: int) -> list[Passage]:
            return kb.passages(query, k, knowledge, shape.order)

        examples, context = add_context(
            examples,
            search,
            shape,
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

"""How long a lab run will take, said before it trains anything.

The estimate is the adapters the lab must train times their steps times the seconds a step
takes, plus the generations times the seconds a generation takes. A step's seconds are measured
where an adapter of the project records them (``training.seconds_per_step`` in its manifest);
otherwise, like a generation's, they are assumed. It is an estimate, and says so.
"""

from __future__ import annotations

import statistics

from ragtune.holdout import is_held_out
from ragtune.lab.evalset import EvalItem
from ragtune.lab.model import AdapterJob, Lab, arm_spec
from ragtune.lab.records import Estimate
from ragtune.lab.train import adapter_jobs, job_steps

__all__ = ["ASSUMED_SECONDS_PER_STEP", "ASSUMED_TOKENS_PER_SECOND", "estimate"]

ASSUMED_SECONDS_PER_STEP = 3.0
"""A training step when no adapter of the project measured one (the base model on 2 CPU cores,
batch 4 of short examples)."""

ASSUMED_TOKENS_PER_SECOND = 15.0
"""Generated tokens a second, as the transformers backend decodes the base model on 2 CPU cores;
llama.cpp is several times faster, so the estimate errs long there."""

PROMPT_SECONDS = 0.5
"""Assumed seconds to read a prompt before the first token."""


def estimate(lab: Lab) -> Estimate:
    """The lab's time, from its plan (call after :func:`ragtune.lab.arms.plan_arms`).

    Raises:
        LabError: A LoRA arm of a knowledge capability with no train line to learn from.
    """
    jobs = [job for job in adapter_jobs(lab) if job.source == "lab"]
    steps = sum(job_steps(lab, job) for job in jobs)
    changed = [i for i in lab.items if i.after is not None] if lab.settings.drift else []
    retrain = _retrain_jobs(lab, jobs, changed)
    steps += sum(job_steps(lab, job) for job in retrain)
    calls = sum(_asked(lab, arm) for arm in lab.settings.arms)
    calls += len(changed) * (len(lab.settings.arms) + (1 if retrain else 0))
    calls *= len(lab.settings.run_seeds)
    measured = _measured_step_seconds(lab)
    per_step = measured if measured is not None else ASSUMED_SECONDS_PER_STEP
    per_call = round(PROMPT_SECONDS + lab.settings.max_tokens / ASSUMED_TOKENS_PER_SECOND, 1)
    return Estimate(
        seconds=steps * per_step + calls * per_call,
        adapters=len(jobs) + len(retrain),
        steps=steps,
        seconds_per_step=round(per_step, 2),
        step_measured=measured is not None,
        calls=calls,
        seconds_per_call=per_call,
    )


def _retrain_jobs(lab: Lab, jobs: list[AdapterJob], changed: list[EvalItem]) -> list[AdapterJob]:
    """The knowledge adapters of the LoRA arm that the drift test retrains."""
    if not (changed and lab.settings.retrain):
        return []
    touched = {i.capability for i in changed}
    return [
        job
        for job in jobs
        if job.arm == "LoRA"
        and job.capability in touched
        and lab.runtime.capability(job.capability).answers_from_sources
    ]


def _asked(lab: Lab, arm: str) -> int:
    """Questions one arm is asked before the change: every item, and for an arm that serves an
    adapter the rephrasings of the lines on the train side of the split (what it will see)."""
    count = len(lab.items)
    if arm_spec(arm).adapter:
        seed, share = lab.settings.split_seed, lab.settings.split_share
        count += sum(
            len(i.rephrased) for i in lab.items if not is_held_out(i.input, seed=seed, share=share)
        )
    return count


def _measured_step_seconds(lab: Lab) -> float | None:
    """The median seconds a step took over the adapters of the project that record it."""
    from ragtune.adapters import AdapterError, list_adapters

    try:
        found = list_adapters(lab.runtime.adapters_root)
    except AdapterError:
        return None
    seconds = [
        a.manifest.training.seconds_per_step for a in found if a.manifest.training.seconds_per_step
    ]
    return statistics.median(seconds) if seconds else None

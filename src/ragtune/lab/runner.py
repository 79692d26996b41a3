"""``ragtune lab``: the five arms on the same eval set, the same base model and the same
generation settings; then the drift test.

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

The lab works on a copy of the project under ``.ragtune/lab/work``: the drift change set is
applied there, and the lab's own adapters live there. The project itself is never changed.
Generation is the runtime's (:mod:`ragtune.runtime.pipeline` steps); answers are scored on
their first attempt - no repair - so the arms are compared as they generate.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ragtune import __version__
from ragtune.behavior.examples import Example, ExampleSet, load_examples
from ragtune.context import Passage
from ragtune.errors import RagtuneError
from ragtune.lab.evalset import EvalItem
from ragtune.lab.metrics import fact_score, is_stale, percentile, spread
from ragtune.project import Capability, Project, load_project
from ragtune.runtime.pipeline import (
    Request,
    Route,
    Runtime,
    build_prompt,
    generate,
    retrieve,
)

__all__ = [
    "ARMS",
    "Call",
    "LabError",
    "LabSettings",
    "apply_change_set",
    "run_lab",
]

ARMS = ("zero-shot", "few-shot", "RAG", "LoRA", "RAG+LoRA")
"""The arms, in report order."""

KNOWLEDGE_EPOCHS = 24
"""Passes of the lab's knowledge adapters over the reference answers of the evaluated items:
enough for the base model to reproduce them (measured: 12 passes leave most facts unlearnt) -
the best case of fine-tuning facts in."""

SHOTS = 2
AGREE_MARGIN = 0.05
"""The audit's arm agrees with the lab when it scores within this of the best arm."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(step, done, total)`` while arms run and adapters train."""


class LabError(RagtuneError):
    """The lab cannot run: a bad setting, an eval set that does not fit, a change set that
    names no document of the project."""


@dataclass
class LabSettings:
    """How the lab runs.

    Attributes:
        drift: A folder of new versions of the project's documents (by file name), applied
            after the adapters are trained; None skips the drift test.
        max_items: At most this many eval items per capability (the reduced setting); None: all.
        max_tokens: Token budget of each answer, the same for every arm.
        temperature: 0 decodes greedily (one run); above 0 samples, once per seed.
        seeds: Seeds of the sampled runs (used only when ``temperature`` > 0).
        train_steps: Cap on the steps of each behaviour adapter the lab trains; None: the
            capability's ``train:`` settings. Knowledge adapters train :data:`KNOWLEDGE_EPOCHS`
            epochs over the reference answers (a few dozen short steps).
        knowledge_steps: Steps of each knowledge adapter the lab trains; None:
            :data:`KNOWLEDGE_EPOCHS` epochs over the evaluated items' reference answers.
        retrain: Retrain the LoRA arm's knowledge adapter on the new facts after the drift,
            to measure its time to correct.
    """

    drift: Path | None = None
    max_items: int | None = None
    max_tokens: int = 80
    temperature: float = 0.0
    seeds: tuple[int, ...] = (0, 1, 2)
    train_steps: int | None = None
    knowledge_steps: int | None = None
    retrain: bool = True

    def __post_init__(self) -> None:
        if self.max_items is not None and self.max_items < 1:
            raise LabError(f"--max-items must be at least 1, got {self.max_items}")
        if self.max_tokens < 1:
            raise LabError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise LabError(f"--temperature must be 0 or more, got {self.temperature}")
        if self.train_steps is not None and self.train_steps < 1:
            raise LabError(f"--train-steps must be at least 1, got {self.train_steps}")
        if self.knowledge_steps is not None and self.knowledge_steps < 1:
            raise LabError(f"--knowledge-steps must be at least 1, got {self.knowledge_steps}")
        if not self.seeds:
            raise LabError("--seeds must name at least one seed")

    @property
    def run_seeds(self) -> tuple[int | None, ...]:
        """The seeds the arms run with: one greedy run, or one sampled run per seed."""
        return tuple(self.seeds) if self.temperature > 0 else (None,)


@dataclass(frozen=True)
class ArmPlan:
    """How one arm serves one capability."""

    arm: str
    capability: str
    route: Route
    shots: str | None  # "examples", "reference" or None
    setup: str


@dataclass(frozen=True)
class AdapterJob:
    """An adapter an arm needs: trained by the lab, or the project's own."""

    name: str
    capability: str
    arm: str
    context: bool
    source: str  # "lab" or "project"


@dataclass
class Call:
    """One answer of one arm to one eval item."""

    arm: str
    item: EvalItem
    answer: str
    fact_score: float | None
    contract_ok: bool | None
    stale: bool | None
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    seed: int | None
    phase: str  # "before" or "after"

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "capability": self.item.capability,
            "where": self.item.where,
            "input": self.item.input,
            "answer": self.answer,
            "fact_score": self.fact_score,
            "contract_ok": self.contract_ok,
            "stale": self.stale,
            "seconds": round(self.seconds, 4),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seed": self.seed,
            "phase": self.phase,
        }


@dataclass
class _Lab:
    """What one lab run shares."""

    project: Project
    work: Project
    runtime: Runtime
    settings: LabSettings
    items: list[EvalItem]
    progress: Progress | None
    pool: list[EvalItem]  # every item, also beyond --max-items: the reference answers
    plans: dict[tuple[str, str], ArmPlan] = field(default_factory=dict)
    adapters: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, list[Example]] = field(default_factory=dict)
    after_calls: list[Call] = field(default_factory=list)
    _reference_vectors: dict[str, Any] = field(default_factory=dict)


# -- the run -----------------------------------------------------------------------------------


def run_lab(
    project: Project,
    items: Sequence[EvalItem],
    settings: LabSettings,
    *,
    eval_files: Sequence[str] = (),
    progress: Progress | None = None,
    backend_factory: Callable[[Project], Any] | None = None,
) -> dict[str, Any]:
    """Run the five arms (and the drift test) and return the report's data (JSON-ready).

    Args:
        project: The project; it is copied, never changed.
        items: The eval set (:func:`ragtune.lab.evalset.load_eval`).
        settings: How to run.
        eval_files: The eval files, as shown in the report.
        progress: Called while arms run and adapters train.
        backend_factory: Makes the generation backend for the lab's copy of the project;
            default: the local base model with the copy's adapters.

    Raises:
        LabError: A bad change set, or an eval set without a capability the lab can serve.
    """
    chosen = _reduce(list(items), settings.max_items)
    changes = _change_set(project, settings.drift) if settings.drift is not None else None
    work = _workspace(project)
    from ragtune.audit import run_audit

    decisions: dict[str, str] = {c.name: c.decision for c in run_audit(project).capabilities}
    if progress:
        progress("knowledge sync", 0, 1)
    runtime = Runtime(work, backend=None, decisions=decisions)
    first_sync = runtime.knowledge.sync()
    snapshot = runtime.knowledge.store.latest_snapshot()
    lab = _Lab(project, work, runtime, settings, chosen, progress, list(items))
    try:
        for name in dict.fromkeys(item.capability for item in chosen):
            for arm in ARMS:
                lab.plans[(arm, name)] = _plan(lab, runtime.capability(name), arm)
        _train_adapters(lab)
        if backend_factory is not None:
            runtime._backend = backend_factory(work)

        calls = _run_arms(lab, chosen, "before")
        arms = [_summary(lab, arm, [c for c in calls if c.arm == arm]) for arm in ARMS]
        drift = None
        if changes is not None:
            drift, after_calls = _drift(lab, changes, calls)
            calls += after_calls
        verdicts = _verdicts(lab, arms, drift)
        backend = runtime.backend
        loaded = getattr(backend, "loaded", None)
        return {
            "project": project.config.project,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "ragtune_version": __version__,
            "base_model": {
                "name": project.config.model.base_model,
                "sha256": getattr(loaded, "sha256", None),
            },
            "knowledge_snapshot": snapshot,
            "eval": {
                "files": list(eval_files),
                "items": len(chosen),
                "by_capability": _count_by_capability(chosen),
            },
            "settings": {
                "max_tokens": settings.max_tokens,
                "temperature": settings.temperature,
                "seeds": [s for s in settings.run_seeds if s is not None],
                "train_steps": settings.train_steps,
                "max_items": settings.max_items,
                "first_sync_seconds": round(first_sync.seconds, 3),
            },
            "arms": arms,
            "adapters": lab.adapters,
            "drift": drift,
            "verdicts": verdicts,
            "calls": [c.to_dict() for c in calls],
        }
    finally:
        runtime.close(backend=True)


def _reduce(items: list[EvalItem], limit: int | None) -> list[EvalItem]:
    """At most ``limit`` items per capability, the changed ones (``after``) first so the
    drift test keeps its questions."""
    if limit is None:
        return items
    kept: list[EvalItem] = []
    for name in dict.fromkeys(i.capability for i in items):
        of = [i for i in items if i.capability == name]
        ordered = [i for i in of if i.after] + [i for i in of if not i.after]
        keep = set(map(id, ordered[:limit]))
        kept.extend(i for i in of if id(i) in keep)
    return kept


def _count_by_capability(items: Sequence[EvalItem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.capability] = counts.get(item.capability, 0) + 1
    return counts


# -- the workspace and the change set ----------------------------------------------------------


def _workspace(project: Project) -> Project:
    """A copy of the project under ``.ragtune/lab/work``: its files, its knowledge store and
    its trained adapters; the de-quantised base model is shared, not copied."""
    state = project.state_dir
    work_root = state / "lab" / "work"
    if work_root.exists():
        shutil.rmtree(work_root)
    ignore = shutil.ignore_patterns(state.name, ".git", "__pycache__")
    shutil.copytree(project.root, work_root, ignore=ignore)
    work_state = work_root / state.name
    work_state.mkdir(parents=True, exist_ok=True)
    for name in ("knowledge.db", "knowledge.db-wal", "knowledge.db-shm"):
        if (state / name).is_file():
            shutil.copy2(state / name, work_state / name)
    for path in state.glob("*.usearch*"):
        shutil.copy2(path, work_state / path.name)
    if (state / "adapters").is_dir():
        shutil.copytree(
            state / "adapters", work_state / "adapters", ignore=shutil.ignore_patterns(".*")
        )
    models = state / "models"
    models.mkdir(parents=True, exist_ok=True)
    (work_state / "models").symlink_to(models.resolve(), target_is_directory=True)
    return load_project(work_root)


def _change_set(project: Project, folder: Path) -> list[tuple[Path, str]]:
    """The change set's files and the project document each replaces (matched by file name
    among the knowledge capabilities' source files).

    Raises:
        LabError: No such folder, no documents in it, or a file that matches no document (or
            several).
    """
    from ragtune.knowledge.tools import is_tool_ref

    if not folder.is_dir():
        raise LabError(f"--drift {folder}: no such folder (give a folder of revised documents)")
    documents: dict[str, list[str]] = {}
    for cap in project.config.capabilities:
        for ref in cap.sources:
            if is_tool_ref(ref):
                continue
            source = project.resolve(ref)
            files = [source] if source.is_file() else sorted(source.rglob("*"))
            for path in files:
                if path.is_file():
                    rel = path.relative_to(project.root).as_posix()
                    documents.setdefault(path.name, []).append(rel)
    pairs: list[tuple[Path, str]] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in {".md", ".txt", ".html", ".pdf"}:
            continue
        matches = sorted(set(documents.get(path.name, [])))
        if len(matches) == 1:
            pairs.append((path, matches[0]))
        elif not matches and path.name.upper().startswith(("CHANGES", "README")):
            continue  # the change set's own notes
        elif not matches:
            raise LabError(
                f"--drift {folder}: {path.name} matches no document of the project's knowledge "
                f"sources; documents: {', '.join(sorted(documents)) or 'none'}"
            )
        else:
            raise LabError(
                f"--drift {folder}: {path.name} matches several documents ({', '.join(matches)})"
            )
    if not pairs:
        raise LabError(f"--drift {folder}: no revised documents in it (.md, .txt, .html, .pdf)")
    return pairs


def apply_change_set(work: Project, changes: Sequence[tuple[Path, str]]) -> list[str]:
    """Copy the change set's files over the documents they revise in the lab's copy; returns
    the documents changed."""
    for source, rel in changes:
        target = work.root / rel
        tmp = target.with_name(f".{target.name}.lab-tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    return [rel for _, rel in changes]


# -- the arms ----------------------------------------------------------------------------------


def _plan(lab: _Lab, cap: Capability, arm: str) -> ArmPlan:
    name = cap.name
    if cap.answers_from_sources:
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
            "adapter trained on the reference answers with retrieved context (RAFT), "
            "with retrieval",
        )
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


def _train_adapters(lab: _Lab) -> None:
    """Train what the arms need that is not trained yet, before any generation (the lab's
    backend then loads them all)."""
    jobs: dict[str, AdapterJob] = {}
    for plan in lab.plans.values():
        adapter = plan.route.adapter
        if adapter is None or adapter in jobs:
            continue
        context = bool(plan.route.knowledge)
        exists = (lab.runtime.adapters_root / adapter / "ragtune.json").is_file()
        source = "project" if adapter == plan.capability and exists else "lab"
        jobs[adapter] = AdapterJob(adapter, plan.capability, plan.arm, context, source)
    for job in jobs.values():
        if job.source == "project":
            manifest = json.loads(
                (lab.runtime.adapters_root / job.name / "ragtune.json").read_text("utf-8")
            )
            training = manifest.get("training") or {}
            lab.adapters.append(
                {
                    "name": job.name,
                    "capability": job.capability,
                    "arm": job.arm,
                    "context": job.context,
                    "steps": training.get("steps"),
                    "seconds": training.get("seconds"),
                    "source": "project",
                }
            )
            continue
        seconds, steps = _train(lab, job, revised=False)
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


def _reference_examples(lab: _Lab, capability: str, *, revised: bool) -> ExampleSet:
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


def _train(lab: _Lab, job: AdapterJob, *, revised: bool) -> tuple[float, int]:
    """Train one lab adapter into the workspace; returns (seconds, steps)."""
    from ragtune.adapters import TrainConfig
    from ragtune.behavior.staleness import train_config_for
    from ragtune.behavior.train import train_adapter
    from ragtune.generate.base import load_base_model

    started = time.perf_counter()
    runtime = lab.runtime
    cap = runtime.capability(job.capability)
    steps_cap = lab.settings.train_steps
    system = _system_prompt(runtime, Route(cap.name, "lora", (), job.name))
    context = None
    if cap.answers_from_sources:
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
        knowledge: tuple[str, ...] = (cap.name,)
    else:
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


def _system_prompt(runtime: Runtime, route: Route) -> str | None:
    from ragtune.runtime.pipeline import system_prompt

    return system_prompt(runtime, route)


def _shots(lab: _Lab, plan: ArmPlan, item: EvalItem) -> list[Example]:
    if plan.shots == "examples":
        return lab.runtime.shots_for(plan.capability, item.input, SHOTS)
    if plan.shots != "reference":
        return []
    import numpy as np

    others = [i for i in lab.pool if i.capability == plan.capability and i.answer and i is not item]
    if not others:
        return []
    key = plan.capability
    if key not in lab._reference_vectors:
        pool = [i for i in lab.pool if i.capability == key and i.answer]
        vectors = np.asarray(lab.runtime.embedder.embed([i.input for i in pool]), np.float32)
        lab._reference_vectors[key] = (pool, vectors)
    pool, vectors = lab._reference_vectors[key]
    query = np.asarray(lab.runtime.embedder.embed([item.input]), np.float32)[0]
    order = np.argsort(-(vectors @ query))
    shots = [pool[int(i)] for i in order if pool[int(i)] is not item][:SHOTS]
    return [Example(s.input, s.answer or "") for s in shots]


def _run_arms(
    lab: _Lab, items: Sequence[EvalItem], phase: str, arms: Sequence[str] = ARMS
) -> list[Call]:
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


def _call(lab: _Lab, plan: ArmPlan, item: EvalItem, seed: int | None, phase: str) -> Call:
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


# -- the figures -------------------------------------------------------------------------------


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def _rate(values: Sequence[bool | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _cost_per_1k(lab: _Lab, calls: Sequence[Call]) -> float | None:
    if not calls:
        return None
    prices = lab.project.config.prices
    per_call = statistics.fmean(
        c.prompt_tokens * prices.input_usd_per_1m_tokens
        + c.completion_tokens * prices.output_usd_per_1m_tokens
        for c in calls
    )
    return per_call * 1000 / 1e6


def _metrics(lab: _Lab, calls: Sequence[Call]) -> dict[str, Any]:
    latency = percentile([c.seconds for c in calls], 50)
    return {
        "fact_accuracy": _mean([c.fact_score for c in calls]),
        "contract_compliance": _rate([c.contract_ok for c in calls]),
        "latency_p50_s": latency,
        "tokens_per_call": (
            statistics.fmean(c.prompt_tokens + c.completion_tokens for c in calls)
            if calls
            else None
        ),
        "cost_per_1k": _cost_per_1k(lab, calls),
    }


def _summary(lab: _Lab, arm: str, calls: Sequence[Call]) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": arm, **_metrics(lab, calls)}
    seeds = lab.settings.run_seeds
    if len(seeds) > 1:
        per_seed = [[c for c in calls if c.seed == s] for s in seeds]
        facts = [v for v in (_mean([c.fact_score for c in g]) for g in per_seed) if v is not None]
        ok = [v for v in (_rate([c.contract_ok for c in g]) for g in per_seed) if v is not None]
        summary["spread"] = {"fact_accuracy": spread(facts), "contract_compliance": spread(ok)}
    else:
        summary["spread"] = None
    by_capability: dict[str, Any] = {}
    setup: dict[str, str] = {}
    adapters: list[str] = []
    for name in dict.fromkeys(c.item.capability for c in calls):
        of = [c for c in calls if c.item.capability == name]
        metrics = _metrics(lab, of)
        by_capability[name] = {
            "items": len({id(c.item) for c in of}),
            "fact_accuracy": metrics["fact_accuracy"],
            "contract_compliance": metrics["contract_compliance"],
            "latency_p50_s": metrics["latency_p50_s"],
        }
        plan = lab.plans[(arm, name)]
        setup[name] = plan.setup
        if plan.route.adapter and plan.route.adapter not in adapters:
            adapters.append(plan.route.adapter)
    summary.update(by_capability=by_capability, setup=setup, adapters=adapters)
    return summary


# -- the drift test ----------------------------------------------------------------------------


def _drift(
    lab: _Lab, changes: Sequence[tuple[Path, str]], before: Sequence[Call]
) -> tuple[dict[str, Any], list[Call]]:
    changed = [i for i in lab.items if i.after is not None]
    rows: list[dict[str, Any]] = []
    if not changed:
        raise LabError(
            "--drift needs eval items whose answers the change set revises: lines with 'after' "
            '(e.g. "after": {"expected": ["48 hours"]}); the eval set has none'
        )
    documents = apply_change_set(lab.work, changes)
    with lab.runtime.lock:
        resync = lab.runtime.knowledge.sync()
    after = _run_arms(lab, changed, "after")
    ids = {id(i) for i in changed}
    retrain_seconds = None
    retrained = None
    lora_knowledge = [
        p
        for p in lab.plans.values()
        if p.arm == "LoRA"
        and p.route.adapter
        and lab.runtime.capability(p.capability).answers_from_sources
        and any(i.capability == p.capability for i in changed)
    ]
    if lab.settings.retrain and lora_knowledge:
        retrain_seconds = 0.0
        for plan in lora_knowledge:
            job = AdapterJob(plan.route.adapter or "", plan.capability, "LoRA", False, "lab")
            seconds, _ = _train(lab, job, revised=True)
            retrain_seconds += seconds
            reload = getattr(lab.runtime.backend, "reload_adapter", None)
            if reload is not None:
                reload(job.name)
        again = _run_arms(lab, changed, "after", ["LoRA"])
        for call in again:
            call.arm = "LoRA (retrained)"
        retrained = {
            "name": "LoRA (retrained)",
            "fact_accuracy": _mean([c.fact_score for c in again]),
            "stale_share": _rate([c.stale for c in again]),
            "seconds": round(retrain_seconds, 3),
        }
        after = after + again
    lab.after_calls = after
    for arm in ARMS:
        old = [c for c in before if c.arm == arm and id(c.item) in ids]
        new = [c for c in after if c.arm == arm]
        metrics = _metrics(lab, new)
        if arm in ("RAG", "RAG+LoRA"):
            to_correct: float | None = resync.seconds
        elif arm == "LoRA":
            to_correct = retrain_seconds
        else:
            to_correct = None
        rows.append(
            {
                "name": arm,
                "fact_accuracy_before": _mean([c.fact_score for c in old]),
                "fact_accuracy": metrics["fact_accuracy"],
                "contract_compliance": metrics["contract_compliance"],
                "latency_p50_s": metrics["latency_p50_s"],
                "cost_per_1k": metrics["cost_per_1k"],
                "stale_share": _rate([c.stale for c in new]),
                "time_to_correct_s": None if to_correct is None else round(to_correct, 3),
            }
        )
    folder = lab.settings.drift
    return (
        {
            "change_set": str(folder) if folder is not None else None,
            "documents": documents,
            "questions": len(changed),
            "resync_seconds": round(resync.seconds, 3),
            "reembedded": resync.embedded,
            "retrain_seconds": None if retrain_seconds is None else round(retrain_seconds, 3),
            "arms": rows,
            "retrained": retrained,
        },
        after,
    )


# -- the verdict -------------------------------------------------------------------------------

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


def _verdicts(
    lab: _Lab, arms: Sequence[dict[str, Any]], drift: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """For each capability of the eval set: does the lab's best arm carry out the audit's
    decision? Knowledge is judged on fact accuracy (after the change, when the drift test ran),
    behaviour on contract compliance."""
    verdicts = []
    for name in dict.fromkeys(i.capability for i in lab.items):
        cap = lab.runtime.capability(name)
        decision = lab.runtime.decisions.get(name, "prompt")
        knowledge = cap.answers_from_sources
        after_drift = bool(
            knowledge
            and drift is not None
            and any(i.capability == name and i.after for i in lab.items)
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
        known = {k: v for k, v in scores.items() if v is not None}
        candidates = [a for a in _chosen_arms(cap, decision) if a in known]
        if not known or not candidates:
            continue
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
                stale = next(
                    (
                        r["stale_share"]
                        for r in (drift or {}).get("arms", [])
                        if r["name"] == "LoRA"
                    ),
                    None,
                )
                if stale is not None:
                    text += f", where {stale:.0%} of the LoRA arm's answers are stale"
        else:
            text = (
                f"{head}; the lab disagrees: {best} scores {known[best]:.2f} against "
                f"{chosen} {known[chosen]:.2f}{also} on {metric}. " + _why(lab, name, chosen, best)
            )
        verdicts.append(
            {
                "capability": name,
                "decision": decision,
                "arm": chosen,
                "best": best,
                "metric": metric,
                "scores": known,
                "agrees": agrees,
                "text": text,
            }
        )
    return verdicts


def _drift_scores(lab: _Lab, name: str) -> dict[str, float | None]:
    """Fact accuracy per arm over a capability's changed questions, after the change."""
    calls = [c for c in lab.after_calls if c.item.capability == name]
    return {arm: _mean([c.fact_score for c in calls if c.arm == arm]) for arm in ARMS}


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


def _why(lab: _Lab, name: str, chosen: str, best: str) -> str:
    steps = lab.settings.train_steps
    if "LoRA" in chosen and steps is not None:
        return (
            f"The lab trained its adapters for at most {steps} steps (--train-steps); a full "
            "`ragtune build` may close the gap."
        )
    if chosen == "RAG":
        return "Check the retrieval: the passages may miss the clause (see the calls table)."
    return "The eval set may not exercise what the audit weighed (volume, change rate, cost)."

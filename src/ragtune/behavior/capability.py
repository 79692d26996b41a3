"""Train a capability's adapter from the project: examples, contract, leak guard, base model.

``ragtune adapter train CAPABILITY`` and ``ragtune build`` (:mod:`ragtune.build`) call
:func:`train_capability`: it reads the capability's examples and output contract, refuses to
train when the examples teach knowledge (the leak guard) unless told otherwise, loads the base
model from the cache, trains, and leaves the adapter under ``.ragtune/adapters/<capability>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ragtune.adapters import TrainConfig
from ragtune.behavior.contract import OutputContract, load_contract
from ragtune.behavior.examples import ExampleSet, load_examples, split
from ragtune.behavior.leak import DEFAULT_THRESHOLD, LeakReport, scan_examples
from ragtune.behavior.raft import TrainingContext
from ragtune.behavior.train import ProgressCallback, TrainResult
from ragtune.context import Passage
from ragtune.errors import RagtuneError
from ragtune.knowledge.sync import synced_store
from ragtune.project import Capability, Project


class BuildError(RagtuneError):
    """A capability cannot be trained as configured."""


@dataclass
class CapabilityTraining:
    """What training one capability did."""

    capability: str
    leak: LeakReport | None  # None for a reader: its answers quote the passages by design
    result: TrainResult
    context: TrainingContext | None = None

    def summary(self) -> dict[str, Any]:
        """What the run made, as JSON values: where, how long, how well (held-out scores with a
        few sample answers), the knowledge-leak share and the retrieved context trained with."""
        result = self.result
        return {
            "capability": self.capability,
            "path": str(result.path),
            "steps": result.steps,
            "final_loss": result.final_loss,
            "seconds_per_step": round(result.seconds_per_step, 3),
            "processes": result.manifest.training.processes,
            "size_bytes": result.size_bytes,
            "base": None if result.base is None else asdict(result.base.to_record()),
            "adapter": None if result.adapter is None else asdict(result.adapter.to_record()),
            "leak_share": None if self.leak is None else self.leak.share,
            "context": None if self.context is None else self.context.to_record().to_dict(),
        }


def capability_of(project: Project, name: str) -> Capability:
    """A capability by name, with a helpful error for an unknown one."""
    for capability in project.config.capabilities:
        if capability.name == name:
            return capability
    names = ", ".join(c.name for c in project.config.capabilities)
    raise BuildError(f"no capability {name!r} in {project.path}; the capabilities are: {names}.")


def examples_of(project: Project, capability: Capability) -> ExampleSet:
    """A capability's examples file, read; an error when it names none."""
    if not capability.examples:
        raise BuildError(
            f"capability {capability.name!r} has no examples file: set `examples:` in "
            f"{project.path} to a JSONL of input/output pairs to train an adapter."
        )
    return load_examples(project.resolve(capability.examples), project.root)


def check_leaks(
    project: Project, capability: Capability, examples: ExampleSet | None = None
) -> LeakReport:
    """Scan a capability's examples (read from its file unless given) for facts their inputs
    lack, and - when the project's knowledge store has been synced - for passages of the
    knowledge index (BM25, no model)."""
    examples = examples if examples is not None else examples_of(project, capability)
    rows = [(e.line, e.input, e.output, e.context) for e in examples.examples]
    store = synced_store(project)
    if store is None:
        return scan_examples(rows, path=examples.path, threshold=DEFAULT_THRESHOLD)
    from ragtune.knowledge.search import search

    def knowledge(text: str) -> list[str]:
        return [hit.text for hit in search(store, None, None, text, k=3, mode="bm25")]

    try:
        return scan_examples(
            rows, path=examples.path, threshold=DEFAULT_THRESHOLD, knowledge=knowledge
        )
    finally:
        store.close()


def training_shots(project: Project, examples: ExampleSet, config: TrainConfig) -> ExampleSet:
    """The examples with ``config.shots`` few-shot examples each (few-shot + LoRA), chosen from
    the training side of the split with the project's embedder, as the runtime will choose them
    (:func:`ragtune.behavior.fewshot.with_training_shots`); as they are when ``shots`` is 0."""
    if not config.shots:
        return examples
    from ragtune.behavior.fewshot import with_training_shots
    from ragtune.knowledge.base import KnowledgeBase

    pool = (
        split(examples, held_out=config.held_out, seed=config.seed)[0]
        if config.held_out
        else list(examples.examples)
    )
    kb = KnowledgeBase(project)
    try:
        return with_training_shots(examples, pool, config.shots, kb.embedder)
    finally:
        kb.close()


def training_context(
    project: Project, capability: Capability, examples: ExampleSet, config: TrainConfig
) -> tuple[ExampleSet, TrainingContext | None]:
    """The examples with retrieved context (RAFT) when the capability is served with
    retrieval (``context_from``) and ``config.context_passages`` > 0; else as they are.

    Raises:
        BuildError: The capability is served with retrieval but the knowledge store was never
            synced.
    """
    if not capability.context_from or config.context_passages == 0:
        return examples, None
    from ragtune.behavior.raft import ContextSettings, add_context
    from ragtune.knowledge.base import KnowledgeBase

    sources = ", ".join(capability.context_from)
    synced = synced_store(project)
    if synced is not None:
        synced.close()
    else:
        raise BuildError(
            f"capability {capability.name!r} is served with retrieval from {sources} "
            "(context_from), so its adapter trains on retrieved context, but the knowledge "
            "store is empty: run `ragtune knowledge sync` first (or train with --no-context)."
        )
    settings = ContextSettings.of(config)
    kb = KnowledgeBase(project)
    try:

        def retrieve(query: str, k: int) -> list[Passage]:
            return kb.passages(query, k, capability.context_from, settings.order)

        return add_context(
            examples,
            retrieve,
            settings,
            capabilities=capability.context_from,
            snapshot=kb.store.latest_snapshot(),
            seed=config.seed,
        )
    finally:
        kb.close()


def train_capability(
    project: Project,
    name: str,
    config: TrainConfig,
    *,
    allow_knowledge: bool = False,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> CapabilityTraining:
    """Train (or resume training) the adapter of one capability: a behaviour's, or a knowledge
    capability's reader (:func:`ragtune.behavior.reader.train_reader`).

    Raises:
        BuildError: unknown capability, no examples, or examples that teach knowledge above the
            threshold without ``allow_knowledge``.
    """

    capability = capability_of(project, name)
    if capability.reader is not None:
        from ragtune.behavior.reader import train_reader

        return train_reader(project, capability, config, resume=resume, progress=progress)
    examples = examples_of(project, capability)
    leak = check_leaks(project, capability, examples)
    if leak.exceeds and not allow_knowledge:
        raise BuildError("\n".join([leak.summary(), *leak.details(5)]))
    if config.held_out:  # too few for the split: fail before the model loads
        split(examples, held_out=config.held_out, seed=config.seed)
    examples = training_shots(project, examples, config)
    examples, context = training_context(project, capability, examples, config)
    contract = (
        load_contract(project.resolve(capability.output_contract), project.root)
        if capability.output_contract
        else None
    )
    result = train_into_project(
        project, capability.name, examples, config, contract, context, progress, resume=resume
    )
    return CapabilityTraining(capability.name, leak, result, context)


def train_into_project(
    project: Project,
    name: str,
    examples: ExampleSet,
    config: TrainConfig,
    contract: OutputContract | None,
    context: TrainingContext | None,
    progress: ProgressCallback | None,
    *,
    resume: bool = False,
) -> TrainResult:
    """Load the project's base model (from its cache) and train ``examples`` into
    ``.ragtune/adapters/<name>``: what a behaviour adapter and a reader share."""
    from ragtune.behavior.train import train_adapter
    from ragtune.generate.base import load_base_model

    settings = project.config.model
    loaded = load_base_model(
        settings.base_model, cache_root=project.state_dir / "models", device=settings.device
    )
    return train_adapter(
        loaded,
        examples,
        project.adapters_dir / name,
        config,
        contract,
        progress=progress,
        resume=resume,
        context=context,
    )

"""Which adapters must be trained again, and why: the behaviour half of ``ragtune plan``.

An adapter is a function of four things, each recorded in its manifest (``ragtune.json``): the
examples file, the base model, the training settings and - for context-aware training - the
knowledge it was shown. The first three are behaviour: when one changes, the adapter no longer
matches the project and must be retrained. The fourth is not a reason to retrain: the adapter
learned to read context, and the runtime serves the current text. It is still worth knowing
when passages the adapter saw in training have since been superseded, so the plan says so as a
warning.

Only JSON and file hashes are read here: no torch, no model load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from ragtune.adapters import MANIFEST, AdapterError, AdapterManifest, TrainingRecord, list_adapters
from ragtune.behavior.examples import ExampleSet
from ragtune.errors import RagtuneError
from ragtune.project import Capability, Project

__all__ = [
    "CPU_TOKENS_PER_SECOND",
    "SHIPPED_ADAPTERS",
    "AdapterPlan",
    "estimate_seconds",
    "instructions_for",
    "plan_adapters",
    "shipped_manifest",
    "train_config_for",
]

CPU_TOKENS_PER_SECOND = 140.0
"""Training tokens a second for a first run, before any measurement: SmolLM2-135M in fp32 on
two CPU cores, forward and backward with LoRA on every linear layer. Measured on the example's
risk-flag adapter (batches of 4 examples of about 600 tokens take about 17 s a step). Once an
adapter exists, its manifest's measured rate is used instead."""

CHARS_PER_TOKEN = 3.7
"""Characters per token of English contract text and JSON in SmolLM2's tokenizer (measured on
the example); the plan reads no tokenizer."""

PASSAGE_HEADER_CHARS = 40
"""Characters of the line that numbers and names each retrieved passage in a prompt."""

TEMPLATE_TOKENS = 30
"""Tokens the chat template adds to each example (role markers, the end-of-turn tokens)."""

Action = Literal["train", "retrain", "install", "none"]

SHIPPED_ADAPTERS = "adapters"
"""The folder beside ragtune.yaml where a project ships trained adapters (``adapters/<name>/``,
as ``ragtune build`` wrote them under ``.ragtune/adapters``), so that a fresh clone installs
them instead of training: a shipped adapter that matches the examples, base model and settings
is planned as ``install``."""


@dataclass
class AdapterPlan:
    """What the plan says about one capability's adapter.

    Attributes:
        capability: The capability (and adapter) name.
        action: ``train`` (none yet), ``retrain`` (behaviour changed), ``install`` (the
            project ships a current one in ``adapters/<name>/``: copied, not trained) or
            ``none``.
        reasons: Why, in words: one line per changed input.
        warnings: Knowledge the adapter saw in training that has since changed.
        steps: Optimiser steps a run would take.
        estimate_s: Estimated seconds for that run.
    """

    capability: str
    action: Action
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: int = 0
    estimate_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``ragtune plan --json``)."""
        return {
            "capability": self.capability,
            "action": self.action,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "steps": self.steps,
            "estimate_s": round(self.estimate_s, 1),
        }


def train_config_for(project: Project, capability: Capability) -> Any:
    """The capability's :class:`~ragtune.behavior.train.TrainConfig`: ``train:`` in
    ragtune.yaml over the documented defaults, with the system prompt it is served with (its
    ``instructions``, or :func:`~ragtune.behavior.contract.default_instructions`). A knowledge
    capability's reader: :func:`~ragtune.behavior.reader.reader_config`."""
    from ragtune.adapters import TrainConfig

    if capability.reader is not None:
        from ragtune.behavior.reader import reader_config

        return reader_config(project, capability)
    settings = dict(capability.train)
    if "system_prompt" not in settings:
        settings["system_prompt"] = instructions_for(project, capability)
    return TrainConfig(**settings)


def instructions_for(project: Project, capability: Capability) -> str:
    """A behaviour capability's system prompt: its ``instructions`` (or description) and what
    its output contract wants."""
    from ragtune.behavior.contract import default_instructions, load_contract

    contract = (
        load_contract(project.resolve(capability.output_contract), project.root)
        if capability.output_contract
        else None
    )
    return default_instructions(capability.instructions or capability.description, contract)


def plan_adapters(project: Project, lora: set[str]) -> list[AdapterPlan]:
    """The plan for every capability that has an adapter or should get one.

    Args:
        project: The loaded project.
        lora: Capabilities the audit decided to serve with a LoRA adapter.

    Returns:
        One :class:`AdapterPlan` per capability with examples that is in ``lora`` or already
        has an adapter, and one per knowledge capability with a ``reader:``, in the project's
        order.
    """
    from ragtune.behavior.encode import total_steps
    from ragtune.behavior.examples import load_examples

    try:
        existing = {info.name: info.manifest for info in list_adapters(project.adapters_dir)}
    except AdapterError as exc:
        raise RagtuneError(str(exc)) from exc
    plans = []
    for capability in project.config.capabilities:
        if capability.reader is not None:
            plans.append(_reader_plan(project, capability, existing.get(capability.name)))
            continue
        if not capability.examples or (
            capability.name not in lora and capability.name not in existing
        ):
            continue
        config = train_config_for(project, capability)
        examples = load_examples(project.resolve(capability.examples), project.root)
        n_train = len(examples) - (
            max(1, round(len(examples) * config.held_out)) if config.held_out else 0
        )
        steps = total_steps(max(n_train, 1), config)
        manifest = existing.get(capability.name)
        estimate = estimate_seconds(
            capability, config, examples, steps, manifest.training if manifest else None
        )

        changes = partial(
            _behaviour_changes, project, capability, examples_sha256=examples.sha256, config=config
        )

        if manifest is None:
            why = f"no adapter yet; the audit decided {capability.name} is served by a LoRA"
            plan = AdapterPlan(capability.name, "train", [why], steps=steps, estimate_s=estimate)
        else:
            reasons = changes(manifest)
            plan = AdapterPlan(
                capability.name,
                "retrain" if reasons else "none",
                reasons,
                _superseded(project, manifest),
                steps=steps if reasons else 0,
                estimate_s=estimate if reasons else 0.0,
            )
        plans.append(_or_shipped(project, plan, changes))
    return plans


def shipped_manifest(project: Project, name: str) -> AdapterManifest | None:
    """The manifest of the adapter ``name`` the project ships in ``adapters/<name>/``, if any.

    Raises:
        RagtuneError: The shipped manifest is not valid (names the file).
    """
    folder = project.root / SHIPPED_ADAPTERS / name
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return AdapterManifest.read(folder)
    except AdapterError as exc:
        raise RagtuneError(str(exc)) from exc


def _or_shipped(
    project: Project, plan: AdapterPlan, changes: Callable[[AdapterManifest], list[str]]
) -> AdapterPlan:
    """``plan``, or ``install`` where it would train and the project ships an adapter that
    matches the current examples, base model and settings (nothing in ``changes``)."""
    if plan.action == "none":
        return plan
    shipped = shipped_manifest(project, plan.capability)
    if shipped is None or changes(shipped):
        return plan
    return AdapterPlan(
        plan.capability,
        "install",
        [
            f"{SHIPPED_ADAPTERS}/{plan.capability} ships one trained on the same examples, base "
            f"model and settings ({shipped.training.steps} steps): installed, not trained "
            f"(`ragtune adapter train {plan.capability}` reproduces it)"
        ],
    )


def _reader_plan(
    project: Project, capability: Capability, manifest: AdapterManifest | None
) -> AdapterPlan:
    """A knowledge capability's reader: trained when missing, retrained when the team's pairs,
    the base model or the settings change - never for a knowledge change, which the plan
    says."""
    from ragtune.behavior.encode import total_steps
    from ragtune.behavior.reader import reader_pairs

    config = train_config_for(project, capability)
    pairs = reader_pairs(project, capability)
    reader = capability.reader
    assert reader is not None
    later = 0 if pairs.synced or not reader.from_documents else reader.max_generated
    steps = total_steps(max(len(pairs.examples) + later, 1), config)
    estimate = estimate_seconds(
        capability, config, pairs.examples, steps, manifest.training if manifest else None
    )

    def changes(trained: AdapterManifest) -> list[str]:
        what = "the reader's questions"
        return _behaviour_changes(
            project, capability, trained, pairs.examples.sha256, config, what=what
        )

    if manifest is None:
        why = (
            f"no reader yet: {capability.name} is served with retrieval and `reader:` asks for an "
            f"adapter that reads the passages ({pairs.team} of the team's questions, "
            f"{pairs.held_out} held out for scoring, "
            + (
                f"{pairs.generated} made from the documents)"
                if not later
                else f"up to {later} made from the documents once they are synced)"
            )
        )
        plan = AdapterPlan(capability.name, "train", [why], steps=steps, estimate_s=estimate)
        return _quoting(capability, _or_shipped(project, plan, changes))
    reasons = changes(manifest)
    notes = []
    context = manifest.context
    if context is not None and not reasons:
        notes.append(
            f"trained at knowledge snapshot {context.snapshot}; a knowledge change never "
            "retrains it - the reader reads the current passages."
        )
    plan = AdapterPlan(
        capability.name,
        "retrain" if reasons else "none",
        reasons,
        notes,
        steps=steps if reasons else 0,
        estimate_s=estimate if reasons else 0.0,
    )
    return _quoting(capability, _or_shipped(project, plan, changes))


def _quoting(capability: Capability, plan: AdapterPlan) -> AdapterPlan:
    """A reader of a capability answered with quotes says where it is still used."""
    if capability.answer == "quote":
        plan.warnings.append(
            "answer: quote - questions are answered with the closest clause, word for word; "
            "the reader writes only the answers of requests that bring their own output "
            "contract, and the lab's RAG+reader arm's."
        )
    return plan


def estimate_seconds(
    capability: Capability,
    config: Any,
    examples: ExampleSet,
    steps: int,
    measured: TrainingRecord | None = None,
) -> float:
    """Estimated training seconds of ``steps`` optimiser steps on ``examples``.

    The tokens of a step are estimated from the characters of an average example - its system
    prompt, input and output, plus the retrieved passages when it trains on context - capped at
    ``config.max_length``. They are divided by the rate the last run of this adapter measured
    (``measured``: its manifest's ``training``), or by :data:`CPU_TOKENS_PER_SECOND` before any
    run. A manifest from before the rate was recorded gives its seconds per step.
    """
    rate = measured.tokens_per_second if measured else None
    if not rate or rate <= 0:
        per_step = measured.seconds_per_step if measured else None
        if per_step and per_step > 0:
            return steps * float(per_step)
        rate = CPU_TOKENS_PER_SECOND
    rows = examples.examples
    context = (  # each passage: its text and a "[n] document > section (version v)" line
        config.context_passages * (config.context_chars + PASSAGE_HEADER_CHARS)
        if (capability.context_from or capability.reader is not None) and config.context_passages
        else 0
    )
    system = len(config.system_prompt or "")
    own = 0 if context else 1  # an example's own "context" field, when nothing is retrieved
    chars = sum(len(r.input) + len(r.output) + own * len(r.context or "") for r in rows) / max(
        len(rows), 1
    )
    per_example = min(
        config.max_length, TEMPLATE_TOKENS + (system + chars + context) / CHARS_PER_TOKEN
    )
    batch = min(config.batch_size, max(len(rows), 1))
    return steps * batch * per_example / float(rate)


def _behaviour_changes(
    project: Project,
    capability: Capability,
    manifest: AdapterManifest,
    examples_sha256: str,
    config: Any,
    *,
    what: str | None = None,
) -> list[str]:
    """Lines naming what changed since the adapter was trained: examples (``what`` names
    them; default the examples file), base model, settings."""
    from ragtune.generate.base import model_sha256, resolve_base_model

    reasons = []
    if manifest.dataset.file_sha256 != examples_sha256:
        named = what or str(capability.examples)
        reasons.append(f"examples changed: {named} differs from the trained copy")
    base = manifest.base_model
    try:
        current = model_sha256(resolve_base_model(project.config.model.base_model))
    except RagtuneError as exc:
        reasons.append(f"base model cannot be checked: {exc}")
    else:
        if base.sha256 != current:
            was = f"{base.name or None} ({(base.sha256 or 'None')[:12]})"
            now = f"{project.config.model.base_model} ({current[:12]})"
            reasons.append(f"base model changed: trained on {was}, the project now uses {now}")
    # Only what shapes the result counts (not checkpoints, micro-batches, precision), and a
    # setting the manifest predates was trained as its default.
    trained = {**type(config)().to_dict(), **manifest.config}
    wanted = config.to_dict()
    changed = sorted(k for k in type(config).result_fields() if trained.get(k) != wanted[k])
    if changed:
        shown = ", ".join(f"{k} {trained.get(k)!r} -> {wanted[k]!r}" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        reasons.append(f"training settings changed: {shown}{more}")
    return reasons


def _superseded(project: Project, manifest: AdapterManifest) -> list[str]:
    """A warning when chunks quoted in the adapter's training context are no longer live."""
    context = manifest.context
    quoted = context.quoted if context is not None else []
    if context is None or not quoted:
        return []
    from ragtune.knowledge.sync import synced_store

    store = synced_store(project)
    if store is None:
        return []
    try:
        live = store.live_hashes(q["chunk_id"] for q in quoted)
    finally:
        store.close()
    stale = [q for q in quoted if live.get(q["chunk_id"]) != q["text_hash"]]
    if not stale:
        return []
    documents = sorted({q["document"] for q in stale})
    return [
        f"{len(stale)} of {len(quoted)} knowledge chunks quoted in this adapter's training "
        f"context (snapshot {context.snapshot}) have changed or gone since "
        f"({', '.join(documents)}): the adapter has superseded text baked in. It still reads "
        "the current text at run time; retrain when convenient so it never echoes the old."
    ]

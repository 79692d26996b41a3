"""Train a capability's adapter from the project: examples, contract, leak guard, base model.

``ragtune adapter train CAPABILITY`` (and, later, ``ragtune build``) call
:func:`train_capability`: it reads the capability's examples and output contract, refuses to
train when the examples teach knowledge (the leak guard) unless told otherwise, loads the base
model from the cache, trains, and leaves the adapter under ``.ragtune/adapters/<capability>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ragtune.behavior.contract import load_contract
from ragtune.behavior.examples import load_examples
from ragtune.behavior.leak import DEFAULT_THRESHOLD, LeakReport, scan_examples
from ragtune.behavior.train import ProgressCallback, TrainConfig, TrainResult
from ragtune.errors import RagtuneError
from ragtune.project import Capability, Project


class BuildError(RagtuneError):
    """A capability cannot be trained as configured."""


@dataclass
class CapabilityTraining:
    """What training one capability did."""

    capability: str
    leak: LeakReport
    result: TrainResult


def adapters_root(project: Project) -> Path:
    """``.ragtune/adapters`` beside the project file."""
    return project.state_dir / "adapters"


def capability_of(project: Project, name: str) -> Capability:
    """A capability by name, with a helpful error for an unknown one."""
    for capability in project.config.capabilities:
        if capability.name == name:
            return capability
    names = ", ".join(c.name for c in project.config.capabilities)
    raise BuildError(f"no capability {name!r} in {project.path}; the capabilities are: {names}.")


def check_leaks(project: Project, capability: Capability) -> LeakReport:
    """Scan a capability's examples for facts their inputs lack (no model needed)."""
    if not capability.examples:
        raise BuildError(
            f"capability {capability.name!r} has no examples file: set `examples:` in "
            f"{project.path} to a JSONL of input/output pairs to train an adapter."
        )
    examples = load_examples(project.resolve(capability.examples), project.root)
    return scan_examples(
        [(e.line, e.input, e.output, e.context) for e in examples.examples],
        path=capability.examples,
        threshold=DEFAULT_THRESHOLD,
    )


def train_capability(
    project: Project,
    name: str,
    config: TrainConfig,
    *,
    allow_knowledge: bool = False,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> CapabilityTraining:
    """Train (or resume training) the adapter of one capability.

    Raises:
        BuildError: unknown capability, no examples, or examples that teach knowledge above the
            threshold without ``allow_knowledge``.
    """
    from ragtune.behavior.train import train_adapter
    from ragtune.generate.base import load_base_model

    capability = capability_of(project, name)
    leak = check_leaks(project, capability)
    if leak.exceeds and not allow_knowledge:
        raise BuildError("\n".join([leak.summary(), *leak.details(5)]))
    examples = load_examples(project.resolve(capability.examples or ""), project.root)
    contract = (
        load_contract(project.resolve(capability.output_contract), project.root)
        if capability.output_contract
        else None
    )
    settings = project.config.model
    loaded = load_base_model(
        settings.base_model, cache_root=project.state_dir / "models", device=settings.device
    )
    result = train_adapter(
        loaded,
        examples,
        adapters_root(project) / capability.name,
        config,
        contract,
        progress=progress,
        resume=resume,
    )
    return CapabilityTraining(capability.name, leak, result)

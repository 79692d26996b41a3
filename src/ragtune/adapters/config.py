"""How an adapter is trained: :class:`TrainConfig`, the settings of one LoRA run.

``train:`` in ragtune.yaml is checked against it when the project loads, the training loop
(:mod:`ragtune.behavior.train`) runs by it and the manifest records it; no torch here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ragtune.errors import RagtuneError

__all__ = ["CONTEXT_ORDERS", "TrainConfig", "TrainError"]


class TrainError(RagtuneError):
    """Training cannot start or resume: a bad setting, or a checkpoint from another run."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _how(text: str) -> dict[str, object]:
    """A setting of *how* a run computes, not of what it learns: the same adapter comes out
    (up to float rounding), so changing it never makes an adapter stale."""
    return {"help": text, "result": False}


MICRO_BATCH_TOKENS = 2048
"""With ``micro_batch_size`` unset, a step's batch is cut into forward passes of about this many
tokens (``max_length`` each): the activations of one pass, not of the whole batch, are held."""

PRECISIONS = ("auto", "fp32", "bf16")


CONTEXT_ORDERS = ("shuffled", "retrieved", "reranked")
"""How the passages of a context-aware training prompt may be ordered."""


@dataclass
class TrainConfig:
    """Settings of one LoRA training run; the defaults suit a small model on a CPU.

    Every field is recorded in the adapter's manifest. A change to one of what the run learns
    from means the adapter is stale; the settings of how it computes (:meth:`result_fields`
    leaves them out: checkpoints, evaluation, micro-batches, gradient checkpointing, precision)
    never do.
    """

    r: int = field(default=8, metadata=_help("LoRA rank: size of the low-rank update."))
    alpha: int = field(default=16, metadata=_help("LoRA alpha; the update is scaled by alpha / r."))
    dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA input, in [0, 1)."))
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        metadata=_help("Names of the linear layers that get an adapter (attention by default)."),
    )
    learning_rate: float = field(default=2e-4, metadata=_help("Peak AdamW learning rate."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    warmup_steps: int = field(default=0, metadata=_help("Steps of linear warmup to the peak."))
    max_grad_norm: float = field(
        default=1.0, metadata=_help("Clip the gradient norm to this; 0 turns clipping off.")
    )
    epochs: int = field(default=1, metadata=_help("Passes over the training split."))
    max_steps: int | None = field(
        default=None, metadata=_help("Stop after this many steps; overrides epochs when set.")
    )
    batch_size: int = field(default=4, metadata=_help("Examples per optimiser step."))
    max_length: int = field(
        default=384, metadata=_help("Tokens per example; longer prompts are cut, not answers.")
    )
    held_out: float = field(
        default=0.1,
        metadata=_help(
            "Share of the examples kept out of training for evaluation; 0 trains on all of "
            "them (only with eval_max_new_tokens 0)."
        ),
    )
    seed: int = field(default=0, metadata=_help("Seeds the split, the LoRA init and dropout."))
    checkpoint_every: int = field(
        default=50, metadata=_how("Save a resumable checkpoint every N steps; 0 never.")
    )
    eval_max_new_tokens: int = field(
        default=96,
        metadata=_how("Token budget of each greedy answer in evaluation; 0 skips evaluation."),
    )
    micro_batch_size: int | None = field(
        default=None,
        metadata=_how(
            "Examples per forward pass; a step accumulates the gradients of its batch over them "
            f"(the same step, less memory). None: as many as fit {MICRO_BATCH_TOKENS} tokens."
        ),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_how(
            "Recompute each layer's activations in the backward pass instead of keeping them: "
            "much less memory, about a third more time."
        ),
    )
    precision: str = field(
        default="auto",
        metadata=_how(
            "fp32, or bf16 (mixed precision, autocast); auto: bf16 on a GPU that has it, fp32 "
            "on a CPU."
        ),
    )
    system_prompt: str | None = field(
        default=None,
        metadata=_help("System message of every training prompt; None keeps the template's."),
    )
    context_passages: int = field(
        default=2,
        metadata=_help(
            "Retrieved passages in each example's prompt when the capability is served with "
            "retrieval (context_from): the relevant one and distractors (RAFT); 0 turns "
            "context-aware training off."
        ),
    )
    context_oracle_share: float = field(
        default=0.8,
        metadata=_help("Share of examples whose context holds the relevant passage (RAFT's P)."),
    )
    context_chars: int = field(
        default=360, metadata=_help("Each retrieved passage is clipped to this many characters.")
    )
    context_counterfactual: float = field(
        default=0.0,
        metadata=_help(
            "Share of the examples with their relevant passage whose figures are changed, in "
            "the passages and the answer alike, so that only reading gets them right (a "
            "reader forgets the facts it would otherwise memorise)."
        ),
    )
    context_order: str = field(
        default="shuffled",
        metadata=_help(
            "Order of the passages in each prompt: shuffled (the relevant one anywhere, as "
            "RAFT trains), retrieved (best first, as the runtime serves them, the relevant "
            "one where the search ranked it), or reranked (as retrieved, the passages ordered "
            "by their clause closest to the question; the runtime then serves the adapter so)."
        ),
    )
    shots: int = field(
        default=0,
        metadata=_help(
            "Examples shown in each training prompt: the most similar other training examples, "
            "as few-shot turns; the runtime then serves the adapter with as many examples "
            "chosen the same way (few-shot + LoRA). 0: none."
        ),
    )

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        positive = ("r", "alpha", "epochs", "batch_size", "max_length")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TrainError(f"TrainConfig.{name} must be a whole number >= 1, got {value!r}")
        for name in (
            "warmup_steps", "checkpoint_every", "eval_max_new_tokens", "seed", "context_passages",
            "shots",
        ):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TrainError(f"TrainConfig.{name} must be a whole number >= 0, got {value!r}")
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool)
            or not isinstance(self.max_steps, int)
            or self.max_steps < 1
        ):
            raise TrainError(
                f"TrainConfig.max_steps must be None or a whole number >= 1, got {self.max_steps!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise TrainError(f"TrainConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise TrainError(
                f"TrainConfig.learning_rate must be a positive number, got {self.learning_rate!r}"
            )
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            bad = "weight_decay" if self.weight_decay < 0 else "max_grad_norm"
            raise TrainError(f"TrainConfig.{bad} must be >= 0, got {getattr(self, bad)!r}")
        if not 0.0 <= self.held_out < 1.0:
            raise TrainError(
                f"TrainConfig.held_out must be at least 0 and below 1, got {self.held_out!r}"
            )
        if self.held_out == 0 and self.eval_max_new_tokens:
            raise TrainError(
                "TrainConfig.held_out is 0, so nothing is left to evaluate on: give a share "
                "above 0, or set eval_max_new_tokens to 0 to train on every example"
            )
        if not self.target_modules or not all(
            isinstance(m, str) and m for m in self.target_modules
        ):
            raise TrainError(
                "TrainConfig.target_modules must name at least one layer (e.g. 'q_proj'), got "
                f"{self.target_modules!r}"
            )
        if not 0.0 <= self.context_oracle_share <= 1.0:
            raise TrainError(
                "TrainConfig.context_oracle_share must be between 0 and 1, got "
                f"{self.context_oracle_share!r}"
            )
        if isinstance(self.context_chars, bool) or self.context_chars < 40:
            raise TrainError(
                f"TrainConfig.context_chars must be at least 40, got {self.context_chars!r}"
            )
        if not 0.0 <= self.context_counterfactual <= 1.0:
            raise TrainError(
                "TrainConfig.context_counterfactual must be between 0 and 1, got "
                f"{self.context_counterfactual!r}"
            )
        if self.context_order not in CONTEXT_ORDERS:
            raise TrainError(
                f"TrainConfig.context_order must be one of {', '.join(CONTEXT_ORDERS)}, got "
                f"{self.context_order!r}"
            )
        micro = self.micro_batch_size
        if micro is not None and (
            isinstance(micro, bool) or not isinstance(micro, int) or micro < 1
        ):
            raise TrainError(
                f"TrainConfig.micro_batch_size must be None or a whole number >= 1, got {micro!r}"
            )
        if not isinstance(self.gradient_checkpointing, bool):
            raise TrainError(
                "TrainConfig.gradient_checkpointing must be true or false, got "
                f"{self.gradient_checkpointing!r}"
            )
        if self.precision not in PRECISIONS:
            raise TrainError(
                f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, got "
                f"{self.precision!r}"
            )
        if self.max_length < 16:
            raise TrainError(
                f"TrainConfig.max_length must be at least 16 tokens, got {self.max_length!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (``target_modules`` as a list)."""
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    def micro_batch(self) -> int:
        """Examples per forward pass: ``micro_batch_size``, else as many as fit
        :data:`MICRO_BATCH_TOKENS`, never more than the batch."""
        if self.micro_batch_size is not None:
            return min(self.micro_batch_size, self.batch_size)
        return max(1, min(self.batch_size, MICRO_BATCH_TOKENS // self.max_length))

    @classmethod
    def result_fields(cls) -> frozenset[str]:
        """The settings that shape what a run learns: a change to one makes an adapter stale."""
        return frozenset(f.name for f in fields(cls) if f.metadata.get("result", True))

    @classmethod
    def help(cls) -> dict[str, str]:
        """Each field's one-line description, for ``--help`` texts and docs."""
        return {f.name: str(f.metadata.get("help", "")) for f in fields(cls)}

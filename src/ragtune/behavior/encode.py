"""Training data: chat messages to token ids with the loss on the answer only; batches and the
learning-rate schedule.

Each example goes through the model's chat template exactly as the runtime sends it
(:func:`ragtune.prompt.training_messages`); the labels mark only the answer. No torch at import:
:func:`collate` imports it when it builds tensors.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragtune.adapters import TrainConfig, TrainError
from ragtune.behavior.examples import Example
from ragtune.prompt import training_messages

__all__ = [
    "IGNORE_INDEX",
    "EncodedExample",
    "batch_indices",
    "collate",
    "encode_example",
    "get_lr",
    "total_steps",
]

IGNORE_INDEX = -100
"""The label PyTorch's cross-entropy skips: every token that is not the assistant's answer."""


@dataclass(frozen=True)
class EncodedExample:
    """One example as token ids; ``labels`` is ``IGNORE_INDEX`` outside the answer."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_example(tokenizer: Any, example: Example, config: TrainConfig) -> EncodedExample:
    """Token ids of one example through the chat template, labels only on the answer.

    The prompt is rendered exactly as at run time (``add_generation_prompt=True``); the answer
    is what the full chat adds after it: the output and the end-of-turn token (trailing
    whitespace dropped). Both are tokenized separately so the boundary is exact. An example
    longer than ``max_length`` loses tokens from the middle of the prompt first (the start, with
    the system prompt, and the assistant header at its end stay), and only then the answer's end.
    """
    messages = training_messages(example, config.system_prompt, example.shots)
    prompt_text = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=False
    )
    full_text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise TrainError(
            "the tokenizer's chat template renders the prompt differently with and without the "
            "answer, so the answer cannot be told apart from the prompt; use a model whose chat "
            "template appends the assistant turn to the generation prompt."
        )
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer = tokenizer(full_text[len(prompt_text) :].rstrip(), add_special_tokens=False)[
        "input_ids"
    ]
    limit = config.max_length
    truncated = len(prompt) + len(answer) > limit
    if truncated:
        # Keep the answer whole when it leaves room for half the budget of prompt or the whole
        # prompt; otherwise give the prompt half the budget and cut the answer's end.
        keep_prompt = max(limit - len(answer), min(len(prompt), limit // 2))
        head = keep_prompt // 2
        prompt = prompt[:head] + prompt[len(prompt) - (keep_prompt - head) :]
        answer = answer[: limit - len(prompt)]
    return EncodedExample(
        input_ids=list(prompt) + list(answer),
        labels=[IGNORE_INDEX] * len(prompt) + list(answer),
        truncated=truncated,
    )


def collate(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into tensors: ``input_ids``, ``attention_mask`` and ``labels``."""
    import torch

    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, item in enumerate(batch):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(item.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_indices(n: int, step: int, config: TrainConfig) -> list[int]:
    """The examples of optimiser step ``step`` (0-based): a seeded shuffle per epoch.

    A pure function of (n, step, seed), so a resumed run sees the batches it would have seen.
    """
    per_epoch = math.ceil(n / config.batch_size)
    epoch, within = divmod(step, per_epoch)
    order = list(range(n))
    random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
    return order[within * config.batch_size : (within + 1) * config.batch_size]


def total_steps(n: int, config: TrainConfig) -> int:
    """Optimiser steps of a run over ``n`` training examples."""
    return config.max_steps or config.epochs * math.ceil(n / config.batch_size)


def get_lr(step: int, total: int, config: TrainConfig) -> float:
    """Learning rate of step ``step`` (0-based)."""
    # 1) linear warmup from near zero, so the first updates of a fresh LoRA stay small
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / (config.warmup_steps + 1)
    # 2) cosine decay down to a tenth of the peak at the last step
    span = max(1, total - config.warmup_steps - 1)
    ratio = min(1.0, (step - config.warmup_steps) / span)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    min_lr = config.learning_rate / 10
    return min_lr + coeff * (config.learning_rate - min_lr)

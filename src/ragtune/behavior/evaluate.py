"""How an adapter (or its base model) does on the held-out split: greedy answers, exact match,
contract compliance, and compliance under guided decoding as the runtime serves it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragtune.adapters import ScoreRecord, TrainConfig
from ragtune.behavior.contract import OutputContract, compliance
from ragtune.behavior.examples import Example
from ragtune.prompt import training_messages

if TYPE_CHECKING:
    from ragtune.generate.guide import Grammar

__all__ = ["EvalMetrics", "evaluate"]


@dataclass(frozen=True)
class EvalMetrics:
    """How a model did on the held-out split.

    Attributes:
        examples: Held-out examples evaluated.
        exact_match: Share whose greedy answer equals the expected output (whitespace stripped).
        compliance: Share that honours the output contract; None without a contract.
        outputs: The generated answers, in held-out order.
        guided_compliance: The same with decoding guided by the JSON Schema (how the local
            runtime serves a JSON Schema contract, :mod:`ragtune.generate.guide`); None without
            a JSON Schema contract or when llguidance cannot compile it.
    """

    examples: int
    exact_match: float
    compliance: float | None
    outputs: list[str]
    guided_compliance: float | None = None

    def to_record(self) -> ScoreRecord:
        """Scores for the manifest, with the first few answers to look at."""
        return ScoreRecord(
            examples=self.examples,
            exact_match=self.exact_match,
            compliance=self.compliance,
            guided_compliance=self.guided_compliance,
            sample_outputs=self.outputs[:3],
        )


def evaluate(
    model: Any,
    tokenizer: Any,
    held: Sequence[Example],
    config: TrainConfig,
    contract: OutputContract | None,
) -> EvalMetrics:
    """Greedy answers to the held-out prompts (left-padded batches); exact match, compliance,
    and compliance under guided decoding when the contract is a JSON Schema."""
    schema = getattr(contract, "schema", None)
    outputs = _answers(model, tokenizer, held, config, None)
    exact = sum(out == ex.output.strip() for out, ex in zip(outputs, held, strict=True))
    rate = compliance(contract, outputs).rate if contract is not None else None
    guided = None
    if contract is not None and isinstance(schema, dict):
        grammar = _grammar(model, tokenizer, schema)
        if grammar is not None:
            guided_outputs = _answers(model, tokenizer, held, config, grammar)
            guided = compliance(contract, guided_outputs).rate
    return EvalMetrics(
        examples=len(held),
        exact_match=exact / len(held) if held else 0.0,
        compliance=rate,
        outputs=outputs,
        guided_compliance=guided,
    )


def _grammar(model: Any, tokenizer: Any, schema: dict[str, Any]) -> Grammar | None:
    """The schema compiled for guided decoding; None when llguidance cannot (serving would
    refuse it with the reason)."""
    from ragtune.generate.backend import BackendError
    from ragtune.generate.guide import schema_grammar

    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    try:
        return schema_grammar(tokenizer, schema, eos if isinstance(eos, list) else [eos])
    except BackendError:
        return None


def _answers(
    model: Any,
    tokenizer: Any,
    held: Sequence[Example],
    config: TrainConfig,
    grammar: Grammar | None,
) -> list[str]:
    import torch

    pad = tokenizer.pad_token_id
    device = next(model.parameters()).device
    outputs: list[str] = []
    for start in range(0, len(held), config.batch_size):
        chunk = held[start : start + config.batch_size]
        prompts = [
            tokenizer(
                tokenizer.apply_chat_template(
                    training_messages(ex, config.system_prompt, ex.shots)[:-1],
                    add_generation_prompt=True,
                    tokenize=False,
                ),
                add_special_tokens=False,
            )["input_ids"]
            for ex in chunk
        ]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        guided: dict[str, Any] = {}
        if grammar is not None:
            from ragtune.generate.guide import guided_kwargs

            guided, _ = guided_kwargs(grammar, width)
        with torch.no_grad():
            generated = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=config.eval_max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                **guided,
            )
        for row in generated[:, width:]:
            outputs.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return outputs

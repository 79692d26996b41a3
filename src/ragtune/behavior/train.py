"""LoRA training: teach the base model a behaviour from examples, with PEFT.

The loop reads top to bottom, the way nanoGPT's does: settings (:class:`TrainConfig`), data
(each example through the model's chat template, loss on the completion only), model (PEFT LoRA
on the base model), loop (AdamW, warmup then cosine decay, a checkpoint every N steps), then
evaluation of base and adapter on the held-out split and the save.

The adapter appears in its folder only when training and evaluation both finished: the run
writes into ``.<name>.tmp`` beside it and renames that into place at the end, so an interrupted
run leaves the previous adapter as it was. The checkpoint lives beside it too
(``.<name>.checkpoint``), so a resumed run finds it and a finished adapter folder never holds one.

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import math
import random
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ragtune import __version__
from ragtune.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    MANIFEST,
    AdapterManifest,
    BaseModelRecord,
    DatasetRecord,
    ScoreRecord,
    TrainConfig,
    TrainError,
    TrainingRecord,
    checkpoint_path,
    staging_path,
)
from ragtune.behavior.contract import OutputContract, compliance
from ragtune.behavior.examples import Example, ExampleSet, dataset_hash, split
from ragtune.prompt import training_messages

if TYPE_CHECKING:
    from ragtune.behavior.raft import TrainingContext
    from ragtune.generate.base import LoadedModel

__all__ = [
    "IGNORE_INDEX",
    "EncodedExample",
    "EvalMetrics",
    "TrainResult",
    "collate",
    "encode_example",
    "get_lr",
    "train_adapter",
]

IGNORE_INDEX = -100
"""The label PyTorch's cross-entropy skips: every token that is not the assistant's answer."""

# Files that would mean a pickle landed in an adapter folder: loading a pickle runs code.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

ProgressCallback = Callable[[int, int, float], None]


@dataclass(frozen=True)
class EncodedExample:
    """One example as token ids; ``labels`` is ``IGNORE_INDEX`` outside the answer."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool


@dataclass(frozen=True)
class EvalMetrics:
    """How a model did on the held-out split.

    Attributes:
        examples: Held-out examples evaluated.
        exact_match: Share whose greedy answer equals the expected output (whitespace stripped).
        compliance: Share that honours the output contract; None without a contract.
        outputs: The generated answers, in held-out order.
        guided_compliance: The same with enum-guided decoding (how the local runtime serves a
            JSON Schema contract, :mod:`ragtune.generate.guide`); None when the contract has no
            string enum.
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


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_adapter` made.

    Attributes:
        path: The adapter folder.
        steps: Optimiser steps taken in all (resumed ones included).
        losses: Training loss of each step taken by this call, in order.
        base: The base model on the held-out split; None when evaluation was skipped.
        adapter: The adapter on the held-out split; None when evaluation was skipped.
        seconds: Wall time of this call.
        seconds_per_step: Mean training time of a step in this call (evaluation excluded).
        peak_rss_mb: Peak resident memory of the process so far, in MiB.
        size_bytes: Bytes on disk of the adapter folder.
        manifest: The manifest written (``ragtune.json``).
    """

    path: Path
    steps: int
    losses: list[float]
    base: EvalMetrics | None
    adapter: EvalMetrics | None
    seconds: float
    seconds_per_step: float
    peak_rss_mb: float
    size_bytes: int
    manifest: AdapterManifest

    @property
    def final_loss(self) -> float:
        """The loss of the last step this call took (nan when it took none)."""
        return self.losses[-1] if self.losses else math.nan


# ---------------------------------------------------------------------------------------------
# Data: chat messages -> token ids with the loss on the answer only.


def encode_example(tokenizer: Any, example: Example, config: TrainConfig) -> EncodedExample:
    """Token ids of one example through the chat template, labels only on the answer.

    The prompt is rendered exactly as at run time (``add_generation_prompt=True``); the answer
    is what the full chat adds after it: the output and the end-of-turn token (trailing
    whitespace dropped). Both are tokenized separately so the boundary is exact. An example
    longer than ``max_length`` loses tokens from the middle of the prompt first (the start, with
    the system prompt, and the assistant header at its end stay), and only then the answer's end.
    """
    messages = training_messages(example, config.system_prompt)
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


# ---------------------------------------------------------------------------------------------
# The run.


def train_adapter(
    loaded: LoadedModel,
    examples: ExampleSet,
    out_dir: Path,
    config: TrainConfig,
    contract: OutputContract | None = None,
    *,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    knowledge_snapshot: str | None = None,
    context: TrainingContext | None = None,
) -> TrainResult:
    """Train a LoRA adapter on the examples and save it, evaluated, into ``out_dir``.

    The base model in ``loaded`` is adapted in place while training and given back unchanged
    (the LoRA layers are removed again) when the call returns or fails.

    Args:
        loaded: The base model and tokenizer (:func:`ragtune.generate.base.load_base_model`).
        examples: The behaviour examples; ``config.held_out`` of them are kept for evaluation.
        out_dir: The adapter folder, normally ``.ragtune/adapters/<capability>``. Replaced only
            when the run finished; until then a previous adapter there stays as it was.
        config: The settings.
        contract: The capability's output contract; evaluation reports compliance with it.
        progress: Called after each step with ``(step, total_steps, loss)``, step 1-based. An
            exception raised from it stops the run (the checkpoint stays, the adapter does not).
        resume: Continue from the checkpoint of an interrupted run of the same settings, data
            and base model.
        knowledge_snapshot: The knowledge snapshot id the adapter was trained against, recorded
            in the manifest.
        context: What the retrieved context in the examples was made from (context-aware
            training, :func:`ragtune.behavior.raft.add_context`); recorded in the manifest so
            ``ragtune plan`` can tell when quoted knowledge has changed since.

    Returns:
        The adapter folder, the losses, base and adapter metrics, time and memory.

    Raises:
        TrainError: ``resume`` without a checkpoint, or one from another run; a target module
            the model does not have.
        ExamplesError: Too few examples for a held-out split.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    ckpt_dir, stage_dir = checkpoint_path(out_dir), staging_path(out_dir)

    # -- data ----------------------------------------------------------------------------------
    if config.held_out:
        train_set, held = split(examples, held_out=config.held_out, seed=config.seed)
    else:
        train_set, held = list(examples.examples), []
    encoded = [encode_example(tokenizer, ex, config) for ex in train_set]
    identity: dict[str, Any] = {
        "config": config.to_dict(),
        "dataset_sha256": dataset_hash(examples),
        "base_model_sha256": loaded.sha256,
    }

    # -- model ---------------------------------------------------------------------------------
    grad_flags = {name: p.requires_grad for name, p in model.named_parameters()}
    peft_model = _lora_model(model, config)
    try:
        # -- loop ------------------------------------------------------------------------------
        run = _train_loop(
            peft_model, tokenizer, encoded, config, identity, ckpt_dir, resume, progress
        )
        peft_model.eval()
        base_metrics = adapter_metrics = None
        if run.main:  # one process evaluates and saves; under `accelerate launch` the others wait
            # -- evaluate ----------------------------------------------------------------------
            if config.eval_max_new_tokens > 0:
                with peft_model.disable_adapter():
                    base_metrics = _evaluate(peft_model, tokenizer, held, config, contract)
                adapter_metrics = _evaluate(peft_model, tokenizer, held, config, contract)

            # -- save --------------------------------------------------------------------------
            shutil.rmtree(stage_dir, ignore_errors=True)
            stage_dir.parent.mkdir(parents=True, exist_ok=True)
            peft_model.save_pretrained(str(stage_dir), safe_serialization=True)
            _refuse_pickles(stage_dir)
            manifest = AdapterManifest(
                base_model=BaseModelRecord(loaded.spec.name, loaded.sha256),
                dataset=DatasetRecord(
                    path=examples.path,
                    sha256=identity["dataset_sha256"],
                    file_sha256=examples.sha256,
                    examples=len(examples),
                    train=len(train_set),
                    held_out=len(held),
                    truncated=sum(e.truncated for e in encoded),
                ),
                config=identity["config"],
                training=run.record(resume, time.perf_counter() - started),
                base_metrics=base_metrics.to_record() if base_metrics else None,
                adapter_metrics=adapter_metrics.to_record() if adapter_metrics else None,
                knowledge_snapshot=(
                    knowledge_snapshot
                    if knowledge_snapshot is not None or context is None
                    else str(context.snapshot)
                ),
                context=context.to_record() if context is not None else None,
                contract=contract.source if contract is not None else None,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                ragtune_version=__version__,
            )
            manifest.write(stage_dir)
            for required in (ADAPTER_WEIGHTS, ADAPTER_CONFIG, MANIFEST):
                if not (stage_dir / required).is_file():
                    raise TrainError(f"{stage_dir}: saving the adapter wrote no {required}")
            _swap_into_place(stage_dir, out_dir)
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        run.accelerator.wait_for_everyone()
        if not run.main:
            manifest = AdapterManifest.read(out_dir)
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
        # Give the caller's model back as it came: LoRA layers out, its grad flags restored.
        peft_model.unload()
        for name, p in model.named_parameters():
            p.requires_grad_(grad_flags.get(name, p.requires_grad))
        model.eval()

    return TrainResult(
        path=out_dir,
        steps=run.step,
        losses=run.losses,
        base=base_metrics,
        adapter=adapter_metrics,
        seconds=time.perf_counter() - started,
        seconds_per_step=run.seconds / len(run.losses) if run.losses else math.nan,
        peak_rss_mb=_peak_rss_mb(),
        size_bytes=sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file()),
        manifest=manifest,
    )


def _lora_model(model: Any, config: TrainConfig) -> Any:
    """The base model with fresh LoRA layers, seeded: the LoRA A matrices are drawn from it."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise TrainError(f"TrainConfig.target_modules {config.target_modules!r}: {exc}") from exc


@dataclass
class _Run:
    """What the loop did: the steps, their losses, the tokens trained and the loop's time, and
    the process it ran in (one of several under ``accelerate launch``)."""

    accelerator: Any
    step: int
    losses: list[float]
    tokens: int
    seconds: float

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def record(self, resume: bool, seconds: float) -> TrainingRecord:
        """The manifest's ``training`` entry; ``seconds`` is the whole call's wall time."""
        taken = len(self.losses)
        return TrainingRecord(
            steps=self.step,
            resumed=resume and taken < self.step,
            final_loss=self.losses[-1] if self.losses else None,
            seconds=round(seconds, 3),
            seconds_per_step=round(self.seconds / taken, 4) if taken else None,
            tokens_per_second=round(self.tokens / self.seconds, 1) if taken else None,
            peak_rss_mb=round(_peak_rss_mb(), 1),
            device=str(self.accelerator.device),
            processes=int(self.accelerator.num_processes),
        )


def _train_loop(
    peft_model: Any,
    tokenizer: Any,
    encoded: list[EncodedExample],
    config: TrainConfig,
    identity: dict[str, Any],
    ckpt_dir: Path,
    resume: bool,
    progress: ProgressCallback | None,
) -> _Run:
    """AdamW over the encoded examples to ``total_steps``, from the checkpoint when resuming;
    a checkpoint every ``checkpoint_every`` steps."""
    import torch

    total = total_steps(len(encoded), config)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    step = _load_checkpoint(ckpt_dir, peft_model, optimizer, identity) if resume else 0
    # One process, or one of several under `accelerate launch`: each takes its share of every
    # batch and the gradients are averaged, so a step is the same step either way.
    accelerator = _accelerator(next(peft_model.parameters()).device)
    trained, optimizer = accelerator.prepare(peft_model, optimizer)
    rank, world = accelerator.process_index, accelerator.num_processes
    main = accelerator.is_main_process
    losses: list[float] = []
    tokens = 0
    trained.train()
    started = time.perf_counter()
    while step < total:
        lr = get_lr(step, total, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        indices = batch_indices(len(encoded), step, config)
        mine = indices[rank::world] or indices[:1]  # a short last batch: no rank goes empty
        batch = collate([encoded[i] for i in mine], tokenizer.pad_token_id)
        counted = batch["attention_mask"].sum().to(accelerator.device)
        out = trained(**{k: v.to(accelerator.device) for k, v in batch.items()})
        accelerator.backward(out.loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss = float(accelerator.reduce(out.loss.detach(), "mean"))
        tokens += int(accelerator.reduce(counted, "sum"))
        losses.append(loss)
        due = config.checkpoint_every and step % config.checkpoint_every == 0 and step < total
        if due and main:
            _save_checkpoint(ckpt_dir, peft_model, optimizer, step, identity)
        if progress is not None and main:
            progress(step, total, loss)
    return _Run(accelerator, step, losses, tokens, time.perf_counter() - started)


def _evaluate(
    model: Any,
    tokenizer: Any,
    held: Sequence[Example],
    config: TrainConfig,
    contract: OutputContract | None,
) -> EvalMetrics:
    """Greedy answers to the held-out prompts (left-padded batches); exact match, compliance,
    and compliance under enum-guided decoding when the contract has string enums."""
    schema = getattr(contract, "schema", None)
    outputs = _answers(model, tokenizer, held, config, None)
    exact = sum(out == ex.output.strip() for out, ex in zip(outputs, held, strict=True))
    rate = compliance(contract, outputs).rate if contract is not None else None
    guided = None
    if contract is not None and isinstance(schema, dict):
        from ragtune.generate.guide import enum_fields

        if enum_fields(schema):
            guided_outputs = _answers(model, tokenizer, held, config, schema)
            guided = compliance(contract, guided_outputs).rate
    return EvalMetrics(
        examples=len(held),
        exact_match=exact / len(held) if held else 0.0,
        compliance=rate,
        outputs=outputs,
        guided_compliance=guided,
    )


def _answers(
    model: Any,
    tokenizer: Any,
    held: Sequence[Example],
    config: TrainConfig,
    schema: dict[str, Any] | None,
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
                    training_messages(ex, config.system_prompt)[:-1],
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
        if schema is not None:
            from ragtune.generate.guide import guided_kwargs

            guided, _ = guided_kwargs(tokenizer, schema, width)
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


def _save_checkpoint(
    folder: Path, model: Any, optimizer: Any, step: int, identity: dict[str, Any]
) -> None:
    """Adapter weights (safetensors), optimiser state and RNG states; replaced whole."""
    import numpy as np
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, str(tmp / ADAPTER_WEIGHTS))
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    # Tensors and plain values only, so the file loads with torch.load(weights_only=True).
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        },
        tmp / "state.pt",
    )
    (tmp / "checkpoint.json").write_text(json.dumps({"step": step, **identity}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _load_checkpoint(folder: Path, model: Any, optimizer: Any, identity: dict[str, Any]) -> int:
    """Restore a checkpoint into the model and optimiser; return the step it was taken at."""
    import numpy as np
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta_file = folder / "checkpoint.json"
    if not meta_file.is_file():
        raise TrainError(
            f"nothing to resume: {folder} holds no checkpoint; train without --resume."
        )
    meta = json.loads(meta_file.read_text())
    for key, wanted in identity.items():
        if meta.get(key) != wanted:
            what = {"config": "settings", "dataset_sha256": "examples"}.get(key, "base model")
            raise TrainError(
                f"cannot resume from {folder}: it was made with other {what} ({key} differs); "
                "train without --resume to start over."
            )
    set_peft_model_state_dict(model, load_file(str(folder / ADAPTER_WEIGHTS)))
    state = torch.load(folder / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    version, keys, *rest = state["python_rng"]
    random.setstate((version, tuple(keys), *rest))
    name, array, *others = state["numpy_rng"]
    np.random.set_state((name, np.asarray(array, dtype=np.uint32), *others))
    return int(meta["step"])


def _refuse_pickles(folder: Path) -> None:
    """Fail when anything that could be a pickle landed in the adapter folder."""
    found = [p.name for p in folder.rglob("*") if p.suffix.lower() in _PICKLE_SUFFIXES]
    if found:
        raise TrainError(f"{folder}: refusing to keep pickle files in an adapter: {found}")


def _swap_into_place(stage: Path, target: Path) -> None:
    """Make ``stage`` the adapter at ``target``; the old one goes only once the new is there."""
    old = target.with_name(f".{target.name}.old")
    if old.exists() and not target.exists():
        old.rename(target)  # an earlier swap died between its renames: the old one is active
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    stage.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _accelerator(device: Any) -> Any:
    """An ``accelerate.Accelerator`` for a model on ``device``: a single process normally, or
    this process's place among several under ``accelerate launch`` (gloo on CPU, NCCL on GPUs).
    A model on the CPU keeps training there even when a GPU is present."""
    from accelerate import Accelerator

    return Accelerator(cpu=device.type == "cpu")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024

"""LoRA training: teach the base model a behaviour from examples, with PEFT.

The run reads top to bottom, the way nanoGPT's does: settings (:class:`TrainConfig`), data
(:mod:`ragtune.behavior.encode`: each example through the model's chat template, loss on the
completion only), model (PEFT LoRA on the base model), loop (AdamW, warmup then cosine decay, a
checkpoint every N steps, :mod:`ragtune.behavior.checkpoint`), then evaluation of base and
adapter on the held-out split (:mod:`ragtune.behavior.evaluate`) and the save.

The adapter appears in its folder only when training and evaluation both finished: the run
writes into ``.<name>.tmp`` beside it and renames that into place at the end, so an interrupted
run leaves the previous adapter as it was. The checkpoint lives beside it too
(``.<name>.checkpoint``), so a resumed run finds it and a finished adapter folder never holds one.

torch, transformers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import os
import random
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune import __version__
from ragtune.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    MANIFEST,
    AdapterManifest,
    BaseModelRecord,
    DatasetRecord,
    TrainConfig,
    TrainError,
    TrainingRecord,
    checkpoint_path,
    staging_path,
)
from ragtune.behavior.checkpoint import (
    load_checkpoint,
    refuse_pickles,
    save_checkpoint,
    swap_into_place,
)
from ragtune.behavior.contract import OutputContract
from ragtune.behavior.encode import (
    IGNORE_INDEX,
    EncodedExample,
    batch_indices,
    collate,
    encode_example,
    get_lr,
    total_steps,
)
from ragtune.behavior.evaluate import EvalMetrics, evaluate
from ragtune.behavior.examples import ExampleSet, dataset_hash, split
from ragtune.holdout import input_key

if TYPE_CHECKING:
    from ragtune.behavior.raft import TrainingContext
    from ragtune.generate.base import LoadedModel

__all__ = ["ProgressCallback", "TrainResult", "train_adapter"]

ProgressCallback = Callable[[int, int, float], None]


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
    # One run of an adapter at a time: two would share its staging and checkpoint folders.
    with _only_run(out_dir):
        return _train(
            loaded, examples, out_dir, config, contract, progress, resume, knowledge_snapshot,
            context, started,
        )  # fmt: skip


@contextmanager
def _only_run(out_dir: Path) -> Iterator[None]:
    """Hold the adapter's lock file (``.<name>.lock`` beside it) for the run, or refuse at once
    when another run holds it.

    Under a distributed launcher (``accelerate launch``, ``torchrun``) the processes of one
    launch are one run: only the first (``RANK`` 0) holds the lock, the others train beside it.
    """
    from ragtune.knowledge.store.lock import WriterLock

    if os.environ.get("RANK", "0").strip() not in ("", "0"):
        yield
        return

    lock = WriterLock(out_dir.parent / f".{out_dir.name}", f"the adapter {out_dir.name!r}")
    with lock.try_hold() as held:
        if not held:
            raise TrainError(
                f"{out_dir}: another run is training the adapter {out_dir.name!r} (it holds "
                f"{lock.lock_path}); wait for it to finish, then run this one again."
            )
        yield


def _train(
    loaded: LoadedModel,
    examples: ExampleSet,
    out_dir: Path,
    config: TrainConfig,
    contract: OutputContract | None,
    progress: ProgressCallback | None,
    resume: bool,
    knowledge_snapshot: str | None,
    context: TrainingContext | None,
    started: float,
) -> TrainResult:
    """The body of :func:`train_adapter`, run holding the adapter's lock."""
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
                    base_metrics = evaluate(peft_model, tokenizer, held, config, contract)
                adapter_metrics = evaluate(peft_model, tokenizer, held, config, contract)

            # -- save --------------------------------------------------------------------------
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
                    inputs=sorted({input_key(ex.input) for ex in train_set}),
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
            _save(peft_model, manifest, out_dir, loaded)
        run.accelerator.wait_for_everyone()
        if not run.main:
            manifest = AdapterManifest.read(out_dir)
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
        # Give the caller's model back as it came: LoRA layers out, its grad flags restored,
        # activations kept again.
        if config.gradient_checkpointing:
            model.activation_checkpointing_disable()
            model.disable_input_require_grads()
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


def _save(peft_model: Any, manifest: AdapterManifest, out_dir: Path, loaded: LoadedModel) -> None:
    """Write the adapter into its staging folder - with a GGUF LoRA beside the PEFT weights
    when the base model is a GGUF, for the llama.cpp backend - check it holds what it must and
    no pickle, then swap it into place; the checkpoint goes once the adapter is there."""
    stage_dir = staging_path(out_dir)
    shutil.rmtree(stage_dir, ignore_errors=True)
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    for peft_config in peft_model.peft_config.values():  # the model's name, not a cache path
        peft_config.base_model_name_or_path = loaded.spec.name
    peft_model.save_pretrained(str(stage_dir), safe_serialization=True)
    refuse_pickles(stage_dir)
    if loaded.spec.gguf_path is not None:
        from ragtune.generate.gguf_lora import base_shape, write_gguf_lora

        shape = base_shape(loaded.spec.gguf_path)
        manifest = replace(manifest, gguf_lora=write_gguf_lora(stage_dir, shape))
    manifest.write(stage_dir)
    for required in (ADAPTER_WEIGHTS, ADAPTER_CONFIG, MANIFEST):
        if not (stage_dir / required).is_file():
            raise TrainError(f"{stage_dir}: saving the adapter wrote no {required}")
    swap_into_place(stage_dir, out_dir)
    shutil.rmtree(checkpoint_path(out_dir), ignore_errors=True)


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
    step = load_checkpoint(ckpt_dir, peft_model, optimizer, identity) if resume else 0
    # One process, or one of several under `accelerate launch`: each takes its share of every
    # batch and the gradients are averaged, so a step is the same step either way.
    accelerator = _accelerator(next(peft_model.parameters()).device)
    trained, optimizer = accelerator.prepare(peft_model, optimizer)
    if config.gradient_checkpointing:
        # Recompute activations in the backward pass; the frozen embeddings' output must then
        # ask for gradients, or the LoRA layers after them get none.
        peft_model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False}
        )
        peft_model.enable_input_require_grads()
    autocast = _autocast(accelerator.device, config.precision)
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
        step_loss, counted = _accumulate(
            trained, accelerator, [encoded[i] for i in mine], tokenizer, config, autocast
        )
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss = float(accelerator.reduce(step_loss, "mean"))
        tokens += int(accelerator.reduce(counted, "sum"))
        losses.append(loss)
        due = config.checkpoint_every and step % config.checkpoint_every == 0 and step < total
        if due and main:
            save_checkpoint(ckpt_dir, peft_model, optimizer, step, identity)
        if progress is not None and main:
            progress(step, total, loss)
    return _Run(accelerator, step, losses, tokens, time.perf_counter() - started)


def _accumulate(
    model: Any,
    accelerator: Any,
    batch: list[EncodedExample],
    tokenizer: Any,
    config: TrainConfig,
    autocast: Any,
) -> tuple[Any, Any]:
    """Forward and backward over ``batch`` in micro-batches of :meth:`TrainConfig.micro_batch`
    examples; returns the batch's loss and its token count.

    Each micro-batch's mean loss is weighted by its share of the batch's predicted tokens, so
    the gradient summed over them is the gradient of the whole batch's mean loss: the same step
    as one pass over the batch, holding one micro-batch's activations at a time.
    """
    import torch

    micro = config.micro_batch()
    parts = [
        collate(batch[i : i + micro], tokenizer.pad_token_id) for i in range(0, len(batch), micro)
    ]
    # The labels are shifted inside the model: a row's first label is never predicted.
    predicted = [int((part["labels"][:, 1:] != IGNORE_INDEX).sum()) for part in parts]
    total = max(sum(predicted), 1)
    loss = torch.zeros((), device=accelerator.device)
    counted = torch.zeros((), dtype=torch.long, device=accelerator.device)
    for part, share in zip(parts, predicted, strict=True):
        with autocast():
            out = model(**{k: v.to(accelerator.device) for k, v in part.items()})
        weighted = out.loss * (share / total)
        accelerator.backward(weighted)
        loss += weighted.detach().float()
        counted += part["attention_mask"].sum().to(accelerator.device)
    return loss, counted


def _autocast(device: Any, precision: str) -> Any:
    """A context factory for the forward pass: bf16 autocast where ``precision`` asks for it
    (``auto``: a CUDA device that supports bf16), else nothing."""
    import contextlib

    import torch

    use = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    if not use:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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

"""Training speed: LoRA throughput, peak memory, adapter size, few-shot selection latency.

Prints one table of figures against the raw libraries doing the same work in the same run, on
the example project's risk flags (examples/contract-review/behavior/risk_flags.jsonl) and the
default base model (SmolLM2-135M-Instruct, float32, CPU):

1. training throughput, non-padding tokens a second: ``train_adapter`` (``max_steps``, evaluation
   and checkpoints off; its ``seconds_per_step`` times the loop alone) against a plain PEFT loop
   written here - ``get_peft_model`` with the same LoRA settings and seed, ``torch.optim.AdamW``,
   ``backward; step; zero_grad`` - over the same batches in the same order, collated beforehand
   (target: ragtune at least 0.9 of it). The two alternate (ragtune, plain, ragtune, ...), each
   after an untimed one-step warm-up run, and the medians are compared;
2. peak resident memory while training (``ru_maxrss``) against the base model's parameter bytes;
3. the adapter on disk (weights, config, manifest) against the base model's de-quantised
   safetensors and its GGUF file, and against its own tensors' bytes;
4. few-shot selection latency: ``index_examples`` then ``select_examples`` on a SQLite store
   with the default embedder, against ``SentenceTransformer.encode`` of the same request alone
   plus a numpy matrix product and argsort (the floor), alternating request by request.

The base model is de-quantised once into ``--cache`` (a temporary folder unless given) in a
separate process, so neither its 20 s nor its memory shows in any figure. On 2 idle cores the
defaults should take about 4 minutes (122 steps at about 1.5 s); on cores shared with another
job, several times that (``--steps 6 --repeats 2`` took 11 minutes at a load average of 4-5).

    .venv/bin/python bench/bench_train.py [--steps 20] [--batch-size 4] [--max-length 256]
        [--repeats 3] [--queries 200] [--cache DIR] [--json]

With ``--json`` the figures go to stdout as JSON and the table to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ragtune.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, MANIFEST, TrainConfig
from ragtune.behavior.encode import batch_indices, collate, encode_example, total_steps
from ragtune.behavior.examples import ExampleSet, load_examples, split
from ragtune.behavior.fewshot import example_text, index_examples, select_examples
from ragtune.behavior.train import TrainResult, train_adapter
from ragtune.examples import example_path
from ragtune.generate.base import (
    DEFAULT_BASE_MODEL,
    LoadedModel,
    cache_folder,
    load_base_model,
    model_sha256,
    resolve_base_model,
)
from ragtune.knowledge.embed import load_embedder
from ragtune.knowledge.store.sqlite import SQLiteStore

EXAMPLE = example_path("contract-review")
EXAMPLES = EXAMPLE / "behavior" / "risk_flags.jsonl"
CAPABILITY = "risk_flags"
TARGET = 0.9  # ragtune's training throughput against the plain loop's
MIB = 1024 * 1024

# -- helpers -------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def rss_mib() -> float | None:
    """Resident memory of this process now (Linux only)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


# -- the base model, de-quantised outside the measured process -----------------------------------


def base_model(cache: Path, err: Console) -> tuple[LoadedModel, Path, Path]:
    """The default base model from the cache, de-quantising it first in a child process."""
    spec = resolve_base_model(DEFAULT_BASE_MODEL)
    assert spec.folder is not None and spec.gguf_file is not None
    cached = cache_folder(spec, cache, model_sha256(spec))
    if not (cached / "ragtune.json").is_file():
        err.print(f"de-quantising {spec.gguf_file} into {cache} (once, in a child process) ...")
        code = (
            "import sys; from pathlib import Path; from ragtune.generate.base import "
            "load_base_model; load_base_model(cache_root=Path(sys.argv[1]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(cache)], capture_output=True, text=True
        )
        if done.returncode != 0:
            err.print(done.stderr)
            raise SystemExit(f"de-quantising the base model failed (exit {done.returncode})")
    from transformers.utils import logging

    logging.disable_progress_bar()
    loaded = load_base_model(DEFAULT_BASE_MODEL, cache_root=cache, device="cpu")
    return loaded, cached / "model.safetensors", spec.folder / spec.gguf_file


# -- 1. training: ragtune's trainer and a plain PEFT loop ----------------------------------------


def batches_of(loaded: LoadedModel, examples: ExampleSet, config: TrainConfig) -> list[dict]:
    """The batches train_adapter takes, in its order: same split, encoding, shuffle, padding."""
    train_set, _ = split(examples, held_out=config.held_out, seed=config.seed)
    encoded = [encode_example(loaded.tokenizer, ex, config) for ex in train_set]
    pad = loaded.tokenizer.pad_token_id
    return [
        collate([encoded[i] for i in batch_indices(len(encoded), step, config)], pad)
        for step in range(total_steps(len(encoded), config))
    ]


def plain_run(loaded: LoadedModel, batches: list[dict], config: TrainConfig) -> dict[str, Any]:
    """A plain PEFT LoRA loop over the batches; the model is given back without its LoRA layers."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = loaded.model
    grad_flags = {name: p.requires_grad for name, p in model.named_parameters()}
    torch.manual_seed(config.seed)  # the LoRA init and dropout draw what train_adapter's do
    lora = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    try:
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        peft_model.train()
        losses = []
        start = time.perf_counter()
        for batch in batches:
            out = peft_model(**batch)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.detach())
        seconds = time.perf_counter() - start
        trainable = sum(p.numel() * p.element_size() for p in params)
    finally:
        peft_model.unload()  # as train_adapter does: the next run starts from the clean base
        for name, p in model.named_parameters():
            p.requires_grad_(grad_flags.get(name, p.requires_grad))
        model.eval()
    return {
        "seconds_per_step": seconds / len(batches),
        "first_loss": float(losses[0]),
        "trainable_bytes": trainable,
    }


def bench_train(
    loaded: LoadedModel, examples: ExampleSet, tmp: Path, args: argparse.Namespace, err: Console
) -> dict[str, Any]:
    config = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        eval_max_new_tokens=0,  # no evaluation ...
        checkpoint_every=0,  # ... and no checkpoints: the loop alone is compared
    )
    warm = replace(config, max_steps=1)
    batches = batches_of(loaded, examples, config)
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    padded = [int(b["attention_mask"].numel()) for b in batches]
    out_dir = tmp / "adapters" / CAPABILITY
    model_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    loaded_rss = rss_mib()

    # Order: ragtune warm-up, ragtune 1, plain warm-up, plain 1, ragtune 2, plain 2, ... so the
    # peak memory after ragtune 1 is ragtune's alone, and load falls on both paths alike.
    train_adapter(loaded, examples, out_dir, warm, contract=None)
    ours: list[TrainResult] = []
    plain: list[dict[str, Any]] = []
    ragtune_peak = None
    for repeat in range(args.repeats):
        result = train_adapter(loaded, examples, out_dir, config, contract=None)
        assert result.steps == len(batches) and result.base is None
        ours.append(result)
        if ragtune_peak is None:
            ragtune_peak = result.peak_rss_mb
            plain_run(loaded, batches[:1], config)  # the plain loop's warm-up
        plain.append(plain_run(loaded, batches, config))
        err.print(
            f"run {repeat + 1}/{args.repeats}: ragtune {result.seconds_per_step:.3f} s/step, "
            f"plain {plain[-1]['seconds_per_step']:.3f} s/step"
        )
    per_step = sum(tokens) / len(tokens)
    ours_tps = [per_step / r.seconds_per_step for r in ours]
    plain_tps = [per_step / p["seconds_per_step"] for p in plain]
    ours_med, plain_med = statistics.median(ours_tps), statistics.median(plain_tps)
    return {
        "steps": len(batches),
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "tokens_per_step": per_step,
        "padding_share": 1 - sum(tokens) / sum(padded),
        "ragtune_seconds_per_step": [r.seconds_per_step for r in ours],
        "plain_seconds_per_step": [p["seconds_per_step"] for p in plain],
        "ragtune_tokens_per_s": ours_tps,
        "plain_tokens_per_s": plain_tps,
        "ragtune_tokens_per_s_median": ours_med,
        "plain_tokens_per_s_median": plain_med,
        "ratio": ours_med / plain_med,
        "target": TARGET,
        # The same LoRA init, dropout draws and first batch: the first losses agree.
        "first_loss": {"ragtune": ours[0].losses[0], "plain": plain[0]["first_loss"]},
        "memory": {
            "model_parameter_bytes": model_bytes,
            "rss_model_loaded_mib": loaded_rss,
            "peak_rss_ragtune_mib": ragtune_peak,
            "peak_rss_all_runs_mib": peak_rss_mib(),
        },
        "adapter": {
            "folder": ours[-1].path,
            "trainable_bytes": plain[0]["trainable_bytes"],
        },
    }


def adapter_sizes(folder: Path, safetensors: Path, gguf: Path, trainable: int) -> dict[str, Any]:
    """Bytes of the adapter's three files, against the base model's files and its own tensors."""
    names = (ADAPTER_WEIGHTS, ADAPTER_CONFIG, MANIFEST)
    files = {name: (folder / name).stat().st_size for name in names}
    total = sum(files.values())
    base_st, base_gguf = safetensors.stat().st_size, gguf.stat().st_size
    return {
        "files": files,
        "total_bytes": total,
        "lora_tensor_bytes": trainable,
        "base_safetensors_bytes": base_st,
        "base_gguf_bytes": base_gguf,
        "base_gguf_quant": gguf.stem.rsplit(".", 1)[-1],
        "ratio_to_safetensors": total / base_st,
        "ratio_to_gguf": total / base_gguf,
    }


# -- 4. few-shot selection -----------------------------------------------------------------------


def requests(n: int) -> list[str]:
    """Numbered clauses of the example's contract templates (not the examples themselves)."""
    clauses = []
    for doc in sorted((EXAMPLE / "knowledge").glob("*.md")):
        for para in re.split(r"\n\s*\n", doc.read_text(encoding="utf-8")):
            para = " ".join(para.split())
            if re.match(r"^\d+\.\d+ ", para):
                clauses.append(para)
    return [clauses[i % len(clauses)] for i in range(n)]


def bench_fewshot(examples: ExampleSet, tmp: Path, queries: int) -> dict[str, Any]:
    embedder = load_embedder()
    model = embedder.model  # type: ignore[attr-defined]

    def encode(texts: list[str]) -> Any:  # what the embedder calls, called directly
        return model.encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    encode(["warm the model up before anything is timed"] * 8)
    store = SQLiteStore(tmp / "k.db")
    start = time.perf_counter()
    indexed = index_examples(store, CAPABILITY, examples, embedder)
    index_s = time.perf_counter() - start
    matrix = np.asarray(
        encode([example_text(e.input, e.context) for e in examples.examples]), dtype=np.float32
    )
    texts = requests(queries)
    start = time.perf_counter()
    select_examples(store, CAPABILITY, texts[0], embedder)  # reads the vectors once
    cold_s = time.perf_counter() - start

    ours, floor = [], []
    for text in texts:  # alternating, so load falls on both alike
        start = time.perf_counter()
        chosen = select_examples(store, CAPABILITY, text, embedder)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        query = encode([text])[0]
        top = np.argsort(-(matrix @ query), kind="stable")[: len(chosen)]
        floor.append(time.perf_counter() - start)
        assert [examples.examples[i] for i in top] == chosen
    store.close()
    (o50, o95), (f50, f95) = percentiles(ours), percentiles(floor)
    return {
        "examples": len(examples),
        "queries": queries,
        "embedded": indexed.embedded,
        "index_seconds": index_s,
        "first_select_ms": cold_s * 1000,
        "select_p50_ms": o50,
        "select_p95_ms": o95,
        "raw_p50_ms": f50,
        "raw_p95_ms": f95,
        "ratio_p50": o50 / f50,
        "ratio_p95": o95 / f95,
    }


# -- main ----------------------------------------------------------------------------------------


def report(figures: dict[str, Any], console: Console) -> None:
    t, m, a, f = (
        figures["train"],
        figures["train"]["memory"],
        figures["adapter"],
        figures["fewshot"],
    )
    table = Table(title=figures["title"], title_justify="left")
    for column in ("what", "figure", "against", "ratio"):
        table.add_column(column, justify="right" if column == "ratio" else "left")
    ok = "meets" if t["ratio"] >= TARGET else "MISSES"
    table.add_row(
        f"LoRA training, train_adapter ({t['steps']} steps x batch {t['batch_size']}, "
        f"{t['tokens_per_step']:.0f} tokens/step)",
        f"{t['ragtune_tokens_per_s_median']:,.0f} tokens/s "
        f"({statistics.median(t['ragtune_seconds_per_step']):.3f} s/step)",
        f"plain PEFT loop, same batches: {t['plain_tokens_per_s_median']:,.0f} tokens/s "
        f"({statistics.median(t['plain_seconds_per_step']):.3f} s/step)",
        f"{t['ratio']:.2f} ({ok} >= {TARGET})",
    )
    loaded = f"{m['rss_model_loaded_mib']:,.0f} MiB" if m["rss_model_loaded_mib"] else "n/a"
    table.add_row(
        "peak RSS while training (ragtune's runs)",
        f"{m['peak_rss_ragtune_mib']:,.0f} MiB (after the plain runs too: "
        f"{m['peak_rss_all_runs_mib']:,.0f})",
        f"model parameters {m['model_parameter_bytes'] / MIB:,.0f} MiB (float32); "
        f"RSS with the model loaded {loaded}",
        f"{m['peak_rss_ragtune_mib'] * MIB / m['model_parameter_bytes']:.2f}",
    )
    table.add_row(
        "adapter on disk (weights + config + manifest)",
        mb(a["total_bytes"]),
        f"base model safetensors {mb(a['base_safetensors_bytes'])}",
        f"{a['ratio_to_safetensors']:.4f}",
    )
    table.add_row(
        "",
        "",
        f"base model GGUF ({a['base_gguf_quant']}) {mb(a['base_gguf_bytes'])}",
        f"{a['ratio_to_gguf']:.4f}",
    )
    table.add_row(
        "",
        f"of which {ADAPTER_WEIGHTS} {mb(a['files'][ADAPTER_WEIGHTS])}",
        f"the LoRA tensors' own bytes {mb(a['lora_tensor_bytes'])}",
        f"{a['files'][ADAPTER_WEIGHTS] / a['lora_tensor_bytes']:.3f}",
    )
    table.add_row(
        f"few-shot select_examples, {f['examples']} examples, {f['queries']} requests",
        f"p50 {f['select_p50_ms']:.2f} ms, p95 {f['select_p95_ms']:.2f} ms",
        f"raw SentenceTransformer.encode + numpy: p50 {f['raw_p50_ms']:.2f} ms, "
        f"p95 {f['raw_p95_ms']:.2f} ms",
        f"{f['ratio_p50']:.2f} / {f['ratio_p95']:.2f}",
    )
    console.print(table)
    loss = t["first_loss"]
    console.print(
        f"Same work check: first-step loss ragtune {loss['ragtune']:.4f}, plain "
        f"{loss['plain']:.4f}. Medians of {len(t['ragtune_tokens_per_s'])} runs each "
        f"(ragtune tokens/s {', '.join(f'{x:.0f}' for x in t['ragtune_tokens_per_s'])}; plain "
        f"{', '.join(f'{x:.0f}' for x in t['plain_tokens_per_s'])}); "
        f"{t['padding_share']:.0%} of the batch cells are padding and not counted. ragtune's "
        "step also sets the learning rate, clips the gradient norm and reads the loss. "
        f"Few-shot: indexing embedded {f['embedded']} examples in {f['index_seconds']:.2f} s; "
        f"the first selection (reads the vectors) took {f['first_select_ms']:.1f} ms; ratio "
        "column is p50 / p95."
    )
    console.print(
        f"load average {figures['machine']['loadavg_start']} at the start, "
        f"{figures['machine']['loadavg_end']} at the end; wall time "
        f"{figures['wall_seconds']:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps a training run")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each loop")
    parser.add_argument("--queries", type=int, default=200, help="few-shot requests to time")
    parser.add_argument("--cache", type=Path, help="folder for the de-quantised base model")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    args = parser.parse_args()
    started = time.perf_counter()
    # A table too wide for 80 columns; piped output gets room for it instead of wrapped cells.
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 170)
    console = err if args.json else Console(width=None if sys.stdout.isatty() else 170)
    loadavg_start = [round(x, 2) for x in os.getloadavg()]

    import torch

    # peft asks transformers a deprecated question on every get_peft_model; not ours to answer.
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        examples = load_examples(EXAMPLES)
        loaded, safetensors, gguf = base_model(args.cache or tmp / "models", err)
        err.print(
            f"{len(examples)} examples, {DEFAULT_BASE_MODEL}, torch {torch.__version__} on "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load {loadavg_start}"
        )
        train = bench_train(loaded, examples, tmp, args, err)
        adapter = adapter_sizes(
            train["adapter"]["folder"], safetensors, gguf, train["adapter"]["trainable_bytes"]
        )
        train["adapter"]["folder"] = str(train["adapter"]["folder"])
        fewshot = bench_fewshot(examples, tmp, args.queries)
    figures = {
        "title": f"Training speed: {DEFAULT_BASE_MODEL} on risk_flags.jsonl, CPU",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "loadavg_start": loadavg_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "train": train,
        "adapter": adapter,
        "fewshot": fewshot,
        "wall_seconds": time.perf_counter() - started,
    }
    report(figures, console)
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

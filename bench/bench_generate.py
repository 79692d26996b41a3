"""Generation speed: ragtune's llama.cpp backend against raw llama-cpp-python and against the
transformers backend, on the same prompt, the same GGUF and the same adapter, in one run.

For each engine: load time, time to first token and decode tokens/s (greedy, ``--tokens`` new
tokens, the median of ``--repeats`` runs), on the example's risk-flag prompt, with and without a
risk-flag adapter (a few training steps, enough to be a real LoRA). The engines alternate so
machine load hits them alike. Targets: ragtune's llama.cpp backend at 0.9x raw llama-cpp-python
or better; 5x the transformers backend or better.

Raw llama-cpp-python runs the prompt the backend builds (the same token ids) through
``Llama.create_completion``; its adapter is the same GGUF LoRA, loaded with ``lora_path``.

Usage: ``.venv/bin/python bench/bench_generate.py [--tokens 64] [--repeats 3] [--threads N]
[--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ragtune.adapters import TrainConfig
from ragtune.behavior.examples import ExampleSet, load_examples
from ragtune.behavior.train import train_adapter
from ragtune.examples import example_path
from ragtune.generate.backend import GenerationParams
from ragtune.generate.base import load_base_model, resolve_base_model
from ragtune.generate.gguf_lora import GGUF_LORA
from ragtune.generate.llamacpp import LlamaCppBackend
from ragtune.generate.local import LocalBackend

Timed = tuple[float, float]  # (seconds to the first piece, decode tokens per second)


def timed_stream(pieces: Callable[[], Any], tokens: int) -> Timed:
    """Time to the first piece and the decode rate of the rest, for one streamed answer."""
    started = time.perf_counter()
    stream = pieces()
    first = None
    count = 0
    for _ in stream:
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None
    generated = getattr(getattr(stream, "result", None), "completion_tokens", None) or count
    return first - started, (generated - 1) / max(end - first, 1e-9)


def median(runs: list[Timed]) -> Timed:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch
    from llama_cpp import Llama

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    gguf = resolve_base_model().gguf_path
    assert gguf is not None
    flags = load_examples(example_path("contract-review") / "behavior/risk_flags.jsonl")
    clause = flags.examples[7].input
    messages = [{"role": "user", "content": clause}]

    clock = time.perf_counter()
    base = load_base_model(cache_root=work / "models")
    hf_load_cold = time.perf_counter() - clock
    clock = time.perf_counter()
    base = load_base_model(cache_root=work / "models")
    hf_load = time.perf_counter() - clock
    some = ExampleSet(flags.path, flags.examples[::8][:24], flags.sha256)
    config = TrainConfig(batch_size=4, max_length=160, max_steps=8, eval_max_new_tokens=0)
    train_adapter(base, some, work / "adapters" / "flags", config)

    clock = time.perf_counter()
    ours = LlamaCppBackend(gguf, work / "adapters", model_sha256=base.sha256, threads=args.threads)
    ours_load = time.perf_counter() - clock
    hf = LocalBackend(base, work / "adapters")
    prompt = ours._llm.tokenize(ours.render_prompt(messages).encode(), False, True)
    clock = time.perf_counter()
    raw = Llama(model_path=str(gguf), n_ctx=4096, n_threads=args.threads, verbose=False)
    raw_load = time.perf_counter() - clock
    raw_lora = Llama(
        model_path=str(gguf), n_ctx=4096, n_threads=args.threads, verbose=False,
        lora_path=str(work / "adapters" / "flags" / GGUF_LORA),
    )  # fmt: skip

    def raw_run(llm: Llama) -> Callable[[], Any]:
        def go() -> Any:
            llm.reset()  # no cache carried over from the previous run, as for ours
            return llm.create_completion(
                prompt, max_tokens=args.tokens, temperature=0.0, stream=True
            )

        return go

    engines: dict[str, dict[str, Callable[[], Any]]] = {}
    for adapter in (None, "flags"):
        params = GenerationParams(adapter=adapter, max_tokens=args.tokens)
        label = "adapter" if adapter else "base"

        def ours_go(p: GenerationParams = params) -> Any:
            ours._llm.reset()
            return ours.stream(messages, p)

        engines[label] = {
            "raw llama-cpp-python": raw_run(raw_lora if adapter else raw),
            "ragtune llama.cpp": ours_go,
            "ragtune transformers": lambda p=params: hf.stream(messages, p),
        }
    for per_engine in engines.values():  # warm-up: caches, lazy loads, the adapters
        for go in per_engine.values():
            timed_stream(go, args.tokens)
    runs: dict[str, dict[str, list[Timed]]] = {
        label: {name: [] for name in per} for label, per in engines.items()
    }
    for _ in range(args.repeats):
        for label, per_engine in engines.items():
            for name, go in per_engine.items():
                runs[label][name].append(timed_stream(go, args.tokens))

    loads = {
        "raw llama-cpp-python": raw_load,
        "ragtune llama.cpp": ours_load,
        "ragtune transformers": hf_load,
    }
    rows = []
    for label, per_engine in runs.items():
        raw_ttft, raw_rate = median(per_engine["raw llama-cpp-python"])
        hf_ttft, hf_rate = median(per_engine["ragtune transformers"])
        for name, timings in per_engine.items():
            ttft, rate = median(timings)
            rows.append(
                {
                    "model": label,
                    "engine": name,
                    "load_s": round(loads[name], 3),
                    "first_token_s": round(ttft, 4),
                    "tokens_per_s": round(rate, 1),
                    "vs_raw": round(rate / raw_rate, 2),
                    "first_token_vs_raw": round(raw_ttft / ttft, 2),
                    "vs_transformers": round(rate / hf_rate, 2),
                    "first_token_vs_transformers": round(hf_ttft / ttft, 2),
                }
            )
    result = {
        "tokens": args.tokens,
        "repeats": args.repeats,
        "threads": args.threads,
        "prompt_tokens": len(prompt),
        "transformers_first_load_s": round(hf_load_cold, 1),
        "rows": rows,
    }
    ours.close()
    hf.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    table = Table(
        title=f"generation: {len(prompt)}-token prompt, {args.tokens} new tokens, greedy, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    for column in (
        "model",
        "engine",
        "load s",
        "first token s",
        "tokens/s",
        "vs raw",
        "vs transformers",
    ):
        table.add_column(column, justify="left" if column in ("model", "engine") else "right")
    for row in rows:
        table.add_row(
            row["model"], row["engine"], f"{row['load_s']:.2f}", f"{row['first_token_s']:.3f}",
            f"{row['tokens_per_s']:.1f}", f"{row['vs_raw']:.2f}x", f"{row['vs_transformers']:.2f}x",
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        f"transformers' first load (de-quantising the GGUF): {hf_load_cold:.1f} s; later loads "
        f"{hf_load:.1f} s."
    )


if __name__ == "__main__":
    main()

"""Guided decoding on the transformers backend: what llguidance costs a token, and what it buys.

On the example's risk-flag prompts (the contract's instructions, two of the team's flags as
shots, one eval clause each), the transformers backend answers every prompt twice in the same
run, alternating: unguided, then guided by the risk-flag JSON Schema; greedy, at most
``--tokens`` new tokens.
Reported: decode tokens/s of each (median over the prompts; the first token, which carries
the prompt, is left out), their ratio, how many answers validate against the schema, the
guide's own time per step (mask computed and applied, measured inside the logits processor)
and the one-off costs: reading the vocabulary and compiling the schema.

Usage: ``.venv/bin/python bench/bench_guide.py [--prompts 6] [--tokens 64] [--threads 1]
[--models DIR] [--json]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema
from rich.console import Console
from rich.table import Table

from ragtune.behavior.contract import default_instructions, load_contract
from ragtune.behavior.examples import load_examples
from ragtune.examples import example_path
from ragtune.generate.backend import GenerationParams
from ragtune.generate.base import load_base_model
from ragtune.generate.guide import GrammarGuide, guided_kwargs, schema_grammar
from ragtune.generate.local import LocalBackend
from ragtune.prompt import chat_messages


def timed(backend: LocalBackend, messages: list[dict[str, str]], params: GenerationParams) -> Any:
    """(decode tokens/s after the first piece, the answer's text, its tokens) of one answer."""
    stream = backend.stream(messages, params)
    first = None
    for _ in stream:
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    result = stream.result
    assert first is not None and result is not None
    return (result.completion_tokens - 1) / max(end - first, 1e-9), result.text, result


def valid(text: str, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=Path, default=None, help="de-quantised model cache")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    example = example_path("contract-review")
    schema_path = example / "schemas" / "risk_flag.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    contract = load_contract(schema_path)
    flags = load_examples(example / "behavior" / "risk_flags.jsonl").examples
    clauses = [json.loads(line)["input"] for line in (example / "eval" / "clauses.jsonl").open()]
    system = default_instructions("Flag the contract clause.", contract)
    prompts = [chat_messages(system, [flags[0], flags[40]], c) for c in clauses[: args.prompts]]

    models = args.models or Path(tempfile.mkdtemp(prefix="bench-guide-")) / "models"
    base = load_base_model(cache_root=models)
    backend = LocalBackend(base, Path(tempfile.mkdtemp(prefix="bench-guide-adapters-")))
    tokenizer = base.tokenizer
    eos = [tokenizer.eos_token_id]

    clock = time.perf_counter()
    schema_grammar(tokenizer, schema, eos)  # reads the vocabulary once (kept on the tokenizer)
    vocabulary_s = time.perf_counter() - clock
    clock = time.perf_counter()
    grammar = schema_grammar(tokenizer, schema, eos)
    compile_s = time.perf_counter() - clock

    free = GenerationParams(max_tokens=args.tokens)
    guided = GenerationParams(max_tokens=args.tokens, schema=schema)
    timed(backend, prompts[0], free)  # warm-up: lazy imports, the grammar cache
    timed(backend, prompts[0], guided)
    rates: dict[str, list[float]] = {"unguided": [], "guided": []}
    ok: dict[str, int] = {"unguided": 0, "guided": 0}
    tokens: dict[str, int] = {"unguided": 0, "guided": 0}
    for messages in prompts:
        for label, params in (("unguided", free), ("guided", guided)):
            rate, text, result = timed(backend, messages, params)
            rates[label].append(rate)
            ok[label] += valid(text, schema)
            tokens[label] += result.completion_tokens

    # The guide's own time: the logits processor timed inside generate(), on the same prompts.
    step_ms: list[float] = []
    for messages in prompts:
        inputs = tokenizer(
            backend.render_prompt(messages), return_tensors="pt", add_special_tokens=False
        )
        width = int(inputs["input_ids"].shape[1])
        kwargs, guide = guided_kwargs(grammar, width)
        assert isinstance(guide, GrammarGuide)
        with torch.no_grad():
            base.model.generate(
                **inputs, max_new_tokens=args.tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, **kwargs,
            )  # fmt: skip
        step_ms.append(1000 * guide.seconds / max(guide.steps, 1))

    unguided_rate = statistics.median(rates["unguided"])
    guided_rate = statistics.median(rates["guided"])
    result = {
        "prompts": len(prompts),
        "max_tokens": args.tokens,
        "threads": args.threads,
        "unguided_tokens_per_s": round(unguided_rate, 2),
        "guided_tokens_per_s": round(guided_rate, 2),
        "guided_vs_unguided": round(guided_rate / unguided_rate, 3),
        "guide_ms_per_step": round(statistics.median(step_ms), 3),
        "guide_ms_per_step_max": round(max(step_ms), 3),
        "step_ms_unguided": round(1000 / unguided_rate, 1),
        "tokens": tokens,
        "valid": ok,
        "vocabulary_s": round(vocabulary_s, 3),
        "compile_ms": round(1000 * compile_s, 2),
    }
    backend.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    table = Table(
        title=f"transformers, risk-flag prompts: {len(prompts)} prompts, at most {args.tokens} "
        f"new tokens, greedy, {args.threads} thread(s)"
    )
    for column in ("decoding", "tokens/s (median)", "vs unguided", "tokens", "valid JSON"):
        table.add_column(column, justify="left" if column == "decoding" else "right")
    for label, rate in (("unguided", unguided_rate), ("guided (llguidance)", guided_rate)):
        key = label.split()[0]
        table.add_row(
            label, f"{rate:.2f}", f"{rate / unguided_rate:.3f}x", str(tokens[key]),
            f"{ok[key]}/{len(prompts)}",
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        f"the guide's own time: {result['guide_ms_per_step']} ms a step (median over prompts; "
        f"max {result['guide_ms_per_step_max']}), against {result['step_ms_unguided']} ms a "
        f"decoded token; reading the vocabulary {vocabulary_s:.2f} s once per tokenizer, "
        f"compiling the schema {1000 * compile_s:.1f} ms once per schema."
    )


if __name__ == "__main__":
    main()

"""Training memory: peak resident memory of the example's risk-flag training at its full settings,
one whole batch per forward pass (how ragtune trained before micro-batches) against micro-batches
and gradient checkpointing - the same steps, to float rounding (tests/test_train.py checks it).

Each setting trains a few steps in a fresh process (``ru_maxrss`` only grows), on the example's
risk-flag clauses with two 300-character passages of the playbook as their context, as
context-aware training lays them out, at the example's ``train:`` settings (r 16 on every linear
layer, batch 4, up to 1,024 tokens). Prints peak RSS, seconds a step and the ratios against the
whole batch.

    .venv/bin/python bench/bench_train_memory.py [--steps 3] [--cache DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

SETTINGS = {
    "whole batch (before)": {"micro_batch_size": 4},
    "micro-batches (auto: 2)": {},
    "micro-batch 1 + checkpointing": {"micro_batch_size": 1, "gradient_checkpointing": True},
}

CHILD = """
import json, resource, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
from ragtune.adapters import TrainConfig
from ragtune.behavior.examples import Example, ExampleSet, load_examples
from ragtune.behavior.train import train_adapter
from ragtune.examples import example_path
from ragtune.generate.base import DEFAULT_BASE_MODEL, load_base_model

steps, cache, extra = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
root = example_path("contract-review")
playbook = (root / "playbook" / "negotiation_playbook.md").read_text()
full = load_examples(root / "behavior" / "risk_flags.jsonl")
rows = []
for n, ex in enumerate(full.examples):
    start = (n * 997) % max(len(playbook) - 700, 1)
    passages = [playbook[start : start + 300], playbook[start + 300 : start + 600]]
    context = "\\n\\n".join(f"[{i}] playbook/negotiation_playbook.md\\n{p}" for i, p in
                            enumerate(passages, 1))
    rows.append(Example(ex.input, ex.output, context, ex.line))
examples = ExampleSet(full.path, rows, full.sha256)
loaded = load_base_model(DEFAULT_BASE_MODEL, cache_root=cache)
config = TrainConfig(r=16, alpha=32, learning_rate=5e-4, batch_size=4, max_length=1024,
                     held_out=0.2, eval_max_new_tokens=0, checkpoint_every=0, max_steps=steps,
                     target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                     "up_proj", "down_proj"), **extra)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result = train_adapter(loaded, examples, Path(tempfile.mkdtemp()) / "risk_flags", config)
print(json.dumps({"peak_mb": result.peak_rss_mb, "loaded_mb": before,
                  "seconds_per_step": result.seconds_per_step,
                  "micro_batch": config.micro_batch(), "loss": result.losses[-1]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-train-memory-"))
    figures = {}
    for label, extra in SETTINGS.items():
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.steps), str(cache), json.dumps(extra)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures[label] = json.loads(done.stdout.strip().splitlines()[-1])
    whole = figures["whole batch (before)"]
    table = Table(title=f"risk-flag training at the example's settings, {args.steps} steps")
    for column in ("setting", "micro-batch", "peak RSS MB", "x whole", "s / step", "x whole"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for label, f in figures.items():
        table.add_row(
            label,
            str(f["micro_batch"]),
            f"{f['peak_mb']:.0f}",
            f"{f['peak_mb'] / whole['peak_mb']:.2f}",
            f"{f['seconds_per_step']:.1f}",
            f"{f['seconds_per_step'] / whole['seconds_per_step']:.2f}",
        )
    Console(stderr=args.json).print(table)
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

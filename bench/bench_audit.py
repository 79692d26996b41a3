"""Audit speed: 1,000 capabilities, and the example's wall time through the CLI.

Prints a table of ratios against the raw libraries doing the parse-and-validate part of the same
work in the same run (PyYAML + pydantic), and the CLI's wall time against a bare Python start.

    .venv/bin/python bench/bench_audit.py [--capabilities 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ragtune.audit import run_audit
from ragtune.audit.report import render_html, render_json, render_markdown
from ragtune.examples import example_path
from ragtune.project import ProjectConfig, load_project

REPO = Path(__file__).resolve().parents[1]
DESCRIPTIONS = REPO / "tests" / "data" / "capabilities_dev.jsonl"


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def write_project(folder: Path, n: int) -> Path:
    rows = [json.loads(line) for line in DESCRIPTIONS.read_text().splitlines() if line]
    capabilities = []
    for i in range(n):
        row = rows[i % len(rows)]
        cap: dict[str, object] = {"name": f"cap-{i}", "description": row["description"]}
        if i % 3 == 0:
            cap["calls_per_month"] = 1000 * (i % 50 + 1)
        if i % 7 == 0:
            cap["current_approach"] = "fine-tune"
        capabilities.append(cap)
    data = {"version": 1, "project": "bench", "capabilities": capabilities}
    (folder / "ragtune.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def wall(cmd: list[str], repeat: int) -> float:
    return best_of(repeat, lambda: subprocess.run(cmd, check=True, capture_output=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capabilities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.capabilities

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_project(Path(tmp), n)
        text = (folder / "ragtune.yaml").read_text()
        raw = best_of(args.repeat, lambda: ProjectConfig.model_validate(yaml.safe_load(text)))
        load = best_of(args.repeat, lambda: load_project(folder))
        project = load_project(folder)
        audit = best_of(args.repeat, lambda: run_audit(project))
        report = run_audit(project)
        as_json = best_of(args.repeat, lambda: render_json(report))
        as_md = best_of(args.repeat, lambda: render_markdown(report))
        as_html = best_of(1, lambda: render_html(report))

    ragtune = str(Path(sys.executable).with_name("ragtune"))
    example = str(example_path("contract-review"))
    bare = wall([sys.executable, "-c", "import yaml, pydantic"], args.repeat)
    cli = wall([ragtune, "audit", example, "--format", "json"], args.repeat)
    cli_table = wall([ragtune, "audit", example], args.repeat)

    rows = [
        ("parse + validate (PyYAML + pydantic, raw)", raw, raw),
        ("load_project (same, with line-aware errors)", load, raw),
        ("run_audit (infer + decide + cost)", audit, raw),
        ("render json", as_json, raw),
        ("render markdown", as_md, raw),
        ("render html (portfolio chart only past 50)", as_html, raw),
    ]
    print(f"\nAudit of {n:,} capabilities (best of {args.repeat})\n")
    print(f"| {'step':<46} | {'total s':>8} | {'ms / capability':>15} | {'x raw parse':>11} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 17}|{'-' * 13}|")
    for name, seconds, base in rows:
        print(
            f"| {name:<46} | {seconds:>8.3f} | {1000 * seconds / n:>15.3f} | "
            f"{seconds / base:>11.2f} |"
        )
    print(f"\nExample project through the CLI, wall time (best of {args.repeat})\n")
    print(f"| {'command':<46} | {'wall s':>8} | {'x bare python':>13} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 15}|")
    print(f"| {'python -c import yaml, pydantic (floor)':<46} | {bare:>8.3f} | {1.0:>13.2f} |")
    for name, seconds in (
        ("ragtune audit contract-review --format json", cli),
        ("ragtune audit contract-review (table)", cli_table),
    ):
        print(f"| {name:<46} | {seconds:>8.3f} | {seconds / bare:>13.2f} |")
    median_ms = statistics.median([1000 * audit / n])
    print(
        f"\nper capability: {median_ms:.3f} ms audited; example CLI wall {cli:.2f} s (target < 1 s)"
    )


if __name__ == "__main__":
    main()

"""The runtime's cost: pipeline overhead over a raw generate, and the server under load.

1. Pipeline overhead. The same request served through ``run()`` (route, retrieve, select,
   prompt, generate, validate) against ``backend.generate()`` alone on the very prompt the
   pipeline built, same model, greedy, 64 new tokens; the two alternate so machine load hits
   both alike. Target: retrieval, prompt building and validation add under 10%.
2. Server. A real uvicorn server on loopback and N concurrent clients (the official ``openai``
   client) each sending requests in a loop; p50/p95 latency and throughput, against the pipeline
   called in-process one request after another (generation is serialised on one model, so the
   in-process rate is the ceiling).

Usage: ``.venv/bin/python bench/bench_runtime.py [--tokens 64] [--repeats 5] [--clients 4]
[--requests 3] [--json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from ragtune.examples import example_path
from ragtune.generate.backend import GenerationParams
from ragtune.knowledge.base import KnowledgeBase
from ragtune.project import load_project
from ragtune.runtime.pipeline import run
from ragtune.runtime.runtime import Request, Runtime

QUESTIONS = [
    "How long do we have to notify the client of a personal data breach under the DPA?",
    "What is the liability cap in the MSA?",
    "Which law governs the NDA?",
    "How long does confidentiality last after the NDA ends?",
]


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pipeline_overhead(rt: Runtime, tokens: int, repeats: int) -> dict[str, float]:
    """Median seconds of run() and of a raw generate on the same messages."""
    piped, raw, steps = [], [], []
    for i in range(repeats):
        request = Request(QUESTIONS[i % len(QUESTIONS)], "templates", max_tokens=tokens)
        t = time.perf_counter()
        result = run(rt, request)
        piped.append(time.perf_counter() - t)
        steps.append(result.timings["total"] - result.timings["generate"])
        t = time.perf_counter()
        rt.backend.generate(result.messages, GenerationParams(max_tokens=tokens))
        raw.append(time.perf_counter() - t)
    return {
        "pipeline_s": statistics.median(piped),
        "generate_s": statistics.median(raw),
        "steps_s": statistics.median(steps),
    }


def server_load(rt: Runtime, clients: int, requests: int, tokens: int) -> dict[str, float]:
    """Latency and throughput of the real server with ``clients`` concurrent clients."""
    import openai
    import uvicorn

    from ragtune.server import ServerSettings, create_app

    port = free_port()
    app = create_app(rt, ServerSettings(queue_depth=max(8, clients * 2)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=600)

    def one(i: int) -> float:
        t = time.perf_counter()
        client.chat.completions.create(
            model="templates",
            messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            max_tokens=tokens,
        )
        return time.perf_counter() - t

    try:
        one(0)  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            latencies = list(pool.map(one, range(clients * requests)))
        wall = time.perf_counter() - started
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    t = time.perf_counter()
    for i in range(clients * requests):
        run(rt, Request(QUESTIONS[i % len(QUESTIONS)], "templates", max_tokens=tokens))
    inproc = time.perf_counter() - t
    return {
        "p50_s": pct(latencies, 50),
        "p95_s": pct(latencies, 95),
        "server_rps": len(latencies) / wall,
        "inprocess_rps": len(latencies) / inproc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="New tokens per request.")
    parser.add_argument("--repeats", type=int, default=5, help="Pipeline/raw pairs.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent server clients.")
    parser.add_argument("--requests", type=int, default=3, help="Requests per client.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp()) / "contract-review"
    shutil.copytree(
        example_path("contract-review"), folder, ignore=shutil.ignore_patterns(".ragtune")
    )
    project = load_project(folder)
    KnowledgeBase(project).sync()
    rt = Runtime(project)
    rt.backend.generate([{"role": "user", "content": "warm-up"}], GenerationParams(max_tokens=4))
    overhead = pipeline_overhead(rt, args.tokens, args.repeats)
    load = server_load(rt, args.clients, args.requests, min(args.tokens, 16))
    rt.close()
    ratio = overhead["pipeline_s"] / overhead["generate_s"]
    figures = {"tokens": args.tokens, **overhead, "overhead_ratio": ratio, **load}
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in figures.items()}, indent=2))
        return
    table = Table(title="runtime (SmolLM2-135M, CPU)")
    for column in ("what", "figure", "against"):
        table.add_column(column)
    table.add_row(
        f"run(): route+retrieve+select+prompt+generate+validate, {args.tokens} new tokens",
        f"{overhead['pipeline_s']:.2f} s (other steps {overhead['steps_s'] * 1000:.0f} ms)",
        f"{ratio:.3f} x raw generate on the same prompt ({overhead['generate_s']:.2f} s); "
        "target < 1.10",
    )
    table.add_row(
        f"server, {args.clients} clients x {args.requests} requests, 16 new tokens",
        f"p50 {load['p50_s']:.2f} s, p95 {load['p95_s']:.2f} s, {load['server_rps']:.2f} req/s",
        f"{load['server_rps'] / load['inprocess_rps']:.2f} x the pipeline in-process "
        f"({load['inprocess_rps']:.2f} req/s, one at a time)",
    )
    Console().print(table)


if __name__ == "__main__":
    main()

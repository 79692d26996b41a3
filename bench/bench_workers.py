"""Server workers: requests per second of ``ragtune serve --workers 2`` against ``--workers 1``.

The same server, started the way users start it (``ragtune serve`` as its own process on the
contract-review example, synced, its own embedder, the default backend), with 1 and then 2
workers; N concurrent clients each send R chat requests (``max_tokens`` small, so retrieval and
reading the prompt dominate); each request on a connection of its own, so the kernel spreads them
over the workers. Reported: requests per second, p50/p95 latency and how many requests each
worker answered (from ``/metrics``), and the ratio of 2 workers to 1 in the same run.

Each worker holds its own model and generates on its own, so on a machine with spare cores two
workers should approach twice the throughput; on a machine whose cores are already busy they
share the same cores and the ratio says what is left. The machine's cores and load average are
printed with the table.

Usage: ``.venv/bin/python bench/bench_workers.py [--clients 4] [--requests 4] [--tokens 1]
[--workers 1,2] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from ragtune.examples import example_path
from ragtune.knowledge.base import KnowledgeBase
from ragtune.project import load_project

QUESTIONS = [
    "How long do we have to notify the client of a personal data breach under the DPA?",
    "What is the liability cap in the MSA?",
    "Which law governs the NDA?",
    "How long does confidentiality last after the NDA ends?",
]
CHAT = "/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metrics(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` as samples by name."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(get(f"{url}/metrics")[1].decode()):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def ask(url: str, question: str, tokens: int) -> float:
    """One chat request on a connection of its own; its seconds."""
    body = {"model": "templates", "messages": [{"role": "user", "content": question}],
            "max_tokens": tokens}  # fmt: skip
    request = urllib.request.Request(
        f"{url}{CHAT}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as reply:
        reply.read()
        assert reply.status == 200
    return time.perf_counter() - started


def start(folder: Path, workers: int, queue: int, log: Path) -> tuple[str, subprocess.Popen[str]]:
    """``ragtune serve`` with ``workers`` workers; returns when every worker is up."""
    port = free_port()
    ragtune = str(Path(sys.executable).parent / "ragtune")
    with log.open("w") as out:
        process = subprocess.Popen(
            [ragtune, "serve", str(folder), "--port", str(port), "--queue", str(queue),
             "--workers", str(workers)],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise SystemExit(f"ragtune serve stopped:\n{log.read_text()}")
        try:
            limit = sum(v for _, v in metrics(url).get("ragtune_queue_limit", []))
            if limit == queue:  # every worker has built its app (the limits add up)
                return url, process
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"ragtune serve did not come up:\n{log.read_text()}")
        time.sleep(0.5)


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(folder: Path, workers: int, clients: int, requests: int, tokens: int) -> dict[str, Any]:
    """Throughput and latency with ``workers`` workers and ``clients`` concurrent clients."""
    queue = max(8, clients * 2)
    url, process = start(folder, workers, queue, folder.parent / f"serve-{workers}.log")
    try:
        with ThreadPoolExecutor(clients) as pool:  # warm-up: each worker's first requests
            list(pool.map(lambda i: ask(url, QUESTIONS[i % 4], tokens), range(clients * 2)))
        before = _per_worker(url)
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            latencies = list(
                pool.map(lambda i: ask(url, QUESTIONS[i % 4], tokens), range(clients * requests))
            )
        wall = time.perf_counter() - started
        after = _per_worker(url)
    finally:
        stop(process)
    spread = sorted((after[p] - before.get(p, 0) for p in after), reverse=True)
    return {
        "workers": workers,
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_s": float(np.percentile(latencies, 50)),
        "p95_s": float(np.percentile(latencies, 95)),
        "per_worker": [int(n) for n in spread if n] or [len(latencies)],
    }


def _per_worker(url: str) -> dict[str, float]:
    """Chat requests answered by each worker (one process: by the server)."""
    samples = metrics(url)
    mine = [(labels, v) for labels, v in samples.get("ragtune_worker_requests", [])
            if labels.get("endpoint") == CHAT]  # fmt: skip
    if mine:
        return {labels["pid"]: v for labels, v in mine}
    total = sum(v for labels, v in samples.get("ragtune_requests_total", [])
                if labels.get("endpoint") == CHAT)  # fmt: skip
    return {"server": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4, help="Concurrent clients.")
    parser.add_argument("--requests", type=int, default=4, help="Requests per client.")
    parser.add_argument("--tokens", type=int, default=1, help="max_tokens of each request.")
    parser.add_argument("--workers", default="1,2", help="Worker counts to compare, first = 1x.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    try:
        folder = work / "contract-review"
        shutil.copytree(
            example_path("contract-review"), folder, ignore=shutil.ignore_patterns(".ragtune")
        )
        kb = KnowledgeBase(load_project(folder))
        kb.sync()
        kb.close()
        counts = [int(w) for w in args.workers.split(",")]
        rows = [load(folder, w, args.clients, args.requests, args.tokens) for w in counts]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["rps"]
    machine = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps({"machine": machine, "runs": rows}, indent=2))
        return
    table = Table(
        title=f"ragtune serve --workers: {args.clients} clients x {args.requests} chat requests, "
        f"max_tokens {args.tokens} ({machine['cpus']} CPUs, load {machine['load_avg_1m']} after)"
    )
    for column in ("workers", "req/s", "p50", "p95", "requests per worker", "against"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["workers"]),
            f"{row['rps']:.2f}",
            f"{row['p50_s']:.2f} s",
            f"{row['p95_s']:.2f} s",
            " + ".join(str(n) for n in row["per_worker"]),
            f"{row['rps'] / base:.2f} x {rows[0]['workers']} worker(s)",
        )
    Console().print(table)


if __name__ == "__main__":
    main()

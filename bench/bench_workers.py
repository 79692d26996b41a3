"""Server workers: requests per second of ``ragtune serve --workers 2`` against ``--workers 1``.

The same server, started the way users start it (``ragtune serve`` as its own process on the
contract-review example, synced, its own embedder, the default backend), with 1 and with 2
workers, both servers up at once; in each round N concurrent clients each send R chat requests
(``max_tokens`` small, so retrieval and reading the prompt dominate) to one server, then to the
other, the first in turn, so the machine's changing load hits both alike. Each request goes on a
connection of its own, so the kernel spreads them over the workers. Reported: requests per
second, p50/p95 latency, how many requests each worker answered (from ``/metrics``), and the
ratio of 2 workers to 1 in the same run.

Each worker holds its own model and generates on its own, so on a machine with spare cores two
workers should approach twice the throughput; on a machine whose cores are already busy they
share the same cores and the ratio says what is left. The machine's cores and load average are
printed with the table.

Usage: ``.venv/bin/python bench/bench_workers.py [--clients 4] [--requests 4] [--rounds 3]
[--tokens 1] [--workers 1,2] [--json]``
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


def batch(url: str, clients: int, requests: int, tokens: int) -> tuple[list[float], float]:
    """``clients`` concurrent clients each sending ``requests`` requests: latencies, wall time."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(
            pool.map(lambda i: ask(url, QUESTIONS[i % 4], tokens), range(clients * requests))
        )
    return latencies, time.perf_counter() - started


def compare(
    folder: Path, counts: list[int], clients: int, requests: int, tokens: int, rounds: int
) -> list[dict[str, Any]]:
    """Throughput and latency of each worker count. Every server is up at once (an idle one
    costs no CPU); the rounds alternate between them, in turn first, so a change of the
    machine's load hits them alike."""
    queue = max(8, clients * 2)
    servers = [start(folder, w, queue, folder.parent / f"serve-{w}.log") for w in counts]
    latencies: list[list[float]] = [[] for _ in counts]
    walls = [0.0 for _ in counts]
    try:
        for url, _ in servers:  # warm-up: each worker's first requests
            batch(url, clients, 2, tokens)
        before = [_per_worker(url) for url, _ in servers]
        for r in range(rounds):
            order = list(range(len(counts)))
            for i in order[r % len(order) :] + order[: r % len(order)]:
                done, wall = batch(servers[i][0], clients, requests, tokens)
                latencies[i] += done
                walls[i] += wall
        after = [_per_worker(url) for url, _ in servers]
    finally:
        for _, process in servers:
            stop(process)
    rows = []
    for i, workers in enumerate(counts):
        spread = sorted((after[i][p] - before[i].get(p, 0) for p in after[i]), reverse=True)
        rows.append(
            {
                "workers": workers,
                "requests": len(latencies[i]),
                "rps": len(latencies[i]) / walls[i],
                "p50_s": float(np.percentile(latencies[i], 50)),
                "p95_s": float(np.percentile(latencies[i], 95)),
                "per_worker": [int(n) for n in spread if n],
            }
        )
    return rows


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
    parser.add_argument("--requests", type=int, default=4, help="Requests per client a round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds over the servers.")
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
        rows = compare(folder, counts, args.clients, args.requests, args.tokens, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["rps"]
    machine = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps({"machine": machine, "runs": rows}, indent=2))
        return
    table = Table(
        title=f"ragtune serve --workers: {args.rounds} rounds of {args.clients} clients x "
        f"{args.requests} chat requests, max_tokens {args.tokens} ({machine['cpus']} CPUs, "
        f"load {machine['load_avg_1m']} after)"
    )
    against = f"against {rows[0]['workers']} worker(s)"
    for column in ("workers", "req/s", "p50", "p95", "requests per worker", against):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["workers"]),
            f"{row['rps']:.2f}",
            f"{row['p50_s']:.2f} s",
            f"{row['p95_s']:.2f} s",
            " + ".join(str(n) for n in row["per_worker"]),
            f"{row['rps'] / base:.2f} x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()

"""A bounded load test of `ragtune serve`: N clients on loopback for T seconds, in rounds.

Starts `ragtune serve PROJECT` on a free loopback port (or targets a running server with
``--url``), then runs ``--clients`` concurrent clients for ``--seconds`` per round, each sending a
weighted mix of requests:

- ``chat``: ``POST /v1/chat/completions`` with a short ``max_tokens`` (retrieval, the reader
  adapter and generation for the example's ``templates``; ``--model`` names other capabilities);
- ``stream``: the same, streamed as server-sent events, read to the end;
- ``search``: the server's knowledge search, when its OpenAPI schema offers one (a path under
  ``/v1/knowledge`` with ``search`` in it); otherwise skipped, and said so;
- ``models``: ``GET /v1/models`` (the route of every capability, no generation);
- ``health``: ``GET /healthz``.

Per round it reports requests/s, p50/p95/p99 latency per endpoint, status counts (503 with
``Retry-After`` is the expected answer when the generation queue is full, and is counted
separately from a 503 without it), client errors, and the server process's RSS memory and
thread count at the start and end of the round (with its peak RSS, sampled every second, and
its threads by name), so several rounds in a row show whether memory and threads level off::

    .venv/bin/python scripts/load.py /tmp/contract-review --clients 8 --seconds 60 --rounds 3
    .venv/bin/python scripts/load.py /tmp/contract-review --rounds 3 --trace  # where it grows
    .venv/bin/python scripts/load.py --url http://127.0.0.1:8000 --pid 1234 --json

Only the standard library and psutil are used; the script never leaves loopback unless
``--url`` says so.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

QUESTIONS = (
    "How many hours do we have to notify the customer of a personal data breach?",
    "What is the liability cap in the MSA?",
    "Which law governs the NDA?",
    "How long does the confidentiality obligation last after the NDA ends?",
    "What notice period applies to terminating the MSA for convenience?",
    "Does the MSA renew automatically, and for how long?",
    "Who may the processor engage as a subprocessor under the DPA?",
    "What are the payment terms in the MSA?",
)
KINDS = ("chat", "stream", "search", "models", "health")


@dataclass(frozen=True)
class Sample:
    """One request as a client saw it."""

    kind: str
    status: int  # 0: no HTTP answer (connection error, client timeout)
    seconds: float
    retry_after: bool = False
    error: str = ""


@dataclass(frozen=True)
class ProcessState:
    """The server process at one moment."""

    rss_mb: float
    threads: int
    thread_names: dict[str, int] = field(default_factory=dict)


@dataclass
class EndpointStats:
    """Latency and statuses of one kind of request over a round."""

    requests: int
    per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    statuses: dict[str, int]


@dataclass
class RoundReport:
    """What one round measured."""

    round: int
    clients: int
    seconds: float
    requests: int
    per_second: float
    statuses: dict[str, int]
    busy_with_retry_after: int  # 503 answers carrying Retry-After (queue full: expected)
    busy_without_retry_after: int
    errors: dict[str, int]
    endpoints: dict[str, EndpointStats]
    start: ProcessState | None
    end: ProcessState | None
    peak_rss_mb: float | None
    trace: dict[str, object] | None = None  # --trace: the server's dump after the round


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, timeout: float, server: subprocess.Popen[bytes] | None) -> None:
    """Wait until ``GET /healthz`` answers 200 (the server loads its models first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before it answered")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, _ = request(base, "GET", "/healthz", None, timeout=2)
            if status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"{base}/healthz did not answer 200 within {timeout:.0f} s")


@contextlib.contextmanager
def started_server(
    project: Path, queue: int | None, log: Path, extra: list[str], trace: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Run `ragtune serve PROJECT` on a free loopback port; yields (base URL, pid). With
    ``trace`` (a folder), the server runs under :func:`serve_traced`."""
    port = free_port()
    launcher = [__file__, "serve-traced"] if trace else ["-m", "ragtune.cli"]
    command = [
        sys.executable,
        *launcher,
        "serve",
        str(project),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--queue", str(queue)] if queue else []),
        *extra,
    ]
    with log.open("wb") as out:
        env = {**os.environ, **({TRACE_ENV: str(trace)} if trace else {})}
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, 300, server)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def listening_pid(base: str) -> int | None:
    """The pid of the local process listening on the URL's port, if psutil can see it."""
    port = urllib.parse.urlsplit(base).port
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return conn.pid
    return None


def process_state(pid: int | None) -> ProcessState | None:
    """RSS, thread count and threads by name (Linux ``/proc``) of the server process."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        rss = proc.memory_info().rss / 2**20
        threads = proc.num_threads()
    except psutil.Error:
        return None
    names: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                names[(task / "comm").read_text().strip()] += 1
    return ProcessState(round(rss, 1), threads, dict(sorted(names.items())))


# -- tracing the server (--trace) ------------------------------------------------------------

TRACE_ENV = "RAGTUNE_LOAD_TRACE"
"""The folder the traced server writes its dumps to (``dump-N.json``, one per SIGUSR1)."""


def serve_traced(argv: list[str]) -> None:
    """Run `ragtune ARGV` (serve); each SIGUSR1 writes a dump of the Python threads (names,
    where each waits), the heap's growth by allocation site since the first dump and since the
    previous one, the object counts by type, and glibc's malloc statistics.

    tracemalloc starts at the first signal, once the models are loaded: traced from the start,
    importing torch and loading the models takes many minutes on two cores.
    """
    import gc
    import traceback
    import tracemalloc

    folder = Path(os.environ[TRACE_ENV])
    state: dict[str, object] = {"n": 0}

    def dump(signum: int, frame: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(12)
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        types = Counter(type(o).__name__ for o in gc.get_objects())
        baseline = state.setdefault("snapshot", snapshot)
        previous = state.get("previous", snapshot)
        state["previous"] = snapshot
        base_types = state.setdefault("types", types)
        assert isinstance(baseline, tracemalloc.Snapshot) and isinstance(base_types, Counter)
        assert isinstance(previous, tracemalloc.Snapshot)

        def grown(since: tracemalloc.Snapshot) -> list[dict[str, object]]:
            return [
                {"where": " < ".join(f"{Path(f.filename).name}:{f.lineno}"
                                     for f in list(d.traceback)[::-1][:5]),
                 "size_kb": round(d.size_diff / 1024, 1), "count": d.count_diff}
                for d in snapshot.compare_to(since, "traceback")[:12]
            ]  # fmt: skip

        frames = sys._current_frames()
        threads = []
        for thread in threading.enumerate():
            stack = traceback.extract_stack(frames[thread.ident]) if thread.ident in frames else []
            where = " < ".join(
                f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack[::-1][:3]
            )
            threads.append({"name": thread.name, "where": where})
        current, peak = tracemalloc.get_traced_memory()
        more = Counter({k: v - base_types.get(k, 0) for k, v in types.items()})
        payload = {
            "python_threads": threads,
            "traced_mb": round(current / 2**20, 1),
            "traced_peak_mb": round(peak / 2**20, 1),
            "grown_since_first": grown(baseline),
            "grown_since_previous": grown(previous),
            "types_grown_since_first": dict(more.most_common(10)),
            "malloc": _mallinfo(),
        }
        state["n"] = int(str(state["n"])) + 1
        path = folder / f"dump-{state['n']}.json"
        path.with_suffix(".tmp").write_text(json.dumps(payload, indent=1))
        path.with_suffix(".tmp").replace(path)

    def trim(signum: int, frame: object) -> None:
        """Give the heap's free memory back to the system (glibc's malloc_trim); what the RSS
        was before and after says how much of it was free memory malloc kept, not live data."""
        import ctypes

        before = _mallinfo()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        payload = {"before": before, "after": _mallinfo()}
        (folder / "trim.tmp").write_text(json.dumps(payload))
        (folder / "trim.tmp").replace(folder / "trim.json")

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)
    from ragtune.cli import app

    app(argv, prog_name="ragtune")


def _mallinfo() -> dict[str, float]:
    """glibc's malloc statistics in MB: heap obtained (arena + mmap) against bytes in use."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        _fields_ = [(n, ctypes.c_size_t) for n in names.split()]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    mb = 2**20
    return {
        "arena_mb": round(info.arena / mb, 1),
        "mmap_mb": round(info.hblkhd / mb, 1),
        "in_use_mb": round(info.uordblks / mb, 1),
        "free_mb": round(info.fordblks / mb, 1),
    }


def trace_dump(pid: int, folder: Path, number: int, timeout: float = 120) -> dict[str, object]:
    """Ask the traced server for dump ``number`` and wait for it."""
    path = folder / f"dump-{number}.json"
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return json.loads(path.read_text()) if path.exists() else {"error": "no dump"}


def trim_heap(pid: int, folder: Path, timeout: float = 60) -> dict[str, object] | None:
    """Ask the traced server to give its free heap back (malloc_trim); its RSS after."""
    path = folder / "trim.json"
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not path.exists():
        return None
    done = json.loads(path.read_text())
    state = process_state(pid)
    return {"rss_mb": state.rss_mb if state else None, "malloc_before": done["before"],
            "malloc_after": done["after"]}  # fmt: skip


def print_trace(trace: dict[str, object]) -> None:
    """The main lines of a dump."""
    threads = trace.get("python_threads", [])
    assert isinstance(threads, list)
    names = Counter(t["name"].split("_")[0].rstrip("-0123456789") for t in threads)
    heap = trace.get("traced_mb")
    print(f"  python threads: {len(threads)} {dict(names)}; traced heap {heap} MB; "
          f"malloc {trace.get('malloc')}")  # fmt: skip
    grown = trace.get("grown_since_previous", [])
    assert isinstance(grown, list)
    for item in grown[:6]:
        print(f"    +{item['size_kb']:>9} KB {item['count']:>+7}  {item['where']}")


# -- the clients -----------------------------------------------------------------------------


def request(
    base: str,
    method: str,
    path: str,
    body: dict[str, object] | None,
    *,
    timeout: float,
    conn: http.client.HTTPConnection | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; a connection passed in is reused (keep-alive)."""
    parts = urllib.parse.urlsplit(base)
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=timeout
        )
    data = json.dumps(body).encode() if body is not None else None
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        payload = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
    finally:
        if own:
            conn.close()


def search_path(base: str, headers: dict[str, str]) -> str | None:
    """The knowledge search route the server's OpenAPI schema offers, if any."""
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        status, _, payload = request(
            base, "GET", "/openapi.json", None, timeout=10, headers=headers
        )
        if status == 200:
            for path, ops in json.loads(payload).get("paths", {}).items():
                if path.startswith("/v1/knowledge") and "search" in path and "get" in ops:
                    return str(path)
    return None


@dataclass
class Mix:
    """What the clients send: weights per kind, and the request settings."""

    weights: dict[str, int]
    models: list[str]
    max_tokens: int
    search: str | None
    headers: dict[str, str]
    timeout: float

    def call(self, kind: str, rng: random.Random) -> tuple[str, str, dict[str, object] | None]:
        """(method, path, body) of one request of this kind."""
        question = rng.choice(QUESTIONS)
        if kind in ("chat", "stream"):
            body: dict[str, object] = {
                "model": rng.choice(self.models),
                "messages": [{"role": "user", "content": question}],
                "max_tokens": self.max_tokens,
                "stream": kind == "stream",
            }
            return "POST", "/v1/chat/completions", body
        if kind == "search":
            query = urllib.parse.urlencode({"q": question, "query": question, "k": 5})
            return "GET", f"{self.search}?{query}", None
        if kind == "models":
            return "GET", "/v1/models", None
        return "GET", "/healthz", None


def client(base: str, mix: Mix, until: float, seed: int, out: list[Sample]) -> None:
    """Send requests of the mix, one after another, until the deadline."""
    rng = random.Random(seed)
    kinds = [k for k, w in mix.weights.items() for _ in range(w)]
    parts = urllib.parse.urlsplit(base)
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < until:
        kind = rng.choice(kinds)
        method, path, body = mix.call(kind, rng)
        if conn is None:
            conn = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port, timeout=mix.timeout
            )
        started = time.perf_counter()
        try:
            status, headers, _ = request(
                base, method, path, body, timeout=mix.timeout, conn=conn, headers=mix.headers
            )
        except (OSError, http.client.HTTPException) as exc:
            out.append(Sample(kind, 0, time.perf_counter() - started, error=type(exc).__name__))
            conn.close()
            conn = None
            continue
        seconds = time.perf_counter() - started
        out.append(Sample(kind, status, seconds, retry_after="retry-after" in headers))
        if headers.get("connection", "").lower() == "close":
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0-100) of ``values``, in the same unit."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def run_round(
    number: int, base: str, pid: int | None, mix: Mix, clients: int, seconds: float
) -> RoundReport:
    """Run ``clients`` clients for ``seconds``; sample the server every second meanwhile."""
    start = process_state(pid)
    peak = start.rss_mb if start else None
    samples: list[list[Sample]] = [[] for _ in range(clients)]
    began = time.monotonic()
    until = began + seconds
    workers = [
        threading.Thread(
            target=client,
            args=(base, mix, until, 1000 * number + i, samples[i]),
            name=f"load-client-{i}",
            daemon=True,
        )
        for i in range(clients)
    ]
    for worker in workers:
        worker.start()
    while any(w.is_alive() for w in workers):
        time.sleep(1.0)
        now = process_state(pid)
        if now is not None and peak is not None:
            peak = max(peak, now.rss_mb)
    elapsed = time.monotonic() - began
    end = process_state(pid)
    if end is not None and peak is not None:
        peak = max(peak, end.rss_mb)
    every = [s for part in samples for s in part]
    endpoints = {}
    for kind in KINDS:
        mine = [s for s in every if s.kind == kind]
        if not mine:
            continue
        ms = [s.seconds * 1000 for s in mine if s.status == 200]
        endpoints[kind] = EndpointStats(
            requests=len(mine),
            per_second=round(len(mine) / elapsed, 2),
            p50_ms=_round(percentile(ms, 50)),
            p95_ms=_round(percentile(ms, 95)),
            p99_ms=_round(percentile(ms, 99)),
            max_ms=_round(max(ms) if ms else None),
            statuses=_count(str(s.status) for s in mine),
        )
    return RoundReport(
        round=number,
        clients=clients,
        seconds=round(elapsed, 1),
        requests=len(every),
        per_second=round(len(every) / elapsed, 2),
        statuses=_count(str(s.status) for s in every),
        busy_with_retry_after=sum(1 for s in every if s.status == 503 and s.retry_after),
        busy_without_retry_after=sum(1 for s in every if s.status == 503 and not s.retry_after),
        errors=_count(s.error for s in every if s.error),
        endpoints=endpoints,
        start=start,
        end=end,
        peak_rss_mb=peak,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _count(values: Iterator[str] | list[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


# -- the report ------------------------------------------------------------------------------


def print_round(report: RoundReport) -> None:
    """One round as a few lines of text."""
    print(
        f"round {report.round}: {report.clients} clients, {report.seconds} s, "
        f"{report.requests} requests, {report.per_second} req/s, statuses {report.statuses}"
        + (f", errors {report.errors}" if report.errors else "")
    )
    if report.busy_with_retry_after or report.busy_without_retry_after:
        print(
            f"  503: {report.busy_with_retry_after} with Retry-After, "
            f"{report.busy_without_retry_after} without"
        )
    print(
        f"  {'endpoint':<8} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}  statuses"
    )
    for kind, stats in report.endpoints.items():
        cells = [_cell(v) for v in (stats.p50_ms, stats.p95_ms, stats.p99_ms, stats.max_ms)]
        print(
            f"  {kind:<8} {stats.requests:>8} {stats.per_second:>7} "
            + " ".join(f"{c:>8}" for c in cells)
            + f"  {stats.statuses}"
        )
    if report.start and report.end:
        print(
            f"  server: RSS {report.start.rss_mb:.0f} -> {report.end.rss_mb:.0f} MB "
            f"(peak {report.peak_rss_mb:.0f}), threads {report.start.threads} -> "
            f"{report.end.threads} {report.end.thread_names}"
        )


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def parse_mix(text: str) -> dict[str, int]:
    """``chat=4,search=2,models=1,health=1`` as weights; unknown kinds are refused."""
    weights: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        if kind not in KINDS or not weight.isdigit():
            raise argparse.ArgumentTypeError(
                f"--mix {part!r}: give KIND=WEIGHT with KIND one of {', '.join(KINDS)}"
            )
        weights[kind] = int(weight)
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("--mix: give at least one kind a weight above 0")
    return weights


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the rounds, print the report; 1 if any request got no answer or a
    5xx other than 503 with Retry-After."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "project", nargs="?", type=Path, help="The project to serve (not with --url)."
    )
    parser.add_argument("--url", help="A running server's base URL, e.g. http://127.0.0.1:8000.")
    parser.add_argument(
        "--pid", type=int, help="With --url: the server's pid (default: whoever listens there)."
    )
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients (8).")
    parser.add_argument("--seconds", type=float, default=30.0, help="Seconds per round (30).")
    parser.add_argument("--rounds", type=int, default=1, help="Rounds in a row (1).")
    parser.add_argument(
        "--pause",
        type=float,
        default=5.0,
        help="Idle seconds between rounds, then memory is read again (5).",
    )
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=parse_mix("chat=3,stream=1,search=2,models=1,health=1"),
        help="Weights per kind of request (chat=3,stream=1,search=2,models=1,health=1).",
    )
    parser.add_argument(
        "--model",
        default="templates",
        help="The capabilities chat asks, comma-separated, one picked per request ('auto' routes "
        "by the question; default templates).",
    )
    parser.add_argument("--max-tokens", type=int, default=8, help="max_tokens of chat (8).")
    parser.add_argument("--queue", type=int, help="--queue of the server this script starts.")
    parser.add_argument(
        "--key",
        default=os.environ.get("RAGTUNE_LOAD_KEY"),
        help="A bearer key with read scope (RAGTUNE_LOAD_KEY).",
    )
    parser.add_argument("--timeout", type=float, default=150.0, help="Client timeout (150 s).")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="Run the server with tracemalloc and dump its Python threads, heap growth by "
        "allocation site and malloc statistics after each round (slower; not with --url).",
    )
    parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")
    args = parser.parse_args(argv)
    if args.trace and args.url:
        parser.error("--trace starts the server itself: give a PROJECT, not --url")
    if (args.url is None) == (args.project is None):
        parser.error("give a PROJECT to serve or --url of a running server (one of them)")
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1, --seconds above 0")

    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    trace: Path | None = None
    with contextlib.ExitStack() as stack:
        if args.url:
            base, pid = args.url.rstrip("/"), args.pid or listening_pid(args.url)
            wait_healthy(base, 30, None)
        else:
            work = Path(tempfile.mkdtemp(prefix="ragtune-load-"))
            log, trace = work / "serve.log", (work if args.trace else None)
            if not args.json:
                print(f"starting ragtune serve {args.project} (log: {log})", flush=True)
            # A TERM (timeout, CI) unwinds like Ctrl-C, so the server started here is stopped.
            previous = signal.signal(signal.SIGTERM, lambda n, frame: sys.exit(128 + n))
            stack.callback(signal.signal, signal.SIGTERM, previous)
            server = started_server(args.project, args.queue, log, [], trace)
            base, pid = stack.enter_context(server)
        search = search_path(base, headers)
        weights = dict(args.mix)
        notes = []
        if weights.get("search") and search is None:
            weights.pop("search")
            notes.append(
                "the server offers no knowledge search route: search requests skipped "
                "(chat retrieves through the same search)"
            )
        models = [m.strip() for m in args.model.split(",") if m.strip()]
        mix = Mix(weights, models, args.max_tokens, search, headers, args.timeout)
        initial = process_state(pid)
        traces = [trace_dump(pid, trace, 1)] if trace else []
        if traces and not args.json:
            print_trace(traces[0])
        if not args.json:
            for note in notes:
                print(f"note: {note}")
            if initial:
                print(f"server pid {pid}: RSS {initial.rss_mb:.0f} MB, {initial.threads} threads")
        rounds = []
        for number in range(1, args.rounds + 1):
            report = run_round(number, base, pid, mix, args.clients, args.seconds)
            if trace:
                report.trace = trace_dump(pid, trace, number + 1)
            rounds.append(report)
            if not args.json:
                print_round(report)
                if report.trace:
                    print_trace(report.trace)
            if number < args.rounds:
                time.sleep(args.pause)
        time.sleep(args.pause)
        settled = process_state(pid)
        trimmed = trim_heap(pid, trace) if trace else None
        if trimmed and not args.json:
            print(f"after malloc_trim(0): RSS {trimmed['rss_mb']:.0f} MB; malloc "
                  f"{trimmed['malloc_before']} -> {trimmed['malloc_after']}")  # fmt: skip
    bad = sum(
        count
        for r in rounds
        for status, count in r.statuses.items()
        if status == "0" or (status.startswith("5") and status != "503")
    ) + sum(r.busy_without_retry_after for r in rounds)
    if args.json:
        payload = {
            "url": base,
            "pid": pid,
            "mix": weights,
            "model": args.model,
            "max_tokens": args.max_tokens,
            "notes": notes,
            "initial": asdict(initial) if initial else None,
            "initial_trace": traces[0] if traces else None,
            "rounds": [asdict(r) for r in rounds],
            "settled": asdict(settled) if settled else None,
            "trimmed": trimmed,
            "failed_requests": bad,
        }
        print(json.dumps(payload, indent=2))
    else:
        if settled:
            print(
                f"after {args.pause:.0f} s idle: RSS {settled.rss_mb:.0f} MB, "
                f"{settled.threads} threads"
            )
        print(f"failed requests (no answer, 5xx, 503 without Retry-After): {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-traced"]:
        serve_traced(sys.argv[2:])
    else:
        sys.exit(main())

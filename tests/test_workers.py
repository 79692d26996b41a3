"""``ragtune serve --workers N``: several processes, one truth.

The slow test starts ``ragtune serve --workers 2`` as its own process (the way users run it) on
each store backend and checks that requests land on both workers, that a document written
through one worker is served by every worker, that an adapter reload reaches every worker, that
``/metrics`` adds the workers up, and that a killed worker's live gauges leave ``/metrics``.
Which worker answered is read from ``/metrics`` itself: ``ragtune_worker_requests`` and
``ragtune_adapter_trained_timestamp_seconds`` keep one series per worker pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from ragtune.cli import app as cli
from ragtune.errors import RagtuneError
from ragtune.examples import example_path
from ragtune.generate.backend import BackendError
from ragtune.project import load_project
from ragtune.runtime.runtime import Runtime
from ragtune.server.reloads import RELOADS, AdapterReloads
from ragtune.server.workers import queue_share

READ, WRITE = "read-key-for-the-workers", "write-key-for-the-workers"
BREACH = "How fast must a data breach be notified?"
CHAT = "/v1/chat/completions"


# -- the parts, in one process -----------------------------------------------------------------


def test_the_queue_is_split_between_the_workers() -> None:
    assert queue_share(8, 2) == 4
    assert queue_share(8, 3) == 2  # never more than --queue in all
    with pytest.raises(RagtuneError, match=r"--queue 2 is less than --workers 3.*--queue 3"):
        queue_share(2, 3)


def test_serve_refuses_fewer_queue_places_than_workers(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    folder = example_project(tmp_path / "cr", embedder="hashing")
    result = CliRunner().invoke(cli, ["serve", str(folder), "--workers", "4", "--queue", "2"])
    assert result.exit_code == 2
    assert "--queue 2 is less than --workers 4" in result.output
    help_text = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200).output
    assert "--workers" in help_text and "memory x N" in help_text


class CountingBackend:
    """A stand-in backend that counts its reloads (and can refuse them)."""

    name = "test:counting"
    is_remote = False
    model_sha256 = None

    def __init__(self) -> None:
        self.reloads: list[str] = []
        self.refuse = False

    def generate(self, messages: Any, params: Any = None) -> Any:
        raise NotImplementedError

    def stream(self, messages: Any, params: Any = None) -> Any:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def reload_adapter(self, name: str) -> str | None:
        if self.refuse:
            raise BackendError(f"adapter {name!r}: the new weights are damaged")
        self.reloads.append(name)
        return "2026-12-01T10:00:00+00:00"

    def close(self) -> None:
        pass


def _shipped_reader_date() -> str:
    """When the example's shipped reader was trained (its manifest's ``created_at``)."""
    manifest = example_path("contract-review") / "adapters" / "templates" / "ragtune.json"
    return str(json.loads(manifest.read_text())["created_at"])


def test_a_reload_in_one_worker_reaches_the_other(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """Two workers' reload trackers over one project, as two processes would hold them."""
    folder = example_project(tmp_path / "cr", embedder="hashing")
    adapter = folder / ".ragtune" / "adapters" / "templates"
    adapter.parent.mkdir(parents=True)
    adapter.symlink_to(folder / "adapters" / "templates", target_is_directory=True)
    project = load_project(folder)
    backends = CountingBackend(), CountingBackend()
    runtimes = [Runtime(project, backend=b) for b in backends]
    served: list[tuple[int, str, str | None]] = []
    trackers = [
        AdapterReloads(folder / ".ragtune" / RELOADS, lambda n, c, w=w: served.append((w, n, c)))
        for w in (0, 1)
    ]
    one, two = trackers
    try:
        # First use: the backend loads the adapter itself; the version is read from its manifest.
        two.catch_up(runtimes[1], "templates")
        assert backends[1].reloads == []
        assert served == [(1, "templates", _shipped_reader_date())]
        # A reload through the first worker is recorded; the second reloads before its next
        # generation with that adapter, once.
        assert one.reload(backends[0], "templates") == "2026-12-01T10:00:00+00:00"
        assert (folder / ".ragtune" / RELOADS / "templates.json").is_file()
        assert backends[0].reloads == ["templates"]
        two.catch_up(runtimes[1], "templates")
        two.catch_up(runtimes[1], "templates")
        one.catch_up(runtimes[0], "templates")  # its own reload: nothing to do
        assert backends[1].reloads == ["templates"] and backends[0].reloads == ["templates"]
        assert served[1:] == [(0, "templates", "2026-12-01T10:00:00+00:00"),
                              (1, "templates", "2026-12-01T10:00:00+00:00")]  # fmt: skip
        # A reload that fails leaves no record: the other worker keeps what it serves.
        record = (folder / ".ragtune" / RELOADS / "templates.json").read_bytes()
        backends[0].refuse = True
        with pytest.raises(BackendError, match="damaged"):
            one.reload(backends[0], "templates")
        assert (folder / ".ragtune" / RELOADS / "templates.json").read_bytes() == record
        two.catch_up(runtimes[1], "templates")
        assert backends[1].reloads == ["templates"]
        assert not list((folder / ".ragtune" / RELOADS).glob(".*.tmp"))
    finally:
        for runtime in runtimes:
            runtime.close()


def test_two_reloads_at_once_take_turns_and_the_last_one_is_served_everywhere(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """A reload in each of two workers at the same time: the second waits for the first to
    record its reload, so the record left is the last reload's and the first worker reloads
    once more - no worker keeps a version older than the last reload read."""
    import threading

    folder = example_project(tmp_path / "cr", embedder="hashing")
    project = load_project(folder)
    events: list[str] = []
    inside = threading.Event()

    class Slow(CountingBackend):
        def __init__(self, who: str, pause: float) -> None:
            super().__init__()
            self.who, self.pause = who, pause

        def reload_adapter(self, name: str) -> str | None:
            events.append(f"{self.who} starts")
            inside.set()
            time.sleep(self.pause)
            events.append(f"{self.who} ends")
            return super().reload_adapter(name)

    first, second = Slow("first", 0.3), Slow("second", 0.0)
    runtime = Runtime(project, backend=first)
    trackers = [AdapterReloads(folder / ".ragtune" / RELOADS) for _ in (first, second)]
    try:
        thread = threading.Thread(target=trackers[0].reload, args=(first, "templates"))
        thread.start()
        inside.wait(5)
        trackers[1].reload(second, "templates")
        thread.join()
        assert events == ["first starts", "first ends", "second starts", "second ends"]
        record = json.loads((folder / ".ragtune" / RELOADS / "templates.json").read_text())
        assert record["pid"] == os.getpid() and record["token"] == trackers[1]._tokens["templates"]
        trackers[0].catch_up(runtime, "templates")  # its record was replaced: once more
        assert first.reloads == ["templates", "templates"] and second.reloads == ["templates"]
    finally:
        runtime.close()


# -- ragtune serve --workers 2, a real process -------------------------------------------------


def call(
    method: str, url: str, body: bytes | dict[str, Any] | None = None, key: str | None = READ
) -> tuple[int, bytes]:
    """One HTTP request on a connection of its own; (status, body)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method)
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``/metrics`` as samples by name: [(labels, value)]."""
    status, body = call("GET", f"{url}/metrics")
    assert status == 200, body
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def per_worker(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
               **labels: str) -> dict[int, float]:  # fmt: skip
    """A per-pid gauge's value by worker pid (the series matching ``labels``)."""
    return {
        int(found["pid"]): value
        for found, value in samples.get(name, [])
        if all(found.get(k) == v for k, v in labels.items())
    }


def total(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        value
        for found, value in samples.get(name, [])
        if all(found.get(k) == v for k, v in labels.items())
    )


def ask(url: str) -> dict[str, Any]:
    status, body = call(
        "POST",
        f"{url}{CHAT}",
        {"model": "templates", "messages": [{"role": "user", "content": BREACH}], "max_tokens": 1},
    )
    assert status == 200, body
    return dict(json.loads(body))


def until_every_worker(
    url: str, workers: int, check: Callable[[dict[str, Any]], None], seconds: float = 120
) -> set[int]:
    """Ask in rounds of concurrent requests, each answer passing ``check``, until every worker
    has answered a chat request since the call; returns the workers' pids."""
    before = per_worker(scrape(url), "ragtune_worker_requests", endpoint=CHAT)
    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(4) as pool:
        while True:
            for answer in pool.map(lambda _: ask(url), range(4)):
                check(answer)
            now = per_worker(scrape(url), "ragtune_worker_requests", endpoint=CHAT)
            answered = {pid for pid, n in now.items() if n > before.get(pid, 0)}
            if len(answered) == workers:
                return answered
            assert time.monotonic() < deadline, f"only workers {answered} answered: {now}"


@contextmanager
def serving(folder: Path, tmp: Path, workers: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``ragtune serve FOLDER --workers N`` behind keys, until the block ends; its temporary
    files go to ``tmp``."""
    keys = tmp / "keys.txt"
    keys.write_text(f"{READ} read\n{WRITE} write\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ragtune = str(Path(sys.executable).parent / "ragtune")
    log = tmp.parent / "serve.log"  # a file, not a pipe: a full pipe would stall the workers
    with log.open("w") as out:
        process = subprocess.Popen(
            [ragtune, "serve", str(folder), "--port", str(port), "--keys-file", str(keys),
             "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TMPDIR": str(tmp)},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _up(url):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"ragtune serve did not come up: {log.read_text()}"
            time.sleep(0.5)
        yield url, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2):
            return True
    except OSError:
        return False


def _project(copy: Callable[..., Path], dest: Path, store: str) -> Path:
    """The example with the hashing embedder, its knowledge synced into ``store`` and its
    shipped reader adapter installed and serving the templates (`answer: generate`)."""
    return copy(dest, embedder="hashing", store=None if store == "sqlite" else store, sync=True,
                install=("templates",), shared_models=True, answer="generate")  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> str:
    """Where the knowledge lives: the project's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite"
    return str(request.getfixturevalue("fresh_database"))


@pytest.mark.slow
def test_two_workers_serve_one_truth(
    tmp_path: Path,
    store: str,
    example_project: Callable[..., Path],
    base_model: object,  # fills the shared model cache the workers load from
) -> None:
    folder = _project(example_project, tmp_path / "cr", store)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with serving(folder, tmp, workers=2) as (url, process):
        # The keys reached the workers; the queue is split (4 + 4), once both workers are up
        # (the port answers as soon as the first is).
        assert call("GET", f"{url}/v1/models", key=None)[0] == 401
        deadline = time.monotonic() + 120
        while (limit := total(scrape(url), "ragtune_queue_limit")) != 8:
            assert limit == 4 and time.monotonic() < deadline, limit
            time.sleep(0.2)

        # Requests land on both workers, each answering from the store as synced.
        def original(answer: dict[str, Any]) -> None:
            texts = [c["text"] for c in answer["citations"] if c["document"] == "knowledge/dpa.md"]
            assert any("seventy-two (72)" in t for t in texts), texts

        pids = until_every_worker(url, 2, original)

        # A document written through one worker is served by every worker on its next request.
        dpa = (folder / "knowledge" / "dpa.md").read_text()
        changed = dpa.replace("seventy-two (72)", "twenty-four (24)")
        status, body = call(
            "PUT", f"{url}/v1/knowledge/documents/knowledge/dpa.md", changed.encode(), WRITE
        )
        assert status == 200, body
        assert json.loads(body)["sync"]["chunks_embedded"] >= 1

        def updated(answer: dict[str, Any]) -> None:
            cited = [c for c in answer["citations"] if c["document"] == "knowledge/dpa.md"]
            assert cited and all(c["version"] == 2 for c in cited), cited
            texts = [c["text"] for c in cited]
            assert any("twenty-four (24)" in t for t in texts), texts
            assert not any("seventy-two" in t for t in texts), texts

        assert until_every_worker(url, 2, updated) == pids

        # Both workers serve the shipped reader adapter; a reload (after a retrain: here the
        # manifest says it was trained later) through one worker reaches every worker.
        trained = "adapter", "templates"
        shipped = per_worker(scrape(url), "ragtune_adapter_trained_timestamp_seconds",
                             **dict([trained]))  # fmt: skip
        first = datetime.fromisoformat(_shipped_reader_date()).timestamp()
        assert shipped == {pid: first for pid in pids}
        manifest = folder / ".ragtune/adapters/templates/ragtune.json"
        manifest.write_text(
            manifest.read_text().replace(_shipped_reader_date(), "2026-12-01T10:00:00+00:00")
        )
        status, body = call("POST", f"{url}/v1/adapters/templates/reload", key=WRITE)
        assert status == 200, body
        assert json.loads(body)["created_at"] == "2026-12-01T10:00:00+00:00"
        later = datetime.fromisoformat("2026-12-01T10:00:00+00:00").timestamp()
        deadline = time.monotonic() + 120
        while True:
            until_every_worker(url, 2, lambda answer: None)
            now = per_worker(scrape(url), "ragtune_adapter_trained_timestamp_seconds",
                             **dict([trained]))  # fmt: skip
            if now == {pid: later for pid in pids}:
                break
            assert time.monotonic() < deadline, now

        # /metrics adds the workers up: the chat requests counted over both workers are those
        # each worker counted.
        samples = scrape(url)
        chats = total(samples, "ragtune_requests_total", endpoint=CHAT, status="200")
        by_worker = per_worker(samples, "ragtune_worker_requests", endpoint=CHAT)
        assert set(by_worker) == pids
        assert chats == sum(by_worker.values()) >= 12
        assert all(n > 0 for n in by_worker.values())

        # A killed worker is replaced; its live gauges leave /metrics, its counts stay.
        killed = min(pids)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while True:
            samples = scrape(url)
            live = set(per_worker(samples, "ragtune_worker_requests"))
            if killed not in live and len(live) == 2:
                break
            assert time.monotonic() < deadline, live
            time.sleep(0.2)
        assert total(samples, "ragtune_requests_total", endpoint=CHAT, status="200") == chats
        assert process.poll() is None
    assert process.returncode is not None
    assert list(tmp.iterdir()) == [tmp / "keys.txt"]  # the metrics folder and settings are gone

"""scripts/load.py: what it counts (statuses, 503 with and without Retry-After, latencies, the
server's memory and threads) and its exit code, against a small stand-in server; and, slow, one
short round against a real `ragtune serve` of the example."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "load.py"


@pytest.fixture(scope="module")
def load() -> ModuleType:
    """scripts/load.py as a module."""
    spec = importlib.util.spec_from_file_location("ragtune_load_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def stand_in(busy: Callable[[], dict[str, str] | None]) -> type[BaseHTTPRequestHandler]:
    """A server answering like `ragtune serve`: chat is 200, or 503 with the headers ``busy``
    gives (None: not busy)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/openapi.json":
                self.answer(200, {"paths": {"/v1/chat/completions": {"post": {}}}})
            else:
                self.answer(200, {"status": "ok", "data": []})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert body["max_tokens"] == 4 and body["model"] in ("templates", "rates")
            headers = busy()
            if headers is None:
                self.answer(200, {"choices": [{"message": {"content": "72 hours"}}]})
            else:
                self.answer(503, {"error": {"message": "queue full"}}, headers)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[], dict[str, str] | None]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(busy: Callable[[], dict[str, str] | None]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), stand_in(busy))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run(load: ModuleType, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = load.main(["--url", url, "--pid", str(os.getpid()), "--clients", "3", "--seconds",
                      "1", "--rounds", "2", "--pause", "0", "--max-tokens", "4", "--model",
                      "templates,rates", "--json"])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def test_counts_statuses_latencies_and_the_server(
    load: ModuleType, serve: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    turns = itertools.cycle([None, {"Retry-After": "1"}])
    code, report = run(load, serve(lambda: next(turns)), capsys)
    assert code == 0  # 503 with Retry-After is the queue saying so: not a failure
    assert report["failed_requests"] == 0
    assert "search requests skipped" in report["notes"][0]
    assert len(report["rounds"]) == 2
    for round_ in report["rounds"]:
        assert round_["requests"] > 10 and round_["per_second"] > 0
        assert set(round_["statuses"]) == {"200", "503"}
        assert round_["busy_with_retry_after"] == round_["statuses"]["503"]
        assert round_["busy_without_retry_after"] == 0
        chat = round_["endpoints"]["chat"]
        assert chat["statuses"]["503"] > 0 and 0 < chat["p50_ms"] <= chat["p99_ms"]
        assert "search" not in round_["endpoints"]
        assert round_["start"]["rss_mb"] > 0 and round_["end"]["threads"] >= 1


def test_a_503_without_retry_after_fails(
    load: ModuleType, serve: Callable, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run(load, serve(lambda: {}), capsys)
    assert code == 1
    assert report["failed_requests"] == sum(r["busy_without_retry_after"] for r in report["rounds"])
    assert report["failed_requests"] > 0


def test_percentile_and_mix(load: ModuleType) -> None:
    assert load.percentile([], 50) is None
    values = [float(v) for v in range(1, 101)]
    assert (load.percentile(values, 50), load.percentile(values, 99)) == (50.0, 99.0)
    assert load.parse_mix("chat=2,health=1") == {"chat": 2, "health": 1}
    with pytest.raises(Exception, match="KIND=WEIGHT"):
        load.parse_mix("chatt=2")


@pytest.mark.slow
def test_one_round_against_ragtune_serve(
    load: ModuleType,
    example_project: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = example_project(tmp_path / "review", embedder="hashing", sync=True)
    mix = "chat=1,models=1,health=1"
    code = load.main([str(folder), "--clients", "2", "--seconds", "3", "--pause", "0",
                      "--max-tokens", "2", "--mix", mix, "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    (round_,) = report["rounds"]
    assert set(round_["statuses"]) == {"200"}
    assert round_["endpoints"]["chat"]["requests"] >= 1
    assert report["initial"]["rss_mb"] > 100 and report["initial"]["threads"] >= 1

"""The HTTP server, over a real socket: uvicorn in a thread, the ``openai`` client and plain HTTP.

Two servers per module:

- a fast one (the deterministic hashing embedder and a stand-in backend whose generation can be
  held at a gate) for access, errors, limits, the queue and document paths: none of that needs
  a language model, and the gate makes "a request in flight" exact rather than a race;
- a slow one (all-MiniLM-L6-v2 and the real SmolLM2 base model) for completions, streaming, a
  knowledge change served without a restart, and the remote backend talking to this server.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn
from typer.testing import CliRunner

from ragtune.cli import app as cli_app
from ragtune.examples import example_path
from ragtune.generate.backend import (
    DEFAULT_PARAMS,
    BackendError,
    Generation,
    GenerationParams,
    Stream,
)
from ragtune.project import load_project
from ragtune.runtime.runtime import Runtime
from ragtune.server import ApiKeys, AuthError, ServerSettings, create_app, load_keys
from ragtune.server.auth import is_loopback, parse_keys_env, parse_keys_file
from ragtune.server.limits import GenerationQueue, QueueFull

WRITE = "write-key-7f3a9c"
READ = "read-key-51d2e0"
KEYS = ApiKeys({WRITE: "write", READ: "read"})
BREACH = "Within how many hours must Provider notify Customer of a Personal Data Breach?"


# -- helpers -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> dict[str, Any]:
        body = self.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        return body["error"]  # type: ignore[no-any-return]


def call(
    method: str,
    url: str,
    body: Any = None,
    key: str | None = WRITE,
    content_type: str = "application/json",
) -> Reply:
    """One HTTP request with the standard library; error statuses are returned, not raised."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Reply(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read().decode())


def ask(question: str, model: str = "templates", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": question}], **extra}


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            if call("GET", f"{url}/healthz", key=None).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not answer /healthz within 30 s"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


class GatedBackend:
    """A stand-in backend: a fixed answer citing passage 1, held while ``gate`` is closed."""

    name = "test:gated"
    is_remote = False
    model_sha256 = None

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.finished = threading.Event()
        self.closed = threading.Event()  # a stream's generator has ended
        self.endless = False

    def _wait(self) -> None:
        self.entered.set()
        assert self.gate.wait(timeout=60)

    def generate(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Generation:
        self._wait()
        self.finished.set()
        return Generation("See [1].", 42, 3, "stop", "base", 0.0)

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Stream:
        def pieces() -> Any:
            self._wait()
            try:
                yield "See "
                yield "[1]."
                while self.endless:  # until the reader closes the stream
                    time.sleep(0.01)
                    yield "."
            finally:
                self.closed.set()
            return Generation("See [1].", 42, 3, "stop", "base", 0.0)

        return Stream(pieces())

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def reload_adapter(self, name: str) -> str | None:
        raise BackendError(f"the backend {self.name} cannot reload adapters")

    def close(self) -> None:
        pass


# -- the fast server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fast_project(
    tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]
) -> Path:
    return example_project(
        tmp_path_factory.mktemp("fast") / "cr", embedder="hashing", sync=True, answer="generate"
    )


@pytest.fixture(scope="module")
def gated() -> GatedBackend:
    return GatedBackend()


@pytest.fixture(scope="module")
def fast_runtime(fast_project: Path, gated: GatedBackend) -> Iterator[Runtime]:
    runtime = Runtime(load_project(fast_project), backend=gated)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def fast(fast_runtime: Runtime) -> Iterator[str]:
    settings = ServerSettings(keys=KEYS, queue_depth=1, max_tokens_limit=64, max_body_bytes=16_384)
    with serving(create_app(fast_runtime, settings)) as url:
        yield url


@pytest.fixture
def gate_open(gated: GatedBackend) -> Iterator[GatedBackend]:
    """The gated backend, its gate open again afterwards whatever the test did."""
    gated.entered.clear()
    gated.finished.clear()
    gated.closed.clear()
    yield gated
    gated.endless = False
    gated.gate.set()


def test_health_needs_no_key_and_metrics_need_one(fast: str) -> None:
    assert call("GET", f"{fast}/healthz", key=None).json()["status"] == "ok"
    assert call("GET", f"{fast}/metrics", key=None).status == 401
    metrics = call("GET", f"{fast}/metrics", key=READ)
    assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    assert 'ragtune_requests_total{endpoint="/healthz",status="200"}' in metrics.text
    assert "ragtune_queue_limit 1.0" in metrics.text


def test_a_missing_or_wrong_key_is_401_and_a_read_key_cannot_write(
    fast: str, fast_project: Path
) -> None:
    missing = call("POST", f"{fast}/v1/chat/completions", ask("hi"), key=None)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.error["type"] == "authentication_error"
    assert "Authorization: Bearer" in missing.error["message"]
    wrong = call("POST", f"{fast}/v1/chat/completions", ask("hi"), key=WRITE + "x")
    assert wrong.status == 401 and wrong.error["code"] == "invalid_api_key"
    for method, path in [
        ("PUT", "/v1/knowledge/documents/knowledge/x.md"),
        ("DELETE", "/v1/knowledge/documents/knowledge/dpa.md"),
        ("POST", "/v1/adapters/risk_flags/reload"),
    ]:
        refused = call(method, f"{fast}{path}", b"# X\n\ntext" if method == "PUT" else None, READ)
        assert refused.status == 403, (method, path, refused.text)
        assert "write scope" in refused.error["message"]
    assert not (fast_project / "knowledge" / "x.md").exists()
    assert (fast_project / "knowledge" / "dpa.md").is_file()


def test_a_read_key_asks_and_gets_an_openai_completion(fast: str, gate_open: GatedBackend) -> None:
    client = openai.OpenAI(base_url=f"{fast}/v1", api_key=READ, max_retries=0)
    answer = client.chat.completions.create(
        model="templates",
        messages=[
            {"role": "system", "content": "replaced by the capability's instructions"},
            {"role": "user", "content": "Which law governs the NDA?"},
            {"role": "assistant", "content": "Delaware law [1]."},
            {"role": "user", "content": BREACH},
        ],
        max_tokens=8,
    )
    assert answer.object == "chat.completion" and answer.model == "templates"
    assert answer.choices[0].message.content == "See [1]."
    assert answer.usage is not None and answer.usage.total_tokens == 45
    extra = answer.model_extra or {}
    assert extra["route"]["capability"] == "templates" and extra["route"]["how"] == "named"
    assert extra["citations"][0]["cited"] is True and extra["citations"][0]["text"]
    assert {"route", "retrieve", "generate", "total"} <= set(extra["timings"])


def test_models_are_the_capabilities_with_their_strategy(fast: str) -> None:
    client = openai.OpenAI(base_url=f"{fast}/v1", api_key=READ, max_retries=0)
    models = {m.id: m.model_extra or {} for m in client.models.list()}
    assert list(models) == [
        "templates",
        "rates",
        "risk_flags",
        "clause_summary",
        "playbook",
        "counterparties",
    ]
    assert models["templates"]["strategy"] == "retrieval"
    assert models["clause_summary"]["strategy"] == "few-shot"
    assert models["risk_flags"]["strategy"] == "prompt"  # lora, but no adapter trained yet


def test_an_unknown_model_is_404_naming_the_capabilities(fast: str) -> None:
    client = openai.OpenAI(base_url=f"{fast}/v1", api_key=READ, max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="template", messages=[{"role": "user", "content": "hi"}]
        )
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "Did you mean 'templates'?" in error["message"]
    assert "clause_summary" in error["message"] and "'auto'" in error["message"]


def test_bad_requests_are_400_or_422_naming_the_field(fast: str) -> None:
    url = f"{fast}/v1/chat/completions"
    bad_json = call("POST", url, b'{"model": "templates", "messages": [')
    assert bad_json.status == 400 and bad_json.error["code"] == "invalid_json"
    assert "not valid JSON" in bad_json.error["message"]
    missing = call("POST", url, {"model": "templates"})
    assert missing.status == 400 and missing.error["param"] == "messages"
    no_user = call(
        "POST", url, {"model": "templates", "messages": [{"role": "system", "content": "x"}]}
    )
    assert no_user.status == 400 and "no user message" in no_user.error["message"]
    wrong_type = call("POST", url, ask("hi", temperature="hot"))
    assert wrong_type.status == 422 and wrong_type.error["param"] == "temperature"
    assert "temperature" in wrong_type.error["message"]
    form = call("POST", url, b"model=templates", content_type="application/x-www-form-urlencoded")
    assert form.status == 400 and "application/json" in form.error["message"]
    unknown_route = call("GET", f"{fast}/v2/chat")
    assert unknown_route.status == 404 and "/v1/chat/completions" in unknown_route.error["message"]


def test_max_tokens_above_the_limit_is_refused_with_the_limit(fast: str) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        over = call("POST", f"{fast}/v1/chat/completions", ask("hi", **{field: 65}))
        assert over.status == 400 and over.error["param"] == field
        assert "limit of 64" in over.error["message"]


def test_a_body_over_the_limit_is_413_and_writes_nothing(fast: str, fast_project: Path) -> None:
    big = b"# Big\n\n" + b"word " * 4000
    refused = call("PUT", f"{fast}/v1/knowledge/documents/knowledge/big.md", big)
    assert refused.status == 413 and refused.error["code"] == "body_too_large"
    assert "16384 bytes" in refused.error["message"]
    assert not (fast_project / "knowledge" / "big.md").exists()


def test_document_paths_outside_the_sources_are_refused(fast: str, fast_project: Path) -> None:
    before = sorted(p.relative_to(fast_project) for p in fast_project.rglob("*") if p.is_file())
    cases = {
        "../escape.md": (400, "'..'"),
        "knowledge/%2e%2e/%2e%2e/escape.md": (400, "'..'"),
        "/etc/passwd.md": (400, "absolute"),
        ".ragtune/knowledge.md": (400, "hidden"),
        "tools/counterparties.py": (400, "suffix '.py'"),
        "behavior/notes.md": (403, "templates: knowledge/"),
        "ragtune.yaml": (400, "suffix '.yaml'"),
        "knowledge/new.md?capability=playbook": (403, "capability 'playbook'"),
        "knowledge/new.md?capability=nope": (404, "capabilities: templates"),
    }
    for path, (status, words) in cases.items():
        refused = call("PUT", f"{fast}/v1/knowledge/documents/{path}", b"# X\n\nsome text\n")
        assert refused.status == status, (path, refused.text)
        assert words in refused.error["message"], (path, refused.error)
    after = sorted(p.relative_to(fast_project) for p in fast_project.rglob("*") if p.is_file())
    assert [p for p in after if p.parts[0] != ".ragtune"] == [
        p for p in before if p.parts[0] != ".ragtune"
    ]


def _sources(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.text
    return [c["document"] for c in reply.json()["citations"]]


def test_put_then_delete_a_document_adds_then_removes_its_passages(
    fast: str, fast_project: Path, gate_open: GatedBackend
) -> None:
    question = ask("What does the zebra crossing clause require?")
    url = f"{fast}/v1/knowledge/documents/knowledge/zebra.md"
    text = (
        "# Zebra Addendum\n\n## 1. Zebra crossing\n\nThe zebra crossing clause requires audits.\n"
    )
    created = call("PUT", url, text.encode())
    assert created.status == 201, created.text
    body = created.json()
    assert body["action"] == "created" and body["capabilities"] == ["templates"]
    assert body["sync"]["chunks_embedded"] >= 1
    assert body["sync"]["documents"][0]["path"] == "knowledge/zebra.md"
    assert (fast_project / "knowledge" / "zebra.md").read_text() == text
    assert "knowledge/zebra.md" in _sources(call("POST", f"{fast}/v1/chat/completions", question))

    removed = call("DELETE", url)
    assert removed.status == 200 and removed.json()["action"] == "deleted"
    assert removed.json()["sync"]["documents"][0]["status"] == "deleted"
    assert not (fast_project / "knowledge" / "zebra.md").exists()
    assert "knowledge/zebra.md" not in _sources(
        call("POST", f"{fast}/v1/chat/completions", question)
    )
    again = call("DELETE", url)
    assert again.status == 404 and "nothing to delete" in again.error["message"]


def test_a_document_the_sync_cannot_read_is_refused_and_put_back(
    fast: str, fast_project: Path
) -> None:
    rates = fast_project / "tables" / "rates.csv"
    original = rates.read_bytes()
    broken = call("PUT", f"{fast}/v1/knowledge/documents/tables/rates.csv", b"\xff\xfe\x00oops")
    assert broken.status == 400 and "UTF-8" in broken.error["message"]
    assert rates.read_bytes() == original
    not_pdf = call("PUT", f"{fast}/v1/knowledge/documents/knowledge/scan.pdf", b"not a PDF")
    assert not_pdf.status == 422 and not_pdf.error["code"] == "unreadable_document"
    assert "knowledge/scan.pdf cannot be indexed" in not_pdf.error["message"]
    assert not (fast_project / "knowledge" / "scan.pdf").exists()
    empty = call("PUT", f"{fast}/v1/knowledge/documents/knowledge/dpa.md", b"  \n")
    assert empty.status == 400 and "DELETE" in empty.error["message"]


def test_a_full_queue_answers_503_with_retry_after(fast: str, gate_open: GatedBackend) -> None:
    gate_open.gate.clear()
    url = f"{fast}/v1/chat/completions"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(call, "POST", url, ask(BREACH))
        assert gate_open.entered.wait(30), "the first request never reached the backend"
        busy = call("POST", url, ask(BREACH))
        assert busy.status == 503 and busy.error["code"] == "queue_full"
        assert int(busy.headers["Retry-After"]) >= 1
        streamed = call("POST", url, ask(BREACH, stream=True))
        assert streamed.status == 503  # a stream takes a place in the same queue
        gate_open.gate.set()
        assert first.result(timeout=60).status == 200
    assert call("POST", url, ask(BREACH)).status == 200  # the place was given back


def test_the_time_limit_answers_504_and_keeps_the_place_until_done(
    fast_runtime: Runtime, gate_open: GatedBackend
) -> None:
    settings = ServerSettings(keys=KEYS, timeout_s=0.5, queue_depth=2)
    with serving(create_app(fast_runtime, settings)) as url:
        gate_open.gate.clear()
        started = time.monotonic()
        late = call("POST", f"{url}/v1/chat/completions", ask(BREACH))
        assert late.status == 504 and "limit of 0.5 s" in late.error["message"]
        assert time.monotonic() - started < 10
        # The model is still busy with it: the queue says so until it has finished.
        assert "ragtune_queue_depth 1.0" in call("GET", f"{url}/metrics").text
        gate_open.gate.set()
        assert gate_open.finished.wait(30)
        _wait_for_idle(url)


def _wait_for_idle(url: str) -> None:
    deadline = time.monotonic() + 15
    while "ragtune_queue_depth 0.0" not in call("GET", f"{url}/metrics").text:
        assert time.monotonic() < deadline, "the queue place was never given back"
        time.sleep(0.05)


def test_a_stream_cut_by_the_time_limit_ends_with_an_error_event(
    fast_runtime: Runtime, gate_open: GatedBackend
) -> None:
    settings = ServerSettings(keys=KEYS, timeout_s=0.5)
    gate_open.endless = True  # a generation that never ends by itself
    with serving(create_app(fast_runtime, settings)) as url:
        reply = call("POST", f"{url}/v1/chat/completions", ask(BREACH, stream=True))
        assert reply.status == 200  # the stream had begun: the error comes as an event
        events = [e.removeprefix("data: ") for e in reply.text.split("\n\n") if e]
        assert json.loads(events[0])["choices"][0]["delta"]["role"] == "assistant"
        assert json.loads(events[1])["choices"][0]["delta"]["content"] == "See "
        assert json.loads(events[-1])["error"]["code"] == "timeout" and "[DONE]" not in events
        assert gate_open.closed.wait(10), "the generation went on after the time limit"
        _wait_for_idle(url)


def test_a_client_that_leaves_a_stream_gives_its_place_back(
    fast: str, gate_open: GatedBackend
) -> None:
    gate_open.gate.clear()
    gate_open.endless = True  # a generation that never ends by itself
    request = urllib.request.Request(
        f"{fast}/v1/chat/completions",
        data=json.dumps(ask(BREACH, stream=True)).encode(),
        headers={"Authorization": f"Bearer {WRITE}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert b'"role": "assistant"' in response.readline()
    # Gone before any content: the queue (depth 1) is still taken by the held generation...
    assert call("POST", f"{fast}/v1/chat/completions", ask(BREACH)).status == 503
    gate_open.gate.set()
    # ...and is given back once the stream notices nobody reads it, and stops generating.
    assert gate_open.closed.wait(10), "the generation went on for a client that left"
    _wait_for_idle(fast)
    assert call("POST", f"{fast}/v1/chat/completions", ask(BREACH)).status == 200


def test_metrics_count_requests_steps_and_tokens(fast: str, gate_open: GatedBackend) -> None:
    assert call("POST", f"{fast}/v1/chat/completions", ask(BREACH)).status == 200
    text = call("GET", f"{fast}/metrics", key=READ).text
    assert 'ragtune_requests_total{endpoint="/v1/chat/completions",status="200"}' in text
    assert 'ragtune_step_seconds_count{capability="templates",step="retrieve"}' in text
    assert 'ragtune_step_seconds_bucket{capability="templates",le="+Inf",step="generate"}' in text
    assert 'ragtune_prompt_tokens_total{capability="templates"}' in text
    assert "ragtune_queue_depth 0.0" in text


def test_adapter_reload_unknown_is_404_and_unsupported_is_400(
    fast: str, fast_project: Path
) -> None:
    unknown = call("POST", f"{fast}/v1/adapters/risk_flags/reload")
    assert unknown.status == 404 and "ragtune adapter train risk_flags" in unknown.error["message"]
    bad_name = call("POST", f"{fast}/v1/adapters/.hidden/reload")
    assert bad_name.status == 400
    manifest = fast_project / ".ragtune" / "adapters" / "risk_flags" / "ragtune.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    try:
        unsupported = call("POST", f"{fast}/v1/adapters/risk_flags/reload")
    finally:
        shutil.rmtree(manifest.parent)
    assert unsupported.status == 400 and "cannot reload adapters" in unsupported.error["message"]


# -- keys and the serve command ----------------------------------------------------------------


def test_keys_come_from_the_environment_and_a_file(tmp_path: Path) -> None:
    assert parse_keys_env(" a1:write, b2:read ,") == {"a1": "write", "b2": "read"}
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops team\nc3 write  # rotated monthly\n\nd4 read\n")
    keys = load_keys(keys_file, {"RAGTUNE_API_KEYS": "a1:read"})
    assert dict(keys.keys) == {"a1": "read", "c3": "write", "d4": "read"}
    assert keys.scope_of("c3") == "write" and keys.scope_of("c") is None
    with pytest.raises(AuthError, match=r"entry 1 has no scope: write it as KEY:read"):
        parse_keys_env("lonely")
    with pytest.raises(AuthError, match=r"scope 'admin' is not one of: read, write"):
        parse_keys_env("k:admin")
    keys_file.write_text("ok read\nbad\n")
    with pytest.raises(AuthError, match=r"keys, line 2: expected 'KEY SCOPE'"):
        parse_keys_file(keys_file)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_the_queue_admits_depth_requests_and_no_more() -> None:
    queue = GenerationQueue(2)
    first, _second = queue.enter(), queue.enter()
    with pytest.raises(QueueFull) as full:
        queue.enter()
    assert full.value.retry_after == 1
    first.release(7.2)
    first.release(7.2)  # a second release changes nothing
    assert queue.admitted == 1 and queue.retry_after() == 8
    queue.enter()
    with pytest.raises(QueueFull):
        queue.enter()


def test_serve_refuses_a_public_host_without_keys(
    fast_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ragtune.cli.runtime

    started: list[Any] = []
    monkeypatch.setattr(ragtune.cli.runtime, "_serve", lambda *args: started.append(args))
    monkeypatch.delenv("RAGTUNE_API_KEYS", raising=False)
    runner = CliRunner()
    refused = runner.invoke(cli_app, ["serve", str(fast_project), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and not started
    assert "refusing to serve on 0.0.0.0 without API keys" in refused.output
    assert "RAGTUNE_API_KEYS" in refused.output and "--keys-file" in refused.output

    keys_file = tmp_path / "keys"
    keys_file.write_text("k1 superuser\n")
    bad = runner.invoke(cli_app, ["serve", str(fast_project), "--keys-file", str(keys_file)])
    assert bad.exit_code == 2 and "line 1: scope 'superuser'" in bad.output and not started

    keys_file.write_text("k1 write\n")
    args = ["serve", str(fast_project), "--host", "0.0.0.0", "--keys-file", str(keys_file)]
    accepted = runner.invoke(cli_app, [*args, "--queue", "3"])
    assert accepted.exit_code == 0, accepted.output
    (project, host, _port, settings) = started[0]
    assert host == "0.0.0.0" and settings.keys.enabled and settings.queue_depth == 3
    assert project.root == fast_project.resolve()
    loopback = runner.invoke(cli_app, ["serve", str(fast_project)])
    assert loopback.exit_code == 0 and not started[1][3].keys.enabled


# -- the slow server: real embedder, real model ------------------------------------------------


@pytest.fixture(scope="module")
def slow(
    tmp_path_factory: pytest.TempPathFactory,
    example_project: Callable[..., Path],
    base_model: Any,
    one_thread: None,
) -> Iterator[str]:
    from ragtune.generate.local import LocalBackend

    folder = example_project(tmp_path_factory.mktemp("slow") / "cr", sync=True, answer="generate")
    project = load_project(folder)
    runtime = Runtime(project, backend=LocalBackend(base_model, folder / ".ragtune" / "adapters"))
    with serving(create_app(runtime, ServerSettings(keys=KEYS, max_tokens_limit=32))) as url:
        yield url
    runtime.close()


def _texts(body: dict[str, Any]) -> str:
    return "\n".join(c["text"] for c in body["citations"])


@pytest.mark.slow
def test_a_completion_has_usage_citations_and_the_route(slow: str) -> None:
    client = openai.OpenAI(base_url=f"{slow}/v1", api_key=READ, max_retries=0)
    answer = client.chat.completions.create(
        model="templates", messages=[{"role": "user", "content": BREACH}], max_tokens=4
    )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 100  # the passages are in the prompt
    assert 1 <= answer.usage.completion_tokens <= 4
    assert answer.choices[0].finish_reason in ("stop", "length")
    extra = answer.model_extra or {}
    citations = extra["citations"]
    assert citations and citations[0]["document"] == "knowledge/dpa.md"
    assert {"number", "document", "section", "version", "snapshot", "cited", "text"} <= set(
        citations[0]
    )
    assert "seventy-two (72)" in _texts(extra)
    assert extra["route"] == {
        "capability": "templates",
        "strategy": "retrieval",
        "knowledge": ["templates"],
        "adapter": None,
        "how": "named",
        "score": None,
    }
    assert extra["contract_violation"] is False and extra["timings"]["generate"] > 0


@pytest.mark.slow
def test_a_streamed_completion_sends_role_deltas_extras_usage_and_done(slow: str) -> None:
    body = ask(BREACH, "auto", stream=True, max_tokens=6, stream_options={"include_usage": True})
    reply = call("POST", f"{slow}/v1/chat/completions", body, key=READ)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
    events = [e.removeprefix("data: ") for e in reply.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip()
    final, usage = chunks[-2], chunks[-1]
    assert final["choices"][0]["finish_reason"] in ("stop", "length")
    assert final["route"]["how"] == "routed" and final["route"]["capability"] == final["model"]
    assert final["citations"] and "total" in final["timings"]
    assert usage["choices"] == [] and 1 <= usage["usage"]["completion_tokens"] <= 6


@pytest.mark.slow
def test_a_knowledge_change_through_the_api_is_served_at_once(slow: str) -> None:
    url = f"{slow}/v1/knowledge/documents/knowledge/dpa.md"
    chat = f"{slow}/v1/chat/completions"
    revised = example_path("contract-review") / "changes" / "dpa.md"
    original = (example_path("contract-review") / "knowledge" / "dpa.md").read_bytes()
    before = call("POST", chat, ask(BREACH, max_tokens=1)).json()
    assert "seventy-two (72)" in _texts(before) and "forty-eight (48)" not in _texts(before)
    try:
        put = call("PUT", url, revised.read_bytes())
        assert put.status == 200, put.text
        sync_done = put.json()["sync"]
        assert put.json()["action"] == "replaced"
        changed = {d["path"]: d for d in sync_done["documents"]}
        assert list(changed) == ["knowledge/dpa.md"] and changed["knowledge/dpa.md"]["status"] == (
            "changed"
        )
        # Only the touched sections are embedded again; the rest of the document is kept.
        assert 1 <= sync_done["chunks_embedded"] < changed["knowledge/dpa.md"]["chunks_kept"]

        after = call("POST", chat, ask(BREACH, max_tokens=1)).json()
        assert "forty-eight (48)" in _texts(after) and "seventy-two (72)" not in _texts(after)
        dpa = [c for c in after["citations"] if c["document"] == "knowledge/dpa.md"]
        assert dpa and all(c["version"] == 2 for c in dpa)
        assert max(c["snapshot"] for c in dpa) == sync_done["snapshot"]
    finally:
        assert call("PUT", url, original).status == 200


@pytest.mark.slow
def test_the_remote_backend_talks_to_this_server(slow: str) -> None:
    from ragtune.generate.remote import RemoteBackend

    backend = RemoteBackend(
        base_url=f"{slow}/v1",
        api_key=READ,
        models={"summaries": "no-such-capability"},
        default_model="templates",
        max_retries=0,
    )
    messages = [{"role": "user", "content": BREACH}]
    made = backend.generate(messages, GenerationParams(max_tokens=3))
    assert made.model == "templates" and made.prompt_tokens > 100
    assert 1 <= made.completion_tokens <= 3 and made.finish_reason in ("stop", "length")

    stream = backend.stream(messages, GenerationParams(max_tokens=3))
    pieces = list(stream)
    assert stream.result is not None and "".join(pieces) == stream.result.text
    assert stream.result.text and 1 <= stream.result.completion_tokens <= 3

    # A schema travels as response_format, and the server decodes by it: the 135M base model
    # asked for the hours answers JSON with an integer, which it does not write unguided.
    schema = {
        "type": "object",
        "properties": {"hours": {"type": "integer"}},
        "required": ["hours"],
        "additionalProperties": False,
    }
    shaped = backend.generate(messages, GenerationParams(max_tokens=24, schema=schema))
    assert isinstance(json.loads(shaped.text)["hours"], int), shaped.text

    with pytest.raises(BackendError) as caught:
        backend.generate(messages, GenerationParams(adapter="summaries", max_tokens=3))
    message = str(caught.value)
    assert "not found (404)" in message and "'no-such-capability'" in message
    assert "The server lists: templates, rates" in message


@pytest.mark.slow
def test_ragtune_serve_as_its_own_process_behind_keys(
    tmp_path: Path,
    example_project: Callable[..., Path],
    base_model: object,  # the fixture fills the shared model cache the server loads from
) -> None:
    """`ragtune serve` started as a separate process (the way users run it) with a keys file:
    a missing key is refused, and RemoteBackend generates through it."""
    import subprocess
    import sys
    import time
    import urllib.request

    from ragtune.generate.remote import RemoteBackend

    folder = example_project(
        tmp_path / "cr", embedder="hashing", sync=True, shared_models=True, answer="generate"
    )
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the team's keys\n{READ} read\n{WRITE} write\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ragtune = str(Path(sys.executable).parent / "ragtune")
    process = subprocess.Popen(
        [ragtune, "serve", str(folder), "--port", str(port), "--keys-file", str(keys)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "ragtune serve did not come up"
            time.sleep(0.5)
        assert call("GET", f"{url}/v1/models", key=None).status == 401
        backend = RemoteBackend(base_url=f"{url}/v1", api_key=READ, default_model="templates")
        made = backend.generate(
            [{"role": "user", "content": BREACH}], GenerationParams(max_tokens=2)
        )
        assert made.model == "templates" and 1 <= made.completion_tokens <= 2
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_retrained_adapter_is_served_after_a_reload_without_a_restart(
    tmp_path: Path,
    pytestconfig: pytest.Config,
    example_project: Callable[..., Path],
    base_model: Any,
) -> None:
    from ragtune.adapters import TrainConfig
    from ragtune.behavior.examples import load_examples
    from ragtune.behavior.train import train_adapter
    from ragtune.generate.base import load_base_model
    from ragtune.generate.local import LocalBackend

    folder = example_project(tmp_path / "cr", embedder="hashing", sync=True, answer="generate")
    adapters = folder / ".ragtune" / "adapters"
    examples = load_examples(folder / "behavior" / "risk_flags.jsonl")

    def train(seed: int, loaded: Any) -> str:
        config = TrainConfig(
            max_steps=1, batch_size=2, max_length=96, eval_max_new_tokens=0, seed=seed,
            learning_rate=1e-2, checkpoint_every=0,
        )  # fmt: skip
        made = train_adapter(loaded, examples, adapters / "risk_flags", config)
        return str(made.manifest.created_at)

    first = train(0, base_model)
    runtime = Runtime(load_project(folder), backend=LocalBackend(base_model, adapters))
    try:
        with serving(create_app(runtime, ServerSettings(keys=KEYS))) as url:
            models = {m["id"]: m for m in call("GET", f"{url}/v1/models", key=READ).json()["data"]}
            assert models["risk_flags"]["strategy"] == "lora"
            body = ask("Either party may terminate on thirty days' notice.", "risk_flags")
            before = call("POST", f"{url}/v1/chat/completions", {**body, "max_tokens": 3}, READ)
            assert before.status == 200, before.text
            assert before.json()["route"]["adapter"] == "risk_flags"
            assert before.json()["model"] == "risk_flags"
            import time

            time.sleep(1.1)  # created_at has one-second resolution
            # Retrained elsewhere (here: a second copy of the model, as another process would
            # load it): the served model is not touched until the reload.
            second = train(
                1, load_base_model(cache_root=pytestconfig.cache.mkdir("ragtune-models"))
            )
            assert second != first
            reloaded = call("POST", f"{url}/v1/adapters/risk_flags/reload")
            assert reloaded.status == 200, reloaded.text
            assert reloaded.json() == {
                "adapter": "risk_flags",
                "path": ".ragtune/adapters/risk_flags",
                "created_at": second,
                "reloaded": True,
            }
            read_only = call("POST", f"{url}/v1/adapters/risk_flags/reload", key=READ)
            assert read_only.status == 403
    finally:
        runtime.backend.close()  # type: ignore[attr-defined]
        runtime.close()

"""The server's size limits and the requests that crashed it (issue 16, items 4-6): each is a
clear 4xx in OpenAI's error shape, refused before any token is generated, and nothing is
written; an unexpected failure is logged in a few kilobytes, not megabytes.

In-process (httpx against the ASGI app) over the example with the hashing embedder and a
stand-in backend that records what it was asked, so "refused before generating" is exact. The
one test that needs the real model (a tiny temperature) is marked slow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ragtune.generate.backend import (
    GREEDY_BELOW,
    GenerationParams,
)
from ragtune.project import load_project
from ragtune.runtime.runtime import Runtime
from ragtune.server import ServerSettings, create_app
from ragtune.server.documents import MAX_DEPTH, MAX_NAME_BYTES
from ragtune.server.handlers import LOG_CHARS
from standins import ScriptedBackend

BREACH = "Within how many hours must Provider notify Customer of a Personal Data Breach?"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]) -> Path:
    return example_project(
        tmp_path_factory.mktemp("limits") / "cr", embedder="hashing", sync=True, answer="generate"
    )


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def runtime(project: Path, backend: ScriptedBackend) -> Iterator[Runtime]:
    served = Runtime(load_project(project), backend=backend)
    yield served
    served.close()


@pytest.fixture
def client(runtime: Runtime, backend: ScriptedBackend) -> Iterator[TestClient]:
    backend.calls.clear()
    settings = ServerSettings(max_messages=16, max_tokens_limit=512, default_max_tokens=48)
    with TestClient(create_app(runtime, settings), raise_server_exceptions=False) as test:
        yield test


def ask(question: str = BREACH, **extra: Any) -> dict[str, Any]:
    return {"model": "templates", "messages": [{"role": "user", "content": question}], **extra}


def error(reply: Any, status: int) -> dict[str, Any]:
    """The reply's OpenAI error, after checking its status and shape."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def files(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if ".ragtune" not in p.parts
    )


# -- item 4: size limits -----------------------------------------------------------------------


def test_too_many_messages_is_400_naming_the_count_and_the_limit(
    client: TestClient, backend: ScriptedBackend
) -> None:
    turns = [{"role": "user", "content": "hello there"}] * 1000
    refused = error(client.post("/v1/chat/completions", json=ask() | {"messages": turns}), 400)
    assert refused["code"] == "too_many_messages" and refused["param"] == "messages"
    assert "holds 1000 messages" in refused["message"] and "at most 16" in refused["message"]
    assert not backend.calls
    sixteen = [{"role": "user", "content": "hello there"}] * 15 + ask()["messages"]
    assert (
        client.post("/v1/chat/completions", json=ask() | {"messages": sixteen}).status_code == 200
    )


def test_messages_longer_than_the_context_are_400_before_retrieval_and_generation(
    client: TestClient, backend: ScriptedBackend, runtime: Runtime
) -> None:
    window = runtime.project.config.model.context_tokens
    huge = "clause " * (window + 500)
    for body in (ask(huge), ask(huge, stream=True)):
        refused = error(client.post("/v1/chat/completions", json=body), 400)
        assert refused["code"] == "context_length_exceeded" and refused["param"] == "messages"
        message = refused["message"]
        assert f"take {window + 500 + 16} tokens" in message, message
        assert f"room for {window - 48} prompt tokens" in message, message
        assert f"context of {window} tokens" in message and "max_tokens 48" in message
    assert not backend.calls


def test_a_prompt_that_overflows_with_its_passages_is_refused_naming_them(
    runtime: Runtime, backend: ScriptedBackend
) -> None:
    backend.calls.clear()
    app = create_app(runtime, ServerSettings(max_prompt_tokens=200))
    with TestClient(app, raise_server_exceptions=False) as client:
        refused = error(client.post("/v1/chat/completions", json=ask()), 400)
        assert refused["code"] == "context_length_exceeded"
        assert "the messages 29, and the capability 'templates' adds" in refused["message"]
        assert "4 passages" in refused["message"]
        assert "limit of 200 prompt tokens" in refused["message"]
        assert not backend.calls
    app = create_app(runtime, ServerSettings(max_prompt_tokens=2000))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/chat/completions", json=ask()).status_code == 200
    messages, _ = backend.calls[0]
    counted = 8 + sum(backend.count_tokens(m["content"]) + 8 for m in messages)
    assert 200 < counted <= 2000  # the check counted what the model was given


def test_max_tokens_null_or_absent_gets_the_servers_default(
    client: TestClient, backend: ScriptedBackend
) -> None:
    for body in (ask(), ask(max_tokens=None), ask(max_completion_tokens=None)):
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert [params.max_tokens for _, params in backend.calls] == [48, 48, 48]


def test_server_settings_refuse_bad_limits() -> None:
    from ragtune.errors import RagtuneError

    with pytest.raises(RagtuneError, match=r"max_messages must be a whole number >= 1, got 0"):
        ServerSettings(max_messages=0)
    with pytest.raises(RagtuneError, match=r"max_prompt_tokens must be a whole number >= 1"):
        ServerSettings(max_prompt_tokens=-5)


# -- item 5: what crashed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("knowledge/" + "a" * 300 + ".md", f"at most {MAX_NAME_BYTES} bytes"),
        ("knowledge/" + "a/" * 1500 + "x.md", "the limit is 1024 bytes"),
        ("knowledge/" + "a/" * (MAX_DEPTH + 1) + "x.md", f"the limit is {MAX_DEPTH}"),
        ("knowledge/dpa.md/x.md", "knowledge/dpa.md is a file, not a folder"),
        ("knowledge/%FF%FE.md", "not UTF-8: byte 0xFF"),
        ("knowledge/%C3%28.md", "not UTF-8: byte 0xC3"),
        ("knowledge/%ED%A0%80.md", "not UTF-8: byte 0xED"),  # a UTF-16 surrogate as UTF-8
        ("knowledge/a%09b.md", "control character '\\t'"),
    ],
)
def test_document_names_no_file_system_takes_are_400_and_write_nothing(
    client: TestClient,
    project: Path,
    caplog: pytest.LogCaptureFixture,
    path: str,
    words: str,
) -> None:
    before = files(project)
    for method in ("PUT", "DELETE"):
        body = b"# X\n\nsome text\n" if method == "PUT" else None
        reply = client.request(method, f"/v1/knowledge/documents/{path}", content=body)
        if method == "DELETE" and path == "knowledge/dpa.md/x.md":
            assert reply.status_code == 404  # nothing there to delete: not a crash either
            continue
        refused = error(reply, 400)
        assert words in refused["message"], refused
        assert refused["param"] == "path" and refused["code"] == "invalid_document"
        assert len(refused["message"]) < 600
    assert files(project) == before
    assert sum(len(r.getMessage()) for r in caplog.records) < 2000


def test_a_lone_surrogate_in_a_message_is_400_naming_it(
    client: TestClient, backend: ScriptedBackend
) -> None:
    url = "/v1/chat/completions"
    raw = b'{"model": "templates", "messages": [{"role": "user", "content": "hours? \\ud800"}]}'
    refused = error(
        client.post(url, content=raw, headers={"content-type": "application/json"}), 400
    )
    assert refused["param"] == "messages[0].content"
    assert "lone UTF-16 surrogate ('\\ud800') at character 7" in refused["message"]
    parts = {"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text"}]}
    parts["content"][1]["text"] = "\udfff"
    history = [parts, {"role": "assistant", "content": "x"}, {"role": "user", "content": "hi"}]
    body = ask() | {"messages": history}
    raw = json.dumps(body).encode()  # ensure_ascii writes the surrogate as \udfff
    refused = error(
        client.post(url, content=raw, headers={"content-type": "application/json"}), 400
    )
    assert refused["param"] == "messages[0].content[1].text"
    paired = raw.replace(b"\\udfff", b"\\ud83d\\ude00")  # a pair (an emoji) is fine
    assert (
        client.post(url, content=paired, headers={"content-type": "application/json"}).status_code
        == 200
    )
    assert len(backend.calls) == 1


@pytest.mark.parametrize("tiny", [5e-324, 1e-45, 1e-38, 1e-6])
def test_a_tiny_temperature_is_greedy(
    client: TestClient, backend: ScriptedBackend, tiny: float
) -> None:
    assert GenerationParams(temperature=tiny).temperature == 0.0
    assert GenerationParams(temperature=GREEDY_BELOW).temperature == GREEDY_BELOW
    assert client.post("/v1/chat/completions", json=ask(temperature=tiny)).status_code == 200
    assert backend.calls[-1][1].temperature == 0.0


@pytest.mark.slow
def test_the_local_model_answers_at_a_tiny_temperature(base_model: Any, one_thread: None) -> None:
    """transformers divides the logits by the temperature: 1e-45 made them inf and sampling
    failed with 'probability tensor contains either inf, nan or element < 0'."""
    from ragtune.generate.local import LocalBackend

    local = LocalBackend(base_model, Path("no-adapters"))
    messages = [{"role": "user", "content": "Say hello."}]
    greedy = local.generate(messages, GenerationParams(max_tokens=3)).text
    for tiny in (5e-324, 1e-45, 1e-38):
        made = local.generate(messages, GenerationParams(max_tokens=3, temperature=tiny))
        assert made.text == greedy


def test_an_unexpected_failure_is_500_and_logged_in_a_few_kilobytes(
    runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 1,500-level path made pathlib's mkdir recurse: 2.3 MB of chained tracebacks from one
    3 KB request. Any such failure is now logged clipped (here a route that does the same)."""
    from test_server import call, serving

    app = create_app(runtime, ServerSettings())

    @app.get("/boom")
    def boom() -> None:
        (tmp_path / ("a/" * 1500)).mkdir(parents=True)

    caplog.set_level(logging.INFO)
    with serving(app) as url:
        reply = call("GET", f"{url}/boom", key=None)
    assert reply.status == 500
    assert (
        reply.error["code"] == "internal_error" and "logged on the server" in reply.error["message"]
    )
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1
    text = logged[0].getMessage()
    assert "RecursionError" in text and "GET /boom failed" in text
    assert len(text) < LOG_CHARS + 200, len(text)


@pytest.mark.slow
def test_a_write_while_another_process_syncs_waits_then_is_503_and_chat_goes_on(
    client: TestClient, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT waits for another writer of the store (a CLI sync) without holding anything the
    chat needs, and is answered 503 with Retry-After when the other writer is not done in
    time; nothing is written."""
    import subprocess
    import sys
    import time

    import ragtune.server.knowledge as knowledge_routes

    monkeypatch.setattr(knowledge_routes, "WRITE_WAIT_S", 2.0)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from filelock import FileLock; "
         f"lock = FileLock({str(project / '.ragtune' / 'knowledge.db.lock')!r}); "
         "lock.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = files(project)
        started = time.monotonic()
        busy = client.put("/v1/knowledge/documents/knowledge/new.md", content=b"# New\n\ntext\n")
        waited = time.monotonic() - started
        refused = error(busy, 503)
        assert busy.headers["Retry-After"] == "2" and refused["code"] == "store_busy"
        assert "knowledge.db.lock" in refused["message"] and 1.5 < waited < 30
        assert files(project) == before  # nothing written
        assert client.post("/v1/chat/completions", json=ask()).status_code == 200
    finally:
        holder.kill()
        holder.wait(10)
    written = client.put("/v1/knowledge/documents/knowledge/new.md", content=b"# New\n\ntext\n")
    assert written.status_code == 201, written.text
    client.delete("/v1/knowledge/documents/knowledge/new.md")

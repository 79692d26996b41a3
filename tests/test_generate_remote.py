"""The remote backend without a server: model mapping, argument checks, and what an unreachable
server looks like to the user. (Tests against a real OpenAI-compatible server live elsewhere.)"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from ragtune.generate.backend import Backend, BackendError, GenerationParams
from ragtune.generate.remote import RemoteBackend, resolve_model

ASK = [{"role": "user", "content": "Hello?"}]


# -- model mapping -----------------------------------------------------------------------------


def test_an_adapter_maps_through_models_or_keeps_its_name() -> None:
    models = {"risk_flags": "rf-v3"}
    assert resolve_model("risk_flags", models, "base-model") == "rf-v3"
    assert resolve_model("summaries", models, "base-model") == "summaries"
    assert resolve_model("summaries", None, None) == "summaries"


def test_the_base_model_is_the_default_model() -> None:
    assert resolve_model(None, {"risk_flags": "rf-v3"}, "SmolLM2-135M") == "SmolLM2-135M"
    with pytest.raises(BackendError, match=r"needs the server's base model name.*default_model"):
        resolve_model(None, {"risk_flags": "rf-v3"}, None)


# -- construction and checks before any request ------------------------------------------------


def test_bad_settings_are_named() -> None:
    with pytest.raises(BackendError, match=r"base_url must be an http.*got '127\.0\.0\.1:8000'"):
        RemoteBackend("127.0.0.1:8000", None)
    with pytest.raises(BackendError, match=r"timeout must be .* got 0"):
        RemoteBackend("http://127.0.0.1:8000/v1", None, timeout=0)


def test_count_tokens_is_a_documented_estimate() -> None:
    backend = RemoteBackend("http://127.0.0.1:8000/v1", None)
    assert isinstance(backend, Backend) and backend.name == "remote:http://127.0.0.1:8000/v1"
    assert [backend.count_tokens(t) for t in ("", "abc", "abcd", "abcde" * 4)] == [0, 1, 1, 5]


# -- an unreachable server ---------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_connection_refused_names_the_url_and_model(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1"
    backend = RemoteBackend(
        url, None, models={"risk_flags": "rf-v3"}, default_model="base-lm", max_retries=0
    )
    started = time.perf_counter()
    with pytest.raises(BackendError) as caught:
        backend.generate(ASK, GenerationParams(adapter="risk_flags", max_tokens=4))
    message = str(caught.value)
    assert f"cannot connect to {url} (model 'rf-v3')" in message
    assert "server is running" in message and "/v1" in message
    # A stream sends its request at once, so the same error comes from the call itself.
    with pytest.raises(BackendError, match=rf"cannot connect to {url} \(model 'base-lm'\)"):
        backend.stream(ASK, GenerationParams(max_tokens=4))
    assert time.perf_counter() - started < 10  # refused at once, not waited out


def test_a_password_in_base_url_is_never_shown(closed_port: int) -> None:
    backend = RemoteBackend(
        f"http://ops:hunter2@127.0.0.1:{closed_port}/v1?token=s3cret",
        None,
        default_model="base-lm",
        max_retries=0,
    )
    with pytest.raises(BackendError) as caught:
        backend.generate(ASK, GenerationParams(max_tokens=4))
    message = str(caught.value)
    assert f"cannot connect to http://ops:***@127.0.0.1:{closed_port}/v1 " in message
    assert "hunter2" not in message and "s3cret" not in message
    assert "hunter2" not in backend.name


def test_bad_requests_fail_before_the_network(closed_port: int) -> None:
    backend = RemoteBackend(f"http://127.0.0.1:{closed_port}/v1", None, max_retries=0)
    with pytest.raises(BackendError, match="max_tokens must be a whole number >= 1, got 0"):
        backend.generate(ASK, GenerationParams(adapter="x", max_tokens=0))
    with pytest.raises(BackendError, match="default_model"):
        backend.stream(ASK)

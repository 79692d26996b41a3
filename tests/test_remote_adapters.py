"""Adapters on the servers users run (ragtune.generate.remote_adapters).

vLLM needs a GPU, and this machine has none, so its registration calls are checked against a
small real HTTP server in the test that answers as vLLM's LoRA endpoints do and records each
request; llama.cpp's ``llama-server`` binary is not installed here either, so its ``/lora-adapters``
protocol is checked the same way. The slow test runs a real server that is not ragtune's:
llama-cpp-python's (``python -m llama_cpp.server``), with the example's base GGUF and its
shipped GGUF LoRA, started from the config file ``serve_command`` writes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ragtune.build import install_shipped
from ragtune.cli import app
from ragtune.errors import redact_url
from ragtune.generate.backend import GenerationParams, open_backend
from ragtune.generate.remote_adapters import (
    RegistrationError,
    register_adapters,
    serve_command,
)
from ragtune.project import load_project

runner = CliRunner()

Route = Callable[["Recorder", dict[str, Any] | list[Any] | None], tuple[int, Any]]


class Recorder:
    """A real HTTP server on loopback that records each request and answers from ``routes``
    (``"POST /v1/load_lora_adapter" -> handler(recorder, body) -> (status, json)``)."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, Any]] = []
        self.state: dict[str, Any] = {}
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                recorder.requests.append((self.command, self.path, body))
                route = recorder.routes.get(f"{self.command} {self.path}")
                status, payload = route(recorder, body) if route else (404, {"detail": "Not Found"})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _ in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _chat(recorder: Recorder, body: Any) -> tuple[int, Any]:
    """A chat completion that answers with the model name and lora field it was sent."""
    said = f"model={body['model']} lora={json.dumps(body.get('lora'))}"
    return 200, {
        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": said}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }  # fmt: skip


def vllm_routes() -> dict[str, Route]:
    """vLLM's LoRA endpoints as vLLM answers them: loading a loaded name is refused (400),
    unloading an unknown one is 404."""

    def load(rec: Recorder, body: Any) -> tuple[int, Any]:
        loaded = rec.state.setdefault("loaded", {})
        if body["lora_name"] in loaded:
            return 400, {"object": "error", "message": f"The lora adapter '{body['lora_name']}' "
                         "has already been loaded.", "code": 400}  # fmt: skip
        loaded[body["lora_name"]] = body["lora_path"]
        return 200, f"Success: LoRA adapter '{body['lora_name']}' added successfully."

    def unload(rec: Recorder, body: Any) -> tuple[int, Any]:
        loaded = rec.state.setdefault("loaded", {})
        if loaded.pop(body["lora_name"], None) is None:
            return 404, {"object": "error", "message": f"The lora adapter "
                         f"'{body['lora_name']}' cannot be found.", "code": 404}  # fmt: skip
        return 200, "Success"

    return {
        "POST /v1/load_lora_adapter": load,
        "POST /v1/unload_lora_adapter": unload,
        "POST /v1/chat/completions": _chat,
    }


@pytest.fixture
def recorder() -> Iterator[Callable[[dict[str, Route]], Recorder]]:
    started: list[Recorder] = []

    def start(routes: dict[str, Route]) -> Recorder:
        started.append(Recorder(routes))
        return started[-1]

    yield start
    for one in started:
        one.close()


@pytest.fixture
def project_with_adapter(example_project: Callable[..., Path], tmp_path: Path) -> Path:
    """The example with its shipped ``templates`` adapter installed (PEFT weights and GGUF)."""
    folder = example_project(tmp_path / "review")
    install_shipped(load_project(folder), "templates")
    return folder


def set_model(folder: Path, **model: Any) -> None:
    """Append a ``model:`` section to the project's ragtune.yaml."""
    config = folder / "ragtune.yaml"
    config.write_text(config.read_text() + "model:\n" + "".join(
        f"  {key}: {json.dumps(value)}\n" for key, value in model.items()
    ))  # fmt: skip


def test_vllm_loads_the_adapter_and_replaces_it_when_registered_again(
    project_with_adapter: Path, recorder: Callable[[dict[str, Route]], Recorder]
) -> None:
    vllm = recorder(vllm_routes())
    set_model(project_with_adapter, backend="openai", base_url=f"{vllm.url}/v1",
              server="vllm", models={"templates": "tpl-v2"})  # fmt: skip
    project = load_project(project_with_adapter)
    folder = str((project.adapters_dir / "templates").resolve())

    first = register_adapters(project, ["templates"])
    again = register_adapters(project, ["templates"])

    assert [r.action for r in first + again] == ["loaded", "reloaded"]
    assert first[0].served_as == "tpl-v2"
    assert vllm.paths() == [
        "POST /v1/unload_lora_adapter", "POST /v1/load_lora_adapter",
        "POST /v1/unload_lora_adapter", "POST /v1/load_lora_adapter",
    ]  # fmt: skip
    assert vllm.requests[1][2] == {"lora_name": "tpl-v2", "lora_path": folder}
    # The runtime's backend sends the capability's requests to the adapter's name.
    backend = open_backend(project)
    try:
        answer = backend.generate([{"role": "user", "content": "hi"}],
                                  GenerationParams(adapter="templates"))  # fmt: skip
        base = backend.generate([{"role": "user", "content": "hi"}], GenerationParams())
    finally:
        backend.close()
    assert answer.text.startswith("model=tpl-v2 ") and base.text.startswith("model=base ")


def test_vllm_without_runtime_lora_updating_is_a_clear_error(
    project_with_adapter: Path, recorder: Callable[[dict[str, Route]], Recorder]
) -> None:
    plain = recorder({})  # a vLLM started without VLLM_ALLOW_RUNTIME_LORA_UPDATING: no routes
    set_model(project_with_adapter, backend="openai", base_url=f"{plain.url}/v1", server="vllm")
    with pytest.raises(RegistrationError) as caught:
        register_adapters(load_project(project_with_adapter), ["templates"])
    message = str(caught.value)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in message and "'templates'" in message
    assert plain.url in message and "the trained adapters are kept" in message
    assert (project_with_adapter / ".ragtune" / "adapters" / "templates" / "ragtune.json").is_file()


def test_unreachable_server_error_names_the_redacted_url_and_the_adapter(
    project_with_adapter: Path,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    set_model(project_with_adapter, backend="openai", server="vllm",
              base_url=f"http://ops:hunter2@127.0.0.1:{port}/v1?token=s3cret")  # fmt: skip
    with pytest.raises(RegistrationError) as caught:
        register_adapters(load_project(project_with_adapter), ["templates"])
    message = str(caught.value)
    assert f"http://ops:***@127.0.0.1:{port}/v1" in message and "'templates'" in message
    assert "hunter2" not in message and "s3cret" not in message
    assert "ragtune adapter register" in message


def test_redact_url_drops_the_password_and_the_query() -> None:
    assert redact_url("https://u:p@h:1/v1?key=k") == "https://u:***@h:1/v1"
    assert redact_url("http://h:8000/v1") == "http://h:8000/v1"


def llama_server_routes(paths: list[str]) -> dict[str, Route]:
    """llama-server's LoRA endpoints: the adapters given with --lora, by id."""

    def listed(rec: Recorder, body: Any) -> tuple[int, Any]:
        scales = rec.state.get("scales", {})
        return 200, [{"id": i, "path": p, "scale": scales.get(i, 1.0)} for i, p in enumerate(paths)]

    def scale(rec: Recorder, body: Any) -> tuple[int, Any]:
        rec.state["scales"] = {entry["id"]: entry["scale"] for entry in body}
        return 200, {"success": True}

    return {
        "GET /lora-adapters": listed,
        "POST /lora-adapters": scale,
        "POST /v1/chat/completions": _chat,
    }


def test_llama_server_selects_the_adapter_by_id_per_request(
    project_with_adapter: Path, recorder: Callable[[dict[str, Route]], Recorder]
) -> None:
    project = load_project(project_with_adapter)
    gguf = str((project.adapters_dir / "templates" / "adapter.gguf").resolve())
    server = recorder(llama_server_routes(["/srv/other/adapter.gguf", gguf]))
    set_model(project_with_adapter, backend="openai", base_url=f"{server.url}/v1",
              server="llama.cpp")  # fmt: skip
    project = load_project(project_with_adapter)

    (done,) = register_adapters(project, ["templates"])

    assert (done.action, done.served_as) == ("present", "lora id 1")
    assert server.requests[-1] == ("POST", "/lora-adapters",
                                   [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}])  # fmt: skip
    backend = open_backend(project)
    try:
        with_adapter = backend.generate([{"role": "user", "content": "hi"}],
                                        GenerationParams(adapter="templates"))  # fmt: skip
        base = backend.generate([{"role": "user", "content": "hi"}], GenerationParams())
        other = backend.generate([{"role": "user", "content": "hi"}],
                                 GenerationParams(adapter="other"))  # fmt: skip
        with pytest.raises(RegistrationError, match="holds no LoRA adapter 'risk_flags'"):
            backend.generate([{"role": "user", "content": "hi"}],
                             GenerationParams(adapter="risk_flags"))  # fmt: skip
    finally:
        backend.close()
    sent = [body for method, path, body in server.requests if path == "/v1/chat/completions"]
    assert [b["lora"] for b in sent] == [
        [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}],
        [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}],
        [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 0.0}],
    ]
    assert all(b["repeat_penalty"] == 1.0 and b["top_k"] == 0 for b in sent)
    assert with_adapter.text != base.text != other.text


def test_llama_server_without_the_adapter_says_how_to_start_it(
    project_with_adapter: Path, recorder: Callable[[dict[str, Route]], Recorder]
) -> None:
    server = recorder(llama_server_routes(["/srv/other/adapter.gguf"]))
    set_model(project_with_adapter, backend="openai", base_url=f"{server.url}/v1",
              server="llama.cpp")  # fmt: skip
    with pytest.raises(RegistrationError) as caught:
        register_adapters(load_project(project_with_adapter), ["templates"])
    message = str(caught.value)
    assert "loads LoRA adapters only when it starts" in message
    assert "--lora " in message and "templates/adapter.gguf" in message
    assert not any(m == "POST" for m, _, _ in server.requests)  # no scales set


def test_no_server_setting_registers_nothing(project_with_adapter: Path) -> None:
    set_model(project_with_adapter, backend="openai", base_url="http://127.0.0.1:9/v1")
    assert register_adapters(load_project(project_with_adapter), ["templates"]) == []


def test_serve_commands_name_every_adapter(project_with_adapter: Path) -> None:
    set_model(project_with_adapter, backend="openai", base_url="http://10.0.0.5:8001/v1",
              models={"templates": "tpl"}, server_adapters_dir="/srv/adapters")  # fmt: skip
    project = load_project(project_with_adapter)

    vllm = serve_command(project, "vllm")
    llama = serve_command(project, "llama.cpp")
    python = serve_command(project, "llama-cpp-python")

    assert vllm.argv[:2] == ["vllm", "serve"] and "--enable-lora" in vllm.argv
    assert vllm.argv[vllm.argv.index("--lora-modules") + 1] == "tpl=/srv/adapters/templates"
    assert vllm.argv[vllm.argv.index("--max-lora-rank") + 1] == "16"  # the example's r
    assert vllm.argv[vllm.argv.index("--port") + 1] == "8001"
    assert vllm.shell().startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve ")
    assert "first training run" in vllm.notes[0]  # no de-quantised base here yet
    assert llama.argv[0] == "llama-server" and llama.argv[2].endswith(".gguf")
    assert llama.argv[llama.argv.index("--lora") + 1] == "/srv/adapters/templates/adapter.gguf"
    assert python.config is not None
    assert [(m["model_alias"], m.get("lora_path")) for m in python.config["models"]] == [
        ("base", None), ("tpl", "/srv/adapters/templates/adapter.gguf")
    ]  # fmt: skip
    result = runner.invoke(
        app, ["adapter", "serve-command", "--server", "llama-cpp-python", "-p",
              str(project_with_adapter)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "python -m llama_cpp.server --config_file" in result.output
    written = json.loads((project.state_dir / "llama-cpp-python.json").read_text())
    assert written == python.config


def _free_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def install_only(example_project: Callable[..., Path], tmp_path: Path) -> Path:
    """The example whose plan only installs the shipped ``templates`` adapter (risk_flags'
    examples and classifier taken out, so nothing trains); a hashing embedder keeps the sync
    quick."""
    folder = example_project(tmp_path / "review", embedder="hashing")
    config = folder / "ragtune.yaml"
    text = config.read_text().replace("    examples: behavior/risk_flags.jsonl\n", "")
    config.write_text(text.replace("    classify: category\n", ""))
    return folder


def test_build_registers_the_adapter_it_installs(
    install_only: Path, recorder: Callable[[dict[str, Route]], Recorder]
) -> None:
    from ragtune.build import build

    vllm = recorder(vllm_routes())
    set_model(install_only, backend="openai", base_url=f"{vllm.url}/v1", server="vllm")
    built = build(load_project(install_only))
    assert built.installed == ["templates"]
    assert [(r.adapter, r.action) for r in built.registered] == [("templates", "loaded")]
    folder = install_only / ".ragtune" / "adapters" / "templates"
    assert vllm.state["loaded"] == {"templates": str(folder.resolve())}
    again = runner.invoke(app, ["build", str(install_only)])
    assert again.exit_code == 0, again.output
    assert "loaded on vllm" not in again.output, "nothing new: nothing registered"


def test_build_with_the_server_down_keeps_the_adapter_and_register_retries(
    install_only: Path, recorder: Callable[[dict[str, Route]], Recorder]
) -> None:
    down = f"http://127.0.0.1:{_free_port()}/v1"
    set_model(install_only, backend="openai", base_url=down, server="vllm")
    failed = runner.invoke(app, ["build", str(install_only)])
    assert failed.exit_code != 0
    assert "'templates'" in failed.output and "127.0.0.1" in failed.output
    assert "trained adapters are kept" in failed.output
    assert (install_only / ".ragtune" / "adapters" / "templates" / "adapter.gguf").is_file()

    vllm = recorder(vllm_routes())
    config = install_only / "ragtune.yaml"
    config.write_text(config.read_text().replace(down, f"{vllm.url}/v1"))
    retried = runner.invoke(app, ["adapter", "register", "-p", str(install_only)])
    assert retried.exit_code == 0, retried.output
    assert "adapter templates: loaded on vllm" in retried.output
    assert list(vllm.state["loaded"]) == ["templates"]


@pytest.mark.slow
def test_adapter_train_registers_the_adapter_it_trained(
    example_project: Callable[..., Path],
    tmp_path: Path,
    recorder: Callable[[dict[str, Route]], Recorder],
) -> None:
    folder = example_project(tmp_path / "review", embedder="hashing", shared_models=True)
    vllm = recorder(vllm_routes())
    set_model(folder, backend="openai", base_url=f"{vllm.url}/v1", server="vllm")
    trained = runner.invoke(
        app,
        ["adapter", "train", "clause_summary", "-p", str(folder), "--steps", "1",
         "--batch-size", "2", "--max-length", "128", "--eval-tokens", "0", "--json"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert [(r["adapter"], r["action"]) for r in summary["registered"]] == [
        ("clause_summary", "loaded")
    ]
    assert vllm.state["loaded"] == {"clause_summary": str(Path(summary["path"]).resolve())}


# -- a real server that is not ragtune's: llama-cpp-python's -----------------------------------


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:g} s")


@pytest.mark.slow
def test_llama_cpp_python_server_answers_as_the_llama_cpp_backend(
    project_with_adapter: Path, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    set_model(project_with_adapter, threads=1)  # the local backend, llama.cpp by default
    local_project = load_project(project_with_adapter)
    remote_yaml = (project_with_adapter / "ragtune.yaml").read_text() + (
        f"  backend: openai\n  base_url: http://127.0.0.1:{port}/v1\n  server: llama-cpp-python\n"
    )
    (project_with_adapter / "ragtune.yaml").write_text(remote_yaml)
    project = load_project(project_with_adapter)
    command = serve_command(project)
    assert command.config is not None and command.config_path is not None
    command.config_path.write_text(json.dumps(command.config))
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--config_file", str(command.config_path)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/v1/models", server)
        (registered,) = register_adapters(project, ["templates"])
        assert (registered.action, registered.served_as) == ("present", "templates")

        messages = [
            {"role": "system", "content": "Answer from the passages. Cite the clause."},
            {"role": "user", "content": "Passages:\n[1] MSA 9.1: Liability is capped at 12 "
             "months of fees.\n\nQuestion: What is the liability cap in the MSA?"},
        ]  # fmt: skip
        answers: dict[str, dict[str | None, str]] = {}
        for label, which in (("remote", project), ("local", local_project)):
            backend = open_backend(which)
            try:
                answers[label] = {
                    adapter: backend.generate(
                        messages, GenerationParams(adapter=adapter, max_tokens=40)
                    ).text
                    for adapter in ("templates", None)
                }
            finally:
                backend.close()
        assert answers["remote"] == answers["local"]
        assert answers["remote"]["templates"] != answers["remote"][None]

        # An adapter the server was not started with is refused, not answered by the base.
        set_model_alias = remote_yaml + "  models: {templates: templates-v9}\n"
        (project_with_adapter / "ragtune.yaml").write_text(set_model_alias)
        with pytest.raises(RegistrationError, match="no model alias 'templates-v9'"):
            register_adapters(load_project(project_with_adapter), ["templates"])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

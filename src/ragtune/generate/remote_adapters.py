"""Adapters served by the engines users run: vLLM, llama.cpp's ``llama-server`` and the
``llama-cpp-python`` server.

With ``model.backend: openai`` and ``model.server`` naming the server's kind, each adapter
``ragtune build`` (or ``ragtune adapter train``) writes is registered with that server
(:func:`register_adapters`), the remote backend selects it per request
(:meth:`ServerClient.request`), and :func:`serve_command` gives the command that starts such a
server with the project's adapters. How each server does it:

- ``vllm``: ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` loads the PEFT folder
  under a model name (after ``/v1/unload_lora_adapter`` when an adapter of that name is already
  served: a retrained one replaces it); requests name the adapter as the model. The server must
  run with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``.
- ``llama.cpp`` (``llama-server``): adapters are loaded when the server starts (``--lora
  FILE`` each) and addressed by id; registration finds the adapter's id in ``GET
  /lora-adapters`` and sets every global scale to 0 (``POST /lora-adapters``), so a request
  answers with the base model unless its ``lora`` field (``[{"id", "scale"}]``) selects one.
- ``llama-cpp-python`` (``python -m llama_cpp.server``): one model alias per adapter in its
  config file (``lora_path``); registration checks that ``/v1/models`` lists the alias, since
  that server answers an unknown model name with its first model, silently.

The two llama.cpp servers also get llama.cpp's sampling settings the local backend uses (no
repetition penalty, no top-k or min-p cut), so a greedy answer through them is the answer of
``model.backend: llama.cpp`` with the same GGUF and adapter.

A registration that fails raises :class:`RegistrationError` naming the server (its URL without
credentials) and the adapter; the trained adapter stays where training put it, and ``ragtune
adapter register`` tries again.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from ragtune.errors import redact_url
from ragtune.generate.backend import BackendError

if TYPE_CHECKING:
    import httpx

    from ragtune.project import Project

__all__ = [
    "SERVER_KINDS",
    "Registration",
    "RegistrationError",
    "ServeCommand",
    "ServedAdapter",
    "ServerClient",
    "open_server",
    "register_adapters",
    "serve_command",
    "served_adapters",
]

ServerKind = Literal["vllm", "llama.cpp", "llama-cpp-python"]
SERVER_KINDS: tuple[ServerKind, ...] = ("vllm", "llama.cpp", "llama-cpp-python")

BASE_ALIAS = "base"
"""The base model's name on the server when ``model.models`` has no ``base`` entry."""

LLAMA_SAMPLING = {"repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0}
"""The llama.cpp backend's sampling (:mod:`ragtune.generate.llamacpp`), sent to the llama.cpp
servers, whose defaults differ (llama-cpp-python penalises repeats by 1.1; both cut at top-k
40 and min-p 0.05)."""

# vLLM accepts only these --max-lora-rank values.
_VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class RegistrationError(BackendError):
    """An adapter cannot be registered with, or selected on, the project's server."""


@dataclass(frozen=True)
class ServedAdapter:
    """One of the project's adapters as a server sees it.

    Attributes:
        name: The adapter (its folder under ``.ragtune/adapters``, normally the capability).
        served_as: Its model name on the server (``model.models``, else ``name``).
        folder: The adapter folder on this machine.
        server_folder: The folder as the server reads it (``model.server_adapters_dir``).
        rank: The LoRA rank (``r`` of ``adapter_config.json``), when recorded.
    """

    name: str
    served_as: str
    folder: Path
    server_folder: str
    rank: int | None = None

    @property
    def gguf(self) -> str:
        """The GGUF LoRA as the server reads it (what the llama.cpp servers load)."""
        from ragtune.generate.gguf_lora import GGUF_LORA

        return str(PurePosixPath(self.server_folder) / GGUF_LORA)


@dataclass(frozen=True)
class Registration:
    """What registering one adapter did.

    Attributes:
        adapter: The adapter's name in the project.
        served_as: Its name on the server (vLLM, llama-cpp-python) or ``lora id N``.
        server: The server's kind.
        url: The server's URL, without credentials.
        action: ``loaded`` (vLLM loaded it), ``reloaded`` (vLLM replaced the adapter of that
            name) or ``present`` (a llama.cpp server holds it since it started).
        note: What the user still has to do, if anything.
    """

    adapter: str
    served_as: str
    server: str
    url: str
    action: Literal["loaded", "reloaded", "present"]
    note: str = ""

    def describe(self) -> str:
        """One line for the CLI."""
        line = (
            f"adapter {self.adapter}: {self.action} on {self.server} {self.url} as {self.served_as}"
        )
        return f"{line} ({self.note})" if self.note else line


@dataclass(frozen=True)
class ServeCommand:
    """The command that starts a server with the project's adapters.

    Attributes:
        server: The server's kind.
        argv: The command line.
        env: Environment variables it needs.
        config: The config file it reads (llama-cpp-python), as JSON values; None otherwise.
        config_path: Where ``argv`` expects that file.
        adapters: The adapters it serves.
        skipped: Adapters left out, with the reason.
        notes: What must hold before the command works.
    """

    server: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    config_path: Path | None = None
    adapters: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def shell(self) -> str:
        """The command as one shell line, environment first."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return f"{env} {shlex.join(self.argv)}" if env else shlex.join(self.argv)


class ServerClient(ABC):
    """Talks to one server about adapters: registers them and selects them per request.

    Args:
        base_url: The server's OpenAI API root (``model.base_url``, normally ending in /v1).
        api_key: Its key, or None.
        timeout: Seconds to wait for an answer.
        default_model: The base model's name on the server (``model.models['base']``).
    """

    kind: ClassVar[ServerKind]
    default_port: ClassVar[int]

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 60,
        default_model: str | None = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.url = redact_url(self.base_url)
        self.default_model = default_model or BASE_ALIAS
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout)

    @property
    def root(self) -> str:
        """The server's root: the API root without its ``/v1``."""
        return self.base_url.removesuffix("/v1")

    @abstractmethod
    def register(self, adapter: ServedAdapter) -> Registration:
        """Make the server serve ``adapter`` as it is on disk now (each kind its own way).

        Raises:
            RegistrationError: The server is unreachable, refused, or does not hold the adapter
                (names the server, the adapter and what to do).
        """

    def request(self, served_as: str | None) -> tuple[str, dict[str, Any]]:
        """The model name and the extra body fields of a request for ``served_as`` (the
        adapter's name on the server; None for the base model).

        Raises:
            RegistrationError: The server does not serve that adapter.
        """
        return served_as or self.default_model, {}

    @classmethod
    @abstractmethod
    def command(
        cls, project: Project, adapters: list[ServedAdapter], base_url: str
    ) -> ServeCommand:
        """The command that starts this kind of server with ``adapters`` (each kind its own)."""

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # -- helpers -------------------------------------------------------------------------------

    def _call(self, method: str, url: str, adapter: str, json: Any = None) -> httpx.Response:
        """One HTTP call; a network failure becomes a RegistrationError naming both ends."""
        import httpx

        try:
            return self._http.request(method, url, json=json)
        except httpx.HTTPError as exc:
            raise RegistrationError(
                f"cannot reach the {self.kind} server at {redact_url(url)} for adapter "
                f"{adapter!r}: {exc}. Check that it is running and that model.base_url is its "
                "API root."
            ) from exc

    def _refused(self, response: httpx.Response, adapter: str, what: str) -> RegistrationError:
        detail = _detail(response)
        key = " (check model.api_key_env)" if response.status_code in (401, 403) else ""
        return RegistrationError(
            f"the {self.kind} server at {redact_url(str(response.url))} refused to {what} "
            f"adapter {adapter!r}: {response.status_code} {detail}{key}"
        )


class VllmServer(ServerClient):
    """vLLM: adapters loaded and unloaded at run time, each under its own model name."""

    kind = "vllm"
    default_port = 8000

    def register(self, adapter: ServedAdapter) -> Registration:
        """Unload the adapter of that name if vLLM serves one, then load the folder."""
        name = adapter.name
        unload = self._call(
            "POST", f"{self.base_url}/unload_lora_adapter", name, {"lora_name": adapter.served_as}
        )
        reloaded = unload.is_success  # a 400/404 here: nothing of that name was loaded
        load = self._call(
            "POST",
            f"{self.base_url}/load_lora_adapter",
            name,
            {"lora_name": adapter.served_as, "lora_path": adapter.server_folder},
        )
        if load.status_code == 404 and "lora" not in _detail(load).lower():
            raise RegistrationError(
                f"the vllm server at {redact_url(str(load.url))} has no /v1/load_lora_adapter, so "
                f"adapter {name!r} cannot be loaded at run time: start vLLM with --enable-lora "
                "and the environment variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (`ragtune "
                "adapter serve-command --server vllm` prints the command)."
            )
        if not load.is_success:
            raise self._refused(load, name, f"load {adapter.server_folder} as")
        return Registration(
            name, adapter.served_as, self.kind, self.url, "reloaded" if reloaded else "loaded"
        )

    @classmethod
    def command(
        cls, project: Project, adapters: list[ServedAdapter], base_url: str
    ) -> ServeCommand:
        """``vllm serve BASE --enable-lora --lora-modules name=path ...``; the base is the
        Hugging Face folder the adapters were trained on (a GGUF base's de-quantised copy)."""
        host, port = _host_port(base_url, cls.default_port)
        rank = max((a.rank or 16 for a in adapters), default=16)
        argv = [
            "vllm", "serve", _hf_base(project),
            "--served-model-name", _base_name(project),
            "--enable-lora",
            "--max-lora-rank", str(next((r for r in _VLLM_RANKS if r >= rank), rank)),
            "--max-loras", str(max(1, len(adapters))),
            "--host", host, "--port", str(port),
        ]  # fmt: skip
        if adapters:
            argv += ["--lora-modules", *(f"{a.served_as}={a.server_folder}" for a in adapters)]
        notes = []
        if not Path(argv[2]).exists() and _is_gguf(project):
            notes.append(
                f"{argv[2]} is the GGUF base de-quantised, the weights the adapters were trained "
                "on; the first training run here makes it (`ragtune adapter train CAPABILITY`)."
            )
        return ServeCommand(
            cls.kind, argv, {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"},
            adapters=[a.name for a in adapters], notes=notes,
        )  # fmt: skip


class LlamaServer(ServerClient):
    """llama.cpp's ``llama-server``: adapters loaded at start, selected by id per request."""

    kind = "llama.cpp"
    default_port = 8080

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listed: list[dict[str, Any]] | None = None

    def register(self, adapter: ServedAdapter) -> Registration:
        """Find the adapter's id among the server's and set every global scale to 0."""
        listed = self._adapters(adapter.name, fresh=True)
        found = _match_lora(listed, adapter)
        if found is None:
            raise self._missing(adapter, listed)
        scales = [{"id": int(entry["id"]), "scale": 0.0} for entry in listed]
        reply = self._call("POST", f"{self.root}/lora-adapters", adapter.name, scales)
        if not reply.is_success:
            raise self._refused(reply, adapter.name, "set the scales of")
        return Registration(
            adapter.name, f"lora id {found}", self.kind, self.url, "present",
            "llama-server reads adapter files when it starts: restart it if it started before "
            "this adapter was trained",
        )  # fmt: skip

    def request(self, served_as: str | None) -> tuple[str, dict[str, Any]]:
        """The base model's name (llama-server serves one model) and a ``lora`` field with the
        adapter at scale 1 and every other at 0."""
        chosen = None
        listed = self._adapters(served_as or "base model")
        if served_as is not None:
            chosen = _match_name(listed, served_as)
            if chosen is None:  # perhaps restarted with more adapters since: look again
                listed = self._adapters(served_as, fresh=True)
                chosen = _match_name(listed, served_as)
            if chosen is None:
                raise self._missing_name(served_as, listed)
        lora = [
            {"id": int(e["id"]), "scale": 1.0 if int(e["id"]) == chosen else 0.0} for e in listed
        ]
        return self.default_model, {**LLAMA_SAMPLING, "lora": lora}

    @classmethod
    def command(
        cls, project: Project, adapters: list[ServedAdapter], base_url: str
    ) -> ServeCommand:
        """``llama-server -m base.gguf --lora a.gguf --lora b.gguf --lora-init-without-apply``."""
        host, port = _host_port(base_url, cls.default_port)
        settings = project.config.model
        argv = ["llama-server", "-m", _gguf_base(project), "--alias", _base_name(project)]
        for adapter in adapters:
            argv += ["--lora", adapter.gguf]
        argv += ["--lora-init-without-apply", "-c", str(settings.context_tokens)]
        if settings.threads:
            argv += ["-t", str(settings.threads)]
        argv += ["--host", host, "--port", str(port)]
        return ServeCommand(cls.kind, argv, adapters=[a.name for a in adapters])

    def _adapters(self, adapter: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        """``GET /lora-adapters``, kept until ``fresh`` asks again."""
        if self._listed is None or fresh:
            reply = self._call("GET", f"{self.root}/lora-adapters", adapter)
            if not reply.is_success:
                raise self._refused(reply, adapter, "list the LoRA adapters for")
            body = reply.json()
            if not isinstance(body, list):
                raise RegistrationError(
                    f"{self.url}: GET /lora-adapters answered {str(body)[:200]!r}, not a list "
                    "of adapters: is model.server right (llama.cpp is llama-server)?"
                )
            self._listed = body
        return self._listed

    def _missing(self, adapter: ServedAdapter, listed: list[dict[str, Any]]) -> RegistrationError:
        paths = ", ".join(str(e.get("path")) for e in listed) or "none"
        return RegistrationError(
            f"the llama.cpp server at {self.url} does not hold adapter {adapter.name!r}: it "
            f"loads LoRA adapters only when it starts, and holds: {paths}. Restart it with "
            f"--lora {adapter.gguf} (`ragtune adapter serve-command --server llama.cpp` prints "
            "the whole command)."
        )

    def _missing_name(self, served_as: str, listed: list[dict[str, Any]]) -> RegistrationError:
        paths = ", ".join(str(e.get("path")) for e in listed) or "none"
        return RegistrationError(
            f"the llama.cpp server at {self.url} holds no LoRA adapter {served_as!r} (by "
            f"folder name or id); it holds: {paths}. Start it with the project's adapters "
            "(`ragtune adapter serve-command --server llama.cpp`)."
        )


class LlamaCppPythonServer(ServerClient):
    """llama-cpp-python's server: one model alias per adapter, from its config file."""

    kind = "llama-cpp-python"
    default_port = 8000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aliases: set[str] | None = None

    def register(self, adapter: ServedAdapter) -> Registration:
        """Check that the server lists the adapter's alias."""
        self._check(adapter.served_as, adapter.name, fresh=True)
        return Registration(
            adapter.name, adapter.served_as, self.kind, self.url, "present",
            "the server reads lora_path when it loads the alias: restart it if it started "
            "before this adapter was trained",
        )  # fmt: skip

    def request(self, served_as: str | None) -> tuple[str, dict[str, Any]]:
        """The alias, checked once (an unknown one would be answered by the first model)."""
        model = served_as or self.default_model
        self._check(model, served_as or "base model")
        return model, dict(LLAMA_SAMPLING)

    @classmethod
    def command(
        cls, project: Project, adapters: list[ServedAdapter], base_url: str
    ) -> ServeCommand:
        """``python -m llama_cpp.server --config_file FILE`` and the file: the base GGUF under
        its alias, then the same GGUF once per adapter with its ``lora_path``. The server keeps
        one alias loaded at a time and reloads on a switch (a fraction of a second for a small
        model), so it suits a team's few requests, not throughput: use vLLM or llama-server."""
        host, port = _host_port(base_url, cls.default_port)
        settings = project.config.model
        base = {"model": _gguf_base(project), "n_ctx": settings.context_tokens, "verbose": False}
        if settings.threads:
            base.update(n_threads=settings.threads, n_threads_batch=settings.threads)
        models = [{**base, "model_alias": _base_name(project)}]
        models += [{**base, "model_alias": a.served_as, "lora_path": a.gguf} for a in adapters]
        path = project.state_dir / "llama-cpp-python.json"
        return ServeCommand(
            cls.kind,
            ["python", "-m", "llama_cpp.server", "--config_file", str(path)],
            config={"host": host, "port": port, "models": models},
            config_path=path,
            adapters=[a.name for a in adapters],
        )

    def _check(self, alias: str, adapter: str, *, fresh: bool = False) -> None:
        if self._aliases is None or fresh or alias not in self._aliases:
            reply = self._call("GET", f"{self.base_url}/models", adapter)
            if not reply.is_success:
                raise self._refused(reply, adapter, "list the models for")
            self._aliases = {str(m.get("id")) for m in reply.json().get("data", [])}
        if alias not in self._aliases:
            raise RegistrationError(
                f"the llama-cpp-python server at {self.url} has no model alias {alias!r} for "
                f"{adapter!r} (it lists: {', '.join(sorted(self._aliases)) or 'none'}), and would "
                "answer with its first model instead. Add the alias with its lora_path to the "
                "server's config file and restart it (`ragtune adapter serve-command --server "
                "llama-cpp-python` writes the file)."
            )


_SERVERS: dict[str, type[ServerClient]] = {
    "vllm": VllmServer,
    "llama.cpp": LlamaServer,
    "llama-cpp-python": LlamaCppPythonServer,
}


def server_class(kind: str) -> type[ServerClient]:
    """The client class of a server kind.

    Raises:
        RegistrationError: An unknown kind (lists the known ones).
    """
    if kind not in _SERVERS:
        raise RegistrationError(
            f"model.server {kind!r} is not a server kind; known: {', '.join(SERVER_KINDS)}."
        )
    return _SERVERS[kind]


def open_server(project: Project) -> ServerClient | None:
    """The client of the project's server (``model.server``), None when none is set.

    Raises:
        BackendError: The backend's settings are incomplete (no base_url, a key variable that
            is not set).
    """
    from ragtune.generate.remote import server_key

    settings = project.config.model
    if settings.server is None or (settings.backend or "") != "openai":
        return None
    if not settings.base_url:
        raise BackendError(
            f"model.server is {settings.server} but model.base_url is not set: give the "
            "server's API root, e.g. http://127.0.0.1:8000/v1."
        )
    return server_class(settings.server)(
        settings.base_url,
        server_key(project),
        timeout=settings.timeout_s,
        default_model=settings.models.get("base"),
    )


def served_adapters(
    project: Project, names: Iterable[str] | None = None, *, kind: str | None = None
) -> tuple[list[ServedAdapter], list[tuple[str, str]]]:
    """The project's adapters (``names``, or all) as a server of ``kind`` (default:
    ``model.server``) sees them, and those it cannot serve with the reason (vLLM needs the PEFT
    weights, the llama.cpp servers ``adapter.gguf``)."""
    import json

    from ragtune.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, list_adapters
    from ragtune.generate.gguf_lora import GGUF_LORA

    settings = project.config.model
    wanted = None if names is None else set(names)
    needs = ADAPTER_WEIGHTS if (kind or settings.server) == "vllm" else GGUF_LORA
    found: list[ServedAdapter] = []
    skipped: list[tuple[str, str]] = []
    known = {info.name: info for info in list_adapters(project.adapters_dir)}
    for name in sorted(known if wanted is None else wanted):
        info = known.get(name)
        if info is None:
            skipped.append((name, f"no trained adapter in {project.adapters_dir}"))
            continue
        if not (info.path / needs).is_file():
            skipped.append((name, f"it has no {needs} (the base model is not a GGUF?)"))
            continue
        try:
            rank = json.loads((info.path / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("r")
        except (OSError, ValueError):
            rank = None
        where = settings.server_adapters_dir
        server_folder = str(PurePosixPath(where) / name) if where else str(info.path.resolve())
        found.append(
            ServedAdapter(
                name, settings.models.get(name, name), info.path, server_folder,
                rank if isinstance(rank, int) else None,
            )
        )  # fmt: skip
    return found, skipped


def register_adapters(project: Project, names: Sequence[str]) -> list[Registration]:
    """Register the adapters ``names`` with the project's server (``model.server``); nothing
    when it has none. Every adapter is tried before a failure is raised.

    Returns:
        One :class:`Registration` per adapter.

    Raises:
        RegistrationError: One or more failed: each with its reason, and where the trained
            adapters are kept (they are not touched).
    """
    if not names:
        return []
    server = open_server(project)
    if server is None:
        return []
    adapters, skipped = served_adapters(project, names)
    done: list[Registration] = []
    failed = [f"{name}: {why}" for name, why in skipped]
    try:
        for adapter in adapters:
            try:
                done.append(server.register(adapter))
            except RegistrationError as exc:
                failed.append(str(exc))
    finally:
        server.close()
    if failed:
        kept = ", ".join(f"{n} ({project.adapters_dir / n})" for n in names)
        ok = "".join(f"\n  {r.describe()}" for r in done)
        raise RegistrationError(
            "\n".join(
                [
                    f"registering adapters with the {server.kind} server at {server.url} "
                    f"failed; the trained adapters are kept: {kept}.",
                    *(f"  {line}" for line in failed),
                    "Fix the server and run `ragtune adapter register` to register them again."
                    + (f"\nRegistered:{ok}" if ok else ""),
                ]
            )
        )
    return done


def serve_command(project: Project, server: str | None = None) -> ServeCommand:
    """The command that starts a server of kind ``server`` (default: ``model.server``) with
    every adapter of the project, listening where ``model.base_url`` points.

    Raises:
        RegistrationError: No kind given or set, or an unknown one.
        BackendError: A llama.cpp server with a base model that is not a GGUF.
    """
    kind = server or project.config.model.server
    if kind is None:
        raise RegistrationError(
            f"which server? Pass one of {', '.join(SERVER_KINDS)}, or set model.server."
        )
    cls = server_class(kind)
    adapters, skipped = served_adapters(project, kind=kind)
    base_url = project.config.model.base_url or f"http://127.0.0.1:{cls.default_port}/v1"
    command = cls.command(project, adapters, base_url)
    command.skipped.extend(skipped)
    return command


# -- small helpers -----------------------------------------------------------------------------


def _detail(response: httpx.Response) -> str:
    """The server's error message: its JSON ``message``/``detail``/``error``, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                return str(value)[:300]
    return str(body)[:300]


def _match_lora(listed: list[dict[str, Any]], adapter: ServedAdapter) -> int | None:
    """The id of ``adapter``'s GGUF among llama-server's adapters: its path as given to --lora,
    or any path ending in ``<name>/adapter.gguf``."""
    from ragtune.generate.gguf_lora import GGUF_LORA

    for entry in listed:
        path = str(entry.get("path", ""))
        if path == adapter.gguf or PurePosixPath(path).parts[-2:] == (adapter.name, GGUF_LORA):
            return int(entry["id"])
    return _match_name(listed, adapter.served_as)


def _match_name(listed: list[dict[str, Any]], served_as: str) -> int | None:
    """The id of the adapter named ``served_as``: its folder name, the file's stem, or the id."""
    from ragtune.generate.gguf_lora import GGUF_LORA

    for entry in listed:
        path = PurePosixPath(str(entry.get("path", "")))
        name = path.parent.name if path.name == GGUF_LORA else path.stem
        if served_as in (name, str(entry.get("id"))):
            return int(entry["id"])
    return None


def _host_port(base_url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or default


def _base_name(project: Project) -> str:
    return project.config.model.models.get("base") or BASE_ALIAS


def _gguf_base(project: Project) -> str:
    from ragtune.generate.base import resolve_base_model

    spec = resolve_base_model(project.config.model.base_model)
    if spec.gguf_path is None:
        raise BackendError(
            f"model.base_model {project.config.model.base_model!r} is not a GGUF file, which a "
            "llama.cpp server needs: serve it with vLLM, or give a .gguf."
        )
    return str(spec.gguf_path.resolve())


def _is_gguf(project: Project) -> bool:
    from ragtune.generate.base import resolve_base_model

    return resolve_base_model(project.config.model.base_model).gguf_file is not None


def _hf_base(project: Project) -> str:
    """The Hugging Face model vLLM loads: a GGUF base's de-quantised copy (the weights the
    adapters were trained on, made by the first training run), a folder, or a hub id."""
    from ragtune.generate.base import cache_folder, model_sha256, resolve_base_model

    spec = resolve_base_model(project.config.model.base_model)
    if spec.gguf_file is not None:
        return str(cache_folder(spec, project.state_dir / "models", model_sha256(spec)).resolve())
    return str(spec.folder.resolve()) if spec.folder else str(spec.hub_id)

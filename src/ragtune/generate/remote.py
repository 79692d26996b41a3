"""The remote backend: any OpenAI-compatible server, through the official ``openai`` client.

This is how serving scales past one process: vLLM serves a base model with many LoRA adapters
(``vllm serve <base> --enable-lora --lora-modules risk_flags=/path/to/adapter``), each adapter
under its own model name; llama.cpp's ``llama-server`` and Ollama speak the same API.

A request names an adapter (normally the capability) or None; :func:`resolve_model` turns that
into the model name the server knows:

- ``models`` maps adapter names to server model names (``{"risk_flags": "rf-v3"}``);
- an adapter without a mapping is sent under its own name (how vLLM's ``--lora-modules`` names
  them when you use the capability names);
- ``None`` (the base model) is sent as ``default_model``.

With ``model.server`` set (vllm, llama.cpp, llama-cpp-python) the server's kind decides how a
request selects the adapter (llama-server: its ``lora`` ids) and ``ragtune build`` registers
each adapter it trains there (:mod:`ragtune.generate.remote_adapters`).

Errors from the server or the network become :class:`BackendError` naming the URL, the model and
what to check. Token counts come from the server's ``usage``; :meth:`RemoteBackend.count_tokens`
can only estimate (the server's tokenizer is not here).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, cast

from ragtune.errors import redact_url
from ragtune.generate.backend import (
    DEFAULT_PARAMS,
    BackendError,
    FinishReason,
    Generation,
    GenerationParams,
    Stream,
    check_messages,
    register_backend,
)

if TYPE_CHECKING:
    import openai

    from ragtune.generate.remote_adapters import ServerClient
    from ragtune.project import Project

__all__ = ["CHARS_PER_TOKEN", "RemoteBackend", "resolve_model", "server_key"]

CHARS_PER_TOKEN = 4
"""English text averages about four characters a token in the common BPE vocabularies."""


def resolve_model(
    adapter: str | None, models: Mapping[str, str] | None, default_model: str | None
) -> str:
    """The server's model name for a request.

    Args:
        adapter: The adapter (capability) asked for; None for the base model.
        models: Adapter name -> server model name; adapters not in it keep their own name.
        default_model: The server's name of the base model, for ``adapter=None``.

    Raises:
        BackendError: A base-model request with no ``default_model``.
    """
    if adapter is None:
        if default_model:
            return default_model
        raise BackendError(
            "a request without an adapter needs the server's base model name, and none is set: "
            "give default_model (the name the server lists at <base_url>/models)."
        )
    if models and adapter in models:
        return models[adapter]
    return adapter


class RemoteBackend:
    """Generate with an OpenAI-compatible server.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM),
            ``http://127.0.0.1:8080/v1`` (llama.cpp), ``http://127.0.0.1:11434/v1`` (Ollama).
        api_key: The server's key; None when it needs none. (The ``OPENAI_API_KEY`` variable is
            deliberately not read: it would be sent to whatever server ``base_url`` names.)
        models: Adapter name -> server model name (see :func:`resolve_model`).
        default_model: The server's model name for requests without an adapter.
        timeout: Seconds to wait for the server before giving up on a request.
        max_retries: Retries of a failed connection or a 429/5xx answer, with back-off.
        server: The server's kind's client (``model.server``), which says how a request
            selects an adapter there (a model name, llama-server's ``lora`` ids) and with which
            sampling settings; None sends the adapter's name as the model and nothing else.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        models: dict[str, str] | None = None,
        default_model: str | None = None,
        timeout: float = 60,
        *,
        max_retries: int = 2,
        server: ServerClient | None = None,
    ) -> None:
        import openai

        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise BackendError(
                "base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                f"got {base_url!r}"
            )
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise BackendError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.models = dict(models or {})
        self.default_model = default_model
        self.timeout = float(timeout)
        self.server = server
        self.url = redact_url(self.base_url)
        """``base_url`` without its password and query: what messages name."""
        self.name = f"remote:{self.url}"
        self.is_remote = True
        self.model_sha256: str | None = None
        # Local servers accept any key; the client insists on one, so a placeholder stands in.
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "none",
            timeout=self.timeout,
            max_retries=max_retries,
        )

    def generate(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Generation:
        """Answer the chat ``messages`` with the server model for ``params.adapter``.

        A schema (``params.schema``) is sent as ``response_format`` ``json_schema``, which vLLM,
        llama.cpp's server, Ollama and OpenAI decode by; a regex is left to the runtime's
        validation (servers spell regex guidance each their own way).

        Raises:
            BackendError: A bad argument, no model for the request, or the server failed
                (names the URL, the model and what to check).
        """
        started = time.perf_counter()
        model, extra = self._select(params.adapter)
        response = self._create(model, messages, params, extra_body=extra)
        if not response.choices:
            raise BackendError(f"{self.url}: model {model!r} answered with no choices.")
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = response.usage
        return Generation(
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else self._estimate_prompt(messages),
            completion_tokens=usage.completion_tokens if usage else self.count_tokens(text),
            finish_reason=_finish_reason(choice.finish_reason),
            model=model,
            seconds=time.perf_counter() - started,
        )

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Stream:
        """Like :meth:`generate`, piece by piece.

        The request is sent here, so an unreachable server or an unknown model raises at once.
        Usage comes from the server (``stream_options.include_usage``); a server that sends none
        gets its completion tokens counted as the pieces received (servers send about one token
        a piece) and its prompt tokens estimated.
        """
        started = time.perf_counter()
        model, extra = self._select(params.adapter)
        response = self._create(
            model,
            messages,
            params,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        return Stream(self._pieces(response, model, messages, started))

    def _select(self, adapter: str | None) -> tuple[str, dict[str, Any] | None]:
        """The model name and the extra body fields that select ``adapter`` on the server."""
        if self.server is None:
            return resolve_model(adapter, self.models, self.default_model), None
        served_as = None if adapter is None else resolve_model(adapter, self.models, None)
        return self.server.request(served_as)

    def _create(
        self, model: str, messages: list[dict[str, str]], params: GenerationParams, **extra: Any
    ) -> Any:
        """One chat-completions call, the request checked first and errors explained."""
        import openai

        check_messages(messages)
        try:
            return self.client.chat.completions.create(
                model=model,
                messages=cast(Any, messages),
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                stop=list(params.stop) or openai.omit,
                top_p=params.top_p if params.top_p < 1 else openai.omit,
                seed=openai.omit if params.seed is None else params.seed,
                response_format=_response_format(params.schema),
                **extra,
            )
        except openai.OpenAIError as exc:
            raise self._explain(exc, model) from exc

    def reload_adapter(self, name: str) -> str | None:
        """Refused: the server loads its adapters itself.

        Raises:
            BackendError: Always, saying where to reload it.
        """
        raise BackendError(
            f"the backend {self.name} cannot reload adapter {name!r}: the server serves its "
            "adapters itself, so reload it there (vLLM: restart it with the new --lora-modules)."
        )

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()
        if self.server is not None:
            self.server.close()

    def count_tokens(self, text: str) -> int:
        """An estimate: characters / 4, rounded up. The server's tokenizer is not available here."""
        return -(-len(text) // CHARS_PER_TOKEN)

    def _pieces(
        self,
        response: openai.Stream[Any],
        model: str,
        messages: list[dict[str, str]],
        started: float,
    ) -> Generator[str, None, Generation]:
        """Pass the server's text deltas on; return the Generation with the server's usage."""
        import openai

        sent: list[str] = []
        usage = None
        finish: str | None = None
        try:
            with response:
                for chunk in response:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if not chunk.choices:
                        continue  # the usage chunk has none
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    if choice.delta.content:
                        sent.append(choice.delta.content)
                        yield choice.delta.content
        except openai.OpenAIError as exc:
            raise self._explain(exc, model) from exc
        text = "".join(sent)
        return Generation(
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else self._estimate_prompt(messages),
            completion_tokens=usage.completion_tokens if usage else len(sent),
            finish_reason=_finish_reason(finish),
            model=model,
            seconds=time.perf_counter() - started,
        )

    def _estimate_prompt(self, messages: list[dict[str, str]]) -> int:
        """Prompt tokens when the server reports none: the contents, estimated."""
        return sum(self.count_tokens(m["content"]) for m in messages)

    def _explain(self, exc: Exception, model: str) -> BackendError:
        """An openai error as a message that says which server, which model and what to check."""
        import openai

        where = f"{self.url} (model {model!r})"
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(
                f"{where}: no answer within {self.timeout:g} s. Check that the server is up and "
                "not overloaded, or allow a longer timeout."
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return BackendError(
                f"cannot connect to {where}: {cause}. Check that the server is running and that "
                "base_url is its OpenAI API root (it normally ends in /v1)."
            )
        if isinstance(exc, openai.AuthenticationError):
            return BackendError(f"{where} refused the API key (401): check api_key.")
        if isinstance(exc, openai.PermissionDeniedError):
            return BackendError(f"{where}: the API key may not use this model (403).")
        if isinstance(exc, openai.NotFoundError):
            return BackendError(
                f"{where}: not found (404). Either the server has no model {model!r} (vLLM "
                "serves an adapter under the name given in --lora-modules; map adapters to the "
                "server's names with `models`), or base_url is not the OpenAI API root (it "
                f"normally ends in /v1).{self._served_models()}"
            )
        if isinstance(exc, openai.APIStatusError):
            return BackendError(f"{where} answered {exc.status_code}: {exc.message}")
        return BackendError(f"{where}: {exc}")

    def _served_models(self) -> str:
        """`` The server lists: a, b.`` when it says which models it serves, else nothing."""
        import openai

        try:
            names = [m.id for m in self.client.with_options(max_retries=0).models.list()]
        except openai.OpenAIError:
            return ""
        return f" The server lists: {', '.join(names) or 'no models'}." if names else ""


def _response_format(schema: dict[str, Any] | None) -> Any:
    """The ``response_format`` that asks the server to decode by ``schema`` (omitted: none)."""
    import openai

    if schema is None:
        return openai.omit
    return {"type": "json_schema", "json_schema": {"name": "contract", "schema": schema}}


def _finish_reason(reason: str | None) -> FinishReason:
    """The server's finish reason in our two words: ``length`` when cut short, else ``stop``."""
    return "length" if reason == "length" else "stop"


def server_key(project: Project) -> str | None:
    """The server's key: the environment variable ``model.api_key_env`` names (None: no key).

    Raises:
        BackendError: The variable is named but not set.
    """
    import os

    name = project.config.model.api_key_env
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise BackendError(
            f"model.api_key_env names {name}, which is not set in this environment: export it "
            "with the server's key."
        )
    return key


@register_backend("openai", available=lambda: find_spec("openai") is not None)
def open_remote(project: Project) -> RemoteBackend:
    """The openai backend for a project: ``model.base_url``, the key from the environment
    variable ``model.api_key_env`` names, ``model.models`` as the adapter -> server model names
    (its ``base`` entry names the base model), and ``model.server``'s way of selecting adapters
    (:mod:`ragtune.generate.remote_adapters`).

    Raises:
        BackendError: No base_url, or the key's variable is named but not set.
    """
    from ragtune.generate.remote_adapters import open_server

    settings = project.config.model
    if not settings.base_url:
        raise BackendError(
            "model.backend is openai but model.base_url is not set: give the server's API root, "
            "e.g. base_url: http://127.0.0.1:8000/v1 (vLLM), :8080/v1 (llama.cpp), :11434/v1 "
            "(Ollama)."
        )
    models = dict(settings.models)
    default_model = models.pop("base", None)
    return RemoteBackend(
        settings.base_url,
        server_key(project),
        models,
        default_model,
        timeout=settings.timeout_s,
        server=open_server(project),
    )

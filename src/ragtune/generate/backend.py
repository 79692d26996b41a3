"""The generation contract: every backend takes chat messages and :class:`GenerationParams` and
returns a :class:`Generation`.

The built-in backends register themselves the way a plugin would (:func:`register_backend`),
and ``model.backend`` in ragtune.yaml picks one (:func:`open_backend`):

- ``transformers`` (:class:`ragtune.generate.local.LocalBackend`) runs the base model with
  transformers on this machine, with any number of PEFT LoRA adapters on the one loaded model,
  switched per request.
- ``openai`` (:class:`ragtune.generate.remote.RemoteBackend`) talks to any OpenAI-compatible
  server (vLLM with LoRA adapters, llama.cpp's server, Ollama) through the ``openai`` client.

A request names an *adapter* (normally the capability it was trained for) or ``None`` for the
base model; each backend maps that to what it runs. All answer with the same
:class:`Generation`, so the runtime, the server and the lab never ask which backend they hold.
A package adds a backend with an entry point in the ``ragtune.backends`` group naming a module
that calls :func:`register_backend`.

Streaming returns a :class:`Stream`: iterate it for the text pieces as they are produced, then
read :attr:`Stream.result` for the whole :class:`Generation` (text, token counts, finish reason)::

    stream = backend.stream(messages, adapter="risk_flags")
    for piece in stream:
        print(piece, end="", flush=True)
    print(stream.result.completion_tokens)

This module imports neither torch nor openai.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ragtune.adapters import AdapterError, AdapterManifest, adapter_path, load_manifest
from ragtune.errors import RagtuneError, closest

if TYPE_CHECKING:
    from ragtune.project import Project

__all__ = [
    "BASE",
    "DEFAULT_PARAMS",
    "GREEDY_BELOW",
    "Backend",
    "BackendError",
    "BackendFactory",
    "FinishReason",
    "Generation",
    "GenerationParams",
    "GuideError",
    "Stream",
    "backend_available",
    "backend_names",
    "check_messages",
    "cut_at_stop",
    "open_backend",
    "partial_stop",
    "register_backend",
    "release",
    "trained_adapter",
]

GREEDY_BELOW = 1e-5
"""Temperatures below this are greedy decoding (vLLM draws the same line): the model's logits
divided by a tinier one overflow (1e-38 fails with transformers), and the samples they would
give are the greedy answer anyway."""

FinishReason = Literal["stop", "length"]
"""Why generation ended: ``stop`` (end of turn or a stop string), ``length`` (max_tokens)."""


class BackendError(RagtuneError):
    """A generation cannot be made: a bad request, an unknown or foreign adapter, a server error."""


class GuideError(BackendError):
    """A JSON Schema or regex the backend cannot guide its decoding by: not a valid schema, or
    one its engine cannot express (names what failed)."""


@dataclass(frozen=True)
class GenerationParams:
    """How to answer one request, for every backend.

    Attributes:
        adapter: The adapter (capability) to answer with; None for the base model.
        max_tokens: At most this many tokens are generated.
        temperature: 0 is greedy (the same answer every time); above 0 samples. A temperature
            below :data:`GREEDY_BELOW` is greedy too (it is stored as 0): dividing logits by
            1e-45 overflows to inf, and sampling from that fails.
        stop: Strings that end the answer; the text is cut before the first one found.
        schema: The JSON Schema the answer must follow; a backend that can guide its decoding
            by it does (the local ones: llama.cpp's grammars, llguidance on transformers), a
            remote one leaves it to the runtime's validation.
        regex: The regular expression the whole answer must match (a regex contract, ``.``
            matching newlines too); the local backends guide their decoding by it
            (:mod:`ragtune.generate.regex_grammar`), a remote one leaves it to the runtime's
            validation. At most one of ``schema`` and ``regex``.
        top_p: Nucleus sampling: only the most likely tokens whose probabilities add up to
            ``top_p`` are drawn from (1.0: all of them). Matters only when sampling.
        seed: Seeds the sampling, so a request repeated with the same seed, prompt and settings
            gets the same answer from a local backend; None draws afresh. Matters only when
            sampling (greedy decoding is always the same).

    Raises:
        BackendError: A setting out of range, naming it and the bad value.
    """

    adapter: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    schema: dict[str, Any] | None = field(default=None, compare=False)
    regex: str | None = None
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.adapter is not None and (not isinstance(self.adapter, str) or not self.adapter):
            raise BackendError(f"adapter must be a name or None, got {self.adapter!r}")
        tokens = self.max_tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise BackendError(f"max_tokens must be a whole number >= 1, got {tokens!r}")
        heat = self.temperature
        if (
            isinstance(heat, bool)
            or not isinstance(heat, int | float)
            or not math.isfinite(heat)
            or not 0 <= heat <= 2
        ):
            raise BackendError(f"temperature must be a number from 0 to 2, got {heat!r}")
        if heat < GREEDY_BELOW:
            object.__setattr__(self, "temperature", 0.0)
        stop = self.stop
        if (
            isinstance(stop, str)
            or not isinstance(stop, Sequence)
            or not all(isinstance(s, str) and s for s in stop)
        ):
            raise BackendError(f"stop must be a list of non-empty strings, got {stop!r}")
        object.__setattr__(self, "stop", tuple(stop))
        if self.schema is not None and not isinstance(self.schema, dict):
            raise BackendError(f"schema must be a JSON Schema object, got {self.schema!r:.200}")
        if self.regex is not None and not isinstance(self.regex, str):
            raise BackendError(f"regex must be a regular expression string, got {self.regex!r}")
        if self.regex is not None and self.schema is not None:
            raise BackendError("give a schema or a regex to guide the answer, not both")
        nucleus = self.top_p
        if (
            isinstance(nucleus, bool)
            or not isinstance(nucleus, int | float)
            or not math.isfinite(nucleus)
            or not 0 < nucleus <= 1
        ):
            raise BackendError(f"top_p must be a number above 0 and at most 1, got {nucleus!r}")
        seed = self.seed
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64
        ):
            raise BackendError(f"seed must be a whole number (64 bits) or None, got {seed!r}")


BASE = "base"
"""``Generation.model`` of a request a local backend answers without an adapter."""

DEFAULT_PARAMS = GenerationParams()
"""Greedy, 256 tokens, the base model: what a request that gives no settings gets."""


@dataclass(frozen=True)
class Generation:
    """One finished generation.

    Attributes:
        text: The generated text, without the prompt, special tokens or the stop string.
        prompt_tokens: Tokens of the prompt (chat template applied), as the backend counted them.
        completion_tokens: Tokens generated, the end-of-turn or stop-string tokens included:
            what the generation cost.
        finish_reason: ``"stop"`` when the model ended its turn or a stop string was produced,
            ``"length"`` when ``max_tokens`` ran out first.
        model: What produced it: ``"base"``, the adapter's name, or the remote model's name.
        seconds: Wall time of the request, from the call to the last token.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    model: str
    seconds: float


class Stream(Iterator[str]):
    """The text pieces of one generation as they are produced, and the whole of it at the end.

    Wraps a generator that yields the pieces and *returns* the :class:`Generation`; the wrapper
    keeps that return value in :attr:`result` once the pieces are exhausted. Close a stream you
    stop reading early (or use it in a ``with`` block): a local backend then stops generating
    and lets other requests in, a remote one closes the connection.
    """

    def __init__(self, pieces: Generator[str, None, Generation]) -> None:
        self._pieces = pieces
        self.result: Generation | None = None
        """The whole generation; None until every piece has been read."""

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as done:
            # An exhausted generator raises StopIteration again without a value: keep the first.
            if self.result is None:
                self.result = done.value
            raise

    def collect(self) -> Generation:
        """Read the remaining pieces and return the whole generation."""
        for _ in self:
            pass
        assert self.result is not None  # set when the generator returned
        return self.result

    def close(self) -> None:
        """Stop reading: ends the generation early and releases what it holds."""
        self._pieces.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class Backend(Protocol):
    """What the runtime, the server and the lab need from a generator of text.

    Attributes:
        name: Names the backend in logs and reports (``llama.cpp:<model>``,
            ``transformers:<model>``, ``remote:<url>``).
        is_remote: True when another server runs the model and serves the adapters itself
            (adapters cannot be reloaded from here; prompt tokens are counted there).
        model_sha256: The hash of the base model's files (what adapters record they were
            trained on); None for a remote server.
    """

    name: str
    is_remote: bool
    model_sha256: str | None

    def generate(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Generation:
        """Answer the chat ``messages`` (``{"role": ..., "content": ...}`` dicts, system message
        first when there is one).

        Raises:
            BackendError: A bad request, an unknown adapter, or a failure of the backend.
        """
        ...

    def stream(
        self, messages: list[dict[str, str]], params: GenerationParams = DEFAULT_PARAMS
    ) -> Stream:
        """Like :meth:`generate`, piece by piece; the joined pieces equal ``result.text``."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by this backend's model (or an estimate, where it says so)."""
        ...

    def reload_adapter(self, name: str) -> str | None:
        """Serve adapter ``name`` as it is on disk now (after a retrain), without a restart;
        returns when the served version was trained (None if not recorded).

        Raises:
            BackendError: Unknown adapter, one of another base model, or a remote backend
                (its server loads adapters itself).
        """
        ...

    def close(self) -> None:
        """Release what the backend holds (models, adapters, connections)."""
        ...


BackendFactory = Callable[["Project"], Backend]
"""Makes a backend for a project, from its ``model:`` settings."""

_BACKENDS: dict[str, BackendFactory] = {}
_AVAILABLE: dict[str, Callable[[], bool]] = {}
# The built-in backends register in these modules, the way a plugin's module would.
_BUILTIN = ("ragtune.generate.llamacpp", "ragtune.generate.local", "ragtune.generate.remote")
_DEFAULT_ORDER = ("llama.cpp", "transformers")


def register_backend(
    name: str, *, available: Callable[[], bool] = lambda: True
) -> Callable[[BackendFactory], BackendFactory]:
    """Register a backend factory under ``name`` (what ``model.backend`` names).

    Args:
        name: The name in ragtune.yaml.
        available: Whether the backend can run here (its engine is installed); the default
            backend is the first of llama.cpp and transformers that can.
    """

    def register(factory: BackendFactory) -> BackendFactory:
        _BACKENDS[name] = factory
        _AVAILABLE[name] = available
        return factory

    return register


def _load_plugins() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)
    for entry in entry_points(group="ragtune.backends"):
        entry.load()


def backend_names() -> list[str]:
    """The registered backends' names, sorted."""
    _load_plugins()
    return sorted(_BACKENDS)


def default_backend() -> str:
    """The backend used when ``model.backend`` is not set: llama.cpp where it is installed,
    else transformers."""
    _load_plugins()
    return next(name for name in _DEFAULT_ORDER if _AVAILABLE[name]())


def backend_available(name: str) -> bool:
    """Whether the backend ``name`` is registered and its engine is installed here (what
    ``ragtune doctor`` reports; nothing is loaded)."""
    _load_plugins()
    return name in _AVAILABLE and _AVAILABLE[name]()


def open_backend(project: Project) -> Backend:
    """The backend ``model.backend`` names (default: :func:`default_backend`), made for the
    project.

    Raises:
        BackendError: An unknown name (lists the known ones), an engine that is not installed,
            or settings the backend cannot work with (each names the setting).
    """
    _load_plugins()
    name = project.config.model.backend or default_backend()
    if name not in _BACKENDS:
        close = closest(name, _BACKENDS)
        hint = f" Did you mean {close!r}?" if close else ""
        raise BackendError(
            f"model.backend {name!r} is not a backend.{hint} "
            f"Backends: {', '.join(sorted(_BACKENDS))}."
        )
    if not _AVAILABLE[name]():
        raise BackendError(
            f"model.backend {name!r} is not installed here; install it (see the README), or "
            f"choose another: {', '.join(n for n in sorted(_BACKENDS) if _AVAILABLE[n]())}."
        )
    return _BACKENDS[name](project)


def trained_adapter(
    adapters_root: Path, name: str, model_sha256: str, model: str
) -> tuple[Path, AdapterManifest]:
    """An adapter's folder and manifest, when it exists and was trained on this base model.

    LoRA weights learned on one model are noise on another and nothing else would notice, so
    an adapter whose manifest names another ``base_model.sha256`` is refused.

    Raises:
        BackendError: No such adapter (lists the known ones), or one of another base model
            (names both hashes).
    """
    try:
        folder = adapter_path(adapters_root, name)
        manifest = load_manifest(adapters_root, name)
    except AdapterError as exc:
        raise BackendError(str(exc)) from exc
    trained_on = manifest.base_model.sha256
    if trained_on != model_sha256:
        raise BackendError(
            f"adapter {name!r} ({folder}) was trained on another base model: its manifest "
            f"says base_model.sha256 {trained_on or 'not recorded'}, the loaded model "
            f"{model} is {model_sha256}. Retrain it on this model (`ragtune build`) or load "
            "the model it was trained on."
        )
    return folder, manifest


def check_messages(messages: object) -> None:
    """Check a request's messages before any work.

    Raises:
        BackendError: Naming the message and what is wrong with it.
    """
    if not isinstance(messages, list) or not messages:
        raise BackendError(
            f"messages must be a non-empty list of {{'role': ..., 'content': ...}} dicts, "
            f"got {messages!r:.200}"
        )
    for i, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise BackendError(
                f"messages[{i}] must be a dict with string 'role' and 'content', "
                f"got {message!r:.200}"
            )


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string in it; say whether one was found."""
    found = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def partial_stop(text: str, stop: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could begin a stop string.

    A stream holds those characters back: the next piece may complete the stop string, and the
    stop string must never reach the reader.
    """
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


def release(pieces: Iterator[str], stop: Sequence[str]) -> Generator[str, None, bool]:
    """Pass streamed text on without ever letting a stop string through.

    Characters that could begin a stop string are held back until the next piece shows they do
    not (:func:`partial_stop`); at a stop string the text before it is passed on and reading
    ends, which closes ``pieces`` (and so stops generating). Returns whether a stop string ended
    the text.
    """
    held = ""  # received, not yet passed on: it may be the start of a stop string
    for piece in pieces:
        held += piece
        held, found = cut_at_stop(held, stop)
        keep = 0 if found else partial_stop(held, stop)
        ready, held = held[: len(held) - keep], held[len(held) - keep :]
        if ready:
            yield ready
        if found:
            return True
    if held:
        yield held
    return False

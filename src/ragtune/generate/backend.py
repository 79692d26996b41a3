"""The generation interface: every backend takes chat messages and returns a :class:`Generation`.

Two backends implement it:

- :class:`ragtune.generate.local.LocalBackend` runs the base model with transformers on this
  machine, with any number of LoRA adapters on the one loaded model, switched per request.
- :class:`ragtune.generate.remote.RemoteBackend` talks to any OpenAI-compatible server (vLLM
  with LoRA adapters, llama.cpp's server, Ollama) through the ``openai`` client.

A request names an *adapter* (normally the capability it was trained for) or ``None`` for the
base model; each backend maps that to what it runs. Both answer with the same
:class:`Generation`, so the runtime, the server and the lab never ask which backend they hold.

Streaming returns a :class:`Stream`: iterate it for the text pieces as they are produced, then
read :attr:`Stream.result` for the whole :class:`Generation` (text, token counts, finish reason)::

    stream = backend.stream(messages, adapter="risk_flags")
    for piece in stream:
        print(piece, end="", flush=True)
    print(stream.result.completion_tokens)

This module imports neither torch nor openai.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, runtime_checkable

from ragtune.errors import RagtuneError

__all__ = [
    "Backend",
    "BackendError",
    "FinishReason",
    "Generation",
    "Stream",
    "check_request",
    "cut_at_stop",
    "partial_stop",
]

FinishReason = Literal["stop", "length"]
"""Why generation ended: ``stop`` (end of turn or a stop string), ``length`` (max_tokens)."""


class BackendError(RagtuneError):
    """A generation cannot be made: a bad request, an unknown or foreign adapter, a server error."""


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
    """What the runtime needs from a generator of text.

    Attributes:
        name: Names the backend in logs and reports (``local:<model>``, ``remote:<url>``).
    """

    name: str

    def generate(
        self,
        messages: list[dict[str, str]],
        *,
        adapter: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> Generation:
        """Answer the chat ``messages`` (``{"role": ..., "content": ...}`` dicts).

        Args:
            messages: The conversation, system message first when there is one.
            adapter: The adapter (capability) to answer with; None for the base model.
            max_tokens: At most this many tokens are generated.
            temperature: 0 is greedy (the same answer every time); above 0 samples.
            stop: Strings that end the answer; the text is cut before the first one found.
            schema: The JSON Schema the answer must follow. A local backend keeps its string
                enums to their values while decoding (:mod:`ragtune.generate.guide`); a remote
                one leaves the answer to the runtime's validation.

        Raises:
            BackendError: A bad request, an unknown adapter, or a failure of the backend.
        """
        ...

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        adapter: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> Stream:
        """Like :meth:`generate`, piece by piece; the joined pieces equal ``result.text``."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by this backend's model (or an estimate, where it says so)."""
        ...


def check_request(
    messages: object, max_tokens: object, temperature: object, stop: object
) -> list[str]:
    """Check a request's arguments before any work; return the stop strings (empty when none).

    Raises:
        BackendError: Naming the argument and the bad value.
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
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise BackendError(f"max_tokens must be a whole number >= 1, got {max_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        raise BackendError(f"temperature must be a number from 0 to 2, got {temperature!r}")
    if stop is None:
        return []
    if (
        isinstance(stop, str)
        or not isinstance(stop, Sequence)
        or not all(isinstance(s, str) and s for s in stop)
    ):
        raise BackendError(f"stop must be a list of non-empty strings, got {stop!r}")
    return list(stop)


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

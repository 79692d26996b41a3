"""Whether a chat request fits the model: how many messages it has, and how many tokens its
prompt takes in the model's context window beside the answer.

Two checks, each answered with a 400 that names the numbers, before any token is generated:

- :func:`check_message_count` (on the event loop, before any work): at most
  ``ServerSettings.max_messages`` messages;
- :func:`prompt_check` (in the worker, inside the queue and the time limit, since counting needs
  the backend's tokenizer): first the client's own text - the question, the history kept and
  its instructions - so a huge body is refused before retrieval; then, through the pipeline's
  ``check``, the whole prompt the runtime has built (the system prompt, the passages, the
  examples, the history and the question) before it generates. Prompt and ``max_tokens``
  together must fit the window.

The window is ``model.context_tokens`` of ragtune.yaml for a local backend (the context llama.cpp
is opened with; transformers models accept at least that much), capped by
``ServerSettings.max_prompt_tokens`` when it is set. A remote backend's server knows its own
window: only ``max_prompt_tokens`` applies to it.

Tokens are counted with the backend's :meth:`~ragtune.generate.backend.Backend.count_tokens`,
message by message, plus :data:`TEMPLATE_TOKENS` per message for the chat template's markup (an
over-estimate of a few tokens, never an under-estimate for the templates shipped).
"""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.runtime.pipeline import PromptCheck
from ragtune.runtime.runtime import Request, Result, Runtime
from ragtune.server.errors import ApiError
from ragtune.server.schemas import ChatRequest
from ragtune.server.settings import ServerSettings

__all__ = ["TEMPLATE_TOKENS", "Room", "check_message_count", "prompt_check", "room_for"]

TEMPLATE_TOKENS = 8
"""Tokens counted for each message's markup (role header, end of turn), and once more for the
assistant's header that opens the answer."""


@dataclass(frozen=True)
class Room:
    """How many prompt tokens a request may use.

    Attributes:
        prompt_tokens: The most the prompt may take.
        window: The context window (None: only the server's ``max_prompt_tokens`` applies).
        max_tokens: The answer's budget, which the window holds beside the prompt.
        capped: Whether ``ServerSettings.max_prompt_tokens`` set the limit, not the window.
    """

    prompt_tokens: int
    window: int | None
    max_tokens: int
    capped: bool = False

    def describe(self) -> str:
        """What limits the prompt, in words, for an error message."""
        if self.capped or self.window is None:
            return (
                f"this server's limit of {self.prompt_tokens} prompt tokens "
                "(ragtune serve --max-prompt-tokens)"
            )
        return (
            f"room for {self.prompt_tokens} prompt tokens (the model's context of {self.window} "
            f"tokens, model.context_tokens, less max_tokens {self.max_tokens})"
        )


def check_message_count(chat: ChatRequest, settings: ServerSettings) -> None:
    """Refuse more than ``settings.max_messages`` messages.

    Raises:
        ApiError: 400 ``too_many_messages``, naming the count and the limit.
    """
    count, limit = len(chat.messages), settings.max_messages
    if count > limit:
        raise ApiError(
            400,
            f"messages holds {count} messages; this server takes at most {limit} in one "
            "request: drop the earlier turns (the operator sets the limit with `ragtune serve "
            "--max-messages`).",
            param="messages",
            code="too_many_messages",
        )


def room_for(runtime: Runtime, settings: ServerSettings, max_tokens: int) -> Room | None:
    """The prompt tokens a request with this ``max_tokens`` may use; None when nothing limits
    them (a remote backend without ``max_prompt_tokens``).

    Raises:
        ApiError: 400 ``context_length_exceeded`` when ``max_tokens`` alone fills the window.
    """
    cap = settings.max_prompt_tokens
    if runtime.backend.is_remote:
        return None if cap is None else Room(cap, None, max_tokens, capped=True)
    window = runtime.project.config.model.context_tokens
    room = window - max_tokens
    if room <= TEMPLATE_TOKENS:
        raise ApiError(
            400,
            f"max_tokens {max_tokens} leaves no room for the prompt in the model's context of "
            f"{window} tokens (model.context_tokens): ask for fewer max_tokens.",
            param="max_tokens",
            code="context_length_exceeded",
        )
    if cap is not None and cap < room:
        return Room(cap, window, max_tokens, capped=True)
    return Room(room, window, max_tokens)


def prompt_check(runtime: Runtime, request: Request, settings: ServerSettings) -> PromptCheck:
    """Check the client's own text now; return the check of the whole prompt, which the
    pipeline calls once it has built it (:func:`ragtune.runtime.pipeline.run`'s ``check``).

    Runs in a worker thread: counting needs the backend (and may load it).

    Raises:
        ApiError: 400 ``context_length_exceeded``, naming the tokens counted and the room
            (here for the messages alone; from the returned check for the whole prompt).
    """
    room = room_for(runtime, settings, request.max_tokens)
    if room is None:
        return _unlimited
    count = runtime.backend.count_tokens
    turns = [turn["content"] for turn in request.history] + [request.question]
    if request.instructions:
        turns.append(request.instructions)
    # The assistant's header that opens the answer is part of the prompt too.
    client = TEMPLATE_TOKENS + sum(count(text) + TEMPLATE_TOKENS for text in turns)
    if client > room.prompt_tokens:
        raise ApiError(
            400,
            f"the messages take {client} tokens, more than the {room.describe()}: shorten "
            "them or drop earlier turns.",
            param="messages",
            code="context_length_exceeded",
        )

    def whole(result: Result) -> None:
        total = TEMPLATE_TOKENS + sum(
            count(m["content"]) + TEMPLATE_TOKENS for m in result.messages
        )
        if total > room.prompt_tokens:
            raise ApiError(
                400,
                f"the prompt takes {total} tokens - the messages {client}, and the capability "
                f"{result.route.capability!r} adds its instructions, {len(result.passages)} "
                f"passages and {len(result.shots)} examples - more than the {room.describe()}: "
                "shorten the messages, drop earlier turns or ask for fewer max_tokens.",
                param="messages",
                code="context_length_exceeded",
            )

    return whole


def _unlimited(result: Result) -> None:
    """The check when nothing limits the prompt."""

"""How the server guards itself (:class:`ServerSettings`), and what its endpoints share."""

from __future__ import annotations

from dataclasses import dataclass, field

from ragtune.errors import RagtuneError
from ragtune.runtime.runtime import Runtime
from ragtune.server.auth import ApiKeys
from ragtune.server.limits import GenerationQueue
from ragtune.server.metrics import Metrics
from ragtune.server.reloads import AdapterReloads

__all__ = ["ServerSettings", "ServerState"]


@dataclass(frozen=True)
class ServerSettings:
    """How the server guards itself.

    Attributes:
        keys: The API keys; none means no authentication (``ragtune serve`` allows that only on
            a loopback address).
        queue_depth: Generation requests admitted at once (generating or waiting for the
            model); the next one is answered 503 with ``Retry-After``. Per process: each of
            ``ragtune serve --workers N`` gets a share of the server's bound.
        max_tokens_limit: The most ``max_tokens`` a request may ask for.
        default_max_tokens: ``max_tokens`` of a request that names none or sends ``null``
            (capped by the limit): an answer never runs on to the time limit unasked.
        max_messages: The most messages one chat request may hold.
        max_prompt_tokens: The most tokens a prompt may take (system prompt, passages,
            examples, history and question, as the backend counts them); None: as many as the
            model's context window holds beside ``max_tokens`` (``model.context_tokens``). A
            remote backend's prompts are limited by this setting alone.
        timeout_s: Seconds a request may take before it is answered 504 (a stream is cut with
            an error event).
        max_body_bytes: The largest request body, in bytes (a document upload included).
    """

    keys: ApiKeys = field(default_factory=ApiKeys)
    queue_depth: int = 8
    max_tokens_limit: int = 1024
    default_max_tokens: int = 256
    max_messages: int = 128
    max_prompt_tokens: int | None = None
    timeout_s: float = 120.0
    max_body_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        whole = (
            "queue_depth",
            "max_tokens_limit",
            "default_max_tokens",
            "max_body_bytes",
            "max_messages",
            "max_prompt_tokens",
        )
        for name in whole:
            value = getattr(self, name)
            if name == "max_prompt_tokens" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RagtuneError(
                    f"ServerSettings.{name} must be a whole number >= 1, got {value!r}."
                )
        if not isinstance(self.timeout_s, int | float) or not self.timeout_s > 0:
            raise RagtuneError(
                f"ServerSettings.timeout_s must be a number of seconds > 0, got {self.timeout_s!r}."
            )


@dataclass
class ServerState:
    """What the endpoints of one app share (``app.state.ragtune``)."""

    runtime: Runtime
    settings: ServerSettings
    queue: GenerationQueue
    metrics: Metrics
    reloads: AdapterReloads

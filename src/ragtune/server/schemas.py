"""The HTTP shapes: the OpenAI chat-completions request, and the objects the server answers with.

The request follows OpenAI's ``POST /v1/chat/completions`` so any OpenAI client works unchanged:
``model`` names a capability (or ``auto``), ``messages`` carries the conversation. Fields this
server has no use for (``top_p``, ``stop``, ``user``, ``tools``...) are accepted and ignored, so
clients that always send them keep working; ``n`` above 1 is refused, since one answer is made.

Answers are OpenAI objects (``chat.completion``, ``chat.completion.chunk``, ``list`` of
``model``) with ragtune's extras beside the standard fields: ``citations``, ``route``,
``contract_violation``, ``contract`` and ``timings``. OpenAI clients keep unknown fields, so the
extras are there for whoever reads them (``response.model_extra["citations"]`` in openai-python).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragtune.errors import RagtuneError
from ragtune.runtime.runtime import Request, Result

__all__ = [
    "AdapterReloaded",
    "ChatCompletion",
    "ChatMessage",
    "ChatRequest",
    "DocumentChange",
    "ErrorBody",
    "ErrorDetail",
    "MessageError",
    "ModelList",
    "StreamOptions",
    "completion",
    "completion_chunk",
    "completion_id",
    "result_extras",
    "to_request",
    "usage",
]


class MessageError(RagtuneError):
    """The messages cannot make a request (no user message, content that is not text)."""

    def __init__(self, message: str, param: str = "messages") -> None:
        super().__init__(message)
        self.param = param


class ChatMessage(BaseModel):
    """One chat message; ``content`` is text, or a list of text parts as OpenAI allows."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a last chunk carrying the usage."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions`` (OpenAI's schema; unknown fields are ignored)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "auto",
                    "messages": [
                        {"role": "user", "content": "How fast must a data breach be notified?"}
                    ],
                    "max_tokens": 64,
                }
            ]
        },
    )

    model: str = Field(
        min_length=1,
        description="A capability of the project, or 'auto' to route by the question.",
    )
    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation; the last user message is the question, earlier user "
        "and assistant turns are its history, system messages are replaced by the "
        "capability's own instructions.",
    )
    max_tokens: int | None = Field(None, ge=1, description="Token budget of the answer.")
    max_completion_tokens: int | None = Field(
        None, ge=1, description="OpenAI's newer name for max_tokens; wins when both are given."
    )
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy (default).")
    stream: bool = Field(False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=1, description="Only one answer is made.")


def _text(content: str | list[dict[str, Any]] | None, index: int) -> str:
    """A message's content as text; parts other than text, and text that is not valid Unicode
    (a lone UTF-16 surrogate: JSON allows ``"\\ud800"``, no tokenizer does), are refused."""
    if content is None:
        return ""
    if isinstance(content, str):
        return _unicode(content, f"messages[{index}].content")
    pieces = []
    for j, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise MessageError(
                f"messages[{index}].content[{j}] is a {part.get('type', 'untyped')!r} part; "
                "this server reads text only (parts of type 'text').",
                f"messages[{index}].content",
            )
        pieces.append(_unicode(part["text"], f"messages[{index}].content[{j}].text"))
    return "\n".join(pieces)


def _unicode(text: str, where: str) -> str:
    """``text``, or a MessageError naming the first lone surrogate in it and where it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MessageError(
            f"{where} holds a lone UTF-16 surrogate ({text[exc.start]!r}) at character "
            f"{exc.start}: send valid Unicode text (a surrogate must be paired with its other "
            "half to make one character).",
            where,
        ) from None
    return text


def to_request(chat: ChatRequest, max_tokens: int) -> Request:
    """The runtime request for a chat request.

    Args:
        chat: The validated chat request.
        max_tokens: The budget to use (the request's, or the server's default), already checked
            against the server's limit.

    Raises:
        MessageError: No user message, or a message with content other than text.
    """
    last_user = max((i for i, m in enumerate(chat.messages) if m.role == "user"), default=None)
    if last_user is None:
        raise MessageError(
            "messages holds no user message: add {'role': 'user', 'content': 'your question'}."
        )
    question = _text(chat.messages[last_user].content, last_user)
    history = tuple(
        {"role": m.role, "content": _text(m.content, i)}
        for i, m in enumerate(chat.messages[:last_user])
        if m.role in ("user", "assistant")
    )
    return Request(
        question=question,
        capability=None if chat.model == "auto" else chat.model,
        history=history,
        max_tokens=max_tokens,
        temperature=chat.temperature or 0.0,
    )


# -- answers -----------------------------------------------------------------------------------


def completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(result: Result) -> dict[str, int]:
    """OpenAI's ``usage`` from a result (every generation of the request counted)."""
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def result_extras(result: Result) -> dict[str, Any]:
    """ragtune's fields beside the OpenAI ones.

    ``citations`` are the retrieved passages numbered as in the prompt, each with its
    provenance, whether the answer cites it, and its text (so a client can show the quote).
    """
    citations = [
        {**citation, "text": passage.text}
        for citation, passage in zip(result.citations(), result.passages, strict=True)
    ]
    return {
        "citations": citations,
        "route": result.route.to_dict(),
        "contract_violation": result.contract_violation,
        "contract": {
            "ok": result.contract_ok,
            "errors": result.contract_errors,
            "repaired": result.repaired,
        },
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }


def completion(result: Result, ident: str, created: int | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object for a finished result."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": result.route.capability,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "system_fingerprint": None,
        **result_extras(result),
    }


def completion_chunk(
    ident: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``: one delta (or, with ``delta=None``, no choices at all)."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


# -- the shapes the OpenAPI schema publishes (documentation: the answers are built above) ------


class ErrorDetail(BaseModel):
    """What went wrong (OpenAI's error object)."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="What went wrong and what to change.")
    type: str = Field(description="invalid_request_error, authentication_error, server_error...")
    param: str | None = Field(description="The request field at fault, if one is.")
    code: str | None = Field(description="A short machine-readable code.")


class ErrorBody(BaseModel):
    """Every error answer of this server: ``{"error": {...}}``."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelEntry(_Open):
    """One capability as an OpenAI model."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    strategy: str
    knowledge: list[str]
    adapter: str | None
    description: str | None


class ModelList(_Open):
    """``GET /v1/models``."""

    object: Literal["list"]
    data: list[ModelEntry]


class CompletionMessage(_Open):
    role: Literal["assistant"]
    content: str
    refusal: None = None


class CompletionChoice(_Open):
    index: int
    message: CompletionMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Open):
    """A ``chat.completion`` with ragtune's extras (``stream: true`` answers with server-sent
    events of ``chat.completion.chunk`` objects instead)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[dict[str, Any]]
    route: dict[str, Any]
    contract_violation: bool
    contract: dict[str, Any]
    timings: dict[str, float]


class SyncDone(_Open):
    snapshot: int
    chunks_embedded: int
    reused_vectors: int
    documents: list[dict[str, Any]]
    seconds: float


class DocumentChange(_Open):
    """What a document write or removal did, and the sync after it."""

    document: str
    action: Literal["created", "replaced", "deleted"]
    bytes: int
    capabilities: list[str]
    sync: SyncDone


class AdapterReloaded(_Open):
    """``POST /v1/adapters/{name}/reload``."""

    adapter: str
    path: str
    created_at: str | None
    reloaded: bool

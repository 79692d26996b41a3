"""The HTTP shapes: the OpenAI requests (chat completions, completions, embeddings), and the
objects the server answers with.

The chat request follows OpenAI's ``POST /v1/chat/completions`` so any OpenAI client works
unchanged: ``model`` names a capability (or ``auto``), ``messages`` carries the conversation.
Every field is honoured or refused with a 400 that names it (:mod:`ragtune.server.fields`).

Answers are OpenAI objects (``chat.completion``, ``chat.completion.chunk``, ``text_completion``,
``list`` of ``model`` or ``embedding``) with ragtune's extras beside the standard fields:
``citations``, ``route``, ``classified``, ``supported``, ``unsupported``, ``contract_violation``,
``contract`` and ``timings``. OpenAI clients keep unknown fields, so the extras are there for
whoever reads them (``response.model_extra["citations"]`` in openai-python).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragtune.errors import RagtuneError
from ragtune.runtime.runtime import Result

__all__ = [
    "AdapterReloaded",
    "ChatCompletion",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "DocumentChange",
    "EmbeddingList",
    "EmbeddingRequest",
    "ErrorBody",
    "ErrorDetail",
    "MessageError",
    "ModelEntry",
    "ModelList",
    "StreamOptions",
    "TextCompletion",
    "ToolDefinition",
    "completion",
    "completion_chunk",
    "completion_id",
    "message_text",
    "result_extras",
    "tool_call",
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


class JsonSchemaFormat(BaseModel):
    """``response_format.json_schema``: the JSON Schema the answer must follow."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str | None = Field(None, description="The schema's name (not used).")
    description: str | None = Field(None, description="What the answer is (not used).")
    schema_: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="The JSON Schema; the answer is decoded by it, validated and repaired "
        "against it (none: any JSON object).",
    )
    strict: bool | None = Field(None, description="Always strict: the decoding follows it.")


class ResponseFormat(BaseModel):
    """``response_format``: ``text`` (default), ``json_object`` or ``json_schema``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class FunctionDefinition(BaseModel):
    """A function the answer may call (``tools[i].function``)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="a-z, A-Z, 0-9, _ and -, at most 64 characters.")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="The JSON Schema of its arguments (none: no arguments)."
    )
    strict: bool | None = Field(None, description="Always strict: the decoding follows it.")


class ToolDefinition(BaseModel):
    """One of ``tools``: a function."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming the function to call."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionName


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions`` (OpenAI's schema).

    Every field is honoured or refused with a 400 that names it
    (:mod:`ragtune.server.fields`); a field set to its default value is accepted as it is.
    """

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
        "and assistant turns are its history, system and developer messages are the "
        "client's instructions, placed after the capability's own (which they cannot "
        "change: retrieved passages stay reference data).",
    )
    max_tokens: int | None = Field(None, ge=1, description="Token budget of the answer.")
    max_completion_tokens: int | None = Field(
        None, ge=1, description="OpenAI's newer name for max_tokens; wins when both are given."
    )
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy (default).")
    top_p: float | None = Field(
        None, ge=0, le=1, description="Nucleus sampling when sampling; 0: greedy."
    )
    seed: int | None = Field(
        None, description="Seeds the sampling: the same request and seed, the same answer."
    )
    stop: str | list[str] | None = Field(
        None, description="Up to 4 strings that end the answer (not included in it)."
    )
    stream: bool | None = Field(False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, description="Only 1: one answer is made.")
    response_format: ResponseFormat | None = Field(
        None,
        description="json_object or json_schema: the answer is decoded as JSON (by the schema), "
        "validated and repaired against it.",
    )
    tools: list[ToolDefinition] | None = Field(
        None,
        description="Functions; with tool_choice 'required' or naming one, the answer is a "
        "call (its arguments decoded by the function's parameters schema).",
    )
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        None,
        description="'required' or a named function: the answer is a tool call; 'none': a "
        "text answer; 'auto' (the model choosing) is refused.",
    )
    parallel_tool_calls: bool | None = Field(None, description="One call is made either way.")
    logprobs: bool | None = Field(None, description="Only false: no log probabilities.")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="Only 0.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Only 0.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Only 0.")
    logit_bias: dict[str, float] | None = Field(None, description="Only empty.")
    user: str | None = Field(None, description="Accepted; changes nothing.")
    safety_identifier: str | None = Field(None, description="Accepted; changes nothing.")
    prompt_cache_key: str | None = Field(None, description="Accepted; changes nothing.")
    metadata: dict[str, str] | None = Field(None, description="Accepted; changes nothing.")
    store: bool | None = Field(None, description="Only false: nothing is stored.")
    service_tier: str | None = Field(None, description="Only 'auto' or 'default'.")
    modalities: list[str] | None = Field(None, description="Only ['text'].")


class CompletionRequest(BaseModel):
    """``POST /v1/completions`` (OpenAI's legacy completions): the prompt is the question,
    answered as a chat request with that one user message is; every field is honoured or
    refused with a 400 that names it."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"model": "templates", "prompt": "How fast must a breach be notified?"}]
        },
    )

    model: str = Field(min_length=1, description="A capability of the project, or 'auto' to route.")
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="The question: text, or a list holding one text (token ids are refused)."
    )
    max_tokens: int | None = Field(None, ge=1, description="Token budget of the answer.")
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy (default).")
    top_p: float | None = Field(None, ge=0, le=1, description="Nucleus sampling; 0: greedy.")
    seed: int | None = Field(None, description="Seeds the sampling.")
    stop: str | list[str] | None = Field(None, description="Up to 4 strings that end it.")
    stream: bool | None = Field(False, description="Answer as server-sent events.")
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, description="Only 1.")
    best_of: int | None = Field(None, ge=1, description="Only 1.")
    echo: bool | None = Field(None, description="Only false: the prompt is not repeated.")
    suffix: str | None = Field(None, description="Only empty: no text after the answer.")
    logprobs: int | None = Field(None, ge=0, le=5, description="Only 0.")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="Only 0.")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="Only 0.")
    logit_bias: dict[str, float] | None = Field(None, description="Only empty.")
    user: str | None = Field(None, description="Accepted; changes nothing.")


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``: vectors from the embedder of the project's knowledge base."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"model": "all-MiniLM-L6-v2", "input": "breach notice"}]},
    )

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text or a list of texts (at most 2048; token ids are refused)."
    )
    model: str = Field(
        min_length=1,
        description="The knowledge base's embedder (GET /v1/models/{model} describes it).",
    )
    encoding_format: Literal["float", "base64"] | None = Field(
        None, description="float (default) or base64 (little-endian float32)."
    )
    dimensions: int | None = Field(None, ge=1, description="Only the embedder's own.")
    user: str | None = Field(None, description="Accepted; changes nothing.")


def message_text(content: str | list[dict[str, Any]] | None, index: int) -> str:
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
    provenance, whether the answer cites it, and its text (so a client can show the quote);
    ``classified`` the fields a label classifier chose (``classify:``), ``{}`` when none;
    ``supported`` whether a reader's answer is supported by its passages (None when no reader
    wrote it) and ``unsupported`` what it wrote when not (the quote was served instead).
    """
    citations = [
        {**citation, "text": passage.text}
        for citation, passage in zip(result.citations(), result.passages, strict=True)
    ]
    return {
        "citations": citations,
        "route": result.route.to_dict(),
        "classified": result.classified,
        "supported": result.supported,
        "unsupported": result.unsupported,
        "contract_violation": result.contract_violation,
        "contract": {
            "ok": result.contract_ok,
            "errors": result.contract_errors,
            "repaired": result.repaired,
        },
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }


def tool_call(name: str, arguments: str, index: int | None = None) -> dict[str, Any]:
    """One of a message's ``tool_calls`` (with ``index``: as a streamed delta has it)."""
    call = {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return call if index is None else {"index": index, **call}


def completion(
    result: Result,
    ident: str,
    created: int | None = None,
    call: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object for a finished result; with ``call`` (the function's name
    and arguments), the answer is that tool call."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None}
    finish = result.finish_reason
    if call is not None:
        message.update(content=None, tool_calls=[tool_call(*call)])
        finish = "tool_calls" if finish == "stop" else finish
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": result.route.capability,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
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


class FunctionCalled(_Open):
    name: str
    arguments: str = Field(description="The arguments, as JSON text.")


class ToolCall(_Open):
    id: str
    type: Literal["function"]
    function: FunctionCalled


class CompletionMessage(_Open):
    role: Literal["assistant"]
    content: str | None = Field(description="The answer; null when it is a tool call.")
    refusal: None = None
    tool_calls: list[ToolCall] | None = None


class CompletionChoice(_Open):
    index: int
    message: CompletionMessage
    finish_reason: Literal["stop", "length", "tool_calls"]
    logprobs: None = None


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class _Answer(_Open):
    """What every answer carries: OpenAI's identity and usage, and ragtune's extras."""

    id: str
    created: int
    model: str
    usage: Usage
    citations: list[dict[str, Any]]
    route: dict[str, Any]
    classified: dict[str, str] = {}
    supported: bool | None = None
    unsupported: str | None = None
    contract_violation: bool
    contract: dict[str, Any]
    timings: dict[str, float]


class ChatCompletion(_Answer):
    """A ``chat.completion`` with ragtune's extras (``stream: true`` answers with server-sent
    events of ``chat.completion.chunk`` objects instead)."""

    object: Literal["chat.completion"]
    choices: list[CompletionChoice]


class TextChoice(_Open):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class TextCompletion(_Answer):
    """A ``text_completion`` with ragtune's extras (``stream: true`` answers with server-sent
    events of ``text_completion`` objects, one piece of text each)."""

    object: Literal["text_completion"]
    choices: list[TextChoice]


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(
        description="The unit vector: numbers, or base64 of little-endian float32."
    )


class EmbeddingUsage(_Open):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Open):
    """``POST /v1/embeddings``."""

    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


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

"""Every field of an OpenAI chat request, honoured or refused: nothing is silently ignored.

Honoured:

- ``messages``: the last user message is the question, earlier user and assistant turns its
  history; ``system`` and ``developer`` messages are the client's instructions, placed in the
  system prompt after the capability's rules (:func:`ragtune.prompt.with_client_instructions`);
- ``max_tokens``/``max_completion_tokens``, ``temperature``, ``top_p`` (0: greedy), ``seed``,
  ``stop`` (up to 4 strings), ``stream`` and ``stream_options``;
- ``response_format``: ``json_object`` and ``json_schema`` become the request's output contract
  (:func:`ragtune.behavior.contract.schema_contract`): the decoding is guided by the schema, the
  answer validated and repaired against it, as a capability's own contract is;
- ``tools`` with ``tool_choice`` ``"required"`` or naming one function: the answer is a call of
  that function (or of one of the tools), its arguments decoded by the function's
  ``parameters`` schema, answered as ``tool_calls`` with ``finish_reason: "tool_calls"``;
  ``tool_choice: "none"`` answers in text;
- ``user``, ``safety_identifier``, ``prompt_cache_key``, ``prompt_cache_retention`` and
  ``metadata`` are accepted: they label a request and change nothing in its answer.

Refused with a 400 that names the field, unless the value is the default (what this server does
anyway): ``n`` above 1, ``logprobs``, ``top_logprobs``, ``presence_penalty``,
``frequency_penalty``, ``logit_bias``, ``store: true``, ``service_tier`` other than auto or
default, ``modalities`` other than text, ``audio``, ``prediction``, ``reasoning_effort``,
``verbosity``, ``web_search_options``, the deprecated ``functions``/``function_call``,
``tool_choice: "auto"`` with tools (the model choosing between answering and calling), messages
that carry tool calls or tool results (no agent loop here), and any field OpenAI's API does not
have.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ragtune.behavior.contract import ContractError, OutputContract, schema_contract
from ragtune.runtime.runtime import Request
from ragtune.server.errors import ApiError
from ragtune.server.schemas import ChatRequest, MessageError, ToolDefinition, message_text

__all__ = ["LABELS", "Shape", "chat_request", "refuse", "unsupported"]

LABELS = frozenset(
    {"user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "metadata"}
)
"""Fields that label a request (for the provider's logs, caches and abuse checks): accepted,
and they change nothing in the answer."""

MAX_STOP = 4
"""OpenAI's limit on stop strings."""

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Fields of OpenAI's chat API that this server does not declare: refused unless null.
_UNDECLARED = {
    "audio": "audio answers are not made here: this server answers text",
    "prediction": "predicted outputs are not used here",
    "reasoning_effort": "the models served here do not reason in a separate budget",
    "verbosity": "the answer's length is set by max_tokens here",
    "web_search_options": "this server does not search the web; its knowledge is the "
    "project's documents",
    "functions": "functions is OpenAI's deprecated form: send tools and tool_choice instead",
    "function_call": "function_call is OpenAI's deprecated form: send tool_choice instead",
}


@dataclass(frozen=True)
class Shape:
    """What the answer looks like, as the request asked.

    Attributes:
        contract: The request's own output contract (``response_format`` or the called
            function's parameters); None: text, or the capability's contract.
        tools: The functions the answer calls; empty: a message (text or JSON), not a call.
        wrapped: The answer is ``{"name": ..., "arguments": ...}`` (one of several tools),
            rather than the arguments of the one function.
    """

    contract: OutputContract | None = None
    tools: tuple[str, ...] = ()
    wrapped: bool = False

    @property
    def calls(self) -> bool:
        """Whether the answer is a tool call."""
        return bool(self.tools)

    def call(self, text: str) -> tuple[str, str] | None:
        """The function called and its arguments (JSON text) from a generated answer; None
        when the answer is not a call of one of the tools (not JSON, or no such name)."""
        value = _parsed(text, self.contract)
        if not self.wrapped:
            if value is None:
                return self.tools[0], text.strip()
            return self.tools[0], json.dumps(value, ensure_ascii=False)
        if not isinstance(value, dict) or value.get("name") not in self.tools:
            return None
        return str(value["name"]), json.dumps(value.get("arguments", {}), ensure_ascii=False)


def unsupported(field: str, value: Any, why: str) -> ApiError:
    """400 ``unsupported_parameter``, naming the field and the value sent."""
    shown = json.dumps(value, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ApiError(
        400,
        f"{field} {shown} is not supported by this server: {why}.",
        param=field,
        code="unsupported_parameter",
    )


def refuse(chat: ChatRequest) -> None:
    """Refuse every field whose value this server cannot honour (see the module's list).

    Raises:
        ApiError: 400 naming the first such field.
    """
    checks: list[tuple[str, Any, bool, str]] = [
        ("n", chat.n, chat.n not in (None, 1), "one answer is made a request; send n: 1"),
        ("logprobs", chat.logprobs, bool(chat.logprobs), "log probabilities are not returned"),
        (
            "top_logprobs",
            chat.top_logprobs,
            chat.top_logprobs not in (None, 0),
            "log probabilities are not returned",
        ),
        (
            "presence_penalty",
            chat.presence_penalty,
            chat.presence_penalty not in (None, 0),
            "the decoding applies no penalties; send 0 or leave it out",
        ),
        (
            "frequency_penalty",
            chat.frequency_penalty,
            chat.frequency_penalty not in (None, 0),
            "the decoding applies no penalties; send 0 or leave it out",
        ),
        (
            "logit_bias",
            chat.logit_bias,
            bool(chat.logit_bias),
            "token biases are not applied; for a fixed set of answers send a response_format "
            "json_schema with an enum",
        ),
        ("store", chat.store, bool(chat.store), "nothing is stored; send false or leave it out"),
        (
            "service_tier",
            chat.service_tier,
            chat.service_tier not in (None, "auto", "default"),
            "there is one tier; send 'auto' or 'default'",
        ),
        (
            "modalities",
            chat.modalities,
            chat.modalities not in (None, ["text"]),
            "the answer is text; send ['text']",
        ),
    ]
    for field, value, refused, why in checks:
        if refused:
            raise unsupported(field, value, why)
    for field, value in (chat.model_extra or {}).items():
        if field in LABELS or value is None:
            continue
        if field == "reasoning_effort" and value == "none":
            continue
        reason = _UNDECLARED.get(field)
        if reason is None:
            raise ApiError(
                400,
                f"{field!r} is not a field of OpenAI's chat completions that this server knows; "
                "leave it out (POST /v1/chat/completions in /docs lists the fields).",
                param=field,
                code="unknown_parameter",
            )
        raise unsupported(field, value, reason)
    for i, message in enumerate(chat.messages):
        extra = message.model_extra or {}
        carried = [k for k in ("tool_calls", "function_call") if extra.get(k)]
        if message.role in ("tool", "function") or carried:
            what = f"a {message.role!r} message" if not carried else f"{carried[0]}"
            raise ApiError(
                400,
                f"messages[{i}] holds {what}: this server answers with a tool call but does "
                "not read calls or their results back (no agent loop). Send the result as "
                "text in a user message.",
                param=f"messages[{i}]",
                code="unsupported_parameter",
            )


def chat_request(chat: ChatRequest, max_tokens: int) -> tuple[Request, Shape]:
    """The runtime request for a chat request, and the shape of its answer.

    Args:
        chat: The validated chat request.
        max_tokens: The budget to use, already checked against the server's limit.

    Raises:
        ApiError: 400 naming a field this server cannot honour (:func:`refuse`), a bad
            ``stop``, ``seed``, ``response_format`` or ``tools``.
        MessageError: No user message, or a message with content other than text.
    """
    refuse(chat)
    shape = _shape(chat)
    messages = chat.messages
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        raise MessageError(
            "messages holds no user message: add {'role': 'user', 'content': 'your question'}."
        )
    question = message_text(messages[last_user].content, last_user)
    history = tuple(
        {"role": m.role, "content": message_text(m.content, i)}
        for i, m in enumerate(messages[:last_user])
        if m.role in ("user", "assistant")
    )
    instructions = [
        message_text(m.content, i)
        for i, m in enumerate(messages)
        if m.role in ("system", "developer")
    ]
    instructions.extend(_tool_instructions(chat, shape))
    temperature = chat.temperature or 0.0
    top_p = 1.0 if chat.top_p is None else chat.top_p
    if top_p == 0:  # only the likeliest token is left: greedy
        temperature, top_p = 0.0, 1.0
    request = Request(
        question=question,
        capability=None if chat.model == "auto" else chat.model,
        history=history,
        max_tokens=max_tokens,
        temperature=temperature,
        instructions="\n\n".join(text for text in instructions if text.strip()),
        contract=shape.contract,
        stop=_stop(chat.stop),
        top_p=top_p,
        seed=_seed(chat.seed),
    )
    return request, shape


def _stop(stop: str | list[str] | None) -> tuple[str, ...]:
    strings = [stop] if isinstance(stop, str) else list(stop or [])
    if len(strings) > MAX_STOP:
        raise ApiError(
            400,
            f"stop holds {len(strings)} strings; send at most {MAX_STOP}.",
            param="stop",
            code="invalid_value",
        )
    for i, text in enumerate(strings):
        if not text:
            where = "stop" if isinstance(stop, str) else f"stop[{i}]"
            raise ApiError(
                400,
                f"{where} is an empty string, which would end every answer before it begins: "
                "leave it out.",
                param="stop",
                code="invalid_value",
            )
    return tuple(strings)


def _seed(seed: int | None) -> int | None:
    if seed is not None and not -(2**63) <= seed < 2**64:
        raise ApiError(
            400,
            f"seed {seed} is out of range: send a whole number of 64 bits.",
            param="seed",
            code="invalid_value",
        )
    return seed


def _shape(chat: ChatRequest) -> Shape:
    """The answer's shape: a tool call, JSON by a schema, or text."""
    tools = chat.tools or []
    contracts = [_parameters(i, tool) for i, tool in enumerate(tools)]
    choice = chat.tool_choice
    names = [tool.function.name for tool in tools]
    if not tools:
        if choice not in (None, "none", "auto"):
            raise ApiError(
                400,
                "tool_choice asks for a tool call, but tools is empty: send the function in "
                "tools, or leave tool_choice out.",
                param="tool_choice",
                code="invalid_value",
            )
        return Shape(_response_contract(chat))
    if choice == "none":
        return Shape(_response_contract(chat))
    if choice is None or choice == "auto":
        raise ApiError(
            400,
            "tool_choice is 'auto' (the default when tools are given): this server does not let "
            "the model choose between answering and calling a function. Send tool_choice "
            "'required' (it calls one of the tools), {'type': 'function', 'function': "
            "{'name': ...}} (it calls that one), or 'none' (it answers in text).",
            param="tool_choice",
            code="unsupported_parameter",
        )
    if choice == "required":
        if len(tools) == 1:
            return Shape(contracts[0], (names[0],))
        return Shape(_any_call(tools), tuple(names), wrapped=True)
    assert not isinstance(choice, str)
    name = choice.function.name
    if name not in names:
        raise ApiError(
            400,
            f"tool_choice names the function {name!r}, which is not in tools ({', '.join(names)}).",
            param="tool_choice.function.name",
            code="invalid_value",
        )
    return Shape(contracts[names.index(name)], (name,))


def _parameters(index: int, tool: ToolDefinition) -> OutputContract:
    """The contract of one function's arguments (its ``parameters`` schema)."""
    function = tool.function
    if not _FUNCTION_NAME.fullmatch(function.name):
        raise ApiError(
            400,
            f"tools[{index}].function.name {function.name!r} is not a function name: use "
            "a-z, A-Z, 0-9, _ and -, at most 64 characters.",
            param=f"tools[{index}].function.name",
            code="invalid_value",
        )
    return _contract(
        function.parameters or {"type": "object", "properties": {}},
        f"tools[{index}].function.parameters",
    )


def _any_call(tools: list[ToolDefinition]) -> OutputContract:
    """The contract of a call of any of the tools: ``{"name": ..., "arguments": ...}``."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.function.name},
                "arguments": tool.function.parameters or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return _contract({"anyOf": options}, "tools")


def _tool_instructions(chat: ChatRequest, shape: Shape) -> list[str]:
    """What the model is told about the call it makes."""
    if not shape.calls:
        return []
    described = {
        tool.function.name: (tool.function.description or "").strip() for tool in chat.tools or []
    }

    def named(name: str) -> str:
        return f"{name} ({described[name]})" if described[name] else name

    if not shape.wrapped:
        return [
            f"Answer by calling the function {named(shape.tools[0])}: reply with its arguments."
        ]
    listed = "; ".join(named(name) for name in shape.tools)
    return [
        f"Answer by calling one of these functions: {listed}. Reply with "
        '{"name": the function\'s name, "arguments": its arguments}.'
    ]


def _response_contract(chat: ChatRequest) -> OutputContract | None:
    """The contract ``response_format`` asks for, or None for text."""
    wanted = chat.response_format
    if wanted is None or wanted.type == "text":
        return None
    if wanted.type == "json_object":
        return _contract({"type": "object"}, "response_format")
    if wanted.json_schema is None:
        raise ApiError(
            400,
            "response_format of type 'json_schema' needs its json_schema: "
            '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}.',
            param="response_format.json_schema",
            code="missing_field",
        )
    schema = wanted.json_schema.schema_
    if schema is None:
        return _contract({"type": "object"}, "response_format.json_schema")
    return _contract(schema, "response_format.json_schema.schema")


def _contract(schema: object, source: str) -> OutputContract:
    try:
        return schema_contract(schema, source)
    except ContractError as exc:
        raise ApiError(400, str(exc), param=source, code="invalid_schema") from None


def _parsed(text: str, contract: OutputContract | None) -> object | None:
    """The JSON value of an answer (one fenced block tolerated), or None."""
    if contract is not None:
        return contract.validate(text).parsed
    try:
        return json.loads(text)
    except ValueError:
        return None

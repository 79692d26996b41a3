"""The OpenAI endpoints of the capabilities: the models a request may name (``GET /v1/models``,
``GET /v1/models/{model}``), and chat completions, answered whole or streamed as server-sent
events - as text, as JSON by the client's schema, or as a tool call
(:mod:`ragtune.server.fields` says which field does what).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from ragtune.errors import closest
from ragtune.runtime.pipeline import route
from ragtune.runtime.runtime import Request, Result, Runtime
from ragtune.server.auth import require_scope
from ragtune.server.budget import check_message_count
from ragtune.server.errors import ApiError, error_responses
from ragtune.server.fields import Shape, chat_request
from ragtune.server.generation import checked_run, generate, stream_response
from ragtune.server.schemas import (
    ChatCompletion,
    ChatRequest,
    MessageError,
    ModelEntry,
    ModelList,
    completion,
    completion_chunk,
    completion_id,
    result_extras,
    tool_call,
    usage,
)
from ragtune.server.settings import ServerSettings, ServerState

__all__ = ["chat_router", "check_model", "max_tokens_for"]

ModelName = Annotated[str, PathParam(description="A capability of the project.")]


def chat_router(state: ServerState) -> APIRouter:
    """``GET /v1/models``, ``GET /v1/models/{model}`` and ``POST /v1/chat/completions`` over
    the state's runtime."""
    router = APIRouter(tags=["openai"])
    read = require_scope(state.settings.keys, "read")

    @router.get(
        "/v1/models",
        dependencies=[read],
        response_model=None,
        responses={200: {"model": ModelList}, **error_responses(401)},
    )
    async def models() -> dict[str, Any]:
        """The capabilities as OpenAI models; ``strategy`` says what serves each."""
        return {"object": "list", "data": _models(state.runtime)}

    @router.get(
        "/v1/models/{model}",
        dependencies=[read],
        response_model=None,
        responses={200: {"model": ModelEntry}, **error_responses(401, 404)},
    )
    async def model(model: ModelName) -> dict[str, Any]:
        """One capability as an OpenAI model (the client's ``models.retrieve``)."""
        if model != "auto":
            check_model(model, state.runtime)
        found = [m for m in _models(state.runtime) if m["id"] == model]
        if not found:
            raise ApiError(
                404,
                "'auto' is not a model but a choice: the request is routed to the capability "
                "whose questions are most like it (GET /v1/models lists them).",
                param="model",
                code="model_not_found",
            )
        return found[0]

    @router.post(
        "/v1/chat/completions",
        dependencies=[read],
        response_model=None,
        responses={
            200: {
                "model": ChatCompletion,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "The answer; with stream: true, server-sent events.",
            },
            **error_responses(400, 401, 404, 413, 422, 500, 502, 503, 504),
        },
    )
    async def chat_completions(chat: ChatRequest) -> Response:
        """Answer a chat request through the runtime (OpenAI's schema, with ragtune's extras:
        ``citations``, ``route``, ``contract_violation``, ``timings``)."""
        deadline = anyio.current_time() + state.settings.timeout_s
        request, shape = _request_for(chat, state.runtime, state.settings)
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return await stream_response(
                state,
                request,
                lambda routed: ChatFraming(routed.route.capability, shape, include_usage),
                deadline,
            )
        result = await generate(state, lambda: checked_run(state, request), deadline)
        state.metrics.result(result)
        call = shape.call(result.text) if shape.calls else None
        return JSONResponse(completion(result, completion_id(), call=call))

    return router


def _models(runtime: Runtime) -> list[dict[str, Any]]:
    """One OpenAI ``model`` per capability, with the route that serves it."""
    created = int(runtime.project.path.stat().st_mtime)
    data = []
    for name, cap in runtime.capabilities.items():
        chosen = route(runtime, Request("", capability=name))
        data.append(
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "ragtune",
                "strategy": chosen.strategy,
                "knowledge": list(chosen.knowledge),
                "adapter": chosen.adapter,
                "description": cap.description,
            }
        )
    return data


def check_model(model: str, runtime: Runtime) -> None:
    """404 ``model_not_found`` unless ``model`` is a capability or ``auto``, naming them."""
    if model == "auto" or model in runtime.capabilities:
        return
    close = closest(model, runtime.capabilities)
    hint = f" Did you mean {close!r}?" if close else ""
    raise ApiError(
        404,
        f"model {model!r} is not a capability of this server.{hint} Models: "
        f"{', '.join(runtime.capabilities)}, or 'auto' to route by the question "
        "(GET /v1/models lists them).",
        param="model",
        code="model_not_found",
    )


def max_tokens_for(asked: int | None, name: str, settings: ServerSettings) -> int:
    """The answer's budget: the one asked for (400 above the server's limit), else the
    server's default."""
    limit = settings.max_tokens_limit
    if asked is not None and asked > limit:
        raise ApiError(
            400,
            f"{name} {asked} is above this server's limit of {limit}: ask for at most {limit} "
            "(the operator sets the limit with `ragtune serve --max-tokens-limit`).",
            param=name,
            code="max_tokens_too_large",
        )
    return asked or min(settings.default_max_tokens, limit)


def _request_for(
    chat: ChatRequest, runtime: Runtime, settings: ServerSettings
) -> tuple[Request, Shape]:
    """The runtime request and the answer's shape, after the checks that need the project and
    the limits."""
    check_model(chat.model, runtime)
    check_message_count(chat, settings)
    name = "max_completion_tokens" if chat.max_completion_tokens else "max_tokens"
    budget = max_tokens_for(chat.max_completion_tokens or chat.max_tokens, name, settings)
    request, shape = chat_request(chat, budget)
    if not request.question.strip():
        raise MessageError("the last user message is empty: put the question in it.")
    return request, shape


@dataclass
class ChatFraming:
    """The events of a streamed chat answer: the role, the content deltas, a final chunk with
    the finish reason and ragtune's extras, the usage (when asked).

    A tool call is sent whole once the answer is (its JSON is parsed to find the function):
    one delta with the call, then the final chunk with ``finish_reason: "tool_calls"``.
    """

    model: str
    shape: Shape
    include_usage: bool

    def __post_init__(self) -> None:
        self.ident = completion_id()
        self.created = int(time.time())

    def _chunk(
        self, delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        return completion_chunk(self.ident, self.created, self.model, delta, finish, **extra)

    def start(self) -> list[dict[str, Any]]:
        """The assistant's role (and, for a tool call, no content)."""
        return [self._chunk({"role": "assistant", "content": None if self.shape.calls else ""})]

    def piece(self, text: str) -> list[dict[str, Any]]:
        """A content delta; a tool call's pieces are held until the call is whole."""
        return [] if self.shape.calls else [self._chunk({"content": text})]

    def done(self, result: Result) -> list[dict[str, Any]]:
        """The call (for a tool call), the finish reason with the extras, then the usage."""
        events = []
        finish = result.finish_reason
        call = self.shape.call(result.text) if self.shape.calls else None
        if call is not None:
            events.append(self._chunk({"tool_calls": [tool_call(*call, index=0)]}))
            finish = "tool_calls" if finish == "stop" else finish
        elif self.shape.calls:  # not a call of any of the tools: the text as it came
            events.append(self._chunk({"content": result.text}))
        events.append(self._chunk({}, finish, **result_extras(result)))
        if self.include_usage:
            events.append(self._chunk(usage=usage(result)))
        return events

"""``POST /v1/completions``, OpenAI's legacy completions (LlamaIndex's ``OpenAILike`` with
``is_chat_model=False`` uses it): the prompt is the question, answered through the runtime as a
chat request with that one user message is - the capability's instructions, its passages, its
contract - whole or streamed as server-sent events of ``text_completion`` objects.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ragtune.runtime.runtime import Request, Result
from ragtune.server.auth import require_scope
from ragtune.server.chat import check_model, max_tokens_for
from ragtune.server.errors import ApiError, error_responses
from ragtune.server.fields import LABELS, chat_request, unsupported
from ragtune.server.generation import checked_run, generate, stream_response
from ragtune.server.schemas import (
    ChatRequest,
    CompletionRequest,
    MessageError,
    TextCompletion,
    result_extras,
    usage,
)
from ragtune.server.settings import ServerState

__all__ = ["completions_router", "text_completion"]

# The fields a completions request shares with a chat request, checked the same way.
_SHARED = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)


def completions_router(state: ServerState) -> APIRouter:
    """``POST /v1/completions`` (read scope)."""
    router = APIRouter(tags=["openai"])

    @router.post(
        "/v1/completions",
        dependencies=[require_scope(state.settings.keys, "read")],
        response_model=None,
        responses={
            200: {
                "model": TextCompletion,
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "The answer; with stream: true, server-sent events.",
            },
            **error_responses(400, 401, 404, 413, 422, 500, 502, 503, 504),
        },
    )
    async def completions(body: CompletionRequest) -> Response:
        """Answer a prompt through the runtime (OpenAI's legacy completions, with ragtune's
        extras: ``citations``, ``route``, ``contract_violation``, ``timings``)."""
        deadline = anyio.current_time() + state.settings.timeout_s
        request = _request_for(body, state)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await stream_response(
                state,
                request,
                lambda routed: TextFraming(routed.route.capability, include_usage),
                deadline,
            )
        result = await generate(state, lambda: checked_run(state, request), deadline)
        state.metrics.result(result)
        return JSONResponse(text_completion(result, _completion_id()))

    return router


def _completion_id() -> str:
    return f"cmpl-{uuid.uuid4().hex}"


def _request_for(body: CompletionRequest, state: ServerState) -> Request:
    """The runtime request: the completions-only fields checked, the rest as a chat request."""
    check_model(body.model, state.runtime)
    if body.best_of not in (None, 1):
        raise unsupported("best_of", body.best_of, "one answer is made a request; send 1")
    if body.echo:
        raise unsupported("echo", body.echo, "the prompt is not repeated in the answer")
    if body.suffix:
        raise unsupported("suffix", body.suffix, "no text is inserted after the answer")
    if body.logprobs:
        raise unsupported("logprobs", body.logprobs, "log probabilities are not returned")
    for field, value in (body.model_extra or {}).items():
        if field not in LABELS and value is not None:
            raise ApiError(
                400,
                f"{field!r} is not a field of OpenAI's completions that this server knows; "
                "leave it out (POST /v1/completions in /docs lists the fields).",
                param=field,
                code="unknown_parameter",
            )
    prompt = _prompt(body.prompt)
    shared = {name: getattr(body, name) for name in _SHARED}
    chat = ChatRequest.model_validate({**shared, "messages": [{"role": "user", "content": prompt}]})
    try:
        request, _ = chat_request(
            chat, max_tokens_for(body.max_tokens, "max_tokens", state.settings)
        )
    except MessageError as exc:
        raise ApiError(
            400, str(exc).replace("messages[0].content", "prompt"), param="prompt"
        ) from None
    if not request.question.strip():
        raise ApiError(400, "prompt is empty: put the question in it.", param="prompt")
    return request


def _prompt(prompt: str | list[str] | list[int] | list[list[int]]) -> str:
    """The one text of ``prompt``."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if prompt and all(isinstance(p, str) for p in prompt):
        raise ApiError(
            400,
            f"prompt holds {len(prompt)} prompts; this server answers one a request: send "
            "them one by one.",
            param="prompt",
            code="unsupported_parameter",
        )
    if not prompt:
        raise ApiError(400, "prompt is an empty list: send the question as text.", param="prompt")
    raise ApiError(
        400,
        "prompt holds token ids; this server reads text (its model has its own tokenizer): "
        "send the prompt as a string.",
        param="prompt",
        code="unsupported_parameter",
    )


def text_completion(result: Result, ident: str, created: int | None = None) -> dict[str, Any]:
    """A ``text_completion`` object for a finished result, with ragtune's extras."""
    return {
        "id": ident,
        "object": "text_completion",
        "created": int(time.time()) if created is None else created,
        "model": result.route.capability,
        "choices": [
            {
                "index": 0,
                "text": result.text,
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        **result_extras(result),
    }


@dataclass
class TextFraming:
    """The events of a streamed completion: one ``text_completion`` per piece, a last one with
    the finish reason and ragtune's extras, then the usage (when asked)."""

    model: str
    include_usage: bool

    def __post_init__(self) -> None:
        self.ident = _completion_id()
        self.created = int(time.time())

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.ident,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def start(self) -> list[dict[str, Any]]:
        """Nothing comes before the text."""
        return []

    def piece(self, text: str) -> list[dict[str, Any]]:
        """One piece of the text."""
        choice = {"index": 0, "text": text, "finish_reason": None, "logprobs": None}
        return [self._event([choice])]

    def done(self, result: Result) -> list[dict[str, Any]]:
        """The finish reason with the extras, then the usage."""
        last = {"index": 0, "text": "", "finish_reason": result.finish_reason, "logprobs": None}
        events = [self._event([last], **result_extras(result))]
        if self.include_usage:
            events.append(self._event([], usage=usage(result)))
        return events

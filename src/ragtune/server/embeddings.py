"""``POST /v1/embeddings``: vectors from the project's own embedder - the one its knowledge base
is indexed with - in OpenAI's shape, so a client can embed its texts the way the knowledge is.

``model`` must name that embedder (``knowledge.embedder`` of ragtune.yaml, or the name it
records in the store, such as ``all-MiniLM-L6-v2``): another model's vectors would be silently
different. ``input`` is a text or a list of texts; token ids are refused (the client's tokenizer
is not the embedder's), and so is a text longer than the embedder reads (it would be cut
silently). ``encoding_format`` ``base64`` is little-endian float32, as OpenAI's; ``dimensions``
is accepted only as the embedder's own. The work runs in the generation queue, like a chat
request.
"""

from __future__ import annotations

import base64
from typing import Any

import anyio
from fastapi import APIRouter

from ragtune.runtime.runtime import Runtime
from ragtune.server.auth import require_scope
from ragtune.server.errors import ApiError, error_responses
from ragtune.server.generation import generate
from ragtune.server.schemas import EmbeddingList, EmbeddingRequest
from ragtune.server.settings import ServerState

__all__ = ["MAX_INPUTS", "embeddings_router"]

MAX_INPUTS = 2048
"""The most texts one request may embed (OpenAI's limit)."""

# Tokens an embedder adds around a text (BERT's [CLS] and [SEP]).
_MARKERS = 2


def embeddings_router(state: ServerState) -> APIRouter:
    """``POST /v1/embeddings`` (read scope)."""
    router = APIRouter(tags=["openai"])

    @router.post(
        "/v1/embeddings",
        dependencies=[require_scope(state.settings.keys, "read")],
        response_model=None,
        responses={
            200: {"model": EmbeddingList},
            **error_responses(400, 401, 404, 413, 422, 500, 503, 504),
        },
    )
    async def embeddings(body: EmbeddingRequest) -> dict[str, Any]:
        """Embed texts with the knowledge base's embedder (unit vectors)."""
        deadline = anyio.current_time() + state.settings.timeout_s
        texts = _texts(body)
        return await generate(state, lambda: embed(state.runtime, body, texts), deadline)

    return router


def _texts(body: EmbeddingRequest) -> list[str]:
    """The texts of ``input``, checked."""
    for field, value in (body.model_extra or {}).items():
        if value is not None:
            raise ApiError(
                400,
                f"{field!r} is not a field of OpenAI's embeddings that this server knows; "
                "leave it out.",
                param=field,
                code="unknown_parameter",
            )
    given = body.input
    texts = [given] if isinstance(given, str) else list(given)
    if not texts:
        raise ApiError(
            400,
            "input is an empty list: send a text or a list of texts.",
            param="input",
            code="invalid_value",
        )
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(
            400,
            "input holds token ids; this server embeds text (the embedder has its own "
            "tokenizer): send the texts as strings (LangChain's OpenAIEmbeddings: "
            "check_embedding_ctx_length=False).",
            param="input",
            code="unsupported_parameter",
        )
    if len(texts) > MAX_INPUTS:
        raise ApiError(
            400,
            f"input holds {len(texts)} texts; send at most {MAX_INPUTS} a request.",
            param="input",
            code="invalid_value",
        )
    for i, text in enumerate(texts):
        assert isinstance(text, str)
        where = "input" if isinstance(given, str) else f"input[{i}]"
        if not text.strip():
            raise ApiError(
                400, f"{where} is empty: send text to embed.", param=where, code="invalid_value"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(
                400,
                f"{where} holds a lone UTF-16 surrogate at character {exc.start}: send valid "
                "Unicode text.",
                param=where,
                code="invalid_value",
            ) from None
    return [str(t) for t in texts]


def embed(runtime: Runtime, body: EmbeddingRequest, texts: list[str]) -> dict[str, Any]:
    """The ``list`` of embeddings (blocking: loads the embedder on first use)."""
    from ragtune.knowledge.chunk import approximate_tokens, token_counter

    spec = runtime.project.config.knowledge.embedder
    embedder = runtime.embedder
    if body.model not in (spec, embedder.name):
        raise ApiError(
            404,
            f"model {body.model!r} is not this server's embedder: its knowledge is embedded "
            f"with {embedder.name!r}; send that as model.",
            param="model",
            code="model_not_found",
        )
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise ApiError(
            400,
            f"dimensions {body.dimensions} is not supported: {embedder.name} makes vectors of "
            f"{embedder.dim} dimensions and cannot shorten them; send {embedder.dim} or leave "
            "it out.",
            param="dimensions",
            code="unsupported_parameter",
        )
    tokenizer = getattr(embedder, "tokenizer_json", None)
    count = token_counter(tokenizer()) if callable(tokenizer) else approximate_tokens
    window = getattr(getattr(embedder, "model", None), "max_seq_length", None)
    tokens = [count(text) for text in texts]
    if isinstance(window, int):
        for i, n in enumerate(tokens):
            if n + _MARKERS > window:
                where = "input" if isinstance(body.input, str) else f"input[{i}]"
                raise ApiError(
                    400,
                    f"{where} is {n} tokens; {embedder.name} reads at most {window - _MARKERS} "
                    "(it would cut the rest silently): split the text.",
                    param=where,
                    code="context_length_exceeded",
                )
    vectors = embedder.embed(texts)
    data = []
    for index, vector in enumerate(vectors):
        encoded: list[float] | str
        if body.encoding_format == "base64":
            encoded = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        else:
            encoded = [float(x) for x in vector]
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    total = sum(tokens)
    return {
        "object": "list",
        "data": data,
        "model": embedder.name,
        "usage": {"prompt_tokens": total, "total_tokens": total},
    }

"""The clients users already run, against the server over a loopback socket: LangChain's
``ChatOpenAI`` (chat, streaming, ``with_structured_output`` in its three modes) and
``OpenAIEmbeddings``, and LlamaIndex's ``OpenAILike`` (legacy completions with
``is_chat_model=False``, chat with ``is_chat_model=True``).

A stand-in backend (:class:`standins.ScriptedBackend`) answers from a script, so what
each client sent - the schema of its structured output, its system message - is checked
exactly; the real llama.cpp base model (one thread) answers the slow tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from ragtune.project import load_project
from ragtune.prompt import CLIENT_INSTRUCTIONS
from ragtune.runtime.runtime import Runtime
from ragtune.server import ServerSettings, create_app
from standins import ScriptedBackend
from test_openai_fields import BREACH, real
from test_server import serving

langchain_openai = pytest.importorskip("langchain_openai")
openai_like = pytest.importorskip("llama_index.llms.openai_like")

__all__ = ["real"]  # the slow server, shared with test_openai_fields


class Notice(BaseModel):
    """When a data breach must be notified."""

    hours: int
    party: str


NOTICE = '{"hours": 72, "party": "Provider"}'


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    example_project: Callable[..., Path],
    backend: ScriptedBackend,
) -> Iterator[Runtime]:
    folder = example_project(
        tmp_path_factory.mktemp("clients") / "cr", embedder="hashing", sync=True, answer="generate"
    )
    served = Runtime(load_project(folder), backend=backend)
    yield served
    served.close()


@pytest.fixture(scope="module")
def url(runtime: Runtime) -> Iterator[str]:
    with serving(create_app(runtime, ServerSettings(max_tokens_limit=512))) as base:
        yield f"{base}/v1"


@pytest.fixture
def scripted(backend: ScriptedBackend) -> ScriptedBackend:
    backend.calls.clear()
    backend.answers.clear()
    return backend


def chat_model(url: str, **options: Any) -> Any:
    return langchain_openai.ChatOpenAI(
        base_url=url, api_key="unused", model="templates", max_retries=0, **options
    )


# -- LangChain --------------------------------------------------------------------------------


def test_langchain_chat_sends_its_system_message_and_streams(
    url: str, scripted: ScriptedBackend
) -> None:
    llm = chat_model(url)
    answer = llm.invoke([("system", "Answer in one short sentence."), ("human", BREACH)])
    assert answer.content == "See [1]."
    assert answer.usage_metadata is not None and answer.usage_metadata["input_tokens"] > 0
    assert answer.response_metadata["finish_reason"] == "stop"
    system = scripted.calls[0][0][0]["content"]
    assert system.endswith(f"{CLIENT_INSTRUCTIONS}\nAnswer in one short sentence.")
    pieces = [chunk.content for chunk in llm.stream(BREACH)]
    assert "".join(pieces) == "See [1]." and len([p for p in pieces if p]) == 2


@pytest.mark.parametrize("method", ["json_schema", "json_mode", "function_calling"])
def test_langchain_structured_output_in_each_mode(
    url: str, scripted: ScriptedBackend, method: str
) -> None:
    scripted.answers[:] = [NOTICE]
    structured = chat_model(url).with_structured_output(Notice, method=method)
    assert structured.invoke(BREACH) == Notice(hours=72, party="Provider")
    schema = scripted.calls[0][1].schema
    if method == "json_mode":
        assert schema == {"type": "object"}
    else:
        assert schema is not None and set(schema["required"]) == {"hours", "party"}
        assert schema["properties"]["hours"]["type"] == "integer"


def test_langchain_function_calling_reports_what_the_model_got_wrong(
    url: str, scripted: ScriptedBackend
) -> None:
    """The answer breaks the schema twice (the repair fails too): the client gets the call
    as made, and include_raw shows the parsing error instead of a silent None."""
    scripted.answers[:] = ['{"hours": "soon"}', '{"hours": "soon"}']
    structured = chat_model(url).with_structured_output(
        Notice, method="function_calling", include_raw=True
    )
    got = structured.invoke(BREACH)
    assert got["parsed"] is None and got["parsing_error"] is not None
    raw = got["raw"]
    assert raw.tool_calls[0]["name"] == "Notice" and raw.tool_calls[0]["args"] == {"hours": "soon"}
    assert raw.response_metadata["finish_reason"] == "tool_calls"


def test_langchain_embeddings_are_the_knowledge_bases(url: str, runtime: Runtime) -> None:
    embeddings = langchain_openai.OpenAIEmbeddings(
        base_url=url, api_key="unused", model="hashing", check_embedding_ctx_length=False
    )
    texts = ["breach notification window", "governing law"]
    vectors = np.array(embeddings.embed_documents(texts))
    assert np.allclose(vectors, runtime.embedder.embed(texts), atol=1e-6)
    assert np.allclose(embeddings.embed_query(texts[0]), vectors[0], atol=1e-6)


# -- LlamaIndex -------------------------------------------------------------------------------


def test_llamaindex_completes_through_the_legacy_endpoint(
    url: str, scripted: ScriptedBackend
) -> None:
    llm = openai_like.OpenAILike(
        api_base=url, api_key="unused", model="templates", is_chat_model=False, max_retries=0
    )
    made = llm.complete(BREACH)
    assert made.text == "See [1]."
    messages, params = scripted.calls[0]
    assert BREACH in messages[-1]["content"] and params.temperature == pytest.approx(0.1)
    assert "".join(piece.delta or "" for piece in llm.stream_complete(BREACH)) == "See [1]."


def test_llamaindex_chats_with_a_system_message(url: str, scripted: ScriptedBackend) -> None:
    from llama_index.core.llms import ChatMessage

    llm = openai_like.OpenAILike(
        api_base=url, api_key="unused", model="templates", is_chat_model=True, max_retries=0
    )
    reply = llm.chat(
        [
            ChatMessage(role="system", content="Quote the clause."),
            ChatMessage(role="user", content=BREACH),
        ]
    )
    assert reply.message.content == "See [1]."
    assert scripted.calls[0][0][0]["content"].endswith("Quote the clause.")


# -- the real model -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_structured_output_from_the_real_model(real: str, method: str) -> None:
    llm = langchain_openai.ChatOpenAI(
        base_url=f"{real}/v1", api_key="unused", model="templates", max_retries=0, max_tokens=64
    )
    got = llm.with_structured_output(Notice, method=method, include_raw=True).invoke(BREACH)
    assert isinstance(got["parsed"], Notice), got["raw"]
    assert got["parsing_error"] is None
    if method == "function_calling":
        (made,) = got["raw"].tool_calls
        assert made["name"] == "Notice" and Notice(**made["args"]) == got["parsed"]
        assert got["raw"].response_metadata["finish_reason"] == "tool_calls"
    else:
        assert json.loads(got["raw"].content) == got["parsed"].model_dump()

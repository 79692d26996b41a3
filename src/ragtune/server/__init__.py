"""The HTTP server: an OpenAI-compatible API over the hybrid runtime (``ragtune serve``).

- :mod:`ragtune.server.app`: the FastAPI app (:func:`create_app`), put together from the routers;
- :mod:`ragtune.server.settings`: the keys and limits it runs with (:class:`ServerSettings`);
- :mod:`ragtune.server.chat`: ``/v1/models`` and ``/v1/chat/completions``, streamed or not;
- :mod:`ragtune.server.fields`: which OpenAI field does what, and which are refused (400);
- :mod:`ragtune.server.completions`: ``/v1/completions``, OpenAI's legacy completions;
- :mod:`ragtune.server.embeddings`: ``/v1/embeddings``, from the knowledge base's embedder;
- :mod:`ragtune.server.generation`: a request run in the queue and time limit, or streamed;
- :mod:`ragtune.server.knowledge`: the endpoints that write or remove knowledge documents;
- :mod:`ragtune.server.documents`: which documents may be written, and the sync after a change;
- :mod:`ragtune.server.adapters`: the endpoint that reloads a retrained adapter;
- :mod:`ragtune.server.operations`: ``/healthz`` and ``/metrics``;
- :mod:`ragtune.server.schemas`: the OpenAI request and answer shapes;
- :mod:`ragtune.server.errors`: every error answer, in OpenAI's shape;
- :mod:`ragtune.server.auth`: API keys with read or write scope;
- :mod:`ragtune.server.limits`: the body limit and the bounded generation queue;
- :mod:`ragtune.server.budget`: the message count and the prompt's tokens against the context;
- :mod:`ragtune.server.metrics`: Prometheus metrics.

Any OpenAI client talks to it; ``model`` names a capability::

    from openai import OpenAI

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="KEY")
    answer = client.chat.completions.create(
        model="templates",
        messages=[{"role": "user", "content": "How fast must a data breach be notified?"}],
    )
    print(answer.choices[0].message.content)
    print(answer.model_extra["citations"])
"""

from __future__ import annotations

from ragtune.server.app import create_app
from ragtune.server.auth import ApiKeys, AuthError, is_loopback, load_keys
from ragtune.server.errors import ApiError
from ragtune.server.settings import ServerSettings

__all__ = [
    "ApiError",
    "ApiKeys",
    "AuthError",
    "ServerSettings",
    "create_app",
    "is_loopback",
    "load_keys",
]

"""The HTTP server: an OpenAI-compatible API over the hybrid runtime (``ragtune serve``).

- :mod:`ragtune.server.app`: the FastAPI app (:func:`create_app`) and its endpoints;
- :mod:`ragtune.server.schemas`: the OpenAI request and answer shapes;
- :mod:`ragtune.server.auth`: API keys with read or write scope;
- :mod:`ragtune.server.limits`: the bounded generation queue;
- :mod:`ragtune.server.documents`: knowledge documents written through the API, then synced;
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

from ragtune.server.app import ApiError, ServerSettings, create_app
from ragtune.server.auth import ApiKeys, AuthError, is_loopback, load_keys

__all__ = [
    "ApiError",
    "ApiKeys",
    "AuthError",
    "ServerSettings",
    "create_app",
    "is_loopback",
    "load_keys",
]

"""schemathesis against the server, in-process (its ASGI transport, no socket): requests made
from the published OpenAPI schema - valid ones and ones that break it - get no 500, and every
response matches the schema (a declared status, a declared content type, the declared body and
headers).

Bounded for CI: a fixed number of examples per operation and mode, derandomized (the same
requests every run), no shrinking and no example database. Over the example with the hashing
embedder and the recording stand-in backend (generation is not what is tested here); document
writes go through the real sync.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # noqa: E402

from ragtune.project import load_project  # noqa: E402
from ragtune.runtime.runtime import Runtime  # noqa: E402
from ragtune.server import ApiKeys, ServerSettings, create_app  # noqa: E402
from standins import ScriptedBackend  # noqa: E402

WRITE = "write-key-schemathesis"
EXAMPLES = int(os.environ.get("RAGTUNE_SCHEMATHESIS_EXAMPLES", "30"))
"""Examples per operation and generation mode (7 operations, 2 modes); set the environment
variable for a longer run (300: about 3,000 requests)."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]
) -> Iterator[Any]:
    folder = example_project(tmp_path_factory.mktemp("st") / "cr", embedder="hashing", sync=True)
    runtime = Runtime(load_project(folder), backend=ScriptedBackend())
    settings = ServerSettings(
        keys=ApiKeys({WRITE: "write"}), max_tokens_limit=64, max_body_bytes=16_384
    )
    yield create_app(runtime, settings)
    runtime.close()


def test_no_500_and_every_response_matches_the_published_schema(app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: Counter[tuple[str, int]] = Counter()
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case: Any) -> None:
                response = case.call(headers={"Authorization": f"Bearer {WRITE}"})
                statuses[(case.operation.label, response.status_code)] += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except (AssertionError, FailureGroup) as failed:  # collected: one run shows all
                    key = f"{case.operation.label} -> {response.status_code}"
                    failures.setdefault(key, f"{failed}"[:1500])

            try:
                exercise()
            except Unsatisfiable:  # nothing to break (no parameters, no body): no negative case
                assert mode is GenerationMode.NEGATIVE
    seconds = time.perf_counter() - started
    total = sum(statuses.values())
    summary = "\n".join(
        f"  {label} {status}: {n}" for (label, status), n in sorted(statuses.items())
    )
    print(f"\nschemathesis: {total} requests in {seconds:.1f} s\n{summary}")
    assert total >= 5 * EXAMPLES, summary
    assert not [k for k in statuses if k[1] >= 500], summary
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())

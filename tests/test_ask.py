"""``ragtune ask`` through the CLI runner, on a synced copy of the example project."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.examples import copy_example

runner = CliRunner()
BREACH = "Within how many hours must Provider notify Customer of a Personal Data Breach?"


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]) -> Path:
    """The example synced with the hashing embedder: for the checks made before any retrieval."""
    return example_project(tmp_path_factory.mktemp("ask") / "cr", embedder="hashing", sync=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]) -> Path:
    """The example synced with its own embedder, sharing the base model's cache."""
    folder = tmp_path_factory.mktemp("ask") / "cr"
    return example_project(folder, sync=True, shared_models=True)


@pytest.fixture(scope="module")
def generating(
    tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]
) -> Path:
    """The example with the base model writing the templates' answers (``answer: generate``)."""
    folder = tmp_path_factory.mktemp("ask") / "cr"
    return example_project(folder, sync=True, shared_models=True, answer="generate")


def test_an_unknown_capability_exits_2_with_the_list(hashed: Path) -> None:
    result = runner.invoke(app, ["ask", BREACH, "-p", str(hashed), "--capability", "template"])
    assert result.exit_code == 2
    assert "no capability 'template'" in result.output and "Did you mean 'templates'?" in (
        result.output
    )
    assert "clause_summary" in result.output and "counterparties" in result.output


def test_an_empty_question_exits_2(hashed: Path) -> None:
    result = runner.invoke(app, ["ask", "   ", "-p", str(hashed), "-c", "templates"])
    assert result.exit_code == 2 and "ask a question" in result.output


def test_an_unsynced_project_is_warned_about(tmp_path: Path) -> None:
    folder = copy_example("contract-review", tmp_path / "cr")
    result = runner.invoke(app, ["ask", " ", "-p", str(folder)])
    assert result.exit_code == 2
    assert "knowledge store is empty" in result.output and "ragtune knowledge sync" in (
        result.output
    )


@pytest.mark.slow
def test_json_carries_the_answer_citations_route_and_timings(
    generating: Path, one_thread: None
) -> None:
    args = ["ask", BREACH, "-p", str(generating), "-c", "templates", "--max-tokens", "3", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert set(body) == {
        "answer",
        "route",
        "classified",
        "supported",
        "unsupported",
        "citations",
        "contract",
        "usage",
        "finish_reason",
        "model",
        "timings",
    }
    assert body["route"]["capability"] == "templates" and body["route"]["strategy"] == "retrieval"
    assert body["classified"] == {}  # no label classifier on a knowledge capability
    assert body["supported"] is None and body["unsupported"] is None  # the base model wrote it
    assert body["citations"][0]["document"] == "knowledge/dpa.md"
    assert 1 <= body["usage"]["completion_tokens"] <= 3 and body["model"] == "base"
    assert {"route", "retrieve", "prompt", "generate", "validate", "total"} <= set(body["timings"])


@pytest.mark.slow
def test_the_plain_output_numbers_citations_and_shows_the_route(
    project: Path, one_thread: None
) -> None:
    question = "How quickly must we notify the customer of a data breach under the DPA?"
    result = runner.invoke(app, ["ask", question, "-p", str(project), "--max-tokens", "2"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Citations" in out and "\n  [1] knowledge/dpa.md > " in out
    assert "version 1, snapshot 1" in out
    # The example quotes its templates: the clause itself, cited, and no model.
    assert "seventy-two (72) hours" in out and "(DPA 6.1) [1]." in out
    assert "Route: templates · quote · no model · routed (similarity" in out
    assert "Timings: route" in out and "total" in out and "Tokens:" in out

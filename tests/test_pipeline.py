"""The runtime pipeline, step by step: route, retrieve, select, prompt, generate, validate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.project import Project, load_project
from ragtune.runtime.pipeline import (
    KNOWLEDGE_SYSTEM,
    build_prompt,
    cited,
    retrieve,
    route,
    run,
    select_shots,
    stream,
)
from ragtune.runtime.runtime import PipelineError, Request, Route, Runtime

PROJECT = """
version: 1
project: pipe
knowledge:
  embedder: hashing
capabilities:
  - name: templates
    description: Answer questions about the clauses of our NDA template and cite them.
    kind: knowledge
    changes_within_6_months: true
    sources: [docs/]
  - name: flags
    description: Flag each contract clause in our JSON risk format, at high volume.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: false
    calls_per_month: 50000
    examples: flags.jsonl
    output_contract: flag.regex
    context_from: [templates]
  - name: summary
    description: Summarise one clause in plain English for account managers.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: true
    calls_per_month: 300
    examples: summaries.jsonl
    instructions: Summarise the clause in one sentence.
"""

NDA = """# Non-Disclosure Agreement

## 1. Term

This Agreement lasts two (2) years from the Effective Date unless terminated earlier.

## 2. Governing Law

This Agreement is governed by the laws of England and Wales.

## 3. Breach Notification

The Recipient notifies the Discloser of any unauthorised disclosure within seventy-two hours.
"""


@pytest.fixture
def project(write_project: Callable[..., Path]) -> Project:
    folder = write_project(PROJECT)
    (folder / "docs").mkdir()
    (folder / "docs" / "nda.md").write_text(NDA)
    flags = [
        {"input": f"Clause {i}: the term is {i} years.", "output": f"FLAG low {i}"}
        for i in range(12)
    ]
    (folder / "flags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flags))
    summaries = [
        {"input": "Governing law is New York.", "output": "New York law applies."},
        {"input": "Liability is capped at fees paid.", "output": "Damages are limited to fees."},
        {"input": "Notices go by email.", "output": "Send notices by email."},
    ]
    (folder / "summaries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in summaries))
    (folder / "flag.regex").write_text(r"FLAG (low|medium|high) \d+" + "\n")
    project = load_project(folder)
    KnowledgeBase(project, embedder=HashingEmbedder(256)).sync()
    return project


@pytest.fixture
def runtime(project: Project) -> Runtime:
    rt = Runtime(project, embedder=HashingEmbedder(256))
    yield rt
    rt.close()


def test_route_follows_the_audit_and_the_adapters(runtime: Runtime, project: Project) -> None:
    assert runtime.decisions == {"templates": "retrieval", "flags": "lora", "summary": "few-shot"}
    knowledge = route(runtime, Request("How long is the term?", "templates"))
    assert knowledge == Route("templates", "retrieval", ("templates",), None, "named")
    # A lora capability without a trained adapter is served by its instructions alone.
    untrained = route(runtime, Request("Clause 3: ...", "flags"))
    assert (untrained.strategy, untrained.adapter, untrained.knowledge) == (
        "prompt",
        None,
        ("templates",),
    )
    folder = project.state_dir / "adapters" / "flags"
    folder.mkdir(parents=True)
    (folder / "ragtune.json").write_text("{}")
    trained = route(runtime, Request("Clause 3: ...", "flags"))
    assert (trained.strategy, trained.adapter) == ("lora", "flags")
    assert route(runtime, Request("x", "summary")).strategy == "few-shot"
    with pytest.raises(PipelineError, match=r"'flag'.*Did you mean 'flags'"):
        route(runtime, Request("x", "flag"))


def test_an_unnamed_request_is_routed_by_the_descriptions(runtime: Runtime) -> None:
    routed = route(runtime, Request("Summarise one clause in plain English"))
    assert routed.how == "routed" and routed.capability == "summary"
    assert routed.score is not None and routed.score > 0


def test_retrieve_searches_the_route_knowledge_only(runtime: Runtime) -> None:
    request = Request("breach notification unauthorised disclosure", "templates")
    passages = retrieve(runtime, route(runtime, request), request)
    assert passages and passages[0].document == "docs/nda.md"
    assert "seventy-two hours" in passages[0].text
    assert retrieve(runtime, route(runtime, Request("x", "summary")), Request("x", "summary")) == []
    flagged = Request("unauthorised disclosure of the clause", "flags")
    assert retrieve(runtime, route(runtime, flagged), flagged)  # context_from: templates


def test_select_shots_only_for_few_shot_routes(runtime: Runtime) -> None:
    request = Request("Liability is capped at twice the fees.", "summary")
    shots = select_shots(runtime, route(runtime, request), request)
    assert len(shots) == 2 and shots[0].input == "Liability is capped at fees paid."
    flags = Request("Clause 1", "flags")
    assert select_shots(runtime, route(runtime, flags), flags) == []


def test_build_prompt_orders_system_shots_history_and_marks_context(runtime: Runtime) -> None:
    request = Request(
        "How long is the term?",
        "templates",
        history=({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}),
    )
    chosen = route(runtime, request)
    passages = retrieve(runtime, chosen, request)
    messages = build_prompt(runtime, chosen, request, passages, [])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == KNOWLEDGE_SYSTEM
    last = messages[-1]["content"]
    assert "<context>" in last and "[1] docs/nda.md > " in last
    assert last.endswith("How long is the term?")
    summary = Request("Notices go by courier.", "summary")
    chosen = route(runtime, summary)
    shots = select_shots(runtime, chosen, summary)
    messages = build_prompt(runtime, chosen, summary, [], shots)
    assert messages[0] == {"role": "system", "content": "Summarise the clause in one sentence."}
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


def test_cited_reads_passage_numbers() -> None:
    assert cited("As [2] says, and [1]; not [9] or [0].", 3) == [1, 2]
    assert cited("no citations", 3) == []


def test_empty_requests_are_refused(runtime: Runtime) -> None:
    with pytest.raises(PipelineError, match="empty"):
        run(runtime, Request("   ", "templates"))


@pytest.mark.slow
def test_generate_and_validate_with_the_real_model(runtime: Runtime) -> None:
    """Unguided, the base model cannot produce 'FLAG low 3': the answer fails its contract,
    one repair attempt is made, and the result says contract_violation instead of passing it
    off. Guided (the default), the backend decodes by the regex contract's grammar (llama.cpp's
    own, llguidance on transformers) and the answer complies the first time. A knowledge
    answer has no contract and carries its citations and step timings."""
    clause = Request("Clause 3: the term is 3 years.", "flags", max_tokens=8)
    runtime.guided = False
    try:
        flagged = run(runtime, clause)
    finally:
        runtime.guided = True
    assert flagged.contract_ok is False and flagged.contract_violation
    assert flagged.contract_errors and flagged.completion_tokens > 8  # two generations
    assert flagged.route.strategy == "prompt" and flagged.model == "base"
    guided = run(runtime, clause)
    assert guided.contract_ok is True, guided.text
    assert guided.completion_tokens <= 8 and guided.text.startswith("FLAG ")  # one try
    answer = run(runtime, Request("How long does the Agreement last?", "templates", max_tokens=8))
    assert answer.contract_ok is None and not answer.contract_violation
    assert answer.passages and answer.citations()[0]["document"] == "docs/nda.md"
    assert set(answer.timings) == {
        "route", "retrieve", "select", "prompt", "generate", "validate", "total"
    }  # fmt: skip
    assert answer.timings["generate"] > 0 and answer.prompt_tokens > 0
    # Streaming: the pieces are the answer; the finished result is validated afterwards.
    partial, pieces, finish = stream(
        runtime, Request("How long does the Agreement last?", "templates", max_tokens=8)
    )
    text = "".join(pieces)
    done = next(finish)
    assert done is partial and done.text == text == answer.text
    assert done.completion_tokens == answer.completion_tokens


def test_a_behaviour_is_served_with_the_prompt_it_is_trained_with(
    runtime: Runtime, project: Project
) -> None:
    from ragtune.behavior.staleness import train_config_for
    from ragtune.runtime.pipeline import system_prompt

    flags = project.config.capabilities[1]
    served = system_prompt(runtime, route(runtime, Request("Clause 1", "flags")))
    assert served == train_config_for(project, flags).system_prompt
    assert served.startswith(flags.description) and "Reply with only" in served
    assert "regular expression" in served or "FLAG" in served  # what the contract wants


def test_a_tool_capability_answers_through_retrieve_and_is_imported_once(
    write_project: Callable[..., Path],
) -> None:
    folder = write_project(
        """
        version: 1
        project: tools
        knowledge: {embedder: hashing}
        capabilities:
          - name: screening
            description: Look up a counterparty's sanctions screening status.
            kind: knowledge
            sources: ["tool:screen.py:status"]
        """
    )
    (folder / "screen.py").write_text(
        "from pathlib import Path\n"
        "from ragtune.knowledge.tools import tool\n"
        "with open(Path(__file__).with_suffix('.imports'), 'a') as log:\n"
        "    log.write('x')\n"
        "@tool(description='screening status')\n"
        "def status(query: str) -> str:\n"
        "    return f'{query}: clear'\n"
    )
    rt = Runtime(load_project(folder), embedder=HashingEmbedder(64))
    try:
        for _ in range(3):
            request = Request("Northwind", "screening")
            passages = retrieve(rt, route(rt, request), request)
            assert [p.text for p in passages] == ["Northwind: clear"]
            assert passages[0].document == "tool:screen.py:status"
        assert (folder / "screen.imports").read_text() == "x"  # imported once, not per request
    finally:
        rt.close()

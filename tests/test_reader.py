"""A knowledge capability's reader adapter: its settings, its pairs (the team's train split and
the documents' clauses), the relevant passage in each prompt, the plan, build and serving."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.behavior.examples import Example
from ragtune.behavior.reader import document_pairs, reader_pairs, relevant_hit
from ragtune.build import build, make_plan
from ragtune.context import Passage
from ragtune.errors import RagtuneError
from ragtune.holdout import input_key, is_held_out
from ragtune.knowledge.store import ChunkRow
from ragtune.project import load_project

PROJECT = """
version: 1
project: reading
knowledge:
  embedder: hashing
capabilities:
  - name: policies
    description: Answer questions about our current leave and travel policies.
    kind: knowledge
    changes_within_6_months: true
    sources: [docs/]
    reader: {max_generated: 20, train: {max_steps: 2, max_length: 256, context_chars: 200}}
"""

LEAVE = """# Leave Policy

This Leave Policy (the "LP") applies to every employee.

## 1. Annual leave

1.1 Each employee receives twenty-five (25) days of paid annual leave per calendar year.

1.2 Unused leave of up to five (5) days carries over to the next year. Leave is booked in
the HR tool.

1.3 Leave is approved by the employee's manager.

## 2. Parental leave

2.1 A new parent receives sixteen (16) weeks of paid parental leave.
"""

TRAVEL = """# Travel Policy

## 3. Expenses

3.1 Hotel costs are reimbursed up to $180 per night.

3.2 Economy class is the standard for flights under 6 hours.
"""

QUESTIONS = [
    ("How many days of annual leave do we get?", "25 days a year (LP 1.1)."),
    ("How much unused leave carries over?", "Up to 5 days (LP 1.2)."),
    ("How long is paid parental leave?", "16 weeks (LP 2.1)."),
    ("What is the hotel limit per night?", "$180 a night (Travel Policy 3.1)."),
    ("When is business class allowed?", "On flights of 6 hours or more (Travel Policy 3.2)."),
    ("Who approves leave?", "The employee's manager (LP 1.3)."),
    ("Can I carry over ten days?", "No, at most 5 days carry over (LP 1.2)."),
    ("Is parental leave paid?", "Yes, 16 weeks are paid (LP 2.1)."),
]


def _with_docs(folder: Path) -> Path:
    (folder / "docs").mkdir()
    (folder / "docs" / "leave.md").write_text(LEAVE)
    return folder


@pytest.fixture
def folder(write_project: Callable[..., Path]) -> Path:
    folder = write_project(PROJECT)
    (folder / "docs").mkdir()
    (folder / "docs" / "leave.md").write_text(LEAVE)
    (folder / "docs" / "travel.md").write_text(TRAVEL)
    (folder / "eval").mkdir()
    lines = [
        {"capability": "policies", "input": q, "expected": [a.split()[0]], "answer": a}
        for q, a in QUESTIONS
    ]
    lines.append({"capability": "policies", "input": "No answer given?", "expected": ["x"]})
    (folder / "eval" / "policies.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def _chunk(document: str, section: str, text: str, ordinal: int = 0) -> ChunkRow:
    title = section.split(" > ")[0]
    return ChunkRow(
        0, f"{document}#{ordinal}", document, 1, ordinal, section, title, text, "", 0, 1, None
    )


def test_reader_settings_are_checked_by_name(write_project: Callable[..., Path]) -> None:
    folder = _with_docs(write_project(PROJECT))
    (folder / "x.jsonl").write_text('{"input": "a", "output": "b"}\n')
    reader = PROJECT.split("reader: ")[1].split("\n")[0]
    cap = load_project(write_project(PROJECT.replace(reader, "true"))).config.capabilities[0]
    assert cap.reader is not None and cap.reader.from_documents and cap.reader.questions is None
    assert (
        load_project(write_project(PROJECT.replace(reader, "false"))).config.capabilities[0].reader
        is None
    )
    write_project(PROJECT.replace("max_steps: 2", "max_stepz: 2"))
    with pytest.raises(RagtuneError, match=r"reader\.train\.max_stepz.*max_steps"):
        load_project(folder)
    write_project(PROJECT.replace("sources: [docs/]", "sources: [docs/]\n    examples: x.jsonl"))
    with pytest.raises(RagtuneError, match=r"reader: only a knowledge capability.*policies"):
        load_project(folder)


def test_pairs_from_the_clauses_figures_first() -> None:
    chunks = [
        _chunk("docs/leave.md", "Leave Policy", LEAVE.split("## 1.")[0], 0),
        _chunk(
            "docs/leave.md",
            "Leave Policy > 1. Annual leave > 1.1 Each employee receives",
            "## 1. Annual leave\n\n" + LEAVE.split("## 1. Annual leave\n\n")[1].split("## 2.")[0],
            1,
        ),
        _chunk("docs/leave.md", "Leave Policy > 2. Parental leave", LEAVE.split("## 2.")[1], 2),
        _chunk(
            "docs/travel.md", "Travel Policy > 3. Expenses", TRAVEL.split("## 3. Expenses\n\n")[1]
        ),
    ]
    pairs = document_pairs(chunks, limit=10)
    by_clause = {p.output.rsplit(" ", 1)[-1].rstrip(")."): p for p in pairs}
    # Every clause under a heading; the LP names itself; travel.md has no abbreviation and
    # "Travel Policy" no acronym of three letters.
    assert set(by_clause) == {"1.1", "1.2", "1.3", "2.1", "3.1", "3.2"}
    first = by_clause["1.1"]
    # Annual leave has three clauses: asked by its figure's unit and by the words that tell it
    # from its neighbours (those the fewest other clauses hold), never by its number.
    assert (
        first.input == "How many days does our LP give for annual leave (each, employee, calendar)?"
    )
    assert first.output.startswith("Each employee receives twenty-five (25) days")
    assert first.output.endswith("(LP 1.1).")
    # Parental leave has one: asked as a user would, without the number.
    assert by_clause["2.1"].input == "How many weeks does our LP give for parental leave?"
    # Only the sentence holding the figure: the booking sentence of 1.2 is left out.
    assert "HR tool" not in by_clause["1.2"].output and "five (5) days" in by_clause["1.2"].output
    # A clause without a figure is answered with its first sentence.
    assert by_clause["1.3"].output == "Leave is approved by the employee's manager (LP 1.3)."
    assert "annual leave (approved, employee, manager)" in by_clause["1.3"].input
    # The figure stays out of the question (its words too): the answer must be read.
    assert "(unused, carries, over)" in by_clause["1.2"].input
    assert not any(n in p.input for p in pairs for n in ("1.1", "1.2", "1.3", "twenty", "five"))
    assert "Travel Policy 3.1" in by_clause["3.1"].output and "$180" in by_clause["3.1"].output
    assert [p.line for p in pairs] == list(range(1, len(pairs) + 1))
    # Under a limit, the clauses with a figure come first and the documents take turns.
    two = {p.output.rsplit(" ", 1)[-1].rstrip(").") for p in document_pairs(chunks, limit=2)}
    assert two == {"1.1", "3.1"}
    five = {p.output.rsplit(" ", 1)[-1].rstrip(").") for p in document_pairs(chunks, limit=5)}
    assert five == {"1.1", "1.2", "2.1", "3.1", "3.2"}  # 1.3, without a figure, is left out


def test_a_document_goes_by_its_titles_shortest_acronym() -> None:
    text = "## 6. Term\n\n6.1 This Agreement continues for two (2) years.\n"
    chunk = _chunk("docs/nda.md", "Mutual Non-Disclosure Agreement > 6. Term", text)
    [pair] = document_pairs([chunk], limit=5)
    assert pair.input == "How many years does our NDA give for term?"
    assert pair.output == "This Agreement continues for two (2) years (NDA 6.1)."


def test_the_relevant_passage_is_the_one_holding_the_answers_figures() -> None:
    def passage(text: str) -> Passage:
        return Passage(text, "d.md", "s", text[:5], "h")

    hits = [passage("Leave is booked in the HR tool."), passage("Hotels up to $180 a night."),
            passage("Twenty-five (25) days of leave.")]  # fmt: skip
    assert relevant_hit(Example("q", "You get 25 days (LP 1.1)."), hits) == 2
    assert relevant_hit(Example("q", "$180 per night."), hits) == 1
    # Without a figure, the passage sharing most of the answer's words.
    assert relevant_hit(Example("q", "Hotels, for each night, are capped."), hits) == 1
    assert relevant_hit(Example("q", "Ask your manager."), hits) == 0  # nothing close: the top hit
    assert relevant_hit(Example("q", "Anything."), []) == 0


def test_team_pairs_are_the_train_split_only(folder: Path) -> None:
    project = load_project(folder)
    pairs = reader_pairs(project, project.config.capabilities[0])
    team = {e.input for e in pairs.examples.examples[: pairs.team]}
    held = {q for q, _ in QUESTIONS if is_held_out(q)}
    assert team == {q for q, _ in QUESTIONS} - held  # the line without an answer is not used
    assert pairs.held_out == len(held) > 0 and pairs.team > 0
    assert pairs.files == ["eval/policies.jsonl"]
    assert pairs.generated == 0 and not pairs.synced  # no documents to read before a sync


@pytest.mark.slow
def test_build_trains_the_reader_and_serves_it_a_knowledge_change_never_retrains(
    folder: Path, pytestconfig: pytest.Config
) -> None:
    (folder / ".ragtune").mkdir()
    (folder / ".ragtune" / "models").symlink_to(pytestconfig.cache.mkdir("ragtune-models"))
    project = load_project(folder)
    plan = make_plan(project)
    assert [(a.capability, a.action) for a in plan.adapters] == [("policies", "train")]
    assert "no reader yet" in plan.adapters[0].reasons[0]
    assert "up to 20 made from the documents once they are synced" in plan.adapters[0].reasons[0]

    built = build(project)
    assert [t.capability for t in built.adapters] == ["policies"]
    manifest = built.adapters[0].result.manifest
    trained = set(manifest.dataset.inputs)
    for question, _ in QUESTIONS:  # the team's train side, never a held-out line
        assert (input_key(question) in trained) is not is_held_out(question)
    team = sum(not is_held_out(q) for q, _ in QUESTIONS)
    assert manifest.dataset.examples == len(trained) > team  # plus the clauses' pairs
    assert manifest.context is not None and manifest.context.snapshot == 1
    assert manifest.context.capabilities == ["policies"] and manifest.context.with_oracle > 0
    assert manifest.config["context_chars"] == 200 and manifest.training.steps == 2
    assert manifest.config["context_order"] == "reranked"  # trained as it is served

    # A knowledge change: re-indexed, the reader is not stale, and the plan says why.
    (folder / "docs" / "leave.md").write_text(LEAVE.replace("twenty-five (25)", "thirty (30)"))
    again = build(project)
    assert again.adapters == [] and again.knowledge is not None and again.knowledge.snapshot == 2
    (reader,) = make_plan(project).adapters
    assert reader.action == "none" and "a knowledge change never retrains it" in reader.warnings[0]

    # The team's questions changed: a retrain.
    with (folder / "eval" / "policies.jsonl").open("a") as handle:
        line = {"capability": "policies", "input": "Hotel in Paris?", "expected": ["$180"]}
        handle.write(json.dumps({**line, "answer": "Up to $180 (3.1)."}) + "\n")
    if not is_held_out("Hotel in Paris?"):
        (changed,) = make_plan(project).adapters
        assert changed.action == "retrain" and "the reader's questions" in changed.reasons[0]

    # Served with retrieval, through the reader.
    from ragtune.runtime.pipeline import route
    from ragtune.runtime.runtime import Request, Runtime

    runtime = Runtime(project)
    try:
        chosen = route(runtime, Request("How many days of annual leave?", capability="policies"))
        assert (chosen.strategy, chosen.adapter, chosen.knowledge) == (
            "retrieval", "policies", ("policies",),
        )  # fmt: skip
        assert runtime.passage_chars(chosen) == 200
        # Served its passages in the order it was trained with: by their closest clause.
        from ragtune.knowledge.offers import rerank
        from ragtune.runtime.pipeline import retrieve

        asked = Request("How many days of annual leave?", capability="policies")
        assert runtime.context_order(chosen) == "reranked"
        searched = runtime.search(asked.question, ("policies",), 4)
        served = retrieve(runtime, chosen, asked)
        assert served == rerank(asked.question, searched, runtime.embedder)
    finally:
        runtime.close()

"""Context-aware training data (RAFT): retrieved passages added to examples, from a real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.adapters import TrainConfig, TrainingRecord
from ragtune.behavior.capability import BuildError, training_context
from ragtune.behavior.examples import Example, ExampleSet, load_examples
from ragtune.behavior.raft import ContextSettings, add_context
from ragtune.context import Passage, clip, format_context
from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.project import Project, load_project

PROJECT = """
version: 1
project: raft
knowledge:
  embedder: hashing
capabilities:
  - name: templates
    description: Answer questions about the clauses of our NDA template.
    kind: knowledge
    sources: [docs/]
  - name: flags
    description: Flag each clause in our JSON format.
    kind: behavior
    examples: flags.jsonl
    context_from: [templates]
"""

NDA = """# Non-Disclosure Agreement

## 1. Term

This Agreement lasts two (2) years from the Effective Date unless terminated earlier.

## 2. Governing Law

This Agreement is governed by the laws of England and Wales.

## 3. Notices

Notices must be in writing and delivered by hand, courier or email to the addresses below.

## 4. Liability

Neither party's liability under this Agreement exceeds one hundred thousand pounds.

## 5. Return of Materials

On request, the Recipient returns or destroys all Confidential Information within ten days.
"""

CLAUSES = [
    "This Agreement is governed by the laws of New York.",
    "Either party's liability is capped at the fees paid.",
    "Notices may be sent by email to the legal contact.",
    "The term of this Agreement is three years.",
    "Confidential Information must be returned within thirty days of a request.",
    "This Agreement is governed by the laws of Delaware.",
    "The Recipient shall destroy all copies of Confidential Information on request.",
    "Liability for breach of confidentiality is unlimited.",
    "Notices must be delivered by courier.",
    "The Agreement lasts five years.",
]


ROWS = [{"input": c, "output": json.dumps({"category": "Clause", "risk": "low"})} for c in CLAUSES]

# For the tests that train: the audit decides lora for `flags`, and a run is two tiny steps.
TRAINED_FLAGS = (
    "    changes_within_6_months: false\n    shown_by_examples: false\n"
    "    calls_per_month: 50000\n"
    "    train: {max_steps: 2, batch_size: 2, max_length: 160, eval_max_new_tokens: 0,"
    " context_chars: 120}\n"
)


def write_raft_project(write_project: Callable[..., Path], extra: str = "") -> Path:
    """The project above (plus ``extra`` lines for `flags`), its NDA and its examples."""
    folder = write_project(PROJECT + extra)
    (folder / "docs").mkdir()
    (folder / "docs" / "nda.md").write_text(NDA)
    (folder / "flags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return folder


@pytest.fixture
def project(write_project: Callable[..., Path]) -> Project:
    folder = write_raft_project(write_project)
    return load_project(folder)


def _synced(project: Project) -> KnowledgeBase:
    kb = KnowledgeBase(project, embedder=HashingEmbedder(256))
    kb.sync()
    return kb


def _retrieve(kb: KnowledgeBase) -> Callable[[str, int], list[Passage]]:
    def retrieve(query: str, k: int) -> list[Passage]:
        return [hit.passage() for hit in kb.search(query, k=k, capability="templates")]

    return retrieve


def test_each_example_gets_numbered_passages_and_the_record_names_them(project: Project) -> None:
    kb = _synced(project)
    examples = load_examples(project.resolve("flags.jsonl"), project.root)
    settings = ContextSettings(passages=3, oracle_share=1.0, pool=5)
    out, record = add_context(
        examples, _retrieve(kb), settings, capabilities=["templates"], snapshot=1
    )
    assert out.sha256 == examples.sha256 and out.path == examples.path  # still the same file
    assert [e.input for e in out.examples] == [e.input for e in examples.examples]
    for original, example in zip(examples.examples, out.examples, strict=True):
        context = example.context or ""
        assert context.startswith("[1] docs/nda.md > ")
        assert "[3] docs/nda.md > " in context and "[4]" not in context
        # oracle_share 1.0: the top hit for the clause is always among the passages.
        top = kb.search(original.input, k=1, capability="templates")[0]
        assert top.text.strip()[:40] in context
    assert record.with_oracle == len(CLAUSES)
    live = kb.store.live_hashes([q["chunk_id"] for q in record.quoted])
    assert record.quoted and all(live[q["chunk_id"]] == q["text_hash"] for q in record.quoted)
    assert record.to_record().to_dict()["from"] == ["templates"]


def test_same_seed_same_contexts_and_the_oracle_share_is_honoured(project: Project) -> None:
    kb = _synced(project)
    examples = load_examples(project.resolve("flags.jsonl"), project.root)
    settings = ContextSettings(passages=2, oracle_share=0.5, pool=5)

    def run(seed: int) -> tuple[ExampleSet, int]:
        out, record = add_context(
            examples, _retrieve(kb), settings, capabilities=["templates"], snapshot=1, seed=seed
        )
        return out, record.with_oracle

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert [e.context for e in first[0].examples] != [e.context for e in other[0].examples]
    assert 0 < first[1] < len(CLAUSES)
    none, record = add_context(
        examples,
        _retrieve(kb),
        ContextSettings(passages=2, oracle_share=0.0, pool=5),
        capabilities=["templates"],
        snapshot=1,
    )
    assert record.with_oracle == 0
    for original, example in zip(examples.examples, none.examples, strict=True):
        top = kb.search(original.input, k=1, capability="templates")[0]
        assert top.text.strip()[:40] not in (example.context or "")


def test_retrieved_order_keeps_the_search_ranking_with_the_relevant_passage_in_its_place(
    project: Project,
) -> None:
    kb = _synced(project)
    examples = load_examples(project.resolve("flags.jsonl"), project.root)
    retrieve = _retrieve(kb)

    def headers(context: str | None) -> list[str]:
        return [line for line in (context or "").splitlines() if line.startswith("[")]

    def labels(passages: list[Passage]) -> list[str]:
        return [f"[{n}] {p.label()}" for n, p in enumerate(passages, start=1)]

    def run(passages: int, oracle: float, at: Callable[[int], int]) -> list[Example]:
        """Contexts in the search's order, the relevant passage being the hit ``at(hits)``."""
        out, record = add_context(
            examples,
            retrieve,
            ContextSettings(passages=passages, oracle_share=oracle, pool=5, order="retrieved"),
            capabilities=["templates"],
            snapshot=1,
            pick=lambda example, hits: at(len(hits)),
        )
        assert record.with_oracle == (len(CLAUSES) if oracle else 0)
        return out.examples

    # The relevant passage is the search's second hit: kept, the prompt is the search's top 3.
    for original, example in zip(examples.examples, run(3, 1.0, lambda n: 1), strict=True):
        assert headers(example.context) == labels(retrieve(original.input, 3))  # as served
    # Left out, the next hit moves up.
    for original, example in zip(examples.examples, run(3, 0.0, lambda n: 1), strict=True):
        hits = retrieve(original.input, 4)
        assert headers(example.context) == labels([hits[0], *hits[2:4]])
    # Ranked below the places, it takes the last one.
    for original, example in zip(examples.examples, run(2, 1.0, lambda n: n - 1), strict=True):
        hits = retrieve(original.input, 5)
        assert len(hits) > 2
        assert headers(example.context) == labels([hits[0], hits[-1]])
    with pytest.raises(ValueError, match="context order must be one of shuffled, retrieved"):
        ContextSettings(order="random")


def test_an_example_with_its_own_context_keeps_it_as_the_relevant_passage(
    project: Project,
) -> None:
    kb = _synced(project)
    own = ExampleSet(
        "own.jsonl",
        [Example("Is this risky?", "{}", context="Clause 9: no cap on liability.", line=1)],
        "x",
    )
    out, record = add_context(
        own,
        _retrieve(kb),
        ContextSettings(passages=2, oracle_share=1.0, pool=4),
        capabilities=["templates"],
        snapshot=1,
    )
    context = out.examples[0].context or ""
    assert "Clause 9: no cap on liability." in context
    assert context.count("\n[") == 1  # two passages: its own and one distractor
    assert all(q["document"] == "docs/nda.md" for q in record.quoted)


def test_training_context_needs_a_synced_store_and_can_be_turned_off(project: Project) -> None:
    capability = project.config.capabilities[1]
    examples = load_examples(project.resolve("flags.jsonl"), project.root)
    with pytest.raises(BuildError, match=r"knowledge sync.*--no-context"):
        training_context(project, capability, examples, TrainConfig())
    same, record = training_context(project, capability, examples, TrainConfig(context_passages=0))
    assert same is examples and record is None
    _synced(project).close()
    with_context, record = training_context(project, capability, examples, TrainConfig())
    assert record is not None and record.snapshot == 1
    assert all(e.context and e.context.startswith("[1] ") for e in with_context.examples)


def test_format_context_and_clip() -> None:
    passage = Passage(
        text="word " * 50, document="a.md", section="A > 1. Term", chunk_id="c", text_hash="h",
        version=2,
    )  # fmt: skip
    text = format_context([passage], chars=30)
    assert text.startswith("[1] a.md > 1. Term (version 2)\n")
    assert text.endswith(" ...") and len(text.splitlines()[1]) <= 34
    assert clip("short", 30) == "short"


def test_training_estimate_counts_the_tokens_a_step_trains(project: Project) -> None:
    """The first-run estimate grows with the examples' length and the retrieved passages, stops
    at max_length, and a measured rate (or an old manifest's seconds per step) replaces it."""
    from dataclasses import replace

    from ragtune.behavior.staleness import CPU_TOKENS_PER_SECOND, estimate_seconds

    flags = project.config.capabilities[1]
    examples = load_examples(project.resolve("flags.jsonl"), project.root)
    plain = TrainConfig(context_passages=0, batch_size=2, system_prompt="Flag it.")
    short = estimate_seconds(flags, plain, examples, steps=10)
    assert 0 < short < 10 * 2 * 384 / CPU_TOKENS_PER_SECOND
    with_context = estimate_seconds(flags, replace(plain, context_passages=2), examples, steps=10)
    assert with_context > short * 1.5
    long_rows = ExampleSet(
        "long.jsonl", [Example("word " * 2000, "{}", None, 1)] * 4, examples.sha256
    )
    capped = estimate_seconds(flags, plain, long_rows, steps=10)
    assert capped == pytest.approx(10 * 2 * plain.max_length / CPU_TOKENS_PER_SECOND)
    twice = TrainingRecord(tokens_per_second=2 * CPU_TOKENS_PER_SECOND)
    measured = estimate_seconds(flags, plain, long_rows, 10, twice)
    assert measured == pytest.approx(capped / 2)
    old = TrainingRecord(seconds_per_step=1.5)  # a manifest from before the rate was recorded
    assert estimate_seconds(flags, plain, examples, 10, old) == 15.0


@pytest.mark.slow
def test_plan_says_which_adapters_retrain_and_why(write_project: Callable[..., Path]) -> None:
    """No adapter -> train; trained -> nothing to do; examples, settings or base model changed ->
    retrain with the reason; quoted knowledge changed -> a warning, not a retrain."""
    from ragtune.behavior.capability import train_capability
    from ragtune.behavior.staleness import train_config_for
    from ragtune.build import make_plan

    folder = write_raft_project(write_project, TRAINED_FLAGS)
    project = load_project(folder)
    _synced(project).close()

    first = make_plan(project)
    assert [(a.capability, a.action) for a in first.adapters] == [("flags", "train")]
    assert first.adapters[0].steps == 2 and first.training_needed

    capability = project.config.capabilities[1]
    done = train_capability(project, "flags", train_config_for(project, capability))
    assert done.context is not None and done.result.manifest.context.quoted
    settled = make_plan(project)
    assert [(a.action, a.warnings) for a in settled.adapters] == [("none", [])]
    assert "no training needed" in settled.summary()

    # Legal revises every clause of the NDA: the adapter saw the old text in training. A
    # warning that names the document, and no retrain.
    revised = "\n".join(
        line + " (As revised.)" if line and not line.startswith("#") else line
        for line in NDA.splitlines()
    )
    (folder / "docs" / "nda.md").write_text(revised)
    _synced(project).close()
    drifted = make_plan(project).adapters[0]
    assert drifted.action == "none"
    assert len(drifted.warnings) == 1 and "superseded text baked in" in drifted.warnings[0]
    assert "docs/nda.md" in drifted.warnings[0]

    # Behaviour changes: examples, then the training settings.
    (folder / "flags.jsonl").write_text(
        (folder / "flags.jsonl").read_text() + json.dumps(ROWS[0]) + "\n"
    )
    retrain = make_plan(project).adapters[0]
    assert retrain.action == "retrain" and "examples changed" in retrain.reasons[0]
    rate = done.result.manifest.training.tokens_per_second
    assert rate > 0 and retrain.estimate_s > 0
    config = project.path.read_text().replace("max_steps: 2", "max_steps: 3")
    project.path.write_text(config)
    again = make_plan(load_project(folder)).adapters[0]
    assert any("training settings changed: max_steps 2 -> 3" in r for r in again.reasons)


@pytest.mark.slow
def test_build_syncs_then_trains_what_the_plan_lists(write_project: Callable[..., Path]) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    folder = write_raft_project(write_project, TRAINED_FLAGS)
    runner = CliRunner()
    first = runner.invoke(app, ["build", str(folder), "--json"])
    assert first.exit_code == 0, first.output
    built = json.loads(first.stdout)
    assert built["knowledge"]["snapshot"] == 1
    assert [a["capability"] for a in built["adapters"]] == ["flags"]
    manifest = json.loads((Path(built["adapters"][0]["path"]) / "ragtune.json").read_text())
    assert manifest["context"]["snapshot"] == 1 and manifest["config"]["max_steps"] == 2
    again = json.loads(runner.invoke(app, ["build", str(folder), "--json"]).stdout)
    assert again["adapters"] == [] and again["knowledge"]["chunks_embedded"] == 0

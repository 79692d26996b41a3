"""Few-shot + LoRA (``train.shots``): each training example is shown with the training examples
most like it, chosen as the runtime chooses them, and the adapter is served with as many."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.adapters import TrainConfig
from ragtune.behavior.encode import IGNORE_INDEX, encode_example
from ragtune.behavior.examples import Example, ExampleSet, split
from ragtune.behavior.fewshot import with_training_shots
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.project import ProjectError, load_project

# Pairs on one subject each, so that each clause's nearest neighbour is its partner.
CLAUSES = [
    ("This Agreement is governed by the laws of the State of New York.", "Governing Law"),
    ("Either party's total liability is capped at the fees paid in the last year.", "Cap"),
    ("Notices must be sent in writing by courier to the addresses below.", "Notice"),
    ("This Agreement is governed by the laws of the State of Delaware.", "Governing Law"),
    ("Each party's total liability is capped at the fees paid in the prior year.", "Cap"),
    ("Notices must be delivered in writing by hand to the addresses below.", "Notice"),
    ("The Supplier may terminate this Agreement for convenience on notice.", "Termination"),
    ("The Customer may terminate this Agreement for convenience on notice.", "Termination"),
    ("Confidential Information must be returned within ten days of a request.", "Return"),
    ("Confidential Information must be destroyed within ten days of a request.", "Return"),
    ("This Agreement is governed by the laws of the State of New York.", "Governing Law"),
]


def example_set(rows: list[tuple[str, str]] = CLAUSES) -> ExampleSet:
    examples = [
        Example(text, json.dumps({"category": label}), line=n)
        for n, (text, label) in enumerate(rows, start=1)
    ]
    return ExampleSet("flags.jsonl", examples, "0" * 64)


def category(example: Example) -> str:
    return str(json.loads(example.output)["category"])


def test_each_example_is_shown_its_nearest_training_examples_and_never_itself() -> None:
    examples = example_set()
    given = with_training_shots(examples, examples.examples, 2, HashingEmbedder(256))
    assert [e.line for e in given.examples] == [e.line for e in examples.examples]
    for example in given.examples:
        assert len(example.shots) == 2
        # Never itself, nor a duplicate of its input (line 11 repeats line 1).
        assert all(shot.input != example.input for shot in example.shots)
        # The most similar first: each clause's partner on the same subject.
        assert category(example.shots[0]) == category(example), example.input
    delaware = given.examples[3]
    assert delaware.shots[0].line in (1, 11)  # New York's governing law, not a liability cap
    # The context, output and line of the example are kept; only its shots are added.
    assert [(e.input, e.output, e.context) for e in given.examples] == [
        (e.input, e.output, e.context) for e in examples.examples
    ]


def test_shots_come_from_the_training_side_only() -> None:
    examples = example_set()
    train, held = split(examples, held_out=0.3, seed=0)
    given = with_training_shots(examples, train, 3, HashingEmbedder(256))
    held_lines = {e.line for e in held}
    shown = {shot.line for e in given.examples for shot in e.shots}
    assert shown and not shown & held_lines  # a held-out answer is never in a training prompt
    assert with_training_shots(examples, train, 0, HashingEmbedder(256)) is examples
    with pytest.raises(ValueError, match="k must be 0 or more"):
        with_training_shots(examples, train, -1, HashingEmbedder(256))


def test_the_shots_come_before_the_request_and_only_the_answer_is_learned(base_model) -> None:  # type: ignore[no-untyped-def]
    tokenizer = base_model.tokenizer
    config = TrainConfig(max_length=512)
    examples = with_training_shots(example_set(), example_set().examples, 2, HashingEmbedder(256))
    example = examples.examples[3]
    plain = encode_example(tokenizer, Example(example.input, example.output), config)
    shown = encode_example(tokenizer, example, config)
    text = tokenizer.decode(shown.input_ids)
    positions = [text.index(s.input) for s in example.shots] + [text.rindex(example.input)]
    assert positions == sorted(positions)  # shots in order, then the request
    for shot in example.shots:
        assert shot.output in text  # each shot's answer as an assistant turn
    learned = [t for t in shown.labels if t != IGNORE_INDEX]
    assert learned == [t for t in plain.labels if t != IGNORE_INDEX]  # the answer, nothing else
    assert len(shown.input_ids) > len(plain.input_ids)


def test_a_negative_shots_setting_is_refused_with_its_field(tmp_path: Path) -> None:
    (tmp_path / "ragtune.yaml").write_text(
        textwrap.dedent(
            """
            version: 1
            project: bad
            capabilities:
              - name: flags
                description: Flag each clause in our JSON format.
                kind: behavior
                examples: flags.jsonl
                train: {shots: -1}
            """
        )
    )
    with pytest.raises(ProjectError, match=r"train\.shots.*-1"):
        load_project(tmp_path)


TRAINED = """
version: 1
project: shots
knowledge:
  embedder: hashing
capabilities:
  - name: flags
    description: Flag each clause in our JSON format.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: false
    calls_per_month: 50000
    examples: flags.jsonl
    train: {max_steps: 2, batch_size: 2, max_length: 256, eval_max_new_tokens: 0, shots: 2}
"""


@pytest.mark.slow
def test_an_adapter_trained_with_shots_is_served_with_as_many(
    write_project: Callable[..., Path],
) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app
    from ragtune.runtime.pipeline import run
    from ragtune.runtime.runtime import Request, Runtime

    folder = write_project(TRAINED)
    rows = [{"input": text, "output": {"category": label}} for text, label in CLAUSES[:10]]
    (folder / "flags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    built = CliRunner().invoke(app, ["build", str(folder), "--json"])
    assert built.exit_code == 0, built.output
    adapter = Path(json.loads(built.stdout)["adapters"][0]["path"])
    assert json.loads((adapter / "ragtune.json").read_text())["config"]["shots"] == 2

    project = load_project(folder)
    runtime = Runtime(project)
    try:
        clause = "This Agreement is governed by the laws of England and Wales."
        result = run(runtime, Request(clause, "flags", max_tokens=8))
        assert result.route.strategy == "lora" and result.route.adapter == "flags"
        assert [category(s) for s in result.shots] == ["Governing Law", "Governing Law"]
        users = [m["content"] for m in result.messages if m["role"] == "user"]
        assert users[:2] == [s.input for s in result.shots] and users[-1].endswith(clause)
    finally:
        runtime.close(backend=True)

    # Trained without shots, the same adapter is served without them.
    manifest = json.loads((adapter / "ragtune.json").read_text())
    manifest["config"]["shots"] = 0
    (adapter / "ragtune.json").write_text(json.dumps(manifest))
    runtime = Runtime(load_project(folder))
    try:
        assert run(runtime, Request(clause, "flags", max_tokens=8)).shots == []
    finally:
        runtime.close(backend=True)

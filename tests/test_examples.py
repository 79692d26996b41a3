"""Behaviour examples: loading JSONL with errors that name the line, the split, the hash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ragtune.behavior.examples import (
    MAX_REPORTED_PROBLEMS,
    MIN_EXAMPLES_FOR_SPLIT,
    Example,
    ExamplesError,
    ExampleSet,
    dataset_hash,
    load_examples,
    split,
)
from ragtune.errors import RagtuneError
from ragtune.examples import example_path

CONTRACT_REVIEW = example_path("contract-review")


def write(tmp_path: Path, *lines: str, name: str = "examples.jsonl") -> Path:
    """Write the lines as a JSONL file under ``behavior/`` and return its path."""
    path = tmp_path / "behavior" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load_error(tmp_path: Path, *lines: str) -> ExamplesError:
    path = write(tmp_path, *lines)
    with pytest.raises(ExamplesError) as info:
        load_examples(path, root=tmp_path)
    return info.value


def many(count: int) -> list[Example]:
    return [Example(input=f"clause {i}", output=f"flag {i}", line=i + 1) for i in range(count)]


# --- the shipped example files ------------------------------------------------------------


def test_risk_flags_example_loads() -> None:
    loaded = load_examples(CONTRACT_REVIEW / "behavior/risk_flags.jsonl", root=CONTRACT_REVIEW)
    assert loaded.path == "behavior/risk_flags.jsonl"
    assert len(loaded.examples) >= 150
    assert [ex.line for ex in loaded.examples[:3]] == [1, 2, 3]
    raw = (CONTRACT_REVIEW / "behavior/risk_flags.jsonl").read_bytes()
    assert loaded.sha256 == hashlib.sha256(raw).hexdigest()
    first = json.loads(raw.decode().splitlines()[0])
    assert loaded.examples[0].input == first["input"]
    assert loaded.examples[0].output == first["output"]
    assert loaded.examples[0].context is None


def test_clause_summaries_example_loads_and_splits() -> None:
    loaded = load_examples(CONTRACT_REVIEW / "behavior/clause_summaries.jsonl")
    assert len(loaded) >= MIN_EXAMPLES_FOR_SPLIT
    train, held = split(loaded)
    assert len(held) == 1 and len(train) == len(loaded) - 1


# --- good input -------------------------------------------------------------------------------


def test_blank_lines_context_and_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"input": "a", "output": "A"}',
        "",
        "   ",
        '{"input": "b", "output": "B", "context": "clause 7"}',
        '{"input": "c", "output": "C", "context": null}',
    )
    loaded = load_examples(path)
    assert loaded.examples == [
        Example("a", "A", None, 1),
        Example("b", "B", "clause 7", 4),
        Example("c", "C", None, 5),
    ]


def test_object_output_is_serialised_compactly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"input": "a", "output": {"risk": "high", "note": "café"}}',
        '{"input": "b", "output": ["x", 1]}',
    )
    loaded = load_examples(path)
    assert loaded.examples[0].output == '{"risk":"high","note":"café"}'
    assert loaded.examples[1].output == '["x",1]'


def test_crlf_and_bom_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"input": "a", "output": "A"}\r\n{"input": "b", "output": "B"}\r\n'
    )
    assert [ex.input for ex in load_examples(path).examples] == ["a", "b"]


# --- bad input: each names the file, the line and the bad value ------------------------------


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    error = load_error(tmp_path, '{"input": "a", "output": "A"}', '{"input": "b" "output": "B"}')
    assert isinstance(error, RagtuneError) and error.exit_code == 2
    assert error.path == "behavior/examples.jsonl"
    assert error.line == 2
    message = str(error)
    assert message.startswith("behavior/examples.jsonl, line 2: invalid JSON at column 15")
    assert "Expecting ',' delimiter" in message
    assert '"output"' in message


def test_not_an_object(tmp_path: Path) -> None:
    error = load_error(tmp_path, '["a", "A"]')
    assert str(error).startswith("behavior/examples.jsonl, line 1: expected a JSON object")
    assert 'found an array ["a", "A"]' in str(error)


@pytest.mark.parametrize("missing", ["input", "output"])
def test_missing_key(tmp_path: Path, missing: str) -> None:
    other = "output" if missing == "input" else "input"
    error = load_error(tmp_path, json.dumps({other: "x"}))
    assert error.line == 1
    assert f"missing `{missing}`" in str(error)
    assert str(error).startswith("behavior/examples.jsonl, line 1: ")


def test_non_string_values(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        '{"input": 42, "output": "A"}',
        '{"input": "b", "output": true}',
        '{"input": "c", "output": "C", "context": ["chunk"]}',
        '{"input": "   ", "output": "D"}',
    )
    reasons = {p.line: p.reason for p in error.problems}
    assert reasons[1] == "`input` must be a string, found a number 42"
    assert (
        "`output` must be a string, a JSON object or an array, found a boolean true" in reasons[2]
    )
    assert '`context` must be a string or null, found an array ["chunk"]' in reasons[3]
    assert reasons[4] == "`input` is empty"


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    error = load_error(tmp_path, '{"input": "a", "ouptut": "A"}')
    # One problem, not two: the misspelt key is the missing one.
    assert len(error.problems) == 1
    assert str(error) == (
        "behavior/examples.jsonl, line 1: unknown key `ouptut` "
        "(did you mean `output`? accepted keys: input, output, context)"
    )


def test_unknown_key_without_a_close_one(tmp_path: Path) -> None:
    error = load_error(tmp_path, '{"input": "a", "output": "A", "label": 3}')
    assert "unknown key `label` (accepted keys" in str(error)
    assert "did you mean" not in str(error)


def test_empty_file(tmp_path: Path) -> None:
    error = load_error(tmp_path, "", "  ")
    assert error.line is None
    assert str(error).startswith("behavior/examples.jsonl: no examples: the file is empty")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExamplesError, match=r"^behavior/none\.jsonl: examples file not found"):
        load_examples(tmp_path / "behavior/none.jsonl", root=tmp_path)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"input": "a", "output": "A"}\n{"input": "\xff", "output": "B"}\n')
    with pytest.raises(ExamplesError, match=r"line 2: not UTF-8 text \(byte 0xff"):
        load_examples(path)


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        '{"input": "a", "output": "A"}',
        "{not json",
        '{"input": "c"}',
        '{"input": "d", "output": "D"}',
        '{"inptu": "e", "output": 5}',
    )
    assert error.line is None
    assert [(p.line, p.reason.split(" ")[0]) for p in error.problems] == [
        (2, "invalid"),
        (3, "missing"),
        (5, "unknown"),
        (5, "`output`"),
    ]
    message = str(error)
    assert message.startswith("behavior/examples.jsonl: 4 problems on 3 lines")
    for needle in ("line 2: invalid JSON", "line 3: missing `output`", "did you mean `input`?"):
        assert needle in message


def test_problems_are_capped(tmp_path: Path) -> None:
    error = load_error(tmp_path, *(["[1]"] * (MAX_REPORTED_PROBLEMS + 5)))
    assert len(error.problems) == MAX_REPORTED_PROBLEMS + 5
    message = str(error)
    assert message.count("expected a JSON object") == MAX_REPORTED_PROBLEMS
    assert message.endswith("... and 5 more")


# --- split ------------------------------------------------------------------------------------


def test_split_is_deterministic_for_a_seed() -> None:
    examples = many(50)
    train, held = split(examples, held_out=0.2, seed=7)
    assert (train, held) == split(examples, held_out=0.2, seed=7)
    assert len(held) == 10 and len(train) == 40
    assert sorted(train + held, key=lambda ex: ex.line) == examples
    # Both parts keep the file order.
    assert [ex.line for ex in held] == sorted(ex.line for ex in held)


def test_split_differs_for_another_seed() -> None:
    examples = many(50)
    assert split(examples, held_out=0.2, seed=0)[1] != split(examples, held_out=0.2, seed=1)[1]


def test_split_holds_out_at_least_one_and_leaves_one() -> None:
    examples = many(MIN_EXAMPLES_FOR_SPLIT)
    assert len(split(examples, held_out=0.01)[1]) == 1
    assert len(split(examples, held_out=0.99)[0]) == 1


def test_split_minimum_is_enforced_with_counts(tmp_path: Path) -> None:
    path = write(tmp_path, *(json.dumps({"input": f"{i}", "output": "x"}) for i in range(6)))
    loaded = load_examples(path, root=tmp_path)
    with pytest.raises(ExamplesError) as info:
        split(loaded)
    message = str(info.value)
    assert message.startswith("behavior/examples.jsonl: too few examples for a held-out split")
    assert f"6 examples, at least {MIN_EXAMPLES_FOR_SPLIT} needed" in message
    with pytest.raises(ExamplesError, match="3 examples, at least 4 needed"):
        split(many(3), minimum=4)
    assert split(many(4), minimum=4)


def test_split_rejects_a_bad_share() -> None:
    with pytest.raises(ValueError, match="held_out"):
        split(many(20), held_out=1.0)


# --- hash -------------------------------------------------------------------------------------


def test_dataset_hash_is_content_and_order_sensitive(tmp_path: Path) -> None:
    a = write(tmp_path, '{"input": "a", "output": "A"}', '{"input": "b", "output": "B"}', name="a")
    # Blank lines, key order and spacing do not matter; content and order do.
    b = write(tmp_path, '{"output":"A","input":"a"}', "", '{"input":"b","output":"B"}', name="b")
    set_a, set_b = load_examples(a), load_examples(b)
    assert set_a.sha256 != set_b.sha256
    assert dataset_hash(set_a) == dataset_hash(set_b) == dataset_hash(set_b.examples)
    assert len(dataset_hash(set_a)) == 64
    assert dataset_hash(list(reversed(set_a.examples))) != dataset_hash(set_a)
    changed = [set_a.examples[0], Example("b", "B", context="c")]
    assert dataset_hash(changed) != dataset_hash(set_a)
    assert isinstance(set_a, ExampleSet)

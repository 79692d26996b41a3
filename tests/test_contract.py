"""Output contracts: JSON Schema and regex files, validation of one output, compliance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.behavior.contract import (
    ContractError,
    JsonSchemaContract,
    RegexContract,
    compliance,
    load_contract,
)
from ragtune.behavior.examples import load_examples
from ragtune.errors import RagtuneError
from ragtune.examples import example_path

CONTRACT_REVIEW = example_path("contract-review")
RISK_SCHEMA = CONTRACT_REVIEW / "schemas/risk_flag.schema.json"
SUMMARY_REGEX = CONTRACT_REVIEW / "schemas/clause_summary.regex"

GOOD_FLAG = {"category": "Parties", "risk": "low", "rationale": "Neutral: names both parties."}


@pytest.fixture(scope="module")
def risk() -> JsonSchemaContract:
    contract = load_contract(RISK_SCHEMA, root=CONTRACT_REVIEW)
    assert isinstance(contract, JsonSchemaContract)
    return contract


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "schemas" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def contract_error(tmp_path: Path, name: str, text: str) -> ContractError:
    with pytest.raises(ContractError) as info:
        load_contract(write(tmp_path, name, text), root=tmp_path)
    assert isinstance(info.value, RagtuneError) and info.value.exit_code == 2
    return info.value


# --- the shipped example files ----------------------------------------------------------------


def test_risk_flag_examples_fully_comply(risk: JsonSchemaContract) -> None:
    assert risk.kind == "json-schema"
    assert risk.source == "schemas/risk_flag.schema.json"
    examples = load_examples(CONTRACT_REVIEW / "behavior/risk_flags.jsonl")
    report = compliance(risk, [ex.output for ex in examples.examples])
    assert report.total == len(examples.examples) >= 150
    assert (report.ok, report.rate, report.failures) == (report.total, 1.0, [])


def test_clause_summary_examples_fully_comply() -> None:
    contract = load_contract(SUMMARY_REGEX, root=CONTRACT_REVIEW)
    assert isinstance(contract, RegexContract)
    assert contract.kind == "regex"
    examples = load_examples(CONTRACT_REVIEW / "behavior/clause_summaries.jsonl")
    report = compliance(contract, [ex.output for ex in examples.examples])
    assert report.rate == 1.0 and report.ok == report.total == len(examples.examples)


def test_describe_names_the_keys_and_levels(risk: JsonSchemaContract) -> None:
    text = risk.describe()
    assert text.startswith("a JSON object with keys category (one of ")
    assert '"Cap on Liability"' in text
    assert "risk (low|medium|high)" in text
    assert "rationale (string of 10-200 characters)" in text
    assert text.endswith("; no other keys")


# --- validating one output --------------------------------------------------------------------


def test_valid_json_with_whitespace(risk: JsonSchemaContract) -> None:
    result = risk.validate("\n  " + json.dumps(GOOD_FLAG) + "  \n")
    assert result.ok and result.errors == [] and result.parsed == GOOD_FLAG


@pytest.mark.parametrize("fence", ["```json", "```JSON", "```"])
def test_fenced_json_is_accepted(risk: JsonSchemaContract, fence: str) -> None:
    result = risk.validate(f"  {fence}\n{json.dumps(GOOD_FLAG, indent=2)}\n```\n")
    assert result.ok, result.errors
    assert result.parsed == GOOD_FLAG


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here is the flag: " + json.dumps(GOOD_FLAG),
        "```json\n" + json.dumps(GOOD_FLAG) + "\n```\nHope this helps.",
        "```json\n" + json.dumps(GOOD_FLAG) + "\n```\n```json\n{}\n```",
        "risk: low",
        "",
        "NaN",
    ],
)
def test_non_json_output_is_rejected(risk: JsonSchemaContract, text: str) -> None:
    result = risk.validate(text)
    assert not result.ok and result.parsed is None
    assert len(result.errors) == 1 and result.errors[0].startswith("$: not valid JSON")


def test_schema_errors_carry_the_json_path(risk: JsonSchemaContract) -> None:
    result = risk.validate(json.dumps({**GOOD_FLAG, "risk": "severe", "extra": 1}))
    assert not result.ok
    assert result.parsed == {**GOOD_FLAG, "risk": "severe", "extra": 1}
    assert "$.risk: 'severe' is not one of ['low', 'medium', 'high']" in result.errors
    assert any(e.startswith("$: Additional properties") and "'extra'" in e for e in result.errors)
    missing = risk.validate(json.dumps({"category": "Parties", "risk": "low"}))
    assert missing.errors == ["$: 'rationale' is a required property"]


def test_nested_paths_and_long_messages_are_short(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"flags": {"type": "array", "items": {"type": "integer"}}},
    }
    contract = load_contract(write(tmp_path, "s.json", json.dumps(schema)))
    result = contract.validate(json.dumps({"flags": [1, "x" * 500]}))
    assert len(result.errors) == 1
    assert result.errors[0].startswith("$.flags[1]: 'xxx")
    assert len(result.errors[0]) <= 200


def test_regex_fullmatch_on_stripped_text() -> None:
    contract = load_contract(SUMMARY_REGEX)
    good = "Summary: The customer may end the contract on notice.\nWatch: no refund of fees"
    result = contract.validate(f"\n{good}  \n")
    assert result.ok and result.parsed == good
    # A full match: trailing chatter after an otherwise good answer fails.
    bad = contract.validate(good + "\nLet me know if you need more.")
    assert not bad.ok and bad.parsed is None
    assert bad.errors[0].startswith("does not match the regular expression")


def test_a_match_that_ends_in_an_allowed_space_is_valid_as_written() -> None:
    """A guided answer is the pattern's match exactly: the summary contract's last character may
    be a space, and stripping it would leave a full stop the pattern forbids there."""
    contract = load_contract(SUMMARY_REGEX)
    written = "Summary: The customer may end the contract on notice.\nWatch: fees are kept. "
    assert not contract.pattern.fullmatch(written.strip())  # type: ignore[attr-defined]
    result = contract.validate(written)
    assert result.ok and result.parsed == written


def test_regex_uses_dotall(tmp_path: Path) -> None:
    contract = load_contract(write(tmp_path, "any.txt", "\n\n  A.*Z  \nignored line\n"))
    assert contract.validate("A\nmiddle\nZ").ok
    assert not contract.validate("A Z!").ok
    assert "A.*Z" in contract.describe()


# --- compliance -------------------------------------------------------------------------------


def test_compliance_reports_failures_by_index(risk: JsonSchemaContract) -> None:
    outputs = [json.dumps(GOOD_FLAG), "not json", json.dumps({**GOOD_FLAG, "risk": "x"})]
    report = compliance(risk, outputs)
    assert (report.total, report.ok) == (3, 1)
    assert report.rate == pytest.approx(1 / 3)
    assert [index for index, _ in report.failures] == [1, 2]
    assert report.failures[1][1] == ["$.risk: 'x' is not one of ['low', 'medium', 'high']"]
    assert compliance(risk, []).rate == 0.0


# --- bad contract files -----------------------------------------------------------------------


def test_invalid_schema_names_the_bad_part(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"risk": {"type": "strng"}}}
    error = contract_error(tmp_path, "bad.schema.json", json.dumps(schema))
    message = str(error)
    assert message.startswith("schemas/bad.schema.json: not a valid JSON Schema: at ")
    assert "$.properties.risk.type" in message
    assert "'strng'" in message


def test_schema_file_that_is_not_json(tmp_path: Path) -> None:
    error = contract_error(tmp_path, "bad.json", '{\n  "type": "object",\n  oops\n}')
    assert error.line == 3
    assert str(error).startswith("schemas/bad.json, line 3: not valid JSON at column 3")


def test_schema_that_is_not_an_object(tmp_path: Path) -> None:
    error = contract_error(tmp_path, "list.json", "[1, 2]")
    assert "must be a JSON object (or true/false), found '[1, 2]'" in str(error)


def test_unknown_meta_schema(tmp_path: Path) -> None:
    error = contract_error(tmp_path, "s.json", json.dumps({"$schema": "https://example.com/x"}))
    assert "unknown $schema 'https://example.com/x'" in str(error)


def test_meta_schema_that_is_not_a_string(tmp_path: Path) -> None:
    error = contract_error(tmp_path, "s.json", json.dumps({"$schema": 5}))
    assert str(error) == "schemas/s.json: $schema must be a URI string, found '5'"


def test_dangling_ref_is_a_contract_error(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    contract = load_contract(write(tmp_path, "ref.json", json.dumps(schema)), root=tmp_path)
    with pytest.raises(ContractError, match=r"^schemas/ref\.json: the schema cannot be applied"):
        contract.validate('{"a": 1}')


def test_format_keywords_are_checked(tmp_path: Path) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "properties": {"due": {"type": "string", "format": "date"}},
    }
    contract = load_contract(write(tmp_path, "date.json", json.dumps(schema)))
    assert contract.validate('{"due": "2024-02-29"}').ok
    assert contract.validate('{"due": "2024-13-45"}').errors == [
        "$.due: '2024-13-45' is not a 'date'"
    ]


def test_bad_regex_names_line_and_position(tmp_path: Path) -> None:
    error = contract_error(tmp_path, "bad.regex", "\n  Summary: ([A-Z]+\n")
    assert error.line == 2
    message = str(error)
    assert message.startswith(
        "schemas/bad.regex, line 2: invalid regular expression at position 9 (column 12): "
        "missing ), unterminated subpattern"
    )
    # The caret points at the opening parenthesis.
    pattern_line, caret_line = message.splitlines()[1:3]
    assert pattern_line[caret_line.index("^")] == "("


def test_empty_regex_file(tmp_path: Path) -> None:
    error = contract_error(tmp_path, "empty.regex", "\n   \n")
    assert str(error).startswith("schemas/empty.regex: no regular expression")


def test_missing_contract_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"^schemas/nope\.json: output contract not found"):
        load_contract(tmp_path / "schemas/nope.json", root=tmp_path)


def test_jsonschema_is_imported_only_for_a_schema_contract() -> None:
    code = (
        "import sys; import ragtune.behavior.contract as c; "
        "assert 'jsonschema' not in sys.modules; "
        f"c.load_contract(__import__('pathlib').Path({str(SUMMARY_REGEX)!r})); "
        "assert 'jsonschema' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

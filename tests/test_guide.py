"""Guided decoding on the transformers backend (llguidance): the whole JSON Schema is the
grammar, sampled answers always validate, regex contracts are guided too, and what llguidance
cannot compile is refused by name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ragtune.behavior.contract import default_instructions, load_contract
from ragtune.behavior.examples import load_examples
from ragtune.generate.backend import GenerationParams, GuideError
from ragtune.prompt import chat_messages

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "contract-review"
RISK_FLAG = EXAMPLE / "schemas" / "risk_flag.schema.json"
SCHEMA = json.loads(RISK_FLAG.read_text(encoding="utf-8"))
CATEGORY = re.compile(r'"category"\s*:\s*"([^"]*)"')
NESTED = {
    "type": "object",
    "properties": {
        "clause": {
            "type": "object",
            "properties": {
                "number": {"type": "integer", "minimum": 1, "maximum": 99},
                "title": {"type": "string", "minLength": 3, "maxLength": 40},
            },
            "required": ["number", "title"],
            "additionalProperties": False,
        },
        "parties": {
            "type": "array",
            "items": {"type": "string", "enum": ["Supplier", "Customer", "Both"]},
            "minItems": 1,
            "maxItems": 2,
        },
        "notice_days": {"type": "number", "minimum": 0, "maximum": 365},
        "terminable": {"type": "boolean"},
        "risk": {"enum": ["low", "medium", "high"]},
    },
    "required": ["clause", "parties", "notice_days", "terminable", "risk"],
    "additionalProperties": False,
}
ASK = [
    {
        "role": "user",
        "content": "Clause 12 (Termination): the Supplier may terminate this Agreement for "
        "convenience on thirty (30) days' written notice. Describe the clause as JSON.",
    }
]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def backend(base_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ragtune.generate.local import LocalBackend

    return LocalBackend(base_model, tmp_path_factory.mktemp("adapters"))


def accepts(grammar: Any, tokenizer: Any, text: str) -> bool:
    """Whether the grammar takes ``text`` (as the model's tokens) as a whole answer."""
    matcher = grammar.start()
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return bool(matcher.consume_tokens(tokens) and matcher.is_accepting())


def valid(text: str, schema: dict[str, Any]) -> bool:
    try:
        jsonschema.validate(json.loads(text), schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def test_the_whole_schema_is_the_grammar(base_model: Any) -> None:
    """Nesting, required properties, enums, arrays, numbers and their bounds, extra properties:
    the grammar takes what the schema accepts and refuses what it does not."""
    from ragtune.generate.guide import schema_grammar

    tokenizer = base_model.tokenizer
    grammar = schema_grammar(tokenizer, NESTED, [tokenizer.eos_token_id])
    good = {
        "clause": {"number": 12, "title": "Termination"},
        "parties": ["Supplier"],
        "notice_days": 30.5,
        "terminable": True,
        "risk": "high",
    }
    bad = [
        {**good, "clause": {"number": 12}},  # a nested required property missing
        {**good, "clause": {"number": 100, "title": "Termination"}},  # above the maximum
        {**good, "parties": []},  # fewer items than minItems
        {**good, "parties": ["Vendor"]},  # not in the items' enum
        {**good, "notice_days": "30"},  # a string for a number
        {**good, "risk": "severe"},  # not in the enum
        {**good, "extra": 1},  # additionalProperties: false
        {k: v for k, v in good.items() if k != "risk"},  # a required property missing
    ]
    for answer in [good, {**good, "parties": ["Both", "Customer"], "notice_days": 0}]:
        assert valid(json.dumps(answer), NESTED)
        assert accepts(grammar, tokenizer, json.dumps(answer)), answer
        assert accepts(grammar, tokenizer, json.dumps(answer, indent=2)), answer
    for answer in bad:
        assert not valid(json.dumps(answer), NESTED)
        assert not accepts(grammar, tokenizer, json.dumps(answer)), answer
    # Whitespace is bounded (a space, or a line break and an indent), so blank lines cannot
    # eat the budget.
    assert not accepts(grammar, tokenizer, json.dumps(good).replace(": ", ":\n\n\n"))
    # Every risk flag the team wrote is an answer the example's schema takes.
    flags = schema_grammar(tokenizer, SCHEMA, [tokenizer.eos_token_id])
    outputs = [e.output for e in load_examples(EXAMPLE / "behavior/risk_flags.jsonl").examples]
    assert len(outputs) > 100
    assert all(accepts(flags, tokenizer, out) for out in outputs)


def test_sampled_answers_to_a_nested_schema_always_validate(backend: Any) -> None:
    """At temperature 1 the answers differ and every one is JSON valid against the nested
    schema; the model unguided does not write it."""
    import torch

    torch.manual_seed(17)
    params = GenerationParams(max_tokens=200, temperature=1.0, schema=NESTED)
    answers = [backend.generate(ASK, params) for _ in range(4)]
    for answer in answers:
        assert valid(answer.text, NESTED), answer.text
        assert answer.finish_reason == "stop"
    assert len({a.text for a in answers}) > 1
    free = backend.generate(ASK, GenerationParams(max_tokens=120))
    assert not valid(free.text, NESTED), free.text


def test_sampled_risk_flags_always_validate(backend: Any) -> None:
    """The example's risk-flag schema, with the few-shot prompt the runtime builds, sampled at
    temperature 1: every flag validates."""
    import torch

    torch.manual_seed(3)
    contract = load_contract(RISK_FLAG)
    system = default_instructions("Flag the contract clause.", contract)
    flags = load_examples(EXAMPLE / "behavior" / "risk_flags.jsonl").examples
    clauses = [json.loads(line)["input"] for line in (EXAMPLE / "eval" / "clauses.jsonl").open()]
    params = GenerationParams(max_tokens=160, temperature=1.0, schema=SCHEMA)
    for clause in clauses[:4]:
        answer = backend.generate(chat_messages(system, [flags[0], flags[40]], clause), params)
        assert valid(answer.text, SCHEMA), answer.text
        assert contract.validate(answer.text).ok


def test_a_narrow_enum_holds_where_the_model_would_leave_it(backend: Any) -> None:
    """Shown two JSON flags, the model copies a category from the shots. With a schema that
    allows only two other categories, unguided it leaves the enum; guided it never does."""
    contract = load_contract(RISK_FLAG)
    narrow = json.loads(json.dumps(SCHEMA))
    narrow["properties"]["category"]["enum"] = ["Cap on Liability", "Governing Law"]
    flags = load_examples(EXAMPLE / "behavior" / "risk_flags.jsonl").examples
    clauses = [json.loads(line)["input"] for line in (EXAMPLE / "eval" / "clauses.jsonl").open()]
    system = default_instructions("Flag the contract clause.", contract)
    written_free: list[str] = []
    written_guided: list[str] = []
    for clause in clauses[:3]:
        messages = chat_messages(system, [flags[0], flags[40]], clause)
        free = backend.generate(messages, GenerationParams(max_tokens=20))
        guided = backend.generate(messages, GenerationParams(max_tokens=160, schema=narrow))
        written_free += CATEGORY.findall(free.text)
        written_guided += CATEGORY.findall(guided.text)
        assert valid(guided.text, narrow), guided.text
    assert written_free and written_guided, "the model wrote JSON flags"
    assert not set(written_free) <= {"Cap on Liability", "Governing Law"}, written_free
    assert set(written_guided) <= {"Cap on Liability", "Governing Law"}, written_guided


def test_a_guided_stream_is_the_guided_answer(backend: Any) -> None:
    params = GenerationParams(max_tokens=200, schema=NESTED)
    whole = backend.generate(ASK, params)
    with backend.stream(ASK, params) as stream:
        pieces = list(stream)
    assert "".join(pieces) == whole.text and valid(whole.text, NESTED)
    assert stream.result is not None and stream.result.text == whole.text


@pytest.mark.parametrize(
    "pattern",
    [
        r"(low|medium|high) risk: [a-z][a-z ,]{10,60}\.",
        r"Clause (\d{1,2}\.\d{1,2}) \((NDA|MSA|DPA)\)",
        (EXAMPLE / "schemas" / "clause_summary.regex").read_text().strip(),
    ],
)
def test_sampled_answers_match_the_regex_contract(backend: Any, pattern: str) -> None:
    """A regex contract guides the transformers backend too: sampled at temperature 1, every
    answer matches it whole; unguided the model does not write the format."""
    import torch

    torch.manual_seed(5)
    check = re.compile(pattern, re.DOTALL)
    params = GenerationParams(max_tokens=300, temperature=1.0, regex=pattern)
    for _ in range(3):
        answer = backend.generate(ASK, params)
        assert check.fullmatch(answer.text), (pattern, answer.text)
        assert answer.finish_reason == "stop"
    free = backend.generate(ASK, GenerationParams(max_tokens=40))
    assert not check.fullmatch(free.text.strip()), free.text


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (
            GenerationParams(schema={"type": "string", "format": "postal-code"}),
            "llguidance cannot compile the JSON Schema: Unknown format: postal-code",
        ),
        (
            GenerationParams(schema={"type": "string", "pattern": "(a)\\1"}),
            "backreferences are not supported",
        ),
        (
            GenerationParams(schema={"type": "object", "dependentSchemas": {"a": {}}}),
            "dependentSchemas",
        ),
        (GenerationParams(schema={"type": "objects"}), "the JSON Schema is not valid"),
        (GenerationParams(regex=r"(a)\1"), "the regex cannot become a grammar: .*backreference"),
    ],
)
def test_what_llguidance_cannot_compile_is_refused_by_name(
    backend: Any, params: GenerationParams, named: str
) -> None:
    with pytest.raises(GuideError, match=named):
        backend.generate(ASK, params)
    with pytest.raises(GuideError, match=named):
        backend.stream(ASK, params)  # refused at once, before any generation

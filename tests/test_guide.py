"""Enum-guided decoding: while an answer is inside a string-enum value, only tokens that
continue an allowed value are let through."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ragtune.behavior.contract import load_contract
from ragtune.behavior.examples import load_examples
from ragtune.generate.backend import GenerationParams
from ragtune.generate.guide import EnumGuide, enum_fields
from ragtune.prompt import chat_messages

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "contract-review"
SCHEMA = json.loads((EXAMPLE / "schemas" / "risk_flag.schema.json").read_text(encoding="utf-8"))
CATEGORY = re.compile(r'"category"\s*:\s*"([^"]*)"')


def test_enum_fields_reads_the_top_level_string_enums() -> None:
    fields = enum_fields(SCHEMA)
    assert set(fields) == {"category", "risk"}
    assert len(fields["category"]) == 41 and fields["risk"] == ("low", "medium", "high")
    assert enum_fields({"type": "object", "properties": {"n": {"enum": [1, 2]}}}) == {}
    assert enum_fields(True) == {}


@pytest.mark.slow
def test_allowed_tokens_continue_or_close_a_value(base_model) -> None:  # type: ignore[no-untyped-def]
    guide = EnumGuide(base_model.tokenizer, enum_fields(SCHEMA), prompt_length=0)
    decode = base_model.tokenizer.decode
    allowed = guide.allowed("category", "Cap on L")
    assert allowed, "the value can go on"
    for token_id in allowed:
        piece = decode([token_id])
        rest = 'iability"'
        assert rest.startswith(piece) or piece.startswith(rest), piece
    starts = {decode([t]) for t in guide.allowed("category", "")}
    assert "Fav" not in starts and "Favours" not in starts  # no rationale in the category
    assert any("Cap".startswith(p) or p.startswith("Cap") for p in starts)
    assert guide.allowed("category", "Limitation of") == []  # off the enum: left free
    assert {decode([t]) for t in guide.allowed("risk", "hi")} <= {"g", "gh", 'gh"', 'gh",'}


@pytest.mark.slow
def test_guided_answers_only_use_values_of_the_enum(base_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The base model shown two JSON flags writes JSON and copies a category from the shots.
    With a schema that allows only two other categories, unguided it leaves the enum; guided
    every category it writes is one of the two."""
    from ragtune.behavior.contract import default_instructions
    from ragtune.generate.local import LocalBackend

    contract = load_contract(EXAMPLE / "schemas" / "risk_flag.schema.json")
    narrow = json.loads(json.dumps(SCHEMA))
    narrow["properties"]["category"]["enum"] = ["Cap on Liability", "Governing Law"]
    flags = load_examples(EXAMPLE / "behavior" / "risk_flags.jsonl").examples
    clauses = [json.loads(line)["input"] for line in (EXAMPLE / "eval" / "clauses.jsonl").open()]
    backend = LocalBackend(base_model, tmp_path)
    system = default_instructions("Flag the contract clause.", contract)
    written_free: list[str] = []
    written_guided: list[str] = []
    for clause in clauses[:4]:
        messages = chat_messages(system, [flags[0], flags[40]], clause)
        free = backend.generate(messages, GenerationParams(max_tokens=40))
        guided = backend.generate(messages, GenerationParams(max_tokens=40, schema=narrow))
        written_free += CATEGORY.findall(free.text)
        written_guided += CATEGORY.findall(guided.text)
    assert written_free and written_guided, "the model wrote JSON flags"
    assert not set(written_free) <= {"Cap on Liability", "Governing Law"}, written_free
    assert set(written_guided) <= {"Cap on Liability", "Governing Law"}, written_guided

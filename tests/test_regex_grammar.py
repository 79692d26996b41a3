"""Regex contracts as llama.cpp grammars: the translation read from Python's own parse of the
pattern, clear refusals for what a grammar cannot say, and sampled answers that always match."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragtune.behavior.contract import RegexContract, load_contract
from ragtune.generate.backend import BackendError, GenerationParams
from ragtune.generate.base import model_sha256, resolve_base_model
from ragtune.generate.regex_grammar import RegexGrammarError, regex_to_gbnf
from ragtune.runtime.pipeline import guidable_regex

REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / "examples/contract-review/schemas/clause_summary.regex"


@pytest.mark.parametrize(
    ("pattern", "grammar"),
    [
        (r"^yes$", 'root ::= "yes"'),
        (r"\Ayes\Z", 'root ::= "yes"'),
        (r"(low|medium|high)", 'root ::= (("low" | "medium" | "high"))'),
        (r"\d{4}-\d\d", 'root ::= ([0-9]){4} "-" [0-9] [0-9]'),
        (r"[^\s,]+,?", r"root ::= ([^\x20\x09\x0A\x0D\x0B\x0C\x2C])+ (\",\")?"),
        (r"a*?b{2,}c{1,3}", 'root ::= ("a")* ("b"){2,} ("c"){1,3}'),
        (r'say "\\"', r'root ::= "say \x22\x5C\x22"'),
        (r"a.b", r'root ::= "a" [\x00-\U0010FFFF] "b"'),  # contracts match with re.DOTALL
        (r"\w[\w.-]*", r"root ::= [0-9A-Za-z\x5F] ([0-9A-Za-z\x5F\x2E\x2D])*"),
        (r"(?:x|)y", 'root ::= ("x" | "") "y"'),
        (r"€\u00e9", r'root ::= "\u20AC\xE9"'),
    ],
)
def test_patterns_become_the_grammar_that_says_the_same(pattern: str, grammar: str) -> None:
    assert regex_to_gbnf(pattern).strip() == grammar.replace('\\"', '"')


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        (r"(?=a)a", "lookahead"),
        (r"(?<!x)a", "negative lookahead or lookbehind"),
        (r"(a)\1", "backreference"),
        (r"\bword\b", "word boundary"),
        (r"a$b", "anchor"),
        (r"(?i)yes", "case-insensitive"),
        (r"a(?i:b)", "case-insensitive"),
        (r"[\Sx]", "negated shorthand"),
        (r"(a", "not a regular expression"),
        (r"(?(1)a|b)", "not a regular expression"),
        (r"(?>ab)c", "atomic group"),
        (r"a*+b", "possessive repetition"),
    ],
)
def test_what_a_grammar_cannot_say_is_refused_by_name(pattern: str, named: str) -> None:
    with pytest.raises(RegexGrammarError, match=re.escape(named)):
        regex_to_gbnf(pattern)
    assert not guidable_regex(pattern)


def test_params_take_a_regex_or_a_schema_not_both() -> None:
    assert GenerationParams(regex="a+").regex == "a+"
    with pytest.raises(BackendError, match="not both"):
        GenerationParams(regex="a+", schema={"type": "string"})
    with pytest.raises(BackendError, match="regex must be"):
        GenerationParams(regex=3)  # type: ignore[arg-type]


# -- on llama.cpp ------------------------------------------------------------------------------

PATTERNS = [
    SUMMARY.read_text().strip(),
    r"(low|medium|high) risk: [a-z][a-z ,]{10,60}\.",
    r"\d{4}-\d{2}-\d{2}",
    r"Clause (\d{1,2}\.\d{1,2}) \((NDA|MSA|DPA)\)",
    r"\{\"risk\": \"(low|high)\"\}",
]
ASK = [
    {
        "role": "user",
        "content": "Summarise: Either party may terminate this Agreement for convenience on "
        "thirty (30) days' written notice.",
    }
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("llama_cpp", reason="the llama.cpp backend needs llama-cpp-python")
    from ragtune.generate.llamacpp import LlamaCppBackend

    spec = resolve_base_model()
    assert spec.gguf_path is not None
    made = LlamaCppBackend(
        spec.gguf_path,
        tmp_path_factory.mktemp("adapters"),
        model_sha256=model_sha256(spec),
        threads=1,
        context_tokens=1024,
    )
    yield made
    made.close()


@pytest.mark.slow
@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_sampled_answer_matches_the_regex_contract(backend: Any, pattern: str) -> None:
    """Sampled at temperature 1 (so the answers differ), every answer matches; the base model
    unguided does not write these formats."""
    check = re.compile(pattern, re.DOTALL)
    contract = RegexContract("test", check)
    answers = [
        backend.generate(ASK, GenerationParams(max_tokens=400, temperature=1.0, regex=pattern))
        for _ in range(4)
    ]
    for answer in answers:
        assert contract.validate(answer.text).ok, (pattern, answer.text)
        assert answer.finish_reason == "stop"
    assert len({a.text for a in answers}) > 1 or pattern.startswith(r"\{")
    free = backend.generate(ASK, GenerationParams(max_tokens=60))
    assert not check.fullmatch(free.text.strip()), free.text


@pytest.mark.slow
def test_the_example_contract_is_guided_and_a_bad_regex_is_a_clear_error(backend: Any) -> None:
    contract = load_contract(SUMMARY)
    answer = backend.generate(
        ASK,
        GenerationParams(max_tokens=400, regex=contract.pattern.pattern),  # type: ignore[attr-defined]
    )
    assert contract.validate(answer.text).ok, answer.text
    with pytest.raises(BackendError, match="backreference"):
        backend.generate(ASK, GenerationParams(regex=r"(a)\1"))

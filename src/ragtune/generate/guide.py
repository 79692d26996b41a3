"""Guided decoding for the transformers backend: a JSON Schema or regex contract enforced token
by token by `llguidance <https://github.com/guidance-ai/llguidance>`_.

llama.cpp guides its own decoding with a grammar; transformers has none, so this module brings
one. llguidance compiles the whole contract (nested objects, required properties, enums,
arrays, numbers and their bounds, string lengths and patterns) against the model's vocabulary,
and at every step says which tokens may come next; :class:`GrammarGuide`, a ``generate()``
logits processor, keeps the model to those. A guided answer is therefore the contract's JSON
(or matches its regex) unless ``max_tokens`` runs out first; once the contract is complete the
only token left is the end of the turn.

- A JSON Schema is first checked as a schema (``jsonschema``), then compiled by llguidance
  (:func:`schema_grammar`); a schema it cannot compile - a keyword it does not implement, a
  ``pattern`` with a backreference - is refused with a :class:`BackendError` naming what failed,
  as the llama.cpp backend refuses one its grammar cannot express.
- Whitespace between JSON tokens is limited the way llama.cpp's schema grammars limit it (a
  space, or a line break and an indent of at most 20): unlimited whitespace lets a small model
  sampling at temperature 1 spend its whole budget on blank lines.
- A regex contract is read by Python's own parser
  (:func:`ragtune.generate.regex_grammar.regex_to_gbnf`, the same reading the llama.cpp backend
  uses, so ``.`` matches newlines and the shorthand classes are ASCII) and the grammar is
  handed to llguidance (:func:`regex_grammar`); a construct a grammar cannot say is refused
  the same way.

The vocabulary is read once per tokenizer (about 1 s) and kept on it; compiling a contract
takes about a millisecond, and a step of guided decoding under a millisecond more than an
unguided one (``bench/bench_generate.py`` measures it). llguidance is imported here only, when
a contract is first guided, so ``import ragtune`` stays light.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ragtune.generate.backend import BackendError, GuideError

__all__ = ["Grammar", "GrammarGuide", "guided_kwargs", "regex_grammar", "schema_grammar"]

# Between JSON tokens: nothing, one space, or a line break and an indent (what llama.cpp's
# json-schema-to-grammar allows).
_JSON_SPACE = r"(?: |\n[ \t]{0,20})?"
_JSON_OPTIONS = {"whitespace_flexible": False, "whitespace_pattern": _JSON_SPACE}
# regex_to_gbnf writes characters past Latin-1 as \u escapes of 4 hex digits or \U escapes of
# 8; llguidance's GBNF reader turns those into escapes its regex engine does not parse
# (\U10FFFF), so they are written back as the characters themselves, which both read as they are.
_WIDE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")


@dataclass(frozen=True)
class Grammar:
    """A contract compiled for one tokenizer.

    Attributes:
        source: What it was compiled from, for messages (``JSON Schema``, ``regex /.../``).
        matcher: An llguidance ``LLMatcher`` in its start state; each answer guides a copy.
        vocab_size: Tokens in llguidance's view of the vocabulary; a token id past it (padding
            rows of the model's output layer) is never allowed.
        eos_ids: The tokens that end a turn: allowed once the contract is complete.
    """

    source: str
    matcher: Any
    vocab_size: int
    eos_ids: frozenset[int]

    def start(self) -> Any:
        """A fresh matcher for one answer."""
        return self.matcher.deep_copy()


def schema_grammar(tokenizer: Any, schema: dict[str, Any], eos_ids: Iterable[int]) -> Grammar:
    """The grammar of answers that are JSON valid against ``schema``.

    Args:
        tokenizer: The model's (fast) Hugging Face tokenizer.
        schema: The JSON Schema.
        eos_ids: The model's end-of-turn token ids.

    Raises:
        BackendError: The schema is not a valid JSON Schema, llguidance cannot compile it
            (names what failed), or llguidance is not installed.
    """
    from jsonschema import SchemaError  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise GuideError(f"the JSON Schema is not valid: {exc.message}") from exc
    llguidance = _llguidance()
    try:
        text = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(schema), overrides=_JSON_OPTIONS
        )
    except ValueError as exc:
        raise GuideError(f"llguidance cannot read the JSON Schema: {exc}") from exc
    return _compile(
        tokenizer,
        eos_ids,
        text,
        "JSON Schema",
        "change the schema (docs/json_schema.md of github.com/guidance-ai/llguidance lists "
        "what llguidance supports) or answer unguided (Runtime(guided=False))",
    )


def regex_grammar(tokenizer: Any, pattern: str, eos_ids: Iterable[int]) -> Grammar:
    """The grammar of answers that ``pattern`` matches whole (``.`` matching newlines too).

    Raises:
        BackendError: The pattern uses what a grammar cannot express (lookarounds,
            backreferences... named), llguidance cannot compile it, or it is not installed.
    """
    from ragtune.generate.regex_grammar import RegexGrammarError, regex_to_gbnf

    try:
        gbnf = regex_to_gbnf(pattern)
    except RegexGrammarError as exc:
        raise GuideError(f"the regex cannot become a grammar: {exc}") from exc
    gbnf = _WIDE_ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), gbnf)
    llguidance = _llguidance()
    from llguidance.gbnf_to_lark import any_to_lark

    try:
        text = llguidance.LLMatcher.grammar_from_lark(any_to_lark(gbnf))
    except Exception as exc:  # the converter raises its own error classes (and asserts)
        raise GuideError(f"llguidance cannot read the regex /{pattern}/: {exc}") from exc
    return _compile(tokenizer, eos_ids, text, f"regex /{pattern}/", "simplify the regex")


class GrammarGuide:
    """A ``transformers`` logits processor that lets through only the tokens the grammar allows.

    Each row of the batch gets its own matcher. At every step the tokens generated since the
    last call are fed to it and the logits of every token it does not allow become ``-inf``; a
    row that has ended its turn (generate() pads it from then on) is left alone.

    Args:
        grammar: The compiled contract (:func:`schema_grammar`, :func:`regex_grammar`).
        prompt_length: Tokens of the (left-padded) prompt: what follows them is the answer.

    Raises:
        BackendError: (while generating) A token the grammar did not allow was generated,
            which would be a bug: the mask forbids them.
    """

    def __init__(self, grammar: Grammar, prompt_length: int) -> None:
        self.grammar = grammar
        self.prompt_length = prompt_length
        self.steps = 0
        """Steps guided so far."""
        self.seconds = 0.0
        """Time spent computing and applying masks, for measurements."""
        self._matchers: list[Any] = []
        self._consumed: list[int] = []
        self._ended: list[bool] = []
        self._bitmask: Any = None
        self._shifts: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        started = time.perf_counter()
        rows = int(input_ids.shape[0])
        if not self._matchers:
            words = (self.grammar.vocab_size + 31) // 32
            self._matchers = [self.grammar.start() for _ in range(rows)]
            self._consumed = [0] * rows
            self._ended = [False] * rows
            self._bitmask = torch.zeros((rows, words), dtype=torch.int32)
            self._shifts = torch.arange(32, dtype=torch.int32)
        answers = input_ids[:, self.prompt_length :].tolist()
        for row, answer in enumerate(answers):
            self._advance(row, answer)
        for row, matcher in enumerate(self._matchers):
            if not self._ended[row]:
                view = self._bitmask[row]
                matcher.unsafe_compute_mask_ptr(view.data_ptr(), view.numel() * 4)
        bits = (self._bitmask.unsqueeze(-1) >> self._shifts) & 1
        allowed = bits.reshape(rows, -1).bool()
        width = int(scores.shape[-1])
        if allowed.shape[1] >= width:
            allowed = allowed[:, :width].clone()
        else:  # the model's output has rows past the vocabulary: never allowed
            allowed = torch.nn.functional.pad(allowed, (0, width - allowed.shape[1]))
        allowed[:, self.grammar.vocab_size :] = False
        for row, ended in enumerate(self._ended):
            if ended:
                allowed[row] = True
        guided = scores.masked_fill(~allowed.to(scores.device), float("-inf"))
        self.steps += 1
        self.seconds += time.perf_counter() - started
        return guided

    def _advance(self, row: int, answer: list[int]) -> None:
        """Feed the row's matcher the tokens it has not seen yet."""
        if self._ended[row]:
            return
        matcher = self._matchers[row]
        for token in answer[self._consumed[row] :]:
            self._consumed[row] += 1
            if token in self.grammar.eos_ids:
                self._ended[row] = True
                return
            if not matcher.consume_token(token):
                raise BackendError(
                    f"guided decoding by the {self.grammar.source} lost its place at token "
                    f"{token} (answer token {self._consumed[row]}): {matcher.get_error()}"
                )


def guided_kwargs(grammar: Grammar, prompt_length: int) -> tuple[dict[str, Any], GrammarGuide]:
    """``generate()`` keyword arguments that guide the answer by ``grammar``, and the guide."""
    from transformers import LogitsProcessorList

    guide = GrammarGuide(grammar, prompt_length)
    return {"logits_processor": LogitsProcessorList([guide])}, guide


def _compile(tokenizer: Any, eos_ids: Iterable[int], text: str, source: str, fix: str) -> Grammar:
    """An llguidance grammar text compiled against the tokenizer; errors name the source."""
    llguidance = _llguidance()
    eos = frozenset(int(t) for t in eos_ids)
    vocabulary = _vocabulary(tokenizer, eos)
    try:
        matcher = llguidance.LLMatcher(vocabulary, text, log_level=0)
        error = matcher.get_error() if matcher.is_error() else ""
    except (ValueError, RuntimeError) as exc:
        error = str(exc)
    error = " ".join(error.split())  # one line: llguidance draws carets under a regex
    if error:
        raise GuideError(f"llguidance cannot compile the {source}: {error}; {fix}.")
    return Grammar(source, matcher, int(vocabulary.vocab_size), eos)


def _vocabulary(tokenizer: Any, eos: frozenset[int]) -> Any:
    """llguidance's view of the tokenizer (about 1 s to build), kept on the tokenizer."""
    cache: dict[frozenset[int], Any] | None = getattr(tokenizer, "_ragtune_llguidance", None)
    if cache is None:
        cache = {}
        with contextlib.suppress(AttributeError):  # a tokenizer that refuses attributes
            tokenizer._ragtune_llguidance = cache
    if eos not in cache:
        import llguidance.hf

        try:
            cache[eos] = llguidance.hf.from_tokenizer(tokenizer, eos_token=sorted(eos) or None)
        except ValueError as exc:  # a slow (Python) tokenizer
            raise BackendError(f"llguidance cannot read the tokenizer: {exc}") from exc
    return cache[eos]


def _llguidance() -> Any:
    """The llguidance module, or a BackendError saying how to install it."""
    try:
        import llguidance
    except ModuleNotFoundError as exc:
        from ragtune.extras import missing_extra

        hint = missing_extra(exc) or "pip install llguidance"
        raise BackendError(f"guided decoding on transformers needs llguidance: {hint}") from exc
    return llguidance

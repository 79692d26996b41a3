"""A regex output contract as a llama.cpp grammar (GBNF), so a guided answer matches it.

A regex contract (:mod:`ragtune.behavior.contract`) must match the whole answer, with ``.``
matching any character (``re.DOTALL``). :func:`regex_to_gbnf` turns such a pattern into one GBNF
rule, ``root``, from the parse tree Python's own ``re`` makes of it - so the grammar reads the
pattern exactly as the validation does (classes, escapes, groups, alternation, every kind of
repetition, lazy or not: for a whole-answer match they allow the same strings).

What a grammar cannot say is refused with :class:`RegexGrammarError`, naming the construct:
lookarounds, backreferences, ``\\b``, anchors anywhere but at the ends, case-insensitive flags,
and a negated category inside a larger class (``[\\Da]``). The runtime then leaves the answer
unguided and validates it afterwards, as for a backend without grammars.

The shorthand classes are read as ASCII: ``\\d`` is ``[0-9]``, ``\\w`` ``[0-9A-Za-z_]``, ``\\s`` the
six ASCII spaces. A guided answer therefore always matches (Python's Unicode classes hold the
ASCII ones); only ``\\D``, ``\\W``, ``\\S`` and negated classes of them admit the few non-ASCII
characters Python counts as digits, word characters or spaces, which the validation then catches.
"""

from __future__ import annotations

import re
from typing import Any

from ragtune.errors import RagtuneError

__all__ = ["RegexGrammarError", "regex_to_gbnf"]

# re._parser and re._constants are the stdlib's own regex parser (sre_parse before 3.11): the
# only exact reading of a Python pattern, and what ``re.compile`` runs.
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as P  # type: ignore[attr-defined]

_SPACES = " \t\n\r\x0b\x0c"
_DIGITS = [("0", "9")]
_WORD = [("0", "9"), ("A", "Z"), ("a", "z"), ("_", "_")]
_CATEGORIES: dict[Any, tuple[bool, list[tuple[str, str]]]] = {
    C.CATEGORY_DIGIT: (False, _DIGITS),
    C.CATEGORY_NOT_DIGIT: (True, _DIGITS),
    C.CATEGORY_WORD: (False, _WORD),
    C.CATEGORY_NOT_WORD: (True, _WORD),
    C.CATEGORY_SPACE: (False, [(c, c) for c in _SPACES]),
    C.CATEGORY_NOT_SPACE: (True, [(c, c) for c in _SPACES]),
}
_UNSUPPORTED = {
    C.ASSERT: "a lookahead or lookbehind",
    C.ASSERT_NOT: "a negative lookahead or lookbehind",
    C.GROUPREF: "a backreference",
    C.GROUPREF_EXISTS: "a conditional group",
    C.ATOMIC_GROUP: "an atomic group",
    C.POSSESSIVE_REPEAT: "a possessive repetition",
}
_ANY = "[\\x00-\\U0010FFFF]"


class RegexGrammarError(RagtuneError):
    """A regular expression that a llama.cpp grammar cannot express; names the construct."""


def regex_to_gbnf(pattern: str) -> str:
    """The GBNF grammar (one ``root`` rule) whose strings are those ``pattern`` fully matches.

    Raises:
        RegexGrammarError: The pattern does not compile, or uses a construct a grammar cannot
            express (named in the message).
    """
    try:
        tree = P.parse(pattern, re.DOTALL)
    except re.error as exc:
        raise RegexGrammarError(f"/{pattern}/ is not a regular expression: {exc}") from exc
    if tree.state.flags & (re.IGNORECASE | re.LOCALE):
        raise RegexGrammarError(
            f"/{pattern}/: case-insensitive matching ((?i)) cannot be a grammar; spell the "
            "cases out ([Aa])"
        )
    items = list(tree)
    if items and items[0] in ((C.AT, C.AT_BEGINNING), (C.AT, C.AT_BEGINNING_STRING)):
        items = items[1:]
    if items and items[-1] in ((C.AT, C.AT_END), (C.AT, C.AT_END_STRING)):
        items = items[:-1]
    return f"root ::= {_sequence(items, pattern)}\n"


def _sequence(items: list[tuple[Any, Any]], pattern: str) -> str:
    parts: list[str] = []
    text = ""  # consecutive literal characters, written as one quoted string
    for op, av in items:
        if op is C.LITERAL:
            text += _literal(chr(av))
            continue
        if text:
            parts.append(f'"{text}"')
            text = ""
        parts.append(_item(op, av, pattern))
    if text or not parts:
        parts.append(f'"{text}"')
    return " ".join(parts)


def _item(op: Any, av: Any, pattern: str) -> str:
    if op is C.LITERAL:
        return f'"{_literal(chr(av))}"'
    if op is C.NOT_LITERAL:
        return f"[^{_class_char(chr(av))}]"
    if op is C.ANY:
        return _ANY
    if op is C.IN:
        return _char_class(av, pattern)
    if op is C.BRANCH:
        return "(" + " | ".join(_sequence(list(b), pattern) for b in av[1]) + ")"
    if op is C.SUBPATTERN:
        _group, add_flags, _del_flags, body = av
        if add_flags & (re.IGNORECASE | re.LOCALE):
            raise RegexGrammarError(
                f"/{pattern}/: case-insensitive groups ((?i:...)) cannot be a grammar"
            )
        return "(" + _sequence(list(body), pattern) + ")"
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        low, high, body = av
        inner = "(" + _sequence(list(body), pattern) + ")"
        if high is C.MAXREPEAT:
            return inner + ("*" if low == 0 else "+" if low == 1 else f"{{{low},}}")
        if (low, high) == (0, 1):
            return inner + "?"
        return inner + (f"{{{low}}}" if low == high else f"{{{low},{high}}}")
    if op is C.AT:
        raise RegexGrammarError(
            f"/{pattern}/: an anchor or word boundary ({av}) inside the pattern cannot be a "
            "grammar; the contract already matches the whole answer"
        )
    what = _UNSUPPORTED.get(op, f"the construct {op}")
    raise RegexGrammarError(f"/{pattern}/: {what} cannot be a grammar")


def _char_class(items: list[tuple[Any, Any]], pattern: str) -> str:
    negate = bool(items) and items[0][0] is C.NEGATE
    body = items[1:] if negate else items
    if len(body) == 1 and body[0][0] is C.CATEGORY:
        inverted, shorthand = _CATEGORIES[body[0][1]]
        return _ranges(shorthand, negate != inverted)
    ranges: list[tuple[str, str]] = []
    for op, av in body:
        if op is C.LITERAL:
            ranges.append((chr(av), chr(av)))
        elif op is C.RANGE:
            ranges.append((chr(av[0]), chr(av[1])))
        elif op is C.CATEGORY and not _CATEGORIES[av][0]:
            ranges.extend(_CATEGORIES[av][1])
        else:
            raise RegexGrammarError(
                f"/{pattern}/: a negated shorthand (\\D, \\W, \\S) inside a larger character "
                "class cannot be a grammar; list the characters instead"
            )
    return _ranges(ranges, negate)


def _ranges(ranges: list[tuple[str, str]], negate: bool) -> str:
    inner = "".join(
        _class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in ranges
    )
    return f"[{'^' if negate else ''}{inner}]"


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02X}"
    return f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"


def _class_char(char: str) -> str:
    return char if char.isascii() and char.isalnum() else _escape(char)


def _literal(char: str) -> str:
    """One character as it is written inside a quoted GBNF string."""
    plain = char.isascii() and char.isprintable() and char not in '"\\'
    return char if plain else _escape(char)

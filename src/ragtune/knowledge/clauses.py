"""Numbered clauses: whether a paragraph opens one ("7.", "7.1", "Section 7"), its title, and
what it says.

Contracts and policies are cut at their clauses, because a clause is what a question asks
about. :func:`clause_heading` reads a paragraph's opening number and the clause's title;
:func:`split_clause_lines` puts back the paragraph breaks that text and PDF extraction lose
before a clause.

The reader's training pairs (:mod:`ragtune.behavior.reader`) and the quoted answers
(:mod:`ragtune.runtime.quote`) need the same things from a chunk's text: each numbered clause
(:func:`clauses`) and which of its sentences answer a question on it (:func:`clause_answer`:
those stating a figure, date or duration, else its first), clipped to a readable length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ragtune.facts import find_facts

_NUMBER = re.compile(r"(\d{1,3}(?:\.\d{1,3})+\.?|\d{1,3}\.)(?=\s|\Z)")
_KEYWORD = re.compile(
    r"(Section|Article|Clause|SECTION|ARTICLE|CLAUSE)[ \t]+(\d{1,3}(?:\.\d{1,3})*|[IVXLC]{1,7})"
    r"(?=[\s.:)\-–—]|\Z)"
)
_SEPARATOR = re.compile(r"[ \t]*[.:)\-–—]+[ \t]*")
_BOLD_LEAD = re.compile(r"(\*\*|__)(.+?)\1")
_LEAD_IN = re.compile(r"([^.:;,\n]{1,60}?)[.:]\s+\S")
_DEFINITION = re.compile(
    r"([\"“][^\"”\n]{1,60}[\"”])\s+(?:or\s+[\"“][^\"”\n]{1,40}[\"”]\s+)?"
    r"(?:means|shall mean|has the meaning|includes)\b"
)
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to",
     "with", "without", "under", "upon", "via", "per"}
)  # fmt: skip
_TITLE_WORDS = 6
_NUMERAL = re.compile(r"\(\d[\d,.%]*\)[,;:.]?")


def clause_heading(text: str, *, allow_single: bool = True) -> tuple[int, str] | None:
    """Whether a paragraph opens with a clause number, and if so its depth and title.

    Args:
        text: The paragraph.
        allow_single: Accept a single-level number ("7. Title"); Markdown passes False, since
            there "7. Text" is an ordered-list item, not a clause.

    Returns:
        ``(depth, title)`` (depth 1 for "7." or "Section 7", 2 for "7.1", ...) or None.
        The title is the number with the clause's own heading ("5.3 Renewal" from "5.3
        Renewal. This Agreement renews ...") or else its first words.
    """
    text = text.lstrip()
    match = _NUMBER.match(text)
    if match:
        number = match.group(1)
        rest = text[match.end() :].lstrip()
        single = "." not in number.rstrip(".")
        if single and not allow_single:
            return None
        first = rest[:1]
        if first and not (first.isalpha() or first in "\"'“‘*_(["):
            return None  # "1.5 2.5 3.5", "3.5 %": numbers, not a clause
        if single and first.isalpha() and not first.isupper():
            return None  # "7. and then": a sentence's list, not a clause
        return number.rstrip(".").count(".") + 1, _title(number, rest)
    match = _KEYWORD.match(text)
    if match:
        keyword, number = match.groups()
        rest = text[match.end() :]
        line = rest.split("\n", 1)[0]
        separator = _SEPARATOR.match(rest)
        if separator:
            rest = rest[separator.end() :]
        elif line.strip() and not line.strip()[0].isupper():
            return None  # "Section 7 of this Agreement ...": a reference, not a heading
        return number.count(".") + 1, _title(f"{keyword} {number}", rest.lstrip(" \t"))
    return None


def _title(label: str, rest: str) -> str:
    """The section title of a clause: its number and its heading or first words."""
    line = rest.split("\n", 1)[0].strip()
    if not line:
        return label
    bold = _BOLD_LEAD.match(line)
    if bold:
        return f"{label} {bold.group(2).strip().rstrip('.:').strip()}"
    whole = rest.strip()
    if (
        (line == whole or "\n" in whole)
        and line[-1] not in ".;:,!?"
        and len(line.split()) <= 10
        and _title_like(line)
    ):
        return f"{label} {line}"
    definition = _DEFINITION.match(line)
    if definition:
        return f"{label} {definition.group(1)}"  # 1.2 "Customer Data" means ...
    lead = _LEAD_IN.match(line)
    if lead and len(lead.group(1).split()) <= _TITLE_WORDS and _title_like(lead.group(1)):
        return f"{label} {lead.group(1).strip()}"
    words: list[str] = []
    for word in rest.split():  # wrapped lines count: the first words, not the first line
        if len(words) == _TITLE_WORDS:
            break
        if _NUMERAL.fullmatch(word):
            continue  # "fifteen (15) days": the numerals repeat the words
        if word.startswith("(") and words:
            break
        words.append(word.rstrip(",;:."))
        if word[-1] in ",;:.":
            break
    return f"{label} {' '.join(words)}".strip()


def _title_like(text: str) -> bool:
    """Title Case or upper case: every word capitalised except small joining words."""
    words = [w.strip("\"'“”‘’()") for w in text.split()]
    return bool(words) and all(
        not w or not w[0].isalpha() or w[0].isupper() or w.lower() in _SMALL_WORDS for w in words
    )


def split_clause_lines(text: str, allow_single: bool) -> list[str]:
    """Split a plain-text or PDF block where a line opens a clause after a finished line.

    Text and PDF extraction often lose the blank line between "7. CONFIDENTIALITY" and
    "7.1 Each party ...". A line opens a new unit when it starts with a clause number and the
    line before ends a sentence or is itself a short heading; "as set out in" followed by
    "Section 7.2 ..." on the next line stays one paragraph.
    """
    lines = text.split("\n")
    units: list[list[str]] = [[]]
    for line in lines:
        previous = units[-1][-1].strip() if units[-1] else ""
        if previous and clause_heading(line, allow_single=allow_single) is not None:
            ends = previous[-1] in '.;:!?"”’)'
            heading = len(previous.split()) <= 10 and (
                clause_heading(previous, allow_single=allow_single) is not None
                or _title_like(previous)
            )
            if ends or heading:
                units.append([])
        units[-1].append(line)
    return ["\n".join(unit).strip("\n") for unit in units if any(s.strip() for s in unit)]


# -- what a clause says ---------------------------------------------------------------------

_CLAUSE = re.compile(
    r"(?ms)^(\d{1,3}(?:\.\d{1,3})+)\.?[ \t]+(.+?)(?=^\d{1,3}(?:\.\d{1,3})+\.?[ \t]|\Z)"
)
_SENTENCE = re.compile(r"(?<=[.;:])\s+(?=[A-Z(\"])")
COUNT = re.compile(
    r"\(?\b\d{1,3}\)?\s*(%|(?:percent|(?:business |calendar |working )?(?:days?|hours?|weeks?|"
    r"months?|years?|minutes?))\b)|\(\d{1,3}\)",
    re.IGNORECASE,
)
"""A small count with its unit ("five (5) days", "6 hours", "99.9%"): group 1 is the unit."""
ANSWER_CHARS = 320
"""The longest answer a clause gives, in characters (cut at a word)."""


def clauses(text: str) -> Iterator[tuple[str, str]]:
    """Each numbered clause of ``text`` (a line starting ``6.1`` or ``6.1.``) as its number and
    its body, white space folded; a clause runs to the next one or the end."""
    for match in _CLAUSE.finditer(text):
        yield match.group(1), " ".join(match.group(2).split())


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split after ``.``, ``;`` or ``:`` before a capital, a
    parenthesis or a quote)."""
    return _SENTENCE.split(" ".join(text.split()))


def figure_sentences(body: str) -> str | None:
    """The clause's sentences that state a figure (at most two), clipped; None when none does."""
    stating = [s for s in _SENTENCE.split(body) if _states_figure(s)]
    return _clipped(" ".join(stating[:2])) if stating else None


def clause_answer(body: str) -> str:
    """What a clause answers: :func:`figure_sentences`, else its first sentence, clipped; empty
    for an empty clause. A bold lead-in (``**Entire Agreement; Amendment.** This ...``) is the
    clause's heading, not its answer: the sentences after it are read."""
    lead = _BOLD_LEAD.match(body)
    if lead and body[lead.end() :].strip():
        body = body[lead.end() :].strip()
    return figure_sentences(body) or _clipped(_SENTENCE.split(body, maxsplit=1)[0])


def _clipped(text: str) -> str:
    """An answer's text: without its closing punctuation, cut at a word within
    :data:`ANSWER_CHARS`."""
    text = text.rstrip(" .;:")
    if len(text) > ANSWER_CHARS:
        text = text[:ANSWER_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:")
    return text


def _states_figure(sentence: str) -> bool:
    """A figure, date or amount (:func:`find_facts`), or a small count with its unit ("five (5)
    days", "6 hours") that the fact finder leaves out as list numbering."""
    return bool(find_facts(sentence) or COUNT.search(sentence))

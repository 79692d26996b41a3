"""Documents into headings and text blocks: Markdown, plain text, HTML and PDF.

A document becomes a :class:`ParsedDocument`: its path relative to the project, the hash of its
raw bytes and a flat list of :class:`Block` (headings and paragraphs, in reading order), which
``chunk.py`` turns into chunks. Parsing uses maintained libraries, each imported only when a
file of its format is read: markdown-it-py (CommonMark, the parser Rich already depends on),
BeautifulSoup for HTML and pypdf for PDF.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ragtune.knowledge.sources import (
    DOCUMENT_SUFFIXES,
    TABLE_SUFFIXES,
    DocumentKind,
    SourceError,
    relative_posix,
    unsupported_reason,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bs4 import PageElement, Tag
    from markdown_it.token import Token

_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n")


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


def parse_document(path: Path, root: Path, *, max_bytes: int | None = None) -> ParsedDocument:
    """Read a Markdown, plain-text, HTML or PDF file into headings and text blocks.

    - Markdown (CommonMark plus tables): ATX and setext headings; paragraphs (wrapped lines
      joined); each list item, table, code block and block quote as one text block, kept
      verbatim; YAML (``---``) or TOML (``+++``) front matter skipped (its ``title:`` is used).
    - Plain text: blocks split on blank lines, lines kept.
    - HTML: ``h1``-``h6`` as headings; ``p``, ``li``, ``pre``, ``blockquote`` and table rows
      (cells joined by `` | ``) as text; ``script``, ``style``, ``nav`` and the like dropped.
    - PDF: each page's extracted text, split on blank lines.
    - Word, PowerPoint and Excel (``.docx``, ``.pptx``, ``.xlsx``): converted to Markdown by
      ``markitdown`` (the ``office`` extra), then read as Markdown: headings, paragraphs, a
      slide's title and text, a sheet as a table.

    Args:
        path: The file.
        root: The project root; the document's ``path`` is stored relative to it.
        max_bytes: A larger file is refused before it is read (None: no limit); the sync
            passes ``knowledge.max_document_mb`` of the project.

    Returns:
        The parsed document.

    Raises:
        SourceError: The file cannot be read, is larger than ``max_bytes``, has an unsupported
            suffix, holds binary or non-UTF-8 content in a text format, is an unreadable or
            encrypted PDF, is nested too deeply to parse, or has no text after parsing.
    """
    rel = relative_posix(path, root)
    suffix = path.suffix.lower()
    kind = DOCUMENT_SUFFIXES.get(suffix)
    if kind is None:
        if suffix in TABLE_SUFFIXES:
            raise SourceError(rel, "is a table, not a document: load it with load_table")
        raise SourceError(rel, unsupported_reason(path))
    data = read_bytes(path, rel, max_bytes)
    sha256 = hashlib.sha256(data).hexdigest()

    title: str | None
    try:
        if kind == "markdown":
            title, blocks = _parse_markdown(decode_text(data, rel))
        elif kind == "text":
            title, blocks = None, _text_blocks(decode_text(data, rel))
        elif kind == "html":
            title, blocks = _parse_html(data, rel)
        elif kind == "office":
            title, blocks = _parse_markdown(_office_markdown(data, rel, suffix))
        else:
            title, blocks = _parse_pdf(data, rel)
    except RecursionError:  # a parser that recurses per level met a pathological nesting
        raise SourceError(rel, "nested too deeply to parse; flatten the document") from None

    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise SourceError(rel, "empty document: no text after parsing")
    if not title:
        heading = next((b.text for b in blocks if b.kind == "heading"), None)
        title = heading or path.stem
    return ParsedDocument(path=rel, kind=kind, title=title, sha256=sha256, blocks=blocks)


def read_bytes(path: Path, rel: str, max_bytes: int | None = None) -> bytes:
    """A source file's bytes; a SourceError naming ``rel`` when it cannot be read or is larger
    than ``max_bytes`` (checked before reading)."""
    try:
        if max_bytes is not None:
            size = path.stat().st_size
            if size > max_bytes:
                raise SourceError(rel, too_large(size, max_bytes))
        return path.read_bytes()
    except IsADirectoryError:
        raise SourceError(rel, "is a folder, not a file") from None
    except OSError as exc:
        raise SourceError(rel, f"cannot be read ({exc.strerror or exc})") from None


def too_large(size: int, max_bytes: int) -> str:
    """Why a file over the size limit is skipped, with both sizes and the setting to change."""
    return (
        f"too large to index: {_megabytes(size)}, over the limit of {_megabytes(max_bytes)} "
        "(knowledge.max_document_mb in ragtune.yaml); split the file, or raise the limit"
    )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB" if size >= 100_000 else f"{size:,} bytes"


def decode_text(data: bytes, rel: str) -> str:
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

    if b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(rel, "binary content (a NUL byte); expected HTML text")
    soup = BeautifulSoup(data, "html.parser")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    if not title:
        h1 = soup.find("h1")
        title = " ".join(h1.get_text(" ").split()) if h1 else ""
    reader = _HtmlReader()
    reader.walk(soup)
    reader.flush()
    return title or None, reader.blocks


class _HtmlReader:
    """Walks an HTML tree into blocks; loose and inline text gathers until a block element."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.pending: list[str] = []

    def flush(self) -> None:
        """The text gathered so far as one block, if there is any."""
        text = " ".join("".join(self.pending).split())
        if text:
            self.blocks.append(Block("text", 0, text))
        self.pending.clear()

    def walk(self, node: Tag) -> None:
        """Read the descendants of ``node`` in document order.

        A stack, not recursion: 50,000 nested ``<div>`` are a document like any other.
        """
        from bs4.element import NavigableString, Tag

        stack: list[Iterator[PageElement]] = [iter(node.children)]
        while stack:
            child = next(stack[-1], None)
            if child is None:  # the end of a container: its loose text is one block
                stack.pop()
                self.flush()
            elif isinstance(child, NavigableString):
                if type(child) is NavigableString:  # not a comment, doctype, CDATA or the like
                    self.pending.append(str(child))
            elif isinstance(child, Tag) and self._element(child):
                self.flush()
                stack.append(iter(child.children))

    def _element(self, tag: Tag) -> bool:
        """Read an element that makes text or a block; True for a container to walk into."""
        name = tag.name.lower()
        if name in _HTML_DROP:
            return False
        if name == "br":
            self.pending.append("\n")
        elif name in _HTML_INLINE:
            self.pending.append(tag.get_text(" "))
        elif name in _HTML_HEADINGS or name in _HTML_TEXT or name in ("pre", "tr"):
            self.flush()
            block = _html_block(name, tag)
            if block is not None:
                self.blocks.append(block)
        else:
            return True
        return False


def _html_block(name: str, tag: Tag) -> Block | None:
    """The block a heading, ``pre``, table row or text element makes; None when it is empty."""
    if name == "pre":
        text = tag.get_text().strip("\n")
        return Block("text", 0, text) if text.strip() else None
    if name == "tr":
        cells = [" ".join(c.get_text(" ").split()) for c in tag.find_all(["td", "th"])]
        row = " | ".join(c for c in cells if c)
        return Block("text", 0, row) if row else None
    text = " ".join(tag.get_text(" ").split())
    if not text:
        return None
    return (
        Block("heading", int(name[1]), text) if name in _HTML_HEADINGS else Block("text", 0, text)
    )


# PDF --------------------------------------------------------------------------------------


def _office_markdown(data: bytes, rel: str, suffix: str) -> str:
    """A Word, PowerPoint or Excel file as Markdown, by markitdown."""
    try:
        from markitdown import MarkItDown, StreamInfo
    except ModuleNotFoundError:
        raise SourceError(
            rel,
            f"reading {suffix} files needs markitdown, which comes with ragtune's 'office' "
            "extra: pip install 'ragtune[office]'",
        ) from None
    import zipfile

    if not zipfile.is_zipfile(io.BytesIO(data)):  # markitdown would read it as plain text
        raise SourceError(rel, f"not a readable {suffix} file (it is not an Office ZIP package)")
    try:
        converted = MarkItDown(enable_plugins=False).convert_stream(
            io.BytesIO(data), stream_info=StreamInfo(extension=suffix, filename=Path(rel).name)
        )
    except Exception as exc:
        raise SourceError(
            rel, f"not a readable {suffix} file ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    return converted.text_content or ""


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

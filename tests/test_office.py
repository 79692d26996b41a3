"""Word, PowerPoint and Excel sources, read through markitdown (the `office` extra) into the
same headings and blocks as Markdown, then synced and searched like any document."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import HashingEmbedder
from ragtune.knowledge.parse import parse_document
from ragtune.knowledge.sources import SourceError
from ragtune.project import load_project

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def write_docx(path: Path, paragraphs: list[tuple[str | None, str]]) -> None:
    """A minimal Word file: (style, text) paragraphs, style ``Heading1`` or None."""

    def paragraph(style: str | None, text: str) -> str:
        props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return f"<w:p>{props}<w:r><w:t>{text}</w:t></w:r></w:p>"

    body = "".join(paragraph(s, t) for s, t in paragraphs)
    styles = (
        f'<w:styles {W}><w:style w:type="paragraph" w:styleId="Heading1">'
        '<w:name w:val="heading 1"/></w:style></w:styles>'
    )
    with zipfile.ZipFile(path, "w") as docx:
        docx.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
            '<Override PartName="/word/styles.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.wordprocessingml.styles+xml"/></Types>',
        )
        docx.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        )
        docx.writestr(
            "word/_rels/document.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/styles" Target="styles.xml"/></Relationships>',
        )
        docx.writestr("word/styles.xml", styles)
        docx.writestr("word/document.xml", f"<w:document {W}><w:body>{body}</w:body></w:document>")


@pytest.fixture
def office(tmp_path: Path) -> Path:
    pytest.importorskip("markitdown")
    from openpyxl import Workbook
    from pptx import Presentation

    folder = tmp_path / "policies"
    folder.mkdir()
    write_docx(
        folder / "travel.docx",
        [
            ("Heading1", "Travel Policy"),
            (None, "Economy class is booked for flights under six hours."),
            ("Heading1", "Per Diem"),
            (None, "The daily meal allowance is EUR 45 in every city."),
        ],
    )
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Security Training"
    slide.placeholders[1].text = "Every new hire completes phishing training within 14 days."
    deck.save(str(folder / "security.pptx"))
    book = Workbook()
    sheet = book.active
    sheet.title = "Fees"
    sheet.append(["matter", "fee"])
    sheet.append(["NDA review", "USD 350"])
    book.save(folder / "fees.xlsx")
    return folder


def test_office_files_parse_into_headings_and_text(office: Path) -> None:
    word = parse_document(office / "travel.docx", office.parent)
    headings = [b.text for b in word.blocks if b.kind == "heading"]
    assert word.kind == "office" and headings == ["Travel Policy", "Per Diem"]
    assert any("EUR 45" in b.text for b in word.blocks)
    slides = parse_document(office / "security.pptx", office.parent)
    assert "Security Training" in [b.text for b in slides.blocks if b.kind == "heading"]
    assert any("within 14 days" in b.text for b in slides.blocks)
    sheet = parse_document(office / "fees.xlsx", office.parent)
    assert any("NDA review" in b.text and "USD 350" in b.text for b in sheet.blocks)


def test_a_broken_office_file_is_skipped_by_name(office: Path) -> None:
    (office / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SourceError, match=r"broken\.docx: not a readable \.docx file"):
        parse_document(office / "broken.docx", office.parent)


def test_office_sources_sync_and_search(office: Path, write_project: Callable[..., Path]) -> None:
    folder = office.parent
    (folder / "ragtune.yaml").write_text(
        "version: 1\nproject: office\nknowledge:\n  embedder: hashing\ncapabilities:\n"
        "  - name: policies\n    description: Answer questions about our policies.\n"
        "    sources: [policies/]\n"
    )
    kb = KnowledgeBase(load_project(folder), embedder=HashingEmbedder(256))
    try:
        synced = kb.sync()
        assert sorted(c.path for c in synced.plan.of("added")) == [
            "policies/fees.xlsx", "policies/security.pptx", "policies/travel.docx",
        ]  # fmt: skip
        hit = kb.search("daily meal allowance per diem", k=1)[0]
        assert hit.document == "policies/travel.docx" and "EUR 45" in hit.text
    finally:
        kb.close()

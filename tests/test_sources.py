"""Knowledge sources: discovery, parsing of each format, tables, and the errors a user sees."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.errors import RagtuneError
from ragtune.knowledge.parse import Block, parse_document
from ragtune.knowledge.sources import (
    SourceError,
    covers,
    discover,
    glob_match,
    source_folder,
    split_ref,
)
from ragtune.knowledge.tables import load_table

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "contract-review"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_pdf(path: Path, pages: list[list[str]], title: str | None = None) -> Path:
    """A real PDF with extractable text, drawn by matplotlib (one list of lines a page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Title": title} if title else {}
    with PdfPages(path, metadata=metadata) as pdf:
        for lines in pages:
            fig = plt.figure(figsize=(8.5, 11))
            for n, line in enumerate(lines):
                fig.text(0.1, 0.9 - 0.04 * n, line, fontsize=11)
            if not lines:
                fig.add_axes((0.1, 0.1, 0.8, 0.8)).axis("off")
            pdf.savefig(fig)
            plt.close(fig)
    return path


# --- discover -------------------------------------------------------------------------------


def test_discover_folders_files_and_globs(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.md", "# A\n\ntext")
    write(tmp_path / "docs" / "sub" / "b.TXT", "text")
    write(tmp_path / "docs" / "sub" / "c.html", "<p>text</p>")
    write(tmp_path / "docs" / "notes.odt", b"PK\x03\x04")
    write(tmp_path / "docs" / ".hidden.md", "secret")
    write(tmp_path / "docs" / ".cache" / "d.md", "cached")
    write(tmp_path / "papers" / "x.pdf", b"%PDF")
    write(tmp_path / "papers" / "y.pdf", b"%PDF")
    write(tmp_path / "papers" / "y.htm", "<p>y</p>")
    write(tmp_path / "tables" / "rates.csv", "k,v\na,1\n")

    found = discover(
        tmp_path,
        [
            "docs",
            "docs/a.md",
            "papers/*.pdf",
            "tables/rates.csv#v",
            "missing/",
            "none/*.md",
            "tool:tools/lookup.py:rate",
        ],
    )

    rel = [p.relative_to(tmp_path).as_posix() for p in found.files]
    assert rel == [
        "docs/a.md",
        "docs/sub/b.TXT",
        "docs/sub/c.html",
        "papers/x.pdf",
        "papers/y.pdf",
        "tables/rates.csv",
    ]
    assert all(p.is_absolute() for p in found.files)
    skipped = {p.relative_to(tmp_path).as_posix(): why for p, why in found.skipped}
    assert set(skipped) == {"docs/notes.odt", "missing", "none/*.md"}
    assert "unsupported file type '.odt'" in skipped["docs/notes.odt"]
    assert ".md" in skipped["docs/notes.odt"]  # says what would be accepted
    assert "names no file or folder" in skipped["missing"]
    assert "matches no files" in skipped["none/*.md"]
    assert found.key_columns == {tmp_path / "tables" / "rates.csv": "v"}


def test_discover_recursive_glob_and_explicit_hidden_file(tmp_path: Path) -> None:
    write(tmp_path / "k" / "one" / "a.md", "a")
    write(tmp_path / "k" / "two" / "b.md", "b")
    write(tmp_path / "k" / ".git" / "c.md", "c")
    write(tmp_path / ".notes.md", "named explicitly, so used")
    found = discover(tmp_path, ["k/**/*.md", ".notes.md"])
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == [
        ".notes.md",
        "k/one/a.md",
        "k/two/b.md",
    ]
    assert found.skipped == []


def test_discover_conflicting_key_columns(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", "a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"t\.csv: .*different key columns"):
        discover(tmp_path, ["t.csv#a", "t.csv#b"])


def test_split_ref() -> None:
    assert split_ref("tables/rates.csv#matter_type") == ("tables/rates.csv", "matter_type")
    assert split_ref("tables/rates.csv") == ("tables/rates.csv", None)
    assert split_ref("docs/c#sharp.md") == ("docs/c#sharp.md", None)


def test_covers_folders_files_keyed_tables_and_globs(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.md", "a")
    write(tmp_path / "tables" / "rates.csv", "k,v\na,1\n")
    assert covers(tmp_path, "docs", "docs/a.md")
    assert covers(tmp_path, "docs", "docs/new/b.md")  # not written yet: still the folder's
    assert not covers(tmp_path, "docs", "docs")
    assert not covers(tmp_path, "docs", "docsx/a.md")
    assert covers(tmp_path, "drafts/", "drafts/a.md")  # a folder before it exists
    assert not covers(tmp_path, "drafts", "drafts/a.md")  # without the slash: a file
    assert covers(tmp_path, "./docs/a.md", "docs/a.md")
    assert not covers(tmp_path, "docs/a.md", "docs/b.md")
    assert covers(tmp_path, "tables/rates.csv#v", "tables/rates.csv")
    assert covers(tmp_path, "k/**/*.md", "k/x/y/a.md")
    assert not covers(tmp_path, "k/**/*.md", "k/a.txt")
    assert not covers(tmp_path, "/k/*.md", "k/a.md")  # an absolute glob
    assert not covers(tmp_path, "tool:docs/a.md", "docs/a.md")


def test_glob_match_name_by_name() -> None:
    assert glob_match("docs/a.md", "docs/**/*.md")
    assert glob_match("docs/x/y/a.md", "docs/**/*.md")
    assert glob_match("docs/a.md", "./docs/*.md")
    assert not glob_match("docs/x/a.md", "docs/*.md")  # * stays within one name
    assert not glob_match("docs/A.MD", "docs/*.md")  # case-sensitive
    assert glob_match("docs/a1.md", "docs/a[0-9].md") and glob_match("docs/ab.md", "docs/a?.md")
    assert glob_match("a/b/c", "**") and not glob_match("a/b", "a")


def test_every_file_discover_finds_is_covered_by_its_reference(tmp_path: Path) -> None:
    for rel in ("docs/a.md", "docs/sub/b.txt", "k/one/c.md", "k/d.md", "tables/rates.csv"):
        write(tmp_path / rel, "k,v\na,1\n")
    refs = ["docs", "docs/", "k/**/*.md", "k/*.md", "tables/rates.csv#k", "docs/sub/b.txt"]
    for ref in refs:
        found = discover(tmp_path, [ref]).files
        assert found, ref
        for path in found:
            assert covers(tmp_path, ref, path.relative_to(tmp_path).as_posix()), (ref, path)


def test_source_folder_holds_every_file_a_reference_can_name(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.md", "a")
    write(tmp_path / "docs" / "sub" / "b.md", "b")
    root = tmp_path.resolve()
    assert source_folder(tmp_path, "docs") == root / "docs"
    assert source_folder(tmp_path, "docs/a.md") == root / "docs"
    assert source_folder(tmp_path, "docs/c#sharp.md") == root / "docs"
    assert source_folder(tmp_path, "tables/rates.csv#key") == root / "tables"
    assert source_folder(tmp_path, "docs/**/*.md") == root / "docs"
    assert source_folder(tmp_path, "docs/sub*/*.md") == root / "docs"  # docs/subway/ too
    assert source_folder(tmp_path, "*.md") == root
    assert source_folder(tmp_path, "tool:tools/x.py:f") is None


def test_finding_and_reading_sources_imports_parsers_only_when_used() -> None:
    code = (
        "import sys\n"
        "import ragtune.audit.evidence, ragtune.knowledge.parse, ragtune.knowledge.tables\n"
        "heavy = {'torch', 'markdown_it', 'bs4', 'pypdf'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- documents ------------------------------------------------------------------------------


def test_parse_markdown(tmp_path: Path) -> None:
    text = (
        "---\ntitle: Pricing Policy\nowner: legal\n---\n"
        "Overview\n========\n\n"
        "First paragraph\nwrapped over two lines.\n\n"
        "```python\n# not a heading\nx = 1\n```\n\n"
        "## Discounts\n\n"
        "- Annual plans: 10%\n- Non-profits: 20%\n\n"
        "| Plan | Price |\n|---|---|\n| Pro | 20 |\n\n"
        "Sub\n---\n\n> quoted\n> advice\n"
    )
    path = write(tmp_path / "kb" / "pricing.md", text)
    doc = parse_document(path, tmp_path)
    assert doc.path == "kb/pricing.md"
    assert doc.kind == "markdown"
    assert doc.title == "Pricing Policy"  # from the front matter
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc.blocks == [
        Block("heading", 1, "Overview"),
        Block("text", 0, "First paragraph wrapped over two lines."),
        Block("text", 0, "# not a heading\nx = 1"),
        Block("heading", 2, "Discounts"),
        Block("text", 0, "- Annual plans: 10%"),
        Block("text", 0, "- Non-profits: 20%"),
        Block("text", 0, "| Plan | Price |\n|---|---|\n| Pro | 20 |"),
        Block("heading", 2, "Sub"),
        Block("text", 0, "quoted\nadvice"),
    ]
    assert not any("owner" in b.text for b in doc.blocks)  # front matter skipped


def test_markdown_title_falls_back_to_first_heading_then_stem(tmp_path: Path) -> None:
    doc = parse_document(
        write(tmp_path / "a.md", "intro\n\n## **Bold** `code` heading\n"), tmp_path
    )
    assert doc.title == "Bold code heading"
    assert parse_document(write(tmp_path / "b_notes.md", "just text\n"), tmp_path).title == (
        "b_notes"
    )


def test_parse_example_msa() -> None:
    doc = parse_document(EXAMPLE / "knowledge" / "msa.md", EXAMPLE)
    assert doc.path == "knowledge/msa.md"
    assert doc.title == "Master Services Agreement"
    headings = [b.text for b in doc.blocks if b.kind == "heading"]
    assert headings[0] == "Master Services Agreement"
    assert "12. Limitation of Liability" in headings
    assert len(headings) == 18
    assert any(b.text.startswith("12.2 Except as set out in Section 12.3") for b in doc.blocks)


def test_parse_text(tmp_path: Path) -> None:
    path = write(tmp_path / "policy.txt", "Line one\nline two\n\n\n  \nSecond block\r\n\fThird\n")
    doc = parse_document(path, tmp_path)
    assert doc.kind == "text"
    assert doc.title == "policy"
    assert [b.text for b in doc.blocks] == ["Line one\nline two", "Second block", "Third"]
    assert all(b.kind == "text" and b.level == 0 for b in doc.blocks)


def test_text_encodings(tmp_path: Path) -> None:
    bom = write(tmp_path / "bom.txt", "\ufeffCafé rules".encode())
    assert parse_document(bom, tmp_path).blocks[0].text == "Café rules"
    utf16 = write(tmp_path / "u16.txt", "Notepad text".encode("utf-16"))
    assert parse_document(utf16, tmp_path).blocks[0].text == "Notepad text"


def test_parse_html(tmp_path: Path) -> None:
    html = """<!doctype html><html><head><title> Refund   Policy </title>
    <style>p { color: red }</style><script>var leaked = "script text";</script></head>
    <body><nav><a href="/">Home</a> menu text</nav>
    <h1>Refunds</h1><p>We refund annual plans
       within <b>30 days</b>.</p>
    <div>Loose text in a div</div>
    <h3>Exceptions</h3><ul><li>Custom work</li><li>Overages</li></ul>
    <table><tr><th>Plan</th><th>Days</th></tr><tr><td>Annual</td><td>30</td></tr></table>
    <pre>line 1
  line 2</pre><!-- a comment --></body></html>"""
    doc = parse_document(write(tmp_path / "site" / "refunds.html", html), tmp_path)
    assert doc.kind == "html"
    assert doc.title == "Refund Policy"
    assert doc.blocks == [
        Block("heading", 1, "Refunds"),
        Block("text", 0, "We refund annual plans within 30 days ."),
        Block("text", 0, "Loose text in a div"),
        Block("heading", 3, "Exceptions"),
        Block("text", 0, "Custom work"),
        Block("text", 0, "Overages"),
        Block("text", 0, "Plan | Days"),
        Block("text", 0, "Annual | 30"),
        Block("text", 0, "line 1\n  line 2"),
    ]
    text = " ".join(b.text for b in doc.blocks)
    assert "script text" not in text and "menu text" not in text and "color" not in text


def test_html_title_from_first_h1(tmp_path: Path) -> None:
    doc = parse_document(write(tmp_path / "x.htm", "<h2>Sub</h2><h1>Main</h1><p>t</p>"), tmp_path)
    assert doc.title == "Main"


def test_parse_pdf(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "docs" / "policy.pdf",
        [
            ["7. Confidentiality", "7.1 Each party keeps the other's secrets."],
            ["8. Term", "8.1 This policy lasts two years."],
        ],
        title="Security Policy",
    )
    doc = parse_document(path, tmp_path)
    assert doc.kind == "pdf"
    assert doc.path == "docs/policy.pdf"
    assert doc.title == "Security Policy"
    text = "\n".join(b.text for b in doc.blocks)
    assert "7.1 Each party keeps the other's secrets." in text
    assert text.index("7.1 Each party") < text.index("8.1 This policy")  # pages in order
    assert len(doc.blocks) >= 2  # at least one block a page


def test_pdf_title_from_first_line_without_metadata(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "p.pdf", [["Travel Rules", "Book economy class."]])
    assert parse_document(path, tmp_path).title == "Travel Rules"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bin.md", b"# Title\n\x00\x01\x02", r"binary content \(a NUL byte at offset 8\)"),
        ("latin.txt", "caf\xe9".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 at offset 3\)"),
        ("empty.md", b"", "empty document"),
        ("blank.txt", b"  \n\n \t\n", "empty document"),
        ("only_front_matter.md", b"---\ntitle: x\n---\n", "empty document"),
        ("empty.html", b"<html><script>x()</script></html>", "empty document"),
        ("bin.html", b"<p>a\x00b</p>", "binary content"),
        ("report.odt", b"PK\x03\x04", r"unsupported file type '\.odt'.*\.md"),
        ("rates.csv", b"a,b\n1,2\n", "is a table"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ],
)
def test_document_errors_name_file_and_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = write(tmp_path / "kb" / name, content)
    with pytest.raises(SourceError, match=rf"^kb/{name}: .*{reason}") as info:
        parse_document(path, tmp_path)
    assert isinstance(info.value, RagtuneError)
    assert info.value.path == f"kb/{name}"


def test_pdf_without_text(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", [[]])
    with pytest.raises(SourceError, match=r"scan\.pdf: no extractable text in 1 page"):
        parse_document(path, tmp_path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^gone\.md: cannot be read"):
        parse_document(tmp_path / "gone.md", tmp_path)
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(SourceError, match=r"^folder\.md: is a folder"):
        parse_document(tmp_path / "folder.md", tmp_path)


def test_source_error_pickles() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(SourceError("a.md", "empty document")))
    assert str(error) == "a.md: empty document"


# --- tables ---------------------------------------------------------------------------------


def test_load_example_rates_table() -> None:
    table = load_table(EXAMPLE / "tables" / "rates.csv", EXAMPLE)
    assert table.path == "tables/rates.csv"
    assert table.key_column == "matter_type"  # the first column by default
    assert table.columns[:2] == ["matter_type", "review_fee_usd"]
    assert len(table.rows) == 16
    row = table.lookup("  msa on LARKSPUR   paper ")
    assert row is not None
    assert row["review_fee_usd"] == "900"
    assert table.lookup("No such matter") is None
    assert table.row_text(row) == (
        "matter_type: MSA on Larkspur paper; review_fee_usd: 900; "
        "outside_counsel_rate_usd_per_hour: 575; turnaround_business_days: 3; "
        "effective_from: 2026-07-01"
    )
    data = (EXAMPLE / "tables" / "rates.csv").read_bytes()
    assert table.sha256 == hashlib.sha256(data).hexdigest()


def test_table_key_column_bom_and_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.csv",
        '\ufeffid, name ,note\n1,Alpha,"a, quoted\nnote"\n\n2,Beta,plain\n'.encode(),
    )
    table = load_table(path, tmp_path, key_column="name")
    assert table.columns == ["id", "name", "note"]
    assert table.key_column == "name"
    assert table.lookup("alpha") == {"id": "1", "name": "Alpha", "note": "a, quoted\nnote"}
    assert table.lookup("BETA") == {"id": "2", "name": "Beta", "note": "plain"}


@pytest.mark.parametrize(
    ("content", "key", "reason"),
    [
        ("a,b,c\n1,2,3\n4,5\n", None, r"line 3: 2 field\(s\) where the header has 3 \(a, b, c\)"),
        ("a,b\n1,2\n", "rate", r"no key column 'rate'; the columns are: a, b"),
        ("k,v\nx,1\ny,2\n X ,3\n", None, r"line 4: key 'X' repeats the key on line 2"),
        ("k,v\n,1\n", None, r"line 2: the key column 'k' is empty"),
        ("", None, "empty table: no header row"),
        ("k,v\n\n", None, "empty table: a header but no data rows"),
        ("k,,v\n1,2,3\n", None, "line 1: column 2 of the header is blank"),
        ("k,v,k\n1,2,3\n", None, r"line 1: repeated column name\(s\) k"),
        (b"k,v\n\xff,1\n", None, "not UTF-8 text"),
    ],
)
def test_table_errors_name_file_and_line(
    tmp_path: Path, content: str | bytes, key: str | None, reason: str
) -> None:
    path = write(tmp_path / "tables" / "bad.csv", content)
    with pytest.raises(SourceError, match=rf"^tables/bad\.csv: {reason}"):
        load_table(path, tmp_path, key_column=key)

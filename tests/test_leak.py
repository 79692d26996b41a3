"""The knowledge-leak guard: facts and index text in example outputs that inputs do not give."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.behavior.leak import (
    DEFAULT_THRESHOLD,
    INDEX_RUN_WORDS,
    LeakReport,
    index_matches,
    scan_examples,
)
from ragtune.facts import extract_facts, find_facts, find_names, novel_facts, novel_names

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "contract-review" / "behavior"

Row = tuple[int, str, str, str | None]


def _read(path: Path) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            record = json.loads(line)
            output = record["output"]
            output = output if isinstance(output, str) else json.dumps(output)
            rows.append((number, record["input"], output, record.get("context")))
    return rows


def _rows(*pairs: tuple[str, str]) -> list[Row]:
    return [(i, given, said, None) for i, (given, said) in enumerate(pairs, start=1)]


# --- The example project's training data is behaviour, not knowledge ---------------------------


@pytest.mark.parametrize("name", ["risk_flags.jsonl", "clause_summaries.jsonl"])
def test_the_example_scans_clean(name: str) -> None:
    rows = _read(EXAMPLES / name)
    report = scan_examples(rows, path=str(EXAMPLES / name))
    assert report.total == len(rows) >= 10
    assert report.leaking == [], report.details()
    assert report.share == 0.0 and not report.exceeds
    assert report.named == []
    assert "No example output in" in report.summary()


# --- Facts the outputs bring in --------------------------------------------------------------

CLAUSE = "The Supplier shall deliver the goods and the Customer shall pay the fees."

TEACHING = _rows(
    (CLAUSE, "Fees are capped at $50,000 per year."),
    (CLAUSE, "The renewal date is 1 July 2026."),
    (CLAUSE, "Late payments accrue interest at 1.5% a month."),
    (CLAUSE, "Deliveries follow the logistics policy version 2026.2 and portal v2.3."),
    (CLAUSE, "Approvals go to Jane Smith at Harbor Analytics."),
    (CLAUSE, "Flag: low risk; mutual obligations."),
    (CLAUSE, "Flag: low risk; ordinary supply terms."),
    (CLAUSE, "Flag: low risk; nothing unusual."),
)


def test_outputs_carrying_facts_absent_from_inputs_are_flagged() -> None:
    report = scan_examples(TEACHING, path="teach.jsonl")
    by_line = {leak.line: leak for leak in report.leaking}
    assert by_line[1].facts == ["money: $50,000"]
    assert by_line[2].facts == ["date: 1 July 2026"]
    assert by_line[3].facts == ["percentage: 1.5%"]
    assert by_line[4].facts == ["version: version 2026.2", "version: v2.3"]
    assert set(by_line) == {1, 2, 3, 4}
    assert report.total == 8 and report.share == pytest.approx(4 / 8)
    assert report.facts_by_kind == {"version": 2, "money": 1, "date": 1, "percentage": 1}
    assert report.exceeds
    assert by_line[1].input == CLAUSE and by_line[1].output == TEACHING[0][2]


def test_names_are_reported_apart_and_not_counted_in_the_share() -> None:
    report = scan_examples(TEACHING, path="teach.jsonl")
    assert [leak.line for leak in report.named] == [5]
    assert report.named[0].names == ["Jane Smith", "Harbor Analytics"]
    assert report.named[0].facts == [] and not report.named[0].teaches
    assert "name" not in report.facts_by_kind
    assert report.names_by_count == {"Jane Smith": 1, "Harbor Analytics": 1}
    assert "Jane Smith" in report.summary() and "weaker signal" in report.summary()


def test_a_leak_with_facts_also_lists_its_names() -> None:
    report = scan_examples(
        _rows((CLAUSE, "Fees above $9,000 go to Jane Smith at Harbor Analytics.")), path="x"
    )
    (leak,) = report.leaking
    assert leak.facts == ["money: $9,000"]
    assert leak.names == ["Jane Smith", "Harbor Analytics"]
    assert "name: Jane Smith" in leak.describe()


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("Either party may terminate on sixty (60) days' notice.", "Terminable on 60 days."),
        ("Either party may terminate on sixty days' notice.", "Terminable on 60 days."),
        ("Liability is capped at $50,000.", "Cap of $50,000 is low."),
        ("Liability is capped at USD 50,000.00 in total.", "Cap: $50,000."),
        ("The fee is $1,200,000 a year.", "A $1.2 million annual fee."),
        ("This Agreement starts on 2026-07-01.", "Starts 1 July 2026."),
        ("This Agreement starts on July 1st, 2026.", "Starts 2026-07-01, so in July 2026."),
        ("Interest accrues at twelve percent.", "Interest at 12% is high."),
        ("Software version 2.3 applies.", "Pinned to v2.3."),
        ("Governed by the laws of the State of New York.", "New York law governs."),
        ("Signed by HARBOR ANALYTICS, INC.", "Harbor Analytics Inc's obligations."),
        ("Licensee receives Named User licenses.", "Unlimited Named Users."),
    ],
)
def test_facts_in_the_input_written_differently_are_not_flagged(given: str, said: str) -> None:
    report = scan_examples(_rows((given, said)), path="x")
    assert report.leaking == [] and report.named == [], report.details()


def test_context_counts_as_given() -> None:
    rows: list[Row] = [(1, "Is the cap adequate?", "No: $50,000 is low.", "Cap: $50,000 total.")]
    assert scan_examples(rows, path="x").leaking == []
    assert scan_examples([(1, "Is the cap adequate?", "No: $50,000 is low.", None)], path="x").share


def test_versions_compare_exactly() -> None:
    assert [str(f) for f in novel_facts("Use v2.10.", "Use version 2.1.")] == ["version: v2.10"]


def test_json_outputs_are_read_by_value() -> None:
    rows = _rows(
        (CLAUSE, json.dumps({"category": "Cap On Liability", "risk_2": "low", "why": "Fine."})),
        (CLAUSE, json.dumps({"category": "Price Restrictions", "fee": 450, "why": "ok"})),
        (CLAUSE, json.dumps({"why": ["Mutual duties.", "Signed by Jane Smith and Bob Ray."]})),
    )
    report = scan_examples(rows, path="x")
    assert [(leak.line, leak.facts) for leak in report.leaking] == [(2, ["number: 450"])]
    assert [(leak.line, leak.names) for leak in report.named] == [(3, ["Jane Smith", "Bob Ray"])]


# --- Text of the knowledge index -------------------------------------------------------------

CHUNKS = [
    "Playbook 4.2: the standard liability cap for supply agreements is twelve months of fees "
    "paid, and any uncapped indemnity requires approval from the general counsel.",
    "Unrelated chunk about data protection and processors.",
]


def knowledge(output: str) -> list[str]:
    return CHUNKS


def test_an_output_quoting_eight_words_of_the_index_matches_it() -> None:
    said = "Flag high: Any uncapped INDEMNITY requires approval from the General Counsel!"
    report = scan_examples(_rows((CLAUSE, said)), path="x", knowledge=knowledge)
    (leak,) = report.leaking
    assert leak.facts == []
    assert leak.index_matches == [
        "any uncapped indemnity requires approval from the general counsel"
    ]
    assert report.facts_by_kind == {"index": 1}
    assert "knowledge index" in leak.describe()


def test_seven_words_are_not_a_match() -> None:
    run = "uncapped indemnity requires approval from the general"
    assert len(run.split()) == INDEX_RUN_WORDS - 1
    said = f"Flag high: {run}; unusual."
    assert scan_examples(_rows((CLAUSE, said)), path="x", knowledge=knowledge).leaking == []


def test_index_words_that_the_input_holds_are_not_a_match() -> None:
    given = "Any uncapped indemnity requires approval from the general counsel of Supplier."
    said = "Medium: any uncapped indemnity requires approval from the general counsel."
    assert scan_examples(_rows((given, said)), path="x", knowledge=knowledge).leaking == []
    rows: list[Row] = [(1, "Is this acceptable?", said, given)]
    assert scan_examples(rows, path="x", knowledge=knowledge).leaking == []


def test_a_long_quote_is_one_passage() -> None:
    said = (
        "The standard liability cap for supply agreements is twelve months of fees paid, "
        "so this clause is in line."
    )
    found = index_matches(said, CLAUSE, CHUNKS)
    assert found == [
        "the standard liability cap for supply agreements is twelve months of fees paid"
    ]


def test_without_a_lookup_the_index_is_not_consulted() -> None:
    said = "Any uncapped indemnity requires approval from the general counsel."
    assert scan_examples(_rows((CLAUSE, said)), path="x").leaking == []


# --- Threshold and report ------------------------------------------------------------------------


def _share_rows(leaking: int, total: int) -> list[Row]:
    return [
        (i, CLAUSE, f"Cap of ${1000 + i},000." if i <= leaking else "Low risk.", None)
        for i in range(1, total + 1)
    ]


def test_the_threshold_is_a_share_not_exceeded_at_equality() -> None:
    assert DEFAULT_THRESHOLD == 0.1
    at = scan_examples(_share_rows(1, 10), path="x")
    assert at.share == pytest.approx(0.1) and not at.exceeds
    assert "within the 10% threshold" in at.summary()
    above = scan_examples(_share_rows(2, 10), path="x")
    assert above.exceeds
    assert not scan_examples(_share_rows(2, 10), path="x", threshold=0.25).exceeds
    assert scan_examples(_share_rows(1, 10), path="x", threshold=0.0).exceeds


def test_the_summary_says_to_move_facts_to_retrieval() -> None:
    report = scan_examples(_share_rows(3, 10), path="data/flags.jsonl")
    text = report.summary()
    assert "3 of 10 example outputs in flags.jsonl (30%)" in text
    assert "above the 10% threshold" in text
    assert "retrieval" in text and "--allow-knowledge" in text
    assert report.details(2) == [
        "data/flags.jsonl:1: money: $1001,000",
        "data/flags.jsonl:2: money: $1002,000",
    ]


def test_no_examples_no_share() -> None:
    report = scan_examples([], path="empty.jsonl")
    assert isinstance(report, LeakReport)
    assert (report.total, report.share, report.exceeds) == (0, 0.0, False)


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_a_threshold_outside_0_to_1_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match=str(threshold)):
        scan_examples(_share_rows(1, 10), path="x", threshold=threshold)


# --- The extractors ----------------------------------------------------------------------------


def test_extract_facts_keys_figures_by_numeric_core() -> None:
    assert extract_facts("Pay $50,000. by 2026-07-01; 25% more; 3 parties.") == {
        "50000": "$50,000",
        "2026-07-01": "2026-07-01",
        "25": "25%",
    }


def test_find_facts_labels_each_stretch_once() -> None:
    text = (
        "On July 1, 2026 the fee of EUR 1.2 million rises 12.5 percent under version 2026.2; "
        "see clause 14.3 and 01/07/2026."
    )
    assert [str(f) for f in find_facts(text)] == [
        "money: EUR 1.2 million",
        "date: July 1, 2026",
        "date: 01/07/2026",
        "percentage: 12.5 percent",
        "version: version 2026.2",
        "number: 14.3",
    ]
    assert {f.key for f in find_facts(text)} >= {"1200000", "2026-07-01", "12.5", "2026.2"}


def test_names_skip_sentence_starts_common_words_and_labels() -> None:
    text = (
        "Harbor Analytics signs. The Customer Agreement binds the Provider's Section 9 duties "
        "with Crestline Foods LLC, Ernst & Young and the Bank of America.\n"
        "Notice Period To Terminate Renewal\n"
        "Affiliate-owned IP; THIS MASTER AGREEMENT."
    )
    assert find_names(text) == ["Crestline Foods LLC", "Ernst & Young", "Bank of America"]
    assert novel_names("Approved by Jane Smith.", "jane smith signs") == []


def test_leak_and_facts_import_no_torch() -> None:
    code = (
        "import sys, ragtune.behavior.leak, ragtune.facts, ragtune.audit.evidence;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

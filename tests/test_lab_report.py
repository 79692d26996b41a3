"""The lab's report: Markdown, a self-contained HTML page with two charts, and the three files."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from ragtune.lab.report import render_html, render_markdown, write_reports
from ragtune.lab.results import LabResult

ARMS = ("zero-shot", "few-shot", "RAG", "LoRA", "RAG+LoRA")
HOSTILE = "<script>alert('answer')</script>"


def _arm(
    name: str,
    fact: float | None,
    compliance: float | None,
    latency: float | None,
    tokens: float | None,
    cost: float | None,
    spread: dict[str, Any] | None = None,
) -> dict[str, Any]:
    adapter = "LoRA" in name
    seen = {"items": 2, "fact_accuracy": 1.0, "contract_compliance": None} if adapter else None
    rephrased = (
        {"items": 3, "fact_accuracy": 0.3333333333333333, "contract_compliance": None}
        if adapter
        else None
    )
    return {
        "name": name,
        "fact_accuracy": fact,
        "contract_compliance": compliance,
        "items": 36,
        "seen": seen,
        "rephrased": rephrased,
        "seen_known": True,
        "latency_p50_s": latency,
        "tokens_per_call": tokens,
        "cost_per_1k": cost,
        "spread": spread,
        "by_capability": {
            "templates": {
                "items": 24,
                "fact_accuracy": fact,
                "contract_compliance": None,
                "latency_p50_s": latency,
                "seen": seen,
                "rephrased": rephrased,
            },
            "risk_flags": {
                "items": 12,
                "fact_accuracy": None if fact is None else fact / 2,
                "contract_compliance": compliance,
                "latency_p50_s": latency,
                "seen": {"items": 0, "fact_accuracy": None, "contract_compliance": None}
                if adapter
                else None,
                "rephrased": None,
            },
        },
        "setup": {
            "templates": f"{name}: the capability's instructions",
            "risk_flags": f"{name}: the JSON contract",
        },
        "adapters": ["lab-templates-lora"] if "LoRA" in name else [],
    }


def _drift_arm(
    name: str, before: float | None, after: float | None, stale: float | None, fix: float | None
) -> dict[str, Any]:
    return {
        "name": name,
        "adapter": "LoRA" in name,
        "fact_accuracy_before": before,
        "fact_accuracy": after,
        "unseen_fact_accuracy": after,
        "seen_fact_accuracy": (None if after is None else 1.0) if "LoRA" in name else None,
        "contract_compliance": None,
        "latency_p50_s": 2.0,
        "cost_per_1k": 0.25,
        "stale_share": stale,
        "time_to_correct_s": fix,
    }


def _call(arm: str, answer: str, **extra: Any) -> dict[str, Any]:
    call = {
        "arm": arm,
        "capability": "templates",
        "where": "eval/templates.jsonl:3",
        "input": "How long does our mutual NDA stay in force? " * 10,
        "answer": answer,
        "fact_score": 1.0,
        "contract_ok": None,
        "stale": None,
        "seconds": 1.9,
        "prompt_tokens": 610,
        "completion_tokens": 31,
        "seed": None,
        "phase": "before",
        "exposure": "unseen",
    }
    call.update(extra)
    return call


def _sample() -> dict[str, Any]:
    spread = {
        "fact_accuracy": {"mean": 0.9, "std": 0.03, "min": 0.86, "max": 0.94},
        "contract_compliance": None,
    }
    return {
        "project": "contract-review",
        "created_at": "2026-11-25T01:00:00+00:00",
        "ragtune_version": "0.1.0",
        "base_model": {"name": "SmolLM2-135M-Instruct", "sha256": "ab12cd34"},
        "knowledge_snapshot": 1,
        "eval": {
            "files": ["eval/templates.jsonl", "eval/changed.jsonl", "eval/clauses.jsonl"],
            "items": 36,
            "by_capability": {"templates": 24, "risk_flags": 12},
        },
        "settings": {
            "max_tokens": 80,
            "temperature": 0.0,
            "seeds": [0, 1, 2],
            "train_steps": None,
            "max_items": None,
        },
        "split": {
            "seed": 0,
            "share": 0.5,
            "by_capability": {
                "templates": {"train": 13, "held_out": 11},
                "risk_flags": {"train": 7, "held_out": 5},
            },
        },
        "estimate": {
            "seconds": 1404.0,
            "adapters": 3,
            "steps": 288,
            "seconds_per_step": 3.0,
            "step_measured": False,
            "calls": 236,
            "seconds_per_call": 2.3,
        },
        "arms": [
            _arm("zero-shot", 0.31, 0.0, 2.1, 412.5, 0.27),
            _arm("few-shot", 0.44, 0.5, 2.4, 980.0, 0.61),
            _arm("RAG", 0.92, None, 1.234, 1510.0, 0.0123, spread=spread),
            _arm("LoRA", 0.58, 0.75, None, 400.0, None),
            _arm("RAG+LoRA", 0.875, 1.0, 1.5, 1500.0, 0.95),
        ],
        "adapters": [
            {
                "name": "lab-templates-lora",
                "capability": "templates",
                "arm": "LoRA",
                "context": False,
                "steps": 120,
                "seconds": 95.3,
                "source": "lab",
                "inputs": 13,
            }
        ],
        "drift": {
            "change_set": "changes",
            "documents": ["knowledge/nda.md", "knowledge/msa.md"],
            "questions": 8,
            "resync_seconds": 0.42,
            "reembedded": 6,
            "retrain_seconds": 96.0,
            "arms": [
                _drift_arm("zero-shot", 0.1, 0.1, 0.0, None),
                _drift_arm("few-shot", 0.2, 0.2, 0.0, None),
                _drift_arm("RAG", 0.9, 0.875, 0.0, 0.42),
                _drift_arm("LoRA", 0.85, 0.05, 0.625, None),
                _drift_arm("RAG+LoRA", 0.9, None, None, None),
            ],
            "retrained": {
                "name": "LoRA (retrained)",
                "fact_accuracy": 0.75,
                "stale_share": 0.25,
                "seconds": 96.0,
            },
        },
        "verdicts": [
            {
                "capability": "templates",
                "decision": "retrieval",
                "arm": "RAG",
                "best": "RAG",
                "metric": "fact accuracy after the change on unseen questions",
                "scores": {"RAG": 0.92, "LoRA": 0.31},
                "unranked": [],
                "agrees": True,
                "text": "the audit chose retrieval for `templates`; the lab agrees: RAG 0.92 "
                "against LoRA 0.31 after the change",
            },
            {
                "capability": "risk_flags",
                "decision": "lora",
                "arm": "few-shot",
                "best": "few-shot",
                "metric": "contract compliance on unseen questions",
                "scores": {"few-shot": 0.5},
                "unranked": [],
                "agrees": False,
                "text": "the audit chose lora for `risk_flags`; the lab disagrees: few-shot "
                "complies as often",
            },
        ],
        "calls": [
            _call("RAG", "The NDA runs for two (2) years " + "and then some " * 30),
            _call("LoRA", HOSTILE, fact_score=0.0, stale=True, phase="after"),
            _call("few-shot", "{}", capability="risk_flags", contract_ok=False, fact_score=None),
        ],
    }


def _all_null(data: dict[str, Any]) -> dict[str, Any]:
    """Every metric, time and count in ``data`` set to None, the shape kept."""
    keep = {"name", "project", "text", "capability", "arm", "phase", "where", "input", "answer"}

    def blank(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: blank(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v, key) for v in value]
        if key in keep or isinstance(value, str):
            return value
        return None

    out = blank(data)
    assert out["arms"][2]["fact_accuracy"] is None
    return out


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    return _sample()


@pytest.fixture(scope="module")
def markdown(sample: dict[str, Any]) -> str:
    return render_markdown(sample)


@pytest.fixture(scope="module")
def html(sample: dict[str, Any]) -> str:
    return render_html(sample)


def _md_section(markdown: str, title: str) -> str:
    """The Markdown under ``## title``, up to the next second-level heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def _md_rows(section: str) -> dict[str, list[str]]:
    """Table rows of a Markdown section by their first cell (the header row included)."""
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0]] = cells[1:]
    return rows


# -- Markdown -------------------------------------------------------------------------------------


def test_markdown_title_summary_and_verdicts(markdown: str) -> None:
    assert markdown.startswith("# ragtune lab: contract-review\n")
    summary = _md_section(markdown, "Summary").strip()
    assert "\n" not in summary  # one paragraph
    assert "RAG scored the most facts (92%)" in summary
    assert "RAG cost least ($0.0123 per 1,000 calls)" in summary
    assert "agrees with the audit on 1 of 2 capabilities" in summary
    verdicts = _md_section(markdown, "Verdicts")
    assert (
        "- the audit chose retrieval for `templates`; the lab agrees: RAG 0.92 against LoRA "
        "0.31 after the change (agrees)" in verdicts
    )
    assert "few-shot complies as often (disagrees)" in verdicts


def test_markdown_arms_table_formats_every_column(markdown: str) -> None:
    rows = _md_rows(_md_section(markdown, "Arms"))
    assert list(rows) == ["arm", *ARMS]
    header = rows["arm"]
    assert header[:4] == ["fact accuracy (unseen)", "fact accuracy over seeds", "seen", "rephrased"]
    assert rows["zero-shot"] == [
        "31%", "n/a", "—", "—", "0%", "n/a", "2.10 s", "412", "$0.2700",
    ]  # fmt: skip
    assert rows["RAG"] == [
        "92%", "± 3% (86%-94%)", "—", "—", "n/a", "n/a", "1.23 s", "1,510", "$0.0123",
    ]  # fmt: skip
    # An arm that serves an adapter has its seen and rephrased scores beside, with their items.
    assert rows["LoRA"][:4] == ["58%", "n/a", "100% (2)", "33% (3)"]
    # Nulls show as n/a, never as "None" or a crash.
    assert rows["LoRA"][header.index("p50 latency")] == "n/a"
    assert rows["LoRA"][header.index("USD / 1k calls")] == "n/a"
    assert "None" not in markdown
    assert not re.search(r"\bnan\b", markdown, re.I)


def test_an_adapter_that_does_not_say_what_it_trained_on_shows_unknown(
    sample: dict[str, Any],
) -> None:
    data = copy.deepcopy(sample)
    data["arms"][3] |= {"seen_known": False, "seen": None, "rephrased": None}
    data["adapters"][0]["inputs"] = None
    markdown = render_markdown(data)
    assert _md_rows(_md_section(markdown, "Arms"))["LoRA"][2:4] == ["unknown", "unknown"]
    assert _md_rows(_md_section(markdown, "Adapters"))["lab-templates-lora"][4] == "unknown"


def test_markdown_per_capability_table(markdown: str) -> None:
    section, setup = _md_section(markdown, "By capability").split("### How each arm served")
    rows = _md_rows(section)
    assert rows["arm"] == ["templates (24 items)", "risk_flags (12 items)"]
    assert rows["few-shot"] == ["44% / n/a", "22% / 50%"]
    assert rows["RAG+LoRA"] == [
        "88% / n/a; seen 100% (2), rephrased 33% (3)",
        "44% / 100%; seen n/a",
    ]
    assert rows["LoRA"][1] == "29% / 75%; seen n/a"
    # The setup table below it says how each arm served each capability.
    assert _md_rows(setup)["RAG"] == [
        "RAG: the capability's instructions",
        "RAG: the JSON contract",
    ]


def test_markdown_drift_section(markdown: str) -> None:
    drift = _md_section(markdown, "Drift")
    assert "- change set: `changes`" in drift
    assert "`knowledge/nda.md`, `knowledge/msa.md`" in drift
    assert "- questions changed: 8" in drift
    assert "re-sync 0.42 s against retraining 96.00 s (re-sync about 229× faster)" in drift
    rows = _md_rows(drift)
    assert rows["arm"] == [
        "accuracy before", "accuracy after", "after: unseen / seen", "stale share",
        "time to correct",
    ]  # fmt: skip
    assert rows["RAG"] == ["90%", "88%", "—", "0%", "0.42 s"]
    assert rows["LoRA"] == ["85%", "5%", "5% / 100%", "62%", "not corrected"]
    assert rows["zero-shot"][4] == "not corrected"
    assert rows["RAG+LoRA"] == ["90%", "n/a", "n/a / n/a", "n/a", "n/a"]  # not measured after
    assert "- LoRA (retrained): fact accuracy 75%, stale share 25%, retrained in 96.00 s." in drift


def test_markdown_adapters_and_settings(markdown: str) -> None:
    adapters = _md_rows(_md_section(markdown, "Adapters"))
    assert adapters["lab-templates-lora"] == [
        "templates",
        "LoRA",
        "trained by the lab",
        "no",
        "13",
        "120",
        "95.30 s",
    ]
    settings = _md_section(markdown, "Settings")
    for line in (
        "- base model: SmolLM2-135M-Instruct (sha256 `ab12cd34`)",
        "- eval items: 36 (templates 24, risk_flags 12)",
        "- eval files: `eval/templates.jsonl`, `eval/changed.jsonl`, `eval/clauses.jsonl`",
        "- max tokens: 80",
        "- seeds: 0, 1, 2",
        "- train steps: default",
        "- max items: all",
        "- split: seed 0, 50% of the lines held out",
        "- lines: templates 13 train / 11 held out, risk_flags 7 train / 5 held out",
    ):
        assert line in settings
    assert "- estimate before the run: estimate: about 23 min (3 adapters to train" in settings
    assert "an estimate, not a measurement" in settings


def test_markdown_without_drift_or_spread(sample: dict[str, Any]) -> None:
    data = copy.deepcopy(sample)
    data["drift"] = None
    for arm in data["arms"]:
        arm["spread"] = None
    markdown = render_markdown(data)
    assert "## Drift" not in markdown
    assert "no drift test" in _md_section(markdown, "Summary")
    header = _md_rows(_md_section(markdown, "Arms"))["arm"]
    assert "fact accuracy over seeds" not in header
    assert len(header) == 7


def test_markdown_escapes_pipes_in_cells(sample: dict[str, Any]) -> None:
    data = copy.deepcopy(sample)
    data["arms"][0]["name"] = "zero|shot"
    table = _md_section(render_markdown(data), "Arms")
    assert "zero\\|shot" in table
    rows = [row for row in table.strip().splitlines() if row.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
    assert len(widths) == 1


# -- HTML -----------------------------------------------------------------------------------------


def test_html_is_self_contained_with_two_charts(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("link") is None
    assert soup.find("script") is None
    assert soup.find("style") is not None
    for tag in soup.find_all(True):
        for attr in ("src", "href", "xlink:href"):
            value = tag.get(attr)
            if value is not None:
                assert not re.match(r"^\s*(https?:)?//", str(value)), (tag.name, attr, value)
    assert "@import" not in html
    assert "url(http" not in html
    charts = soup.find_all("svg")
    assert [svg["aria-label"] for svg in charts] == [
        "Fact accuracy per arm",
        "Cost against accuracy",
    ]
    ids = [tag["id"] for tag in soup.find_all(id=True)]
    assert len(ids) == len(set(ids))


def test_html_accuracy_chart_shows_the_drift_and_compliance(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    chart = soup.select_one("figure.accuracy svg")
    assert chart is not None
    text = chart.get_text(" ")
    for name in ARMS:
        assert name in text
    assert "changed questions, before the change" in text
    assert "changed questions, after the change" in text
    # Unseen, seen and rephrased side by side: the seen bars only for the adapter arms.
    assert "unseen questions" in text and "seen: the adapter trained on them" in text
    assert "seen, rephrased" in text and "33%" in text
    assert "Contract compliance" in text
    assert "92%" in text  # the bar labels
    assert "n/a" in text  # RAG+LoRA after the change, RAG's compliance


def test_html_cost_chart_labels_each_point(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    chart = soup.select_one("figure.cost svg")
    assert chart is not None
    labels = [t.get_text() for t in chart.find_all("text")]
    # LoRA has no cost: it has no point; every other arm has one, named.
    for name in ("zero-shot", "few-shot", "RAG", "RAG+LoRA"):
        assert name in labels
    assert "LoRA" not in labels
    assert "USD per 1,000 calls" in labels


def test_html_without_drift_has_no_drift_series(sample: dict[str, Any]) -> None:
    data = copy.deepcopy(sample)
    data["drift"] = None
    soup = BeautifulSoup(render_html(data), "html.parser")
    assert soup.select_one("section#drift") is None
    assert "after the change" not in soup.select_one("figure.accuracy svg").get_text(" ")
    assert len(soup.find_all("svg")) == 2


def test_html_shows_what_the_markdown_shows(html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    assert soup.title.get_text() == "ragtune lab: contract-review"
    arms = soup.select_one("section#arms table")
    rows = {r.td.get_text(): [td.get_text() for td in r.find_all("td")] for r in arms.tbody("tr")}
    assert rows["zero-shot"][-1] == "$0.2700"
    assert rows["RAG"][1:3] == ["92%", "± 3% (86%-94%)"]
    verdicts = soup.select("ul.verdicts li")
    assert [li.select_one(".badge").get_text() for li in verdicts] == ["agrees", "disagrees"]
    assert verdicts[0].code.get_text() == "templates"  # Markdown code spans become <code>
    drift = soup.select_one("section#drift")
    assert "not corrected" in drift.get_text()
    assert "62%" in drift.get_text()
    assert "LoRA (retrained): fact accuracy 75%" in drift.get_text()
    assert "lab-templates-lora" in soup.select_one("section#adapters").get_text()
    assert "SmolLM2-135M-Instruct" in soup.select_one("section#settings").get_text()


def test_html_details_table_has_every_call_clipped(sample: dict[str, Any], html: str) -> None:
    soup = BeautifulSoup(html, "html.parser")
    details = soup.select_one("section#calls details")
    assert details is not None
    assert "Every call (3)" in details.summary.get_text()
    table = details.find("table")
    headers = [th.get_text() for th in table.thead("th")]
    assert headers[:7] == ["arm", "capability", "phase", "item", "where", "input", "answer"]
    rows = [[td.get_text() for td in tr("td")] for tr in table.tbody("tr")]
    assert [r[0] for r in rows] == [c["arm"] for c in sample["calls"]]
    first = dict(zip(headers, rows[0], strict=True))
    assert len(first["input"]) <= 120 and first["input"].endswith("…")
    assert len(first["answer"]) <= 200 and first["answer"].startswith("The NDA runs for two")
    assert first["fact score"] == "1.00"
    assert first["time"] == "1.90 s"
    second = dict(zip(headers, rows[1], strict=True))
    assert (second["stale"], second["phase"]) == ("yes", "after")
    third = dict(zip(headers, rows[2], strict=True))
    assert (third["contract ok"], third["fact score"]) == ("no", "n/a")


def test_html_escapes_user_text(sample: dict[str, Any], html: str) -> None:
    # The answer holding a <script> is shown as text, not run.
    assert HOSTILE not in html
    assert "&lt;script&gt;" in html
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("script") is None
    assert HOSTILE in soup.select_one("section#calls").get_text()
    # The same for text that reaches headings, verdicts and the charts' labels.
    data = copy.deepcopy(sample)
    data["project"] = "<b>bold</b>"
    data["verdicts"][0]["text"] = "`<i>x</i>` and <img src=x>"
    data["arms"][0]["name"] = "<svg onload=alert(1)>"
    soup = BeautifulSoup(render_html(data), "html.parser")
    assert soup.find("b") is None and soup.find("i") is None and soup.find("img") is None
    assert len(soup.find_all("svg")) == 2
    assert soup.title.get_text() == "ragtune lab: <b>bold</b>"
    assert "<img src=x>" in soup.select_one("ul.verdicts").get_text()


# -- nulls ----------------------------------------------------------------------------------------


def test_every_metric_null_renders(sample: dict[str, Any], tmp_path: Path) -> None:
    data = _all_null(sample)
    markdown = render_markdown(data)
    rows = _md_rows(_md_section(markdown, "Arms"))
    assert rows["RAG"] == ["n/a", "n/a", "—", "—"] + ["n/a"] * 5
    assert "No arm has a fact accuracy on unseen questions." in markdown
    assert _md_rows(_md_section(markdown, "Drift"))["RAG"] == ["n/a", "n/a", "—", "n/a", "n/a"]
    html = render_html(data)
    soup = BeautifulSoup(html, "html.parser")
    assert len(soup.find_all("svg")) == 2
    assert "no arm has both a cost and a fact accuracy" in soup.select_one("figure.cost").get_text()
    paths = write_reports(data, tmp_path)
    # lab.json holds what the typed result read from it: every null stays null.
    written = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert written == LabResult.from_dict(data).to_dict()
    assert written["arms"][2]["fact_accuracy"] is None
    assert written["drift"]["arms"][2]["time_to_correct_s"] is None


def test_empty_lab_renders() -> None:
    keys = ("project", "created_at", "ragtune_version", "base_model", "knowledge_snapshot")
    data: dict[str, Any] = {k: None for k in keys}
    data |= {"eval": None, "settings": None, "arms": [], "adapters": [], "drift": None}
    data |= {"verdicts": [], "calls": []}
    assert "No verdicts." in render_markdown(data)
    assert render_html(data).count("<svg") == 2


# -- files ----------------------------------------------------------------------------------------


def test_write_reports_writes_three_files(sample: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "lab" / "run-1"
    paths = write_reports(sample, folder)
    assert paths == {
        "markdown": folder / "lab.md",
        "html": folder / "lab.html",
        "json": folder / "lab.json",
    }
    assert sorted(p.name for p in folder.iterdir()) == ["lab.html", "lab.json", "lab.md"]
    assert paths["markdown"].read_text(encoding="utf-8") == render_markdown(sample)
    assert paths["html"].read_text(encoding="utf-8") == render_html(sample)
    text = paths["json"].read_text(encoding="utf-8")
    assert json.loads(text) == sample
    assert text.startswith('{\n  "project": "contract-review"')  # indent=2
    write_reports(sample, folder)  # overwriting leaves no temporary file behind
    assert sorted(p.name for p in folder.iterdir()) == ["lab.html", "lab.json", "lab.md"]


def test_write_reports_renders_before_writing(
    sample: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ragtune.lab.report as report

    (tmp_path / "lab.md").write_text("old\n", encoding="utf-8")

    def broken(data: dict[str, Any]) -> str:
        raise RuntimeError("chart failed")

    monkeypatch.setattr(report, "render_html", broken)
    with pytest.raises(RuntimeError, match="chart failed"):
        report.write_reports(sample, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["lab.md"]
    assert (tmp_path / "lab.md").read_text(encoding="utf-8") == "old\n"


def test_markdown_does_not_import_matplotlib() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from test_lab_report import _sample
        from ragtune.lab import report
        report.render_markdown(_sample())
        assert "matplotlib" not in sys.modules, "imported by the Markdown report"
        report.render_html(_sample())
        assert "matplotlib" in sys.modules, "the check above would pass vacuously"
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_summary_ranks_unseen_scores_and_never_a_seen_one(sample: dict[str, Any]) -> None:
    """An arm that answered every question it trained on (seen 100%) but had no unseen
    question is not ranked, even above the best unseen score; the summary says why."""
    data = copy.deepcopy(sample)
    lora = data["arms"][3]
    lora |= {"fact_accuracy": None, "items": 0}
    lora["seen"] = {"items": 8, "fact_accuracy": 1.0, "contract_compliance": None}
    summary = _md_section(render_markdown(data), "Summary")
    assert "On questions no adapter trained on, RAG scored the most facts (92%)" in summary
    left_out = "LoRA had no unseen question (only ones its adapter trained on), so it is not ranked"
    assert left_out in summary
    assert "LoRA 100%" in summary and "(memorisation, not ranked)" in summary
    assert "LoRA scored the most" not in summary

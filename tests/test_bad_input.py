"""Bad input through the CLI: a clear error or a skip where a traceback came before.

Each test here failed before its fix (issue 16, items 4 and 5): a deeply nested ragtune.yaml, a
YAML value its constructor cannot read, a source that names a folder outside the project, an
HTML file of 50,000 nested ``<div>``, a document over the size limit, bad lines in an examples
file that ``audit`` and ``plan`` did not mention. The property-based search for more of the same
is ``test_properties.py``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.errors import ProjectError
from ragtune.knowledge.sources import discover
from ragtune.project import MAX_NESTING, load_project

runner = CliRunner()

PROJECT = """
version: 1
project: bad-input
capabilities:
  - name: terms
    description: Answer questions about our current terms.
    sources: [docs/]
knowledge:
  embedder: hashing
"""


def project(tmp_path: Path, text: str = PROJECT, **files: str | bytes) -> Path:
    """A project folder: ragtune.yaml and ``files`` (``docs__a_md`` is ``docs/a.md``)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ragtune.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    for name, content in files.items():
        path = tmp_path / name.replace("__", "/").replace("_", ".")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return tmp_path


# -- ragtune.yaml ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nesting",
    ["[" * 4000 + "]" * 4000, "{a: " * 5000 + "}" * 5000],
    ids=["4000-sequences", "5000-mappings"],
)
def test_deeply_nested_project_file_is_a_clear_error(tmp_path: Path, nesting: str) -> None:
    folder = project(tmp_path, PROJECT + "prices: " + nesting + "\n")
    result = runner.invoke(app, ["audit", str(folder)])
    assert result.exit_code == 2, result.output
    assert "RecursionError" not in result.output and "Traceback" not in result.output
    assert "ragtune.yaml, line 9" in result.output  # the prices: line
    assert f"nested more than {MAX_NESTING} levels deep" in result.output


def test_reasonable_nesting_still_loads(tmp_path: Path) -> None:
    folder = project(tmp_path, PROJECT + "model:\n  models: {base: smol}\n", docs__a_md="# A\n")
    assert load_project(folder).config.model.models == {"base": "smol"}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!int abc", "cannot read 'abc' as int"),
        ("2024-02-30", "cannot read '2024-02-30' as timestamp (day is out of range"),
        ("!!float abc", "cannot read 'abc' as float"),
        ("9" * 5000, "as int (Exceeds the limit"),
    ],
)
def test_yaml_value_that_cannot_be_read_names_its_line(
    tmp_path: Path, value: str, shown: str
) -> None:
    folder = project(tmp_path, PROJECT + f"horizon_months: {value}\n", docs__a_md="# A\n")
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert "ragtune.yaml, line 9, column 17" in str(caught.value)
    assert shown in str(caught.value)


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ('"a\\0b"', "holds a NUL character"),
        ("a" * 300, "which does not exist"),
    ],
    ids=["nul", "name-too-long"],
)
def test_source_no_file_can_have_is_refused_by_name(
    tmp_path: Path, source: str, shown: str
) -> None:
    folder = project(tmp_path, PROJECT.replace("sources: [docs/]", f"sources: [{source}]"))
    result = runner.invoke(app, ["audit", str(folder)])
    assert result.exit_code == 2, result.output
    assert "ragtune.yaml, line 6" in result.output and shown in result.output


def test_source_outside_the_project_is_skipped_without_walking_it(tmp_path: Path) -> None:
    """``sources: [/]`` walked the whole file system (and died on /proc) before skipping it."""
    folder = project(
        tmp_path / "p",
        PROJECT.replace("sources: [docs/]", 'sources: [docs/, "/", "/etc/*.conf", "../.."]'),
        docs__a_md="# A\n\nThe notice period is 30 days.\n",
    )
    result = runner.invoke(app, ["knowledge", "sync", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == ["docs/a.md"]
    reasons = " ".join(item["reason"] for item in summary["skipped"])
    for ref in ("/", "/etc/*.conf", "../.."):
        assert f"the source {ref!r} names a folder outside the project folder" in reasons


def test_glob_over_links_that_loop_answers_at_once(tmp_path: Path) -> None:
    """glob.glob followed linked folders: two links to "." made ``docs/**/*.md`` search about
    2^800 paths (a sync that never ends); ``**/../**`` climbed out of the project."""
    folder = project(
        tmp_path / "p",
        PROJECT.replace("sources: [docs/]", 'sources: ["docs/**/*.md", "docs/*"]'),
        docs__a_md="# A\n\nThe notice period is 30 days.\n",
        docs__sub__b_md="# B\n\nThe fee is 40 EUR.\n",
    )
    (folder / "docs" / "loop1").symlink_to(".", target_is_directory=True)
    (folder / "docs" / "sub" / "loop2").symlink_to("..", target_is_directory=True)
    (tmp_path / "outside.md").write_text("# Outside\n\nNot the project's.\n")
    result = runner.invoke(app, ["knowledge", "sync", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == ["docs/a.md", "docs/sub/b.md"]
    assert discover(folder, ["**/../**", "docs/**/../../*.md"]).files == []


# -- documents ------------------------------------------------------------------------------------


def test_html_of_50000_nested_divs_does_not_stop_the_sync(tmp_path: Path) -> None:
    """The HTML reader recursed once a level: 50,000 nested <div> aborted the whole sync."""
    deep = "<html><body>" + "<div>" * 50_000 + "The fee is 40 EUR." + "</div>" * 50_000
    folder = project(
        tmp_path,
        docs__deep_html=deep + "</body></html>",
        docs__a_md="# A\n\nThe notice period is 30 days.\n",
    )
    result = runner.invoke(app, ["knowledge", "sync", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == ["docs/a.md", "docs/deep.html"]
    assert summary["skipped"] == []


def test_document_over_the_size_limit_is_skipped_by_name_and_size(tmp_path: Path) -> None:
    folder = project(
        tmp_path,
        PROJECT + "  max_document_mb: 0.001\n",  # 1,000 bytes
        docs__big_txt="The notice period is 30 days.\n\n" * 200,  # 6,200 bytes
        docs__rates_csv="kind,fee\nnda,40\n",
        docs__a_md="# A\n\nThe notice period is 30 days.\n",
    )
    (folder / "docs" / "huge.csv").write_text(
        "kind,fee\n" + "".join(f"k{i},1\n" for i in range(400))
    )
    why = "too large to index: 6,200 bytes, over the limit of 1,000 bytes"

    plan = runner.invoke(app, ["plan", str(folder)])
    assert plan.exit_code == 0, plan.output
    assert f"will skip docs/big.txt: {why}" in " ".join(plan.output.split())

    result = runner.invoke(app, ["knowledge", "sync", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == ["docs/a.md", "docs/rates.csv"]
    skipped = {item["path"]: item["reason"] for item in summary["skipped"]}
    assert skipped["docs/big.txt"].startswith(why)
    assert "(knowledge.max_document_mb in ragtune.yaml)" in skipped["docs/big.txt"]
    assert skipped["docs/huge.csv"].startswith("too large to index: 2,699 bytes")  # tables too


def test_size_limit_default_and_bounds(tmp_path: Path) -> None:
    folder = project(tmp_path, docs__a_md="# A\n")
    assert load_project(folder).config.knowledge.max_document_mb == 5.0
    assert load_project(folder).config.knowledge.max_document_bytes == 5_000_000
    project(tmp_path, PROJECT + "  max_document_mb: 0\n")
    with pytest.raises(
        ProjectError, match=r"line 9: `knowledge.max_document_mb`: .*greater than 0"
    ):
        load_project(folder)


def test_a_large_document_shows_progress_while_read_and_while_embedded(tmp_path: Path) -> None:
    """One large file used to be read, chunked and embedded in one silent call: no progress
    until all of it was done. Now it is named while read and reported after each batch."""
    from ragtune.knowledge.base import KnowledgeBase
    from ragtune.knowledge.sync import EMBED_BATCH

    clauses = "\n\n".join(
        f"{n}. Clause {n}. The party shall give notice of a breach within {n} days of finding it, "
        "in writing, to the address in the schedule, with what it knows of the breach so far."
        for n in range(1, EMBED_BATCH + 200)
    )
    folder = project(tmp_path, docs__big_txt=clauses, docs__a_md="# A\n\nShort.\n")
    calls: list[tuple[int, int, str]] = []
    kb = KnowledgeBase(load_project(folder))
    try:
        result = kb.sync(lambda done, total, document: calls.append((done, total, document)))
    finally:
        kb.close()
    assert result.embedded > EMBED_BATCH
    assert (0, 0, "docs/big.txt") in calls  # named before it is read and chunked
    during = [c for c in calls if c[2] == "docs/big.txt" and 0 < c[0] < c[1]]
    assert during, calls  # and reported before all of it is embedded
    assert calls[-1][0] == calls[-1][1] == result.embedded


# -- examples files -------------------------------------------------------------------------------

FEW_SHOT = """
version: 1
project: bad-input
capabilities:
  - name: summary
    description: Summarise one clause in two lines for a business reader.
    kind: behavior
    changes_within_6_months: false
    shown_by_examples: true
    examples: behavior/summary.jsonl
"""
GOOD_LINE = '{"input": "The fee is 40 EUR.", "output": "Summary: a fee.\\nWatch: 40 EUR."}'


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"input": "x", "output": ', "line 3: invalid JSON at column 26 (Expecting value)"),
        ("[1, 2]", 'line 3: expected a JSON object like {"input": ..., "output": ...}'),
        ("[" * 5000 + "]" * 5000, "line 3: nested too deeply to read"),
        ('{"input": "a\\ud800", "output": "b"}', "line 3: `input` holds a lone surrogate \\ud800"),
    ],
    ids=["truncated", "array", "nested", "surrogate"],
)
def test_bad_example_lines_are_named_by_audit_plan_and_adapter_train(
    tmp_path: Path, line: str, problem: str
) -> None:
    """`adapter train` named bad lines; `audit` and `plan` said nothing and exited 0 (and a
    nested or surrogate line crashed the reader itself). Now all three name the file and line:
    the audit as a warning (its decision reads the lines that parse; exit 1 under --fail-on
    warning), `plan` and `adapter train` as the error (exit 2) that training and few-shot
    serving would meet."""
    lines = "\n".join([GOOD_LINE, GOOD_LINE, line, GOOD_LINE]) + "\n"
    folder = project(tmp_path, FEW_SHOT, behavior__summary_jsonl=lines)
    where = f"behavior/summary.jsonl, {problem}"

    audit = runner.invoke(app, ["audit", str(folder)])
    assert audit.exit_code == 0, audit.output
    assert where in " ".join(audit.output.replace("│", " ").split())
    assert runner.invoke(app, ["audit", str(folder), "--fail-on", "warning"]).exit_code == 1
    report = json.loads(runner.invoke(app, ["audit", str(folder), "--json"]).stdout)
    (warning,) = report["capabilities"][0]["warnings"]
    assert warning["code"] == "bad-examples" and where in warning["message"]

    for command in (["plan", str(folder)], ["adapter", "train", "summary", "-p", str(folder)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"error: {where}" in " ".join(result.output.split()), (command, result.output)
        assert "Traceback" not in result.output


def test_good_examples_raise_no_audit_warning_and_plan_normally(tmp_path: Path) -> None:
    folder = project(tmp_path, FEW_SHOT, behavior__summary_jsonl=GOOD_LINE + "\n" + GOOD_LINE)
    report = json.loads(runner.invoke(app, ["audit", str(folder), "--json"]).stdout)
    assert report["capabilities"][0]["decision"] == "few-shot"
    assert report["capabilities"][0]["warnings"] == []
    assert runner.invoke(app, ["plan", str(folder)]).exit_code == 0

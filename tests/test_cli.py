"""The command line through Typer's runner: exit codes, output, files written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ragtune import __version__
from ragtune.cli import app
from ragtune.project import load_project

runner = CliRunner()

PROJECT = """
version: 1
project: cli
capabilities:
  - name: prices
    description: Quote our current prices, which finance updates quarterly.
    current_approach: fine-tune
    calls_per_month: 20000
  - name: dates
    description: Convert dates to ISO 8601; one example shows it.
"""
CLEAN = """
version: 1
project: clean
capabilities:
  - name: dates
    description: Convert dates to ISO 8601; one example shows it.
"""


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ragtune {__version__}"


def test_help_teaches() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("audit", "init", "schema", "demo"):
        assert command in result.output
    audit_help = runner.invoke(app, ["audit", "--help"])
    assert audit_help.exit_code == 0
    assert "--fail-on" in audit_help.output and "measured" in audit_help.output


def test_audit_table(write_project: Callable[..., Path]) -> None:
    result = runner.invoke(app, ["audit", str(write_project(PROJECT))])
    assert result.exit_code == 0, result.output
    assert "prices" in result.output and "retrieval" in result.output
    assert "few-shot" in result.output


def test_audit_json_shape(write_project: Callable[..., Path]) -> None:
    result = runner.invoke(app, ["audit", str(write_project(PROJECT)), "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["project"] == "cli"
    first = data["capabilities"][0]
    assert (first["name"], first["decision"]) == ("prices", "retrieval")
    assert set(first["path"][0]) == {"question", "answer", "source", "confidence", "reason"}
    assert {w["code"] for w in first["warnings"]} >= {"finetune-changing-knowledge"}
    assert "strategies" in first["cost"] and "strategies" in data["portfolio"]
    short = runner.invoke(app, ["audit", str(write_project(PROJECT)), "--json"])
    assert json.loads(short.stdout)["capabilities"][0]["decision"] == "retrieval"


def test_project_as_argument_or_with_p(write_project: Callable[..., Path], tmp_path: Path) -> None:
    """Every command takes the project the same way: `-p` works where it is an argument, and
    two different projects are refused."""
    folder = write_project(PROJECT)
    for command in (["audit"], ["plan"], ["knowledge", "sync"]):
        positional = runner.invoke(app, [*command, str(folder), "--json"])
        flagged = runner.invoke(app, [*command, "-p", str(folder), "--json"])
        assert positional.exit_code == flagged.exit_code == 0, flagged.output
        first, second = json.loads(positional.stdout), json.loads(flagged.stdout)
        assert first.keys() == second.keys() and first.get("project") == second.get("project")
    both = runner.invoke(app, ["plan", str(folder), "--project", str(tmp_path / "other")])
    assert both.exit_code == 2 and "two projects given" in both.output


def test_audit_writes_markdown_and_html(write_project: Callable[..., Path], tmp_path: Path) -> None:
    folder = write_project(PROJECT)
    for fmt, name in (("markdown", "a.md"), ("html", "a.html")):
        out = tmp_path / name
        result = runner.invoke(app, ["audit", str(folder), "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "prices" in out.read_text()
    inferred = tmp_path / "b.json"
    assert runner.invoke(app, ["audit", str(folder), "--out", str(inferred)]).exit_code == 0
    assert json.loads(inferred.read_text())["project"] == "cli"


def test_fail_on_warning(write_project: Callable[..., Path], tmp_path: Path) -> None:
    warned = runner.invoke(app, ["audit", str(write_project(PROJECT)), "--fail-on", "warning"])
    assert warned.exit_code == 1
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    (clean_dir / "ragtune.yaml").write_text(CLEAN)
    clean = runner.invoke(app, ["audit", str(clean_dir), "--fail-on", "warning"])
    assert clean.exit_code == 0, clean.output
    bad = runner.invoke(app, ["audit", str(clean_dir), "--fail-on", "error"])
    assert bad.exit_code == 2 and "'warning'" in bad.output  # the choices are listed


def test_bad_input_exits_2_without_traceback(write_project: Callable[..., Path]) -> None:
    folder = write_project(PROJECT.replace("calls_per_month: 20000", "calls_per_mont: 20000"))
    result = runner.invoke(app, ["audit", str(folder)])
    assert result.exit_code == 2
    assert "did you mean `calls_per_month`?" in result.output.lower()
    assert "Traceback" not in result.output
    debug = runner.invoke(app, ["--debug", "audit", str(folder)])
    assert debug.exit_code != 0 and debug.exception is not None


def test_missing_project_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", str(tmp_path)])
    assert result.exit_code == 2
    assert "ragtune init" in result.output


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "capabilities" in schema["properties"]


def test_init_interactive_writes_a_valid_project(tmp_path: Path) -> None:
    answers = "\n".join(
        [
            "legal-bot",  # project name
            "Templates",  # capability name -> slug
            "Know the clauses of our NDA template.",
            "knowledge",
            "maybe",  # bad answer: asked again
            "yes",
            "no",
            "",  # shown by examples: skip
            "40,000",
            "fine-tune",
            "",
            "",
            "",
            "",
            "",  # blank name: finish
        ]
    )
    result = runner.invoke(app, ["init", str(tmp_path)], input=answers + "\n")
    assert result.exit_code == 0, result.output
    assert "answer one of yes, no" in result.output
    project = load_project(tmp_path)
    cap = project.config.capabilities[0]
    assert project.config.project == "legal-bot"
    assert (cap.name, cap.kind, cap.changes_within_6_months) == ("templates", "knowledge", True)
    assert (cap.accurate_in_12_months, cap.shown_by_examples) == (False, None)
    assert (cap.calls_per_month, cap.current_approach) == (40000, "fine-tune")
    assert "shown_by_examples" not in yaml.safe_load((tmp_path / "ragtune.yaml").read_text())
    again = runner.invoke(app, ["init", str(tmp_path)], input=answers + "\n")
    assert again.exit_code == 2 and "already exists" in again.output
    scripted = runner.invoke(
        app, ["init", str(tmp_path), "--force", "--json"], input=answers + "\n"
    )
    assert scripted.exit_code == 0, scripted.output
    # The questions went to stderr (the test runner echoes the typed answers to stdout).
    assert json.loads(scripted.stdout.splitlines()[-1]) == {
        "project_file": str(tmp_path / "ragtune.yaml"),
        "capabilities": ["templates"],
    }


def test_init_example_copies_the_contract_review_project(tmp_path: Path) -> None:
    dest = tmp_path / "cr"
    result = runner.invoke(app, ["init", "--example", "contract-review", str(dest)])
    assert result.exit_code == 0, result.output
    project = load_project(dest)
    assert project.config.project == "contract-review"
    other = runner.invoke(
        app, ["init", "--example", "contract-review", str(tmp_path / "cr2"), "--json"]
    )
    assert json.loads(other.stdout)["project_file"] == str(tmp_path / "cr2" / "ragtune.yaml")
    unknown = runner.invoke(app, ["init", "--example", "nope", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "contract-review" in unknown.output


def test_audit_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ragtune.cli import app\n"
        "from ragtune.examples import example_path\n"
        "r = CliRunner().invoke(app, ['audit', str(example_path('contract-review'))])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'sentence_transformers') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    bare = subprocess.run(
        [sys.executable, "-c", "import ragtune, sys; print('matplotlib' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert bare.stdout.strip() == "False"


def test_quiet_prints_only_errors_and_json(tmp_path: Path) -> None:
    from ragtune.cli.kit import console, state
    from ragtune.examples import copy_example

    folder = copy_example("contract-review", tmp_path / "cr")
    try:
        quiet = runner.invoke(app, ["-q", "audit", str(folder)])
        assert quiet.exit_code == 0 and quiet.output == ""
        scripted = runner.invoke(app, ["-q", "audit", str(folder), "--json"])
        assert json.loads(scripted.stdout)["project"] == "contract-review"
        bad = runner.invoke(app, ["-q", "audit", str(tmp_path / "none")])
        assert bad.exit_code == 2 and "no project file" in bad.output
    finally:
        state["quiet"] = False
        console.quiet = False
    assert runner.invoke(app, ["audit", str(folder)]).output  # and loud again without it


def test_the_libraries_own_tqdm_bars_stay_off() -> None:
    """transformers draws a tqdm bar of its own when it reads a GGUF file ("Converting and
    de-quantizing GGUF tensors"); the CLI turns tqdm's bars off unless the environment asks."""
    import os
    import subprocess
    import sys

    code = (
        "from ragtune.cli import quiet_libraries; quiet_libraries()\n"
        "from tqdm.auto import tqdm\n"
        "list(tqdm(range(3), desc='Converting tensors'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "Converting tensors" not in ran.stderr + ran.stdout
    bare = code.split("\n", 1)[1]  # without the CLI's settings the bar is drawn
    ran = subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True, env=env)
    assert "Converting tensors" in ran.stderr


def test_training_progress_reaches_a_log_file(capsys: pytest.CaptureFixture[str]) -> None:
    """Where stderr is not a terminal (a log, a CI job) the Rich bar shows nothing: a plain line
    every tenth of the steps says how far training is; --json and --quiet keep stderr empty."""
    from ragtune.cli.kit import training_bar

    with training_bar("risk_flags", quiet=False) as progress:
        for step in range(1, 61):
            progress(step, 60, 1.0 / step)
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert [line.split(",")[0] for line in lines] == [
        f"risk_flags: step {step}/60" for step in range(6, 61, 6)
    ]
    assert lines[-1].startswith("risk_flags: step 60/60, loss 0.017, 0:0")
    with training_bar("risk_flags", quiet=True) as progress:
        progress(60, 60, 0.5)
    assert not capsys.readouterr().err.strip()

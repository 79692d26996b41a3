"""ragtune.yaml: loading, and every kind of bad input named with its line, field and value."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.errors import ProjectError
from ragtune.project import (
    ProjectConfig,
    dump_project,
    load_project,
    project_json_schema,
)

GOOD = """
version: 1
project: demo
horizon_months: 6
prices:
  gpu_usd_per_hour: 3.0
capabilities:
  - name: templates
    description: Know the clauses of our current NDA template.
    kind: knowledge
    calls_per_month: 40000
  - name: flags
    description: Flag risky clauses in our JSON format.
"""


def test_good_project_loads_with_defaults_and_overrides(write_project: Callable[..., Path]) -> None:
    project = load_project(write_project(GOOD))
    assert project.config.project == "demo"
    assert project.config.horizon_months == 6
    assert project.config.prices.gpu_usd_per_hour == 3.0
    assert project.config.prices.engineer_usd_per_hour == 100.0
    assert [c.name for c in project.config.capabilities] == ["templates", "flags"]
    assert project.config.capabilities[1].kind is None
    assert project.state_dir == project.root / ".ragtune"


def test_file_argument_and_folder_argument_are_the_same(write_project: Callable[..., Path]) -> None:
    folder = write_project(GOOD)
    assert load_project(folder).path == load_project(folder / "ragtune.yaml").path


def test_dump_round_trips(write_project: Callable[..., Path], tmp_path: Path) -> None:
    config = load_project(write_project(GOOD)).config
    again = tmp_path / "again"
    again.mkdir()
    (again / "ragtune.yaml").write_text(dump_project(config))
    assert load_project(again).config == config


def _error(write_project: Callable[..., Path], text: str) -> str:
    with pytest.raises(ProjectError) as caught:
        load_project(write_project(text))
    return str(caught.value)


def test_yaml_syntax_error_names_line_and_column(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, "version: 1\nproject: [unclosed\ncapabilities: []\n")
    assert "YAML syntax error" in message
    assert "line 3, column" in message or "line 2, column" in message


def test_unknown_field_suggests_the_right_one(write_project: Callable[..., Path]) -> None:
    text = GOOD.replace("calls_per_month: 40000", "calls_per_mnth: 40000")
    message = _error(write_project, text)
    assert "unknown field `capabilities[0].calls_per_mnth`" in message
    assert "did you mean `calls_per_month`?" in message.lower()
    assert "line 10" in message


def test_unknown_price_is_checked_against_prices(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, GOOD.replace("gpu_usd_per_hour", "gpu_usd_per_hr"))
    assert "did you mean `gpu_usd_per_hour`?" in message.lower()


def test_wrong_type_names_field_and_value(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, GOOD.replace("calls_per_month: 40000", "calls_per_month: lots"))
    assert "`capabilities[0].calls_per_month`" in message
    assert '"lots"' in message
    assert "line 10" in message


def test_bad_choice_names_field_and_value(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, GOOD.replace("kind: knowledge", "kind: facts"))
    assert "`capabilities[0].kind`" in message and '"facts"' in message
    assert "knowledge" in message and "behavior" in message


def test_duplicate_names_are_refused(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, GOOD.replace("name: flags", "name: templates"))
    assert "'templates' is used twice" in message
    assert "line 11" in message


def test_missing_required_fields(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, "version: 1\ncapabilities:\n  - name: a\n")
    assert "`project` is required" in message
    assert "`capabilities[0].description` is required" in message


def test_wrong_version_and_empty_file(write_project: Callable[..., Path]) -> None:
    assert "`version`" in _error(write_project, GOOD.replace("version: 1", "version: 2"))
    assert "empty" in _error(write_project, "\n")
    assert "must be a mapping" in _error(write_project, "- a\n- b\n")


def test_missing_referenced_files_are_named(write_project: Callable[..., Path]) -> None:
    text = GOOD + "    examples: behavior/flags.jsonl\n    sources: [knowledge/]\n"
    message = _error(write_project, text)
    assert "`capabilities[1].examples`" in message and "'behavior/flags.jsonl'" in message
    assert "`capabilities[1].sources[0]`" in message and "'knowledge/'" in message


def test_referenced_files_that_exist_pass(write_project: Callable[..., Path]) -> None:
    folder = write_project(GOOD + "    examples: ex.jsonl\n    sources: ['docs/*.md']\n")
    (folder / "ex.jsonl").write_text('{"input": "a", "output": "b"}\n')
    (folder / "docs").mkdir()
    (folder / "docs" / "a.md").write_text("# A\n")
    assert load_project(folder).config.capabilities[1].examples == "ex.jsonl"


def test_no_project_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="ragtune init"):
        load_project(tmp_path)


def test_json_schema_describes_the_fields() -> None:
    schema = project_json_schema()
    json.dumps(schema)
    capability = schema["$defs"]["Capability"]["properties"]
    assert {"kind", "changes_within_6_months", "calls_per_month", "sources"} <= set(capability)
    assert "USD per GPU hour" in json.dumps(schema["$defs"]["Prices"])
    assert ProjectConfig.model_fields["horizon_months"].default == 12


def test_context_from_must_name_a_capability_with_sources(
    write_project: Callable[..., Path],
) -> None:
    text = GOOD + "    context_from: [templats]\n"
    message = _error(write_project, text)
    assert "capabilities[1].context_from" in message and "'templats'" in message
    assert "no capability has that name" in message
    message = _error(write_project, GOOD + "    context_from: [templates]\n")
    assert "it has no sources" in message
    with_sources = GOOD.replace("kind: knowledge", "kind: knowledge\n    sources: [docs/]")
    folder = write_project(with_sources + "    context_from: [templates]\n")
    (folder / "docs").mkdir()
    project = load_project(folder)
    assert project.config.capabilities[1].context_from == ["templates"]


def test_train_settings_are_checked_at_load(write_project: Callable[..., Path]) -> None:
    message = _error(write_project, GOOD + "    train: {epochs: 3, lerning_rate: 0.001}\n")
    assert "train.lerning_rate" in message and "did you mean `learning_rate`" in message
    message = _error(write_project, GOOD + "    train: {r: 0}\n")
    assert "train.r must be a whole number >= 1, got 0" in message
    project = load_project(write_project(GOOD + "    train: {epochs: 3}\n"))
    assert project.config.capabilities[1].train == {"epochs": 3}


def test_ragtune_project_names_the_default_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no project given, the commands take RAGTUNE_PROJECT before the current folder."""
    from typer.testing import CliRunner

    from ragtune.cli import app
    from ragtune.examples import copy_example

    folder = copy_example("contract-review", tmp_path / "cr")
    monkeypatch.chdir(tmp_path)  # no ragtune.yaml here
    assert CliRunner().invoke(app, ["plan", "--json"]).exit_code == 2
    monkeypatch.setenv("RAGTUNE_PROJECT", str(folder))
    planned = CliRunner().invoke(app, ["plan", "--json"])
    assert planned.exit_code == 0, planned.output
    assert json.loads(planned.stdout)["project"] == "contract-review"
    monkeypatch.setenv("RAGTUNE_PROJECT", str(tmp_path / "gone"))
    missing = CliRunner().invoke(app, ["audit"])
    assert missing.exit_code == 2 and "RAGTUNE_PROJECT=" in missing.output
    named = CliRunner().invoke(app, ["audit", str(folder), "--json"])  # an argument wins
    assert named.exit_code == 0, named.output


def test_a_server_setting_without_the_openai_backend_is_refused(
    write_project: Callable[..., Path],
) -> None:
    folder = write_project(
        """
        version: 1
        project: p
        model: {server: vllm}
        capabilities:
          - name: notes
            description: Answer questions about our notes.
            kind: knowledge
        """
    )
    with pytest.raises(ProjectError, match=r"model\.server: 'vllm'.*backend: openai"):
        load_project(folder)

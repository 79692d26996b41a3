"""``ragtune adapter train|list|show|rm`` through the CLI, on a copy of the example project."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.examples import copy_example

runner = CliRunner()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example("contract-review", tmp_path_factory.mktemp("adapters") / "cr")


def test_unknown_capability_and_missing_examples_exit_2(project: Path) -> None:
    unknown = runner.invoke(app, ["adapter", "train", "nope", "-p", str(project)])
    assert unknown.exit_code == 2 and "risk_flags" in unknown.output
    no_examples = runner.invoke(app, ["adapter", "train", "playbook", "-p", str(project)])
    assert no_examples.exit_code == 2 and "no examples file" in no_examples.output
    # templates has a reader: it trains on retrieved passages, so the store must be synced.
    unsynced = runner.invoke(app, ["adapter", "train", "templates", "-p", str(project)])
    assert unsynced.exit_code == 2 and "run `ragtune knowledge sync` first" in unsynced.output


def test_examples_that_teach_facts_are_refused_before_any_model_loads(project: Path) -> None:
    leaky = project / "behavior" / "leaky.jsonl"
    leaky.write_text(
        "".join(
            json.dumps(
                {
                    "input": f"What is the fee for matter {i}?",
                    "output": f"The fee is ${400 + i}, effective 2026-07-01.",
                }
            )
            + "\n"
            for i in range(12)
        )
    )
    config = project / "ragtune.yaml"
    original = config.read_text()
    config.write_text(
        original.replace(
            "examples: behavior/clause_summaries.jsonl", "examples: behavior/leaky.jsonl"
        )
    )
    try:
        result = runner.invoke(app, ["adapter", "train", "clause_summary", "-p", str(project)])
    finally:
        config.write_text(original)
    assert result.exit_code == 2
    assert "retrieval" in result.output and "--allow-knowledge" in result.output
    assert not (project / ".ragtune" / "models").exists(), "refused before loading the model"


@pytest.mark.slow
def test_train_list_show_rm(project: Path) -> None:
    trained = runner.invoke(
        app,
        ["adapter", "train", "clause_summary", "-p", str(project), "--steps", "2",
         "--batch-size", "2", "--max-length", "128", "--eval-tokens", "0", "--json"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["steps"] == 2 and summary["capability"] == "clause_summary"
    folder = Path(summary["path"])
    assert (folder / "adapter_model.safetensors").is_file()
    listed = json.loads(
        runner.invoke(app, ["adapter", "list", "-p", str(project), "--json"]).stdout
    )
    assert [a["name"] for a in listed] == ["clause_summary"]
    shown = runner.invoke(app, ["adapter", "show", "clause_summary", "-p", str(project), "--json"])
    manifest = json.loads(shown.stdout)
    assert len(manifest["base_model"]["sha256"]) == 64
    told = runner.invoke(app, ["adapter", "show", "clause_summary", "-p", str(project)])
    assert told.exit_code == 0, told.output
    assert f"({manifest['base_model']['sha256'][:12]})" in told.output
    assert "2 steps" in told.output and "adapter.gguf" in told.output
    missing = runner.invoke(app, ["adapter", "show", "clause_sumary", "-p", str(project)])
    assert missing.exit_code == 2 and "clause_summary" in missing.output
    removed = runner.invoke(app, ["adapter", "rm", "clause_summary", "-p", str(project), "--json"])
    assert removed.exit_code == 0 and not folder.exists()
    assert json.loads(removed.stdout) == {"removed": "clause_summary", "path": str(folder)}


@pytest.mark.slow
def test_training_runs_under_accelerate_launch(project: Path) -> None:
    """The same `ragtune adapter train` under `accelerate launch` with two processes (gloo on
    this CPU-only machine): each process trains on its half of every batch, the gradients are
    averaged, and only the first process evaluates, saves and reports."""
    import subprocess
    import sys

    launcher = Path(sys.executable).with_name("accelerate")
    command = [
        str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "ragtune.cli", "adapter", "train", "clause_summary", "-p", str(project),
        "--steps", "2", "--batch-size", "2", "--max-length", "128", "--eval-tokens", "8", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # one report: the second process printed nothing
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert summary["base"]["examples"] == summary["adapter"]["examples"] >= 1
    folder = Path(summary["path"])
    manifest = json.loads((folder / "ragtune.json").read_text())
    assert manifest["training"]["processes"] == 2 and manifest["training"]["device"].startswith(
        "cpu"
    )
    assert (folder / "adapter_model.safetensors").is_file()
    # No staging or checkpoint folder left; the lock file stays (the kernel frees the lock).
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [".clause_summary.lock"], leftovers
    runner.invoke(app, ["adapter", "rm", "clause_summary", "-p", str(project)])


def _with(project: Path, old: str, new: str) -> str:
    config = project / "ragtune.yaml"
    original = config.read_text()
    assert old in original
    config.write_text(original.replace(old, new))
    return original


@pytest.mark.parametrize(
    ("what", "old", "new", "expected"),
    [
        ("malformed line", None, None, "clause_summaries_bad.jsonl, line 3: invalid JSON"),
        ("too few examples", None, None, "too few examples for a held-out split"),
        (
            "missing contract",
            "output_contract: schemas/clause_summary.regex",
            "output_contract: schemas/nope.regex",
            "schemas/nope.regex",
        ),
        (
            "missing base model",
            "version: 1\n",
            "version: 1\nmodel: {base_model: ./no-such-model}\n",
            "no such file or folder",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    project: Path, what: str, old: str | None, new: str | None, expected: str
) -> None:
    source = project / "behavior" / "clause_summaries.jsonl"
    lines = source.read_text().splitlines()
    bad = project / "behavior" / "clause_summaries_bad.jsonl"
    if what == "malformed line":
        bad.write_text("\n".join([*lines[:2], '{"input": "x", "output": ', *lines[3:]]) + "\n")
    else:
        bad.write_text("\n".join(lines[:4]) + "\n")
    uses_bad = what in ("malformed line", "too few examples")
    original = _with(
        project,
        "examples: behavior/clause_summaries.jsonl",
        f"examples: behavior/clause_summaries{'_bad' if uses_bad else ''}.jsonl",
    )
    if old is not None and new is not None:
        (project / "ragtune.yaml").write_text(
            (project / "ragtune.yaml").read_text().replace(old, new, 1)
        )
    adapters = project / ".ragtune" / "adapters"
    before = sorted(p.name for p in adapters.iterdir()) if adapters.exists() else []
    try:
        result = runner.invoke(app, ["adapter", "train", "clause_summary", "-p", str(project)])
    finally:
        (project / "ragtune.yaml").write_text(original)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split()), result.output
    after = sorted(p.name for p in adapters.iterdir()) if adapters.exists() else []
    assert after == before, "nothing half-written"

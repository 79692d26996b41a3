"""The contract-review example audits as its comments say, and the demo writes its reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from typer.testing import CliRunner

from ragtune.audit import run_audit
from ragtune.cli import app
from ragtune.examples import example_path
from ragtune.project import load_project


def test_the_shipped_reader_is_current_so_plan_installs_it_and_trains_it_not(
    tmp_path: Path,
) -> None:
    """The example's reader adapter matches its eval answers, settings and base model: the plan
    of a fresh copy installs it instead of training, and it was trained on the train split of
    the eval set only."""
    from ragtune.adapters import load_manifest
    from ragtune.build import install_shipped, make_plan
    from ragtune.examples import copy_example
    from ragtune.holdout import input_key, is_held_out
    from ragtune.lab.evalset import default_eval_paths, load_eval

    project = load_project(copy_example("contract-review", tmp_path / "cr"))
    plan = {a.capability: a for a in make_plan(project).adapters}
    assert plan["templates"].action == "install", plan["templates"].reasons
    assert (
        plan["templates"].steps == 0 and "adapters/templates ships" in plan["templates"].reasons[0]
    )
    install_shipped(project, "templates")
    plan = {a.capability: a for a in make_plan(project).adapters}
    assert plan["templates"].action == "none", plan["templates"].reasons
    # The example quotes its answers: the plan says what the reader is still for.
    assert any("answer: quote" in w and "own output" in w for w in plan["templates"].warnings)
    manifest = load_manifest(project.adapters_dir, "templates")
    folder = project.adapters_dir / "templates"
    assert manifest.gguf_lora and (folder / "adapter.gguf").is_file()
    assert (folder / "adapter_model.safetensors").is_file()
    assert not list(project.adapters_dir.glob(".*"))  # no staging folder left
    trained = set(manifest.dataset.inputs)
    items = [i for i in load_eval(default_eval_paths(project), project) if i.answer]
    reader_items = [i for i in items if i.capability == "templates"]
    assert reader_items and all(
        (input_key(i.input) in trained) is not is_held_out(i.input) for i in reader_items
    )


def test_the_shipped_risk_flag_adapter_is_current_and_never_saw_the_eval_clauses(
    tmp_path: Path,
) -> None:
    """The example's risk-flag adapter matches its examples, settings (three worked examples a
    clause) and base model: a fresh copy installs it. It was trained on the train side of
    behavior/risk_flags.jsonl only, and none of the lab's eval clauses is among its inputs."""
    from ragtune.adapters import load_manifest
    from ragtune.build import install_shipped, make_plan
    from ragtune.examples import copy_example
    from ragtune.holdout import input_key

    project = load_project(copy_example("contract-review", tmp_path / "cr"))
    plan = {a.capability: a for a in make_plan(project).adapters}
    assert plan["risk_flags"].action == "install", plan["risk_flags"].reasons
    install_shipped(project, "risk_flags")
    manifest = load_manifest(project.adapters_dir, "risk_flags")
    assert manifest.config["shots"] == 3 and manifest.gguf_lora
    assert (manifest.dataset.train, manifest.dataset.held_out) == (262, 66)
    trained = set(manifest.dataset.inputs)
    assert len(trained) == manifest.dataset.train
    clauses = (project.root / "eval" / "clauses.jsonl").read_text().splitlines()
    assert clauses and not {input_key(json.loads(line)["input"]) for line in clauses} & trained


def test_build_installs_a_current_shipped_adapter_and_trains_a_stale_one(tmp_path: Path) -> None:
    """``ragtune plan`` and ``build`` on a copy holding only the templates capability: the
    shipped reader is installed, not trained; once its settings differ from the shipped one's,
    the plan trains it instead."""
    import yaml

    from ragtune.examples import copy_example

    folder = copy_example("contract-review", tmp_path / "cr")
    config = yaml.safe_load((folder / "ragtune.yaml").read_text())
    config["capabilities"] = [c for c in config["capabilities"] if c["name"] == "templates"]
    config["knowledge"] = {"embedder": "hashing"}
    (folder / "ragtune.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for path in (folder / "eval").glob("*.jsonl"):  # the templates lines only
        lines = path.read_text().splitlines()
        kept = [line for line in lines if json.loads(line)["capability"] == "templates"]
        path.write_text("".join(f"{line}\n" for line in kept))

    runner = CliRunner()
    planned = runner.invoke(app, ["plan", "-p", str(folder), "--json"])
    assert planned.exit_code == 0, planned.output
    (adapter,) = json.loads(planned.output)["adapters"]
    assert adapter["action"] == "install" and adapter["estimate_s"] == 0
    built = runner.invoke(app, ["build", "-p", str(folder)])
    assert built.exit_code == 0, built.output
    assert "templates: installed from adapters/templates" in " ".join(built.output.split())
    shipped = (folder / "adapters" / "templates" / "adapter_model.safetensors").read_bytes()
    installed = folder / ".ragtune" / "adapters" / "templates" / "adapter_model.safetensors"
    assert installed.read_bytes() == shipped
    again = runner.invoke(app, ["plan", "-p", str(folder), "--json"])
    assert json.loads(again.output)["adapters"][0]["action"] == "none"

    config["capabilities"][0]["reader"] = {"train": {"epochs": 9}}
    (folder / "ragtune.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    stale = runner.invoke(app, ["plan", "-p", str(folder), "--json"])
    (adapter,) = json.loads(stale.output)["adapters"]
    assert adapter["action"] == "retrain" and "epochs 3 -> 9" in " ".join(adapter["reasons"])


def test_example_decisions_cover_the_tree() -> None:
    report = run_audit(load_project(example_path("contract-review")))
    decisions = {c.name: c.decision for c in report.capabilities}
    assert decisions == {
        "templates": "retrieval",
        "rates": "retrieval",
        "risk_flags": "lora",
        "clause_summary": "few-shot",
        "playbook": "retrieval",
        "counterparties": "retrieval",
    }
    warnings = {c.name: [w.code for w in c.warnings] for c in report.capabilities}
    assert warnings["templates"] == ["finetune-changing-knowledge", "fails-12-month-test"]
    assert warnings["risk_flags"] == ["long-system-prompt"]
    # The examples are behaviour: no figures the clauses lack.
    flags = next(c for c in report.capabilities if c.name == "risk_flags")
    assert flags.answers.knowledge_in_examples.value == 0.0
    # Answers the project leaves open are measured or inferred, never "given".
    rates = next(c for c in report.capabilities if c.name == "rates")
    assert rates.path[0].source == "inferred"
    assert rates.path[1].source == "measured"
    summary = next(c for c in report.capabilities if c.name == "clause_summary")
    assert [s.source for s in summary.path] == ["measured", "inferred", "measured"]
    # The plan is far cheaper than fine-tuning everything.
    totals = {k: v.total for k, v in report.portfolio.strategies.items()}
    assert totals["plan"] < totals["prompt everything"] < totals["fine-tune everything"]
    assert report.portfolio.retraining_saved_usd > 0


@pytest.mark.slow
def test_demo_prints_the_report_and_writes_markdown_and_html(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--dir", str(tmp_path), "--quick"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    md = tmp_path / "reports" / "audit.md"
    html = tmp_path / "reports" / "audit.html"
    assert str(md.resolve()) in result.output.replace("\n", "")
    assert str(html.resolve()) in result.output.replace("\n", "")
    assert "risk_flags" in result.output and "lora" in result.output
    # The knowledge story: the answer, then the revised answer one sync later.
    flat = " ".join(result.output.split())
    assert "seventy-two (72) hours" in flat
    assert "forty-eight (48) hours" in flat
    assert "No adapter was retrained" in flat
    assert "templates" in md.read_text()
    soup = BeautifulSoup(html.read_text(), "html.parser")
    assert soup.find("svg") is not None
    assert json.loads((tmp_path / "reports" / "audit.json").read_text())["project"] == (
        "contract-review"
    )
    # build -> ask -> lab: the adapter, a cited answer, a flagged clause, the lab's reports.
    # Both adapters ship with the example: the demo installs them and trains neither.
    for name in ("templates", "risk_flags"):
        assert f"adapter {name}: shipped with the example" in flat
        assert f"adapter {name}: 2 steps" not in flat
    # The served runtime quotes the clause, before and after legal's revision (answer: quote).
    assert flat.count("A (quote)") >= 3 and "(DPA 6.1) [1]." in flat
    assert "Q (templates)" in flat and "Q (risk_flags)" in flat and "knowledge/dpa.md" in flat
    # The shipped adapter names the flagged clause's category right (a most-favoured-nation
    # clause, eval/clauses.jsonl line 1), as the served runtime answers it.
    assert 'A (lora): {"category":"Most Favored Nation"' in flat
    lab = json.loads((tmp_path / "reports" / "lab" / "lab.json").read_text())
    assert [a["name"] for a in lab["arms"]] == ["zero-shot", "few-shot", "RAG", "LoRA", "RAG+LoRA"]
    assert lab["drift"]["questions"] == 1 and lab["eval"]["by_capability"] == {
        "templates": 1, "risk_flags": 1,
    }  # fmt: skip
    assert str((tmp_path / "reports" / "lab" / "lab.html").resolve()) in result.output.replace(
        "\n", ""
    )
    # A second run replaces the demo project and its reports in place.
    again = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path), "--no-lab", "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)  # the story went to stderr
    assert summary["decisions"]["risk_flags"] == "lora" and summary["verdicts"] is None
    assert "72" in summary["answer_before"] and "48" in summary["answer_after"]

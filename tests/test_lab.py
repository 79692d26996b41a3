"""The lab: eval sets, scoring, the change set, the CLI's bad input; and (slow) the five arms and
the drift test end to end on the contract-review example with the real models."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragtune.cli import app
from ragtune.holdout import input_key, is_held_out
from ragtune.lab.drift import change_set
from ragtune.lab.evalset import EvalError, EvalItem, Revision, default_eval_paths, load_eval
from ragtune.lab.metrics import fact_score, facts_present, is_stale, normalise, percentile, spread
from ragtune.lab.model import ARMS, Lab, LabError, LabSettings
from ragtune.lab.runner import _reduce
from ragtune.project import load_project
from ragtune.runtime.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "contract-review"
runner = CliRunner()


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    return load_project(EXAMPLE)


# --- eval sets --------------------------------------------------------------------------------


def test_the_example_eval_sets_load(example) -> None:  # type: ignore[no-untyped-def]
    items = load_eval(default_eval_paths(example), example)
    by = {c: [i for i in items if i.capability == c] for c in {i.capability for i in items}}
    assert set(by) == {"templates", "risk_flags"}
    changed = [i for i in items if i.after is not None]
    assert len(changed) == 8 and all(i.expected and i.after.expected for i in changed)
    assert len(by["risk_flags"]) >= 10 and all(i.expected for i in by["risk_flags"])
    # Each reference answer holds its own facts, and a revised answer is not stale.
    for item in by["templates"]:
        assert item.answer and all(facts_present(item.answer, item.expected)), item.where
        if item.after is not None:
            assert item.after.answer and all(facts_present(item.after.answer, item.after.expected))
            assert is_stale(item.answer, item.expected, item.after.expected)
            assert not is_stale(item.after.answer, item.expected, item.after.expected)


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bad_eval_lines_are_all_named_by_file_line_and_field(tmp_path: Path, example) -> None:  # type: ignore[no-untyped-def]
    path = _write(
        tmp_path,
        '{"capability": "templates", "input": "ok?", "expected": ["30 days"]}',
        "{not json",
        '{"capability": "templats", "input": "x", "expected": ["a"]}',
        '{"capability": "templates", "input": "", "expected": ["a"]}',
        '{"capability": "templates", "input": "x"}',
        '{"capability": "templates", "input": "x", "expected": ["a"], "expectd": 1}',
        '{"capability": "templates", "input": "x", "after": {"expected": ["b"]}}',
        '{"capability": "templates", "input": "x", "expected": "30 days"}',
    )
    with pytest.raises(EvalError) as caught:
        load_eval([path], example)
    text = str(caught.value)
    assert "9 problems" in text
    assert "eval.jsonl:2: not JSON" in text
    assert "eval.jsonl:3: field 'capability' 'templats' is not in the project" in text
    assert "(did you mean 'templates'?)" in text
    assert "eval.jsonl:4: field 'input' must be a non-empty string" in text
    assert "eval.jsonl:5: nothing to score" in text
    assert "eval.jsonl:6: unknown field 'expectd' (did you mean 'expected'?)" in text
    assert "eval.jsonl:7: a line with 'after' needs 'expected'" in text
    assert (
        "eval.jsonl:8: field 'expected' must be a list of non-empty strings, got '30 days'" in text
    )


def test_a_contract_alone_is_enough_to_score_and_missing_files_are_named(
    tmp_path: Path,
    example,  # type: ignore[no-untyped-def]
) -> None:
    path = _write(tmp_path, '{"capability": "risk_flags", "input": "Either party may ..."}')
    (item,) = load_eval([path], example)
    assert item.expected == () and item.where.endswith("eval.jsonl:1")
    with pytest.raises(EvalError, match="no such eval file"):
        load_eval([tmp_path / "missing.jsonl"], example)
    with pytest.raises(EvalError, match="no eval set found"):
        load_eval([tmp_path / "empty"] if (tmp_path / "empty").mkdir() is None else [], example)


# --- scoring ----------------------------------------------------------------------------------


def test_facts_are_compared_with_numbers_normalised() -> None:
    assert normalise("Within seventy-two (72) hours; $1,000,000 cap.") == (
        "within 72 hours $1000000 cap"
    )
    answer = "Provider notifies within forty-eight (48) hours (DPA 6.1) under New York law."
    assert facts_present(answer, ["48 hours", "72 hours", "new york", "york law", "DPA 6.1"]) == [
        True, False, True, True, True,
    ]  # fmt: skip
    assert facts_present("two (2) years", ["2 years"]) == [True]
    assert facts_present("within 148 hours", ["48 hours"]) == [False]  # whole words only
    assert fact_score(answer, ["48 hours", "Delaware"]) == 0.5
    assert fact_score(answer, []) is None


def test_an_answer_is_stale_when_it_gives_the_old_fact_and_not_the_new() -> None:
    old, new = ["72 hours"], ["48 hours"]
    assert is_stale("within seventy-two (72) hours", old, new)
    assert not is_stale("within 48 hours", old, new)
    assert not is_stale("was 72 hours, now 48 hours", old, new)  # both: corrected, not stale
    assert not is_stale("I do not know", old, new)  # wrong, but not stale


def test_percentile_and_spread() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([], 50) is None
    stats = spread([0.5, 0.7, 0.6])
    assert stats is not None
    assert stats.to_dict() == pytest.approx(
        {"mean": 0.6, "std": 0.0816496580927726, "min": 0.5, "max": 0.7}
    )
    assert spread([]) is None


# --- settings, reduction, change sets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("max_items", 0, "--max-items"),
        ("max_tokens", 0, "--max-tokens"),
        ("temperature", -0.5, "--temperature"),
        ("train_steps", 0, "--train-steps"),
        ("knowledge_steps", 0, "--knowledge-steps"),
        ("seeds", (), "--seeds"),
    ],
)
def test_bad_settings_are_named(field: str, value: object, shown: str) -> None:
    with pytest.raises(LabError, match=shown):
        LabSettings(**{field: value})  # type: ignore[arg-type]


def test_greedy_runs_once_and_sampling_once_per_seed() -> None:
    assert LabSettings().run_seeds == (None,)
    assert LabSettings(temperature=0.7, seeds=(0, 1, 2)).run_seeds == (0, 1, 2)


def test_reduction_keeps_the_changed_questions_first_and_both_sides_of_the_split() -> None:
    plain = [EvalItem("templates", f"q{i}", ("a",)) for i in range(5)]
    changed = [EvalItem("templates", f"c{i}", ("a",), after=Revision(("b",))) for i in range(2)]
    flags = [EvalItem("risk_flags", f"f{i}") for i in range(4)]
    # Seed 0 holds out q2, q4, f1 and f3; c0 and c1 are train lines.
    assert [i.input for i in plain + changed + flags if is_held_out(i.input)] == [
        "q2", "q4", "f1", "f3",
    ]  # fmt: skip
    kept = _reduce(plain + changed + flags, 3, LabSettings())
    # The changed lines first, a held-out line in turn with them; the file's order kept.
    assert [i.input for i in kept] == ["q2", "c0", "c1", "f0", "f1", "f2"]
    assert _reduce(plain, None, LabSettings()) == plain


def test_the_change_set_maps_onto_the_documents_by_name(tmp_path: Path, example) -> None:  # type: ignore[no-untyped-def]
    pairs = change_set(example, EXAMPLE / "changes")
    assert [(p.name, rel) for p, rel in pairs] == [
        ("dpa.md", "knowledge/dpa.md"),
        ("msa.md", "knowledge/msa.md"),
        ("nda.md", "knowledge/nda.md"),
    ]  # CHANGES.md, the change set's notes, is skipped
    (tmp_path / "sla.md").write_text("# SLA\n", encoding="utf-8")
    with pytest.raises(LabError, match=r"sla\.md matches no document.*nda\.md"):
        change_set(example, tmp_path)
    with pytest.raises(LabError, match="no such folder"):
        change_set(example, tmp_path / "nope")


# --- the arms serve an adapter as the runtime serves it -----------------------------------------


@contextmanager
def _planned(folder: Path, capability: str) -> Iterator[tuple[Lab, Runtime, EvalItem]]:
    """The lab's arms planned on the project in ``folder`` for one eval item of
    ``capability``, with the runtime that serves them (closed on exit)."""
    from ragtune.lab.arms import plan_arms

    project = load_project(folder)
    items = [
        i for i in load_eval(default_eval_paths(project), project) if i.capability == capability
    ][:1]
    runtime = Runtime(project)
    try:
        lab = Lab(project, project, runtime, LabSettings(), items, None, items)
        plan_arms(lab)
        yield lab, runtime, items[0]
    finally:
        runtime.close()


def test_the_lab_serves_an_adapter_with_the_shots_it_was_trained_with(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """The shipped risk-flag adapter was trained with 3 worked examples per prompt; the lab's
    arms that serve it show as many, chosen as the runtime chooses them, and the others none
    beyond their own."""
    from ragtune.lab.arms import _shots

    folder = example_project(tmp_path / "cr", install=("risk_flags",))
    with _planned(folder, "risk_flags") as (lab, runtime, item):
        shown = {arm: _shots(lab, lab.plans[(arm, "risk_flags")], item) for arm in ARMS}
        served = runtime.shots_for("risk_flags", item.input, k=3)
        assert runtime.adapter_shots(lab.plans[("RAG+LoRA", "risk_flags")].route) == 3
    assert shown["RAG+LoRA"] == served and len(served) == 3
    assert len(shown["few-shot"]) == 2
    assert shown["zero-shot"] == shown["RAG"] == []


def test_the_lab_prompts_the_reader_as_the_runtime_serves_it(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """The RAG+LoRA arm of a knowledge capability with a reader sends the very messages the
    served runtime sends: the reader's system prompt (the one it was trained with), the same
    passages, in the same order."""
    from ragtune.lab.arms import _shots
    from ragtune.runtime import pipeline
    from ragtune.runtime.runtime import Request

    folder = example_project(tmp_path / "cr", sync=True, install=("templates",), answer="generate")
    with _planned(folder, "templates") as (lab, runtime, item):
        plan = lab.plans[("RAG+LoRA", "templates")]
        request = Request(item.input, "templates")
        passages = pipeline.retrieve(runtime, plan.route, request)
        sent = pipeline.build_prompt(
            runtime, plan.route, request, passages, _shots(lab, plan, item)
        )
        served, _ = pipeline._prepare(runtime, request)
    assert plan.route.adapter == served.route.adapter == "templates"
    assert sent == served.messages
    assert sent[0]["content"].startswith("Answer the question from the numbered context")


# --- the CLI's bad input ----------------------------------------------------------------------


def test_lab_cli_names_bad_input_and_exits_2(tmp_path: Path) -> None:
    bad = _write(tmp_path, '{"capability": "nope", "input": "x", "expected": ["a"]}')
    result = runner.invoke(app, ["lab", str(EXAMPLE), "--eval", str(bad)])
    assert result.exit_code == 2
    assert "is not in the project" in result.output and "eval.jsonl:1" in result.output
    result = runner.invoke(app, ["lab", str(EXAMPLE), "--drift", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such folder" in result.output
    result = runner.invoke(app, ["lab", "--help"])
    assert result.exit_code == 0 and "RAG+LoRA" in result.output and "--drift" in result.output


# --- end to end (real models) -----------------------------------------------------------------


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and ".ragtune" not in path.parts:
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_lab_end_to_end_rag_follows_the_drift_and_lora_stays_stale(
    tmp_path: Path, example_project: Callable[..., Path]
) -> None:
    """The reduced lab of CI: the 8 templates questions the change set revises, five arms, the
    drift test. The knowledge adapters train on the split's train lines (2 of the 8) and are
    scored apart on those (seen), the other 6 (unseen) and the rephrasings of the 2. The LoRA
    arm must score far better on what it trained on than on what it did not, and - trained on
    the old answers - must give stale answers after the change; the verdict ranks unseen
    scores only."""
    project_dir = example_project(tmp_path / "contract-review", shared_models=True)
    # On transformers, as the README's lab figures were measured. The plain RAG arm rests on one
    # of the eight answers (the 135M model reads passages poorly); with llama.cpp's quantised
    # activations that one answer parts at a near tie and RAG scores 0 of 8 after the change,
    # while RAG+LoRA (0.75) and the stale LoRA arm (0.00) come out as here.
    config = project_dir / "ragtune.yaml"
    config.write_text(config.read_text() + "model:\n  backend: transformers\n")
    before = _tree_hash(project_dir)
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "lab", str(project_dir), "--eval", str(project_dir / "eval" / "changed.jsonl"),
            "--drift", str(project_dir / "changes"), "--max-tokens", "32",
            "--out", str(out), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "estimate: about" in result.stderr and "an estimate" in result.stderr
    assert data["estimate"]["seconds"] > 0 and data["estimate"]["adapters"] == 3
    assert [a["name"] for a in data["arms"]] == list(ARMS)
    for arm in data["arms"]:
        assert 0.0 <= arm["fact_accuracy"] <= 1.0
        assert arm["latency_p50_s"] > 0 and arm["cost_per_1k"] > 0 and arm["tokens_per_call"] > 0
    # The split, recorded: seed 0 holds out 6 of the 8 changed questions.
    items = load_eval([project_dir / "eval" / "changed.jsonl"], load_project(project_dir))
    train = [i for i in items if not is_held_out(i.input)]
    assert len(train) == 2
    assert data["split"] == {
        "seed": 0, "share": 0.5, "by_capability": {"templates": {"train": 2, "held_out": 6}},
    }  # fmt: skip
    # The knowledge adapters trained on the train lines only, as their manifests say.
    adapters = project_dir / ".ragtune" / "lab" / "work" / ".ragtune" / "adapters"
    for name in ("lab-templates-lora", "lab-templates-rag-lora"):
        manifest = json.loads((adapters / name / "ragtune.json").read_text(encoding="utf-8"))
        assert set(manifest["dataset"]["inputs"]) == {input_key(i.input) for i in train}, name
    assert {a["name"]: a["inputs"] for a in data["adapters"]} == {
        "lab-templates-lora": 2, "lab-templates-rag-lora": 2,
    }  # fmt: skip
    # Seen, unseen and rephrased side by side for the adapter arms; one column for the others.
    arms = {a["name"]: a for a in data["arms"]}
    rephrasings = sum(len(i.rephrased) for i in train)
    for name in ("LoRA", "RAG+LoRA"):
        assert arms[name]["items"] == 6 and arms[name]["seen"]["items"] == 2, arms[name]
        assert arms[name]["rephrased"]["items"] == rephrasings, arms[name]
    for name in ("zero-shot", "few-shot", "RAG"):
        assert arms[name]["items"] == 8 and arms[name]["seen"] is None
    print(
        "\nlab (changed.jsonl, before the change): "
        + "; ".join(
            f"{a['name']} unseen {a['fact_accuracy']:.2f}"
            + (
                f", seen {a['seen']['fact_accuracy']:.2f}, rephrased "
                f"{a['rephrased']['fact_accuracy']:.2f}"
                if a["seen"]
                else ""
            )
            for a in data["arms"]
        )
    )
    drift = data["drift"]
    assert drift["questions"] == 8 and drift["documents"] == [
        "knowledge/dpa.md", "knowledge/msa.md", "knowledge/nda.md",
    ]  # fmt: skip
    rows = {row["name"]: row for row in drift["arms"]}
    print(
        "drift (after): "
        + "; ".join(
            f"{r['name']} {r['fact_accuracy']:.2f} (unseen {r['unseen_fact_accuracy']:.2f}"
            + (f", seen {r['seen_fact_accuracy']:.2f}" if r["adapter"] else "")
            + f"), stale {r['stale_share']:.2f}"
            for r in drift["arms"]
        )
    )
    # Measured with the split (README): on the 6 unseen questions no arm of the 135M model is
    # reliable after the change (0.00-0.17), so arms are not ranked against each other here.
    # What holds: the LoRA arm recites what it trained on and nothing else (seen well above
    # unseen), and after the change its memorised answers are the stale ones.
    lora = arms["LoRA"]
    assert lora["seen"]["fact_accuracy"] >= lora["fact_accuracy"] + 0.5, lora
    assert rows["LoRA"]["seen_fact_accuracy"] == 0.0, drift  # the old facts, recited
    assert rows["LoRA"]["stale_share"] > rows["RAG"]["stale_share"], drift
    assert rows["LoRA"]["fact_accuracy_before"] > rows["LoRA"]["fact_accuracy"], drift
    # Time to correct: the re-sync for retrieval, the measured retraining for the LoRA.
    assert rows["RAG"]["time_to_correct_s"] == drift["resync_seconds"] < 30
    assert rows["LoRA"]["time_to_correct_s"] == drift["retrain_seconds"]
    assert drift["retrain_seconds"] > 10 * drift["resync_seconds"]
    assert drift["retrained"]["fact_accuracy"] is not None
    calls = data["calls"]
    assert len([c for c in calls if c["phase"] == "before"]) == 5 * 8 + 2 * rephrasings
    assert len([c for c in calls if c["phase"] == "after"]) == 5 * 8 + 8
    assert {c["exposure"] for c in calls if c["arm"] == "RAG"} == {"unseen"}
    verdict = next(v for v in data["verdicts"] if v["capability"] == "templates")
    assert verdict["decision"] == "retrieval" and verdict["agrees"] is not None, verdict
    assert verdict["text"].startswith("the audit chose retrieval for `templates`; the lab ")
    assert "after the change" in verdict["text"] or "disagrees" in verdict["text"]
    # Never a seen score the best: the verdict ranks unseen scores, the summary names the best.
    after_unseen = {r["name"]: r["unseen_fact_accuracy"] for r in drift["arms"]}
    assert verdict["scores"] == pytest.approx(after_unseen)
    assert verdict["best"] == max(after_unseen, key=lambda k: after_unseen[k])
    best = max(data["arms"], key=lambda a: a["fact_accuracy"])
    report = (out / "lab.md").read_text(encoding="utf-8")
    assert f"On questions no adapter trained on, {best['name']} scored the most facts" in report
    assert {p.name for p in out.iterdir()} == {"lab.md", "lab.html", "lab.json"}
    assert "Fact accuracy per arm" in (out / "lab.html").read_text(encoding="utf-8")
    # The lab works on a copy: the project's documents are as they were.
    assert _tree_hash(project_dir) == before


def test_sampled_runs_report_the_spread_over_seeds(example) -> None:  # type: ignore[no-untyped-def]
    """With sampling, every arm runs once per seed; the summary gives the mean over all calls
    and the spread of the per-seed scores."""
    from ragtune.lab.metrics import arm_summary
    from ragtune.lab.model import ArmPlan, Call, Lab
    from ragtune.runtime.runtime import Route

    settings = LabSettings(temperature=0.7, seeds=(0, 1, 2))
    items = [EvalItem("templates", f"q{i}", ("72 hours",)) for i in range(2)]
    lab = Lab(example, example, None, settings, items, None, items)  # type: ignore[arg-type]
    lab.plans[("RAG", "templates")] = ArmPlan(
        "RAG", "templates", Route("templates", "retrieval"), None, "x"
    )
    right, wrong = "within 72 hours", "within 10 days"
    answers = {0: (right, right), 1: (right, wrong), 2: (wrong, wrong)}
    calls = [
        Call(
            "RAG",
            item,
            text,
            fact_score(text, item.expected),
            None,
            None,
            1.0 + seed,
            100,
            10,
            seed,
            "before",
        )
        for seed, texts in answers.items()
        for item, text in zip(items, texts, strict=True)
    ]
    summary = arm_summary(lab, "RAG", calls)
    assert summary.fact_accuracy == pytest.approx(0.5)
    assert summary.fact_spread is not None
    assert summary.fact_spread.to_dict() == pytest.approx(
        {"mean": 0.5, "std": 0.408248290463863, "min": 0.0, "max": 1.0}
    )
    assert summary.compliance_spread is None
    assert summary.latency_p50_s == 2.0 and summary.tokens_per_call == 110
    prices = example.config.prices
    assert summary.cost_per_1k == pytest.approx(
        (100 * prices.input_usd_per_1m_tokens + 10 * prices.output_usd_per_1m_tokens) / 1000
    )
    assert summary.by_capability["templates"].items == 2
    assert summary.seen is None and summary.items == 2  # no adapter: everything is unseen

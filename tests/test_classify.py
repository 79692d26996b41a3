"""Label classifiers (``classify:``): a LoRA on the embedder tuned on the examples' labels picks
one field of the answer, and the runtime guides the decoding to it.

The examples are expense claims written for this test (not the contract-review example): the
classifier must give new claims, worded differently, their category."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from ragtune.behavior.classify import (
    CLASSIFIERS,
    MANIFEST,
    Classifier,
    ClassifierError,
    classifier_plan,
    train_classifier,
)
from ragtune.build import build, make_plan
from ragtune.project import Capability, ClassifySettings, Project, load_project
from ragtune.runtime.pipeline import guide_schema, route
from ragtune.runtime.runtime import Request, Runtime

CLAIMS = {
    "travel": [
        "Train ticket from Leeds to London for the client workshop",
        "Taxi from the airport to the hotel after the late flight",
        "Return flight to Madrid for the supplier visit",
        "Two nights at the Grand Hotel during the trade fair",
        "Car hire for three days to visit the regional offices",
        "Parking at the station while travelling to the conference",
    ],
    "meals": [
        "Lunch with the prospective customer at an Italian restaurant",
        "Team dinner after the product launch",
        "Sandwiches and coffee for the board meeting",
        "Breakfast at the hotel before the morning presentation",
        "Client dinner to close the annual contract",
        "Pizza for the engineers working late on the release",
    ],
    "software": [
        "Annual subscription to the diagramming tool",
        "Licence for the PDF editor for the legal team",
        "Monthly fee for the cloud hosting account",
        "Upgrade of the accounting package to the professional edition",
        "Password manager seats for the new starters",
        "Renewal of the antivirus licences for all laptops",
    ],
    "training": [
        "Course fee for the project management certification",
        "Online workshop on negotiation skills",
        "Exam voucher for the cloud architect certificate",
        "Two-day seminar on employment law updates",
        "Books for the data science study group",
        "Registration for the leadership training programme",
    ],
}
NEW_CLAIMS = {  # worded unlike any example
    "Uber ride to the customer's head office": "travel",
    "Coffee and pastries for the visiting auditors": "meals",
    "Spreadsheet add-in licence for the finance team": "software",
    "Tuition for the evening accounting class": "training",
}
SCHEMA = {
    "type": "object",
    "properties": {
        "category": {
            "type": "string",
            "enum": ["travel", "meals", "software", "training", "other"],
        },
        "approve": {"type": "boolean"},
    },
    "required": ["category", "approve"],
    "additionalProperties": False,
}
PROJECT = """
version: 1
project: expenses
capabilities:
  - name: claims
    description: Give each expense claim its category and say whether finance approves it.
    kind: behavior
    changes_within_6_months: false
    accurate_in_12_months: true
    shown_by_examples: true
    calls_per_month: 200
    examples: claims.jsonl
    output_contract: claim.schema.json
    classify: category
    train: {held_out: 0.2}
"""


def write_claims(folder: Path, claims: dict[str, list[str]] = CLAIMS) -> None:
    lines = [
        json.dumps({"input": text, "output": {"category": label, "approve": True}})
        for label, texts in claims.items()
        for text in texts
    ]
    (folder / "claims.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def expenses(write_project: Callable[[str], Path]) -> Project:
    folder = write_project(PROJECT)
    (folder / "claim.schema.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    write_claims(folder)
    return load_project(folder)


def claims_of(project: Project) -> Capability:
    return project.config.capabilities[0]


def test_the_tuned_classifier_gives_new_claims_their_category(expenses: Project) -> None:
    steps: list[tuple[int, int]] = []
    manifest = train_classifier(
        expenses,
        claims_of(expenses),
        progress=lambda done, total, loss: steps.append((done, total)),
    )
    # 24 examples, 20% held out by the adapter's split; 3 rounds of pairs in batches of 32.
    assert manifest.trained + manifest.tested == 24 and manifest.tested >= 1
    assert manifest.labels == ["travel", "meals", "software", "training"]  # "other": no example
    assert steps and steps[-1][0] == steps[-1][1] == len(steps)
    assert manifest.held_out_accuracy is not None and manifest.held_out_accuracy >= 0.75
    folder = expenses.state_dir / CLASSIFIERS / "claims"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["claims"]  # no staging left
    assert json.loads((folder / MANIFEST).read_text())["field"] == "category"

    classifier = Classifier(expenses, "claims")
    for text, label in NEW_CLAIMS.items():
        ranked = classifier.rank(text)
        assert ranked[0][0] == label, (text, ranked)
        assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_the_plan_tunes_a_missing_or_stale_classifier_and_build_tunes_it(
    expenses: Project,
) -> None:
    cap = claims_of(expenses)
    assert classifier_plan(expenses, cap).action == "train"
    planned = make_plan(expenses)
    assert [(c.capability, c.action) for c in planned.classifiers] == [("claims", "train")]
    assert "Tune 1 classifier" in planned.summary() and planned.training_needed

    built = build(expenses)  # few-shot: no adapter to train, the classifier is tuned
    assert built.adapters == []
    assert [m.capability for m in built.classifiers] == ["claims"]
    assert classifier_plan(expenses, cap).action == "none"
    assert build(expenses).classifiers == []  # nothing changed: nothing tuned again

    extra = {**CLAIMS, "travel": [*CLAIMS["travel"], "Ferry crossing for the site inspection"]}
    write_claims(expenses.root, extra)
    stale = classifier_plan(expenses, cap)
    assert stale.action == "retrain" and stale.reasons == ["claims.jsonl changed"]

    # Tuning settings in ragtune.yaml: the plan sees them changed, build tunes with them.
    config = expenses.root / "ragtune.yaml"
    config.write_text(
        config.read_text().replace("classify: category", "classify: {field: category, rounds: 2}")
    )
    tuned = load_project(expenses.root)
    assert claims_of(tuned).classify == ClassifySettings(field="category", rounds=2)
    reasons = classifier_plan(tuned, claims_of(tuned)).reasons
    assert any(r.startswith("the classifier's settings changed") for r in reasons), reasons
    assert build(tuned).classifiers[0].settings["rounds"] == 2
    assert classifier_plan(tuned, claims_of(tuned)).action == "none"


def test_plan_and_build_commands_show_the_classifier(expenses: Project) -> None:
    from typer.testing import CliRunner

    from ragtune.cli import app

    runner = CliRunner()
    planned = runner.invoke(app, ["plan", str(expenses.root), "--json"])
    assert planned.exit_code == 0, planned.output
    (shown,) = json.loads(planned.stdout)["classifiers"]
    assert shown == {
        "capability": "claims",
        "field": "category",
        "action": "train",
        "reasons": ["no classifier yet"],
    }
    built = runner.invoke(app, ["build", str(expenses.root)])
    assert built.exit_code == 0, built.output
    flat = " ".join(built.output.split())
    assert "classifier claims.category: 4 labels from" in flat and "held-out examples right" in flat
    table = runner.invoke(app, ["plan", str(expenses.root)])
    assert "classifiers" in table.output and "unchanged" in table.output


def test_the_runtime_guides_the_field_to_the_classifier_s_label(
    expenses: Project, caplog: pytest.LogCaptureFixture
) -> None:
    request = Request("Hotel room for the night before the audit", capability="claims")
    untrained = Runtime(expenses, decisions={"claims": "few-shot"})
    chosen = route(untrained, request)
    with caplog.at_level(logging.WARNING):
        assert guide_schema(untrained, chosen, request) == SCHEMA  # nothing tuned yet
    assert "serving without its classifier" in caplog.text

    train_classifier(expenses, claims_of(expenses))
    runtime = Runtime(expenses, decisions={"claims": "few-shot"})
    guided = guide_schema(runtime, chosen, request)
    assert guided is not None and guided["properties"]["category"]["enum"] == ["travel"]
    assert guided["properties"]["approve"] == SCHEMA["properties"]["approve"]
    assert runtime.contracts["claims"].schema == SCHEMA  # the answer is checked on the whole

    # Tuned anew (finance files travel under "other" now): the running runtime takes it up.
    write_claims(expenses.root, {**CLAIMS, "other": CLAIMS["travel"], "travel": []})
    train_classifier(expenses, claims_of(expenses))
    again = guide_schema(runtime, chosen, request)
    assert again is not None and again["properties"]["category"]["enum"] == ["other"]

    # The lab's runtime, an unguided one and a request with its own contract keep the schema.
    assert guide_schema(Runtime(expenses, classifiers=False), chosen, request) == SCHEMA
    assert guide_schema(Runtime(expenses, guided=False), chosen, request) is None
    own = {"type": "object", "properties": {"category": {"type": "string"}}}
    from ragtune.behavior.contract import schema_contract

    theirs = Request(request.question, capability="claims", contract=schema_contract(own, "test"))
    assert guide_schema(runtime, chosen, theirs) == own


def test_the_served_answer_carries_the_classifier_s_label(
    expenses: Project, one_thread: None
) -> None:
    """Through `ragtune ask` and the llama.cpp base model: the answer is JSON of the contract
    with the label the classifier chose, and the output says who chose it."""
    from typer.testing import CliRunner

    from ragtune.cli import app

    train_classifier(expenses, claims_of(expenses))
    question = "Hotel room for the night before the audit"
    args = ["ask", question, "-p", str(expenses.root), "-c", "claims", "--max-tokens", "24"]
    runner = CliRunner()
    answered = runner.invoke(app, [*args, "--json"])
    assert answered.exit_code == 0, answered.output
    body = json.loads(answered.stdout)
    assert body["classified"] == {"category": "travel"}
    assert json.loads(body["answer"])["category"] == "travel" and body["contract"]["ok"]
    shown = runner.invoke(app, args)
    assert "category by the classifier" in " ".join(shown.output.split())
    # The HTTP server says the same beside the OpenAI fields, to the openai client.
    import openai

    from ragtune.server import create_app
    from test_server import serving

    runtime = Runtime(expenses)
    try:
        with serving(create_app(runtime)) as base:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="none")
            served = client.chat.completions.create(
                model="claims", messages=[{"role": "user", "content": question}], max_tokens=24
            )
    finally:
        runtime.close()
    assert (served.model_extra or {})["classified"] == {"category": "travel"}
    assert json.loads(served.choices[0].message.content or "")["category"] == "travel"


def test_a_label_the_answer_does_not_carry_is_not_reported() -> None:
    """A backend that cannot guide (a remote server) may write another label: the result then
    reports only what its answer carries."""
    from ragtune.generate.backend import Generation
    from ragtune.runtime.pipeline import _finish
    from ragtune.runtime.runtime import Result, Route

    for text, kept in (
        ('{"category": "travel", "approve": true}', {"category": "travel"}),
        ('{"category": "meals", "approve": true}', {}),
        ("not JSON", {}),
    ):
        result = Result(
            "", Route("claims", "few-shot", (), None), classified={"category": "travel"}
        )
        _finish(result, Generation(text, 5, 9, "stop", "remote", 0.1), None, [], {})
        assert result.classified == kept, text


def test_bad_labels_and_fields_are_named(expenses: Project) -> None:
    lines = (expenses.root / "claims.jsonl").read_text().splitlines()
    lines[4] = json.dumps({"input": "Stamps", "output": {"category": "postage", "approve": True}})
    (expenses.root / "claims.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ClassifierError, match=r"claims\.jsonl:5: classify: 'category' is 'postage'"
    ):
        train_classifier(expenses, claims_of(expenses))
    assert not (expenses.state_dir / CLASSIFIERS).exists()  # nothing half-written

    wrong = claims_of(expenses).model_copy(update={"classify": ClassifySettings(field="colour")})
    with pytest.raises(ClassifierError, match=r"'colour' is not a property .*category, approve"):
        train_classifier(expenses, wrong)


def test_classify_needs_examples_and_a_contract() -> None:
    with pytest.raises(
        ValidationError, match=r"classify: 'claims' has no examples and output_contract"
    ):
        Capability(name="claims", description="Categorise claims.", classify="category")
    labelled = {"examples": "claims.jsonl", "output_contract": "claim.schema.json"}
    for bad, named in (
        ({"field": "category", "rounds": 0}, r"classify\.rounds\n.*greater than or equal to 1"),
        ({"field": "category", "epochs": 2}, r"classify\.epochs\n.*Extra inputs"),
        ({"rounds": 2}, r"classify\.field\n.*Field required"),
    ):
        with pytest.raises(ValidationError, match=named):
            Capability(name="claims", description="Categorise.", classify=bad, **labelled)


def test_a_classifier_needs_a_tunable_embedder(expenses: Project) -> None:
    from dataclasses import replace

    knowledge = expenses.config.knowledge.model_copy(update={"embedder": "hashing"})
    hashing = replace(expenses, config=expenses.config.model_copy(update={"knowledge": knowledge}))
    with pytest.raises(ClassifierError, match="cannot be tuned"):
        train_classifier(hashing, claims_of(hashing))
    # An embeddings endpoint is refused as such, not for the settings it would be called with.
    knowledge = expenses.config.knowledge.model_copy(update={"embedder": "openai:text-embed"})
    remote = replace(expenses, config=expenses.config.model_copy(update={"knowledge": knowledge}))
    with pytest.raises(ClassifierError, match=r"'openai:text-embed'.*cannot be tuned"):
        train_classifier(remote, claims_of(remote))

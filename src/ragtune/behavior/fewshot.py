"""Few-shot selection: the k examples most like the request, looked up in the store.

A behaviour that one or two clear examples can show goes into the prompt rather than into an
adapter. Which examples: the ones most similar to the request, by embedding similarity.

- :func:`index_examples` embeds each example's text (its input, and its context when it has one)
  once and stores the vector beside the example. A re-index copies the vectors of unchanged
  texts (keyed by :func:`input_hash` and the embedder's name) and embeds only the new ones; an
  unchanged file embeds and writes nothing.
- :func:`select_examples` embeds only the request and scores it against the stored vectors with
  one matrix product, and ranks the examples' words by BM25 (an index in memory); the two
  rankings are fused by reciprocal rank, as the knowledge search fuses its two. Words catch
  what a small embedder blurs: on the example's risk flags the category of a new clause is
  among its three shots for 28 of 30 clauses (23 by vectors alone), and the shipped adapter,
  served with them, names 80% of the categories (76.7%) and 12 of 12 eval clauses (11). The
  matrix and the word index are built once per (capability, dataset, embedder) and kept in
  memory; each request then costs one small query to see that the examples have not been
  re-indexed. Optionally, maximal marginal relevance (Carbonell & Goldstein, 1998) trades a
  little similarity for diversity, so two near-identical examples do not fill both slots.
- :func:`ragtune.prompt.chat_messages` lays the shots and the request out as chat messages.
- :func:`with_training_shots` gives each training example of an adapter trained with
  ``train.shots`` the examples the runtime would show with it (few-shot + LoRA): chosen the same
  way, from the training side only, never the example itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from ragtune.behavior.examples import Example, ExampleSet
from ragtune.errors import RagtuneError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ragtune.knowledge.embed import Embedder
    from ragtune.knowledge.store import KnowledgeStore
    from ragtune.knowledge.store.keyword import TextIndex

__all__ = [
    "DEFAULT_K",
    "FewShotError",
    "IndexResult",
    "example_text",
    "fused_order",
    "index_examples",
    "input_hash",
    "select_examples",
    "with_training_shots",
]

DEFAULT_K = 2
"""Examples per prompt: one shows the format, a second shows what varies and what does not."""

POOL = 50
"""Examples taken from each ranking (vectors, words) before they are fused."""


class FewShotError(RagtuneError):
    """Examples cannot be selected: none indexed for the capability, or another embedder's."""


@dataclass(frozen=True)
class IndexResult:
    """What :func:`index_examples` did.

    Attributes:
        embedded: Texts sent to the embedder (each distinct text once).
        reused: Examples whose vector was already in the store.
        total: Examples now live for the capability.
    """

    embedded: int
    reused: int
    total: int


def example_text(input: str, context: str | None = None) -> str:
    """The text embedded for an example (and for a request): the input, then any context."""
    return input if not context else f"{input}\n\n{context}"


def input_hash(input: str, context: str | None = None) -> str:
    """SHA-1 of an example's input and context: the key under which its vector is reused."""
    # Hashed as a JSON pair so that text moved between input and context changes the hash.
    pair = json.dumps([input, context or ""], ensure_ascii=False)
    return hashlib.sha1(pair.encode("utf-8")).hexdigest()


def index_examples(
    store: KnowledgeStore, capability: str, examples: ExampleSet, embedder: Embedder
) -> IndexResult:
    """Store a capability's examples with their vectors, replacing its previous ones.

    Vectors the store already holds for the same text and embedder (from the previous version of
    the file, or from another capability) are copied, not recomputed; when the file and the
    embedder are both unchanged nothing is embedded or written at all.

    Args:
        store: The project's store.
        capability: The capability the examples show.
        examples: The examples file, as :func:`ragtune.behavior.examples.load_examples` read it.
        embedder: The embedder that :func:`select_examples` will use for requests.

    Returns:
        How many texts were embedded, how many vectors reused, how many examples in all.

    Raises:
        FewShotError: The embedder returned vectors of the wrong shape.
    """
    import numpy as np

    items = examples.examples
    total = len(items)
    if store.examples_state(capability) == (examples.sha256, embedder.name):
        return IndexResult(embedded=0, reused=total, total=total)

    hashes = [input_hash(ex.input, ex.context) for ex in items]
    width = embedder.dim * 4  # float32 bytes
    stored = {
        h: blob
        for h, blob in store.example_vectors_by_hash(hashes, embedder.name).items()
        if len(blob) == width
    }
    missing: dict[str, str] = {}  # hash -> text, each distinct text once, in file order
    for ex, h in zip(items, hashes, strict=True):
        if h not in stored:
            missing.setdefault(h, example_text(ex.input, ex.context))

    fresh: dict[str, bytes] = {}
    if missing:
        vectors = np.asarray(embedder.embed(list(missing.values())), dtype=np.float32)
        if vectors.shape != (len(missing), embedder.dim):
            raise FewShotError(
                f"{embedder.name}: embedding {len(missing)} examples returned an array of shape "
                f"{vectors.shape}, expected ({len(missing)}, {embedder.dim})."
            )
        fresh = {h: row.tobytes() for h, row in zip(missing, vectors, strict=True)}

    from ragtune.knowledge.store import ExampleRow

    rows = [
        ExampleRow(
            line=ex.line,
            input=ex.input,
            output=ex.output,
            context=ex.context,
            input_hash=h,
            vector=stored[h] if h in stored else fresh[h],
        )
        for ex, h in zip(items, hashes, strict=True)
    ]
    store.replace_examples(
        capability,
        rows,
        path=examples.path,
        dataset_sha256=examples.sha256,
        embedder=embedder.name,
    )
    return IndexResult(embedded=len(missing), reused=sum(h in stored for h in hashes), total=total)


@dataclass(frozen=True)
class _Loaded:
    """A capability's live examples and their vectors as one (n, dim) matrix."""

    state: tuple[str, str]  # (dataset sha256, embedder) they were read at
    examples: list[Example]
    matrix: NDArray[np.float32]
    words: TextIndex | None  # BM25 over the examples' texts (None: tantivy is not installed)


# Per store, per capability: the matrix last read. Keyed weakly so a closed store's go with it.
_CACHE: WeakKeyDictionary[KnowledgeStore, dict[str, _Loaded]] = WeakKeyDictionary()


def select_examples(
    store: KnowledgeStore,
    capability: str,
    request: str,
    embedder: Embedder,
    k: int = DEFAULT_K,
    mmr: float | None = None,
    *,
    context: str | None = None,
) -> list[Example]:
    """The ``k`` examples most like the request, most alike first.

    Only the request is embedded; the examples' vectors come from the store (read once, then
    kept in memory until the capability is re-indexed). Alike: the cosine of the normalised
    vectors and BM25 over the examples' words, fused by reciprocal rank (:func:`fused_order`).
    Equal scores go to the example on the earlier line.

    Args:
        store: The store :func:`index_examples` wrote to.
        capability: Whose examples to choose from.
        request: The request the examples should resemble.
        embedder: The embedder the examples were indexed with.
        k: How many examples; fewer when the capability has fewer.
        mmr: ``None`` for plain similarity; a lambda between 0 and 1 for maximal marginal
            relevance, which scores each further pick ``lambda * sim(request, example) -
            (1 - lambda) * max sim(example, already picked)``. 1 is plain similarity; 0.5 to 0.7
            skips near-duplicates of an example already chosen.
        context: Retrieved context served with the request; embedded with it, the way an
            example's context was embedded with its input.

    Returns:
        The chosen examples, in the order chosen.

    Raises:
        FewShotError: The capability has no indexed examples, or they were indexed with another
            embedder.
        ValueError: ``k`` is negative or ``mmr`` is outside [0, 1].
    """
    import numpy as np

    if k < 0:
        raise ValueError(f"k must be 0 or more, got {k}")
    if mmr is not None and not 0.0 <= mmr <= 1.0:
        raise ValueError(f"mmr (the MMR lambda) must be between 0 and 1, got {mmr!r}")
    loaded = _load(store, capability, embedder)
    k = min(k, len(loaded.examples))
    if k == 0:
        return []
    text = example_text(request, context)
    query = np.asarray(embedder.embed([text]), dtype=np.float32)[0]
    sims = loaded.matrix @ query
    if mmr is None or mmr >= 1.0:
        order = fused_order(sims, loaded.words, text, k)
    else:
        order = _mmr(sims, loaded.matrix, k, mmr)
    return [loaded.examples[i] for i in order]


def fused_order(
    sims: NDArray[np.float32], words: TextIndex | None, text: str, k: int | None = None
) -> list[int]:
    """Example positions, the most alike first: the :data:`POOL` best by cosine ``sims`` and the
    :data:`POOL` best by BM25 on ``text``'s words, fused by reciprocal rank, then every other
    example by cosine; ties (and the vectors alone, without a word index) go to the earlier
    line. ``k``: only the first ``k`` (None: all)."""
    import numpy as np

    from ragtune.knowledge.search import rrf
    from ragtune.knowledge.store.sqlite import query_words

    # Rows are in line order and the sort is stable: ties go to the earlier line.
    by_vector = np.argsort(-sims, kind="stable")
    if words is None:
        return [int(i) for i in by_vector[:k]]
    by_words = [position for position, _ in words.search(query_words(text), POOL)]
    scores = rrf([[int(i) for i in by_vector[:POOL]], by_words])
    fused = sorted(scores, key=lambda i: (-scores[i], i))
    if k is not None and len(fused) >= k:
        return fused[:k]
    rest = (int(i) for i in by_vector if int(i) not in scores)  # past the pools: by cosine
    return (fused + list(rest))[:k]


def _load(store: KnowledgeStore, capability: str, embedder: Embedder) -> _Loaded:
    """The capability's examples and matrix, from memory unless the store has moved on."""
    import numpy as np

    state = store.examples_state(capability)
    if state is None:
        raise FewShotError(
            f"capability {capability!r} has no indexed examples; index its examples file "
            "first (`ragtune build`)."
        )
    if state[1] != embedder.name:
        raise FewShotError(
            f"capability {capability!r}: its examples were indexed with the embedder "
            f"{state[1]!r}, not {embedder.name!r}; index them again (`ragtune build`)."
        )
    per_store = _CACHE.setdefault(store, {})
    cached = per_store.get(capability)
    if cached is not None and cached.state == state:
        return cached
    rows = store.live_examples(capability)
    blob = b"".join(r.vector for r in rows)
    if len(blob) != len(rows) * embedder.dim * 4:
        raise FewShotError(
            f"capability {capability!r}: stored example vectors are not {embedder.dim}-"
            f"dimensional float32; index the examples again (`ragtune build`)."
        )
    matrix = np.frombuffer(blob, dtype=np.float32).reshape(len(rows), embedder.dim)
    examples = [
        Example(input=r.input, output=r.output, context=r.context, line=r.line) for r in rows
    ]
    loaded = _Loaded(
        state=state,
        examples=examples,
        matrix=matrix,
        words=_words([example_text(r.input, r.context) for r in rows]),
    )
    per_store[capability] = loaded
    return loaded


def _words(texts: Sequence[str]) -> TextIndex | None:
    """BM25 over ``texts`` in memory, or None where tantivy (the ``knowledge`` extra) is not
    installed (selection then ranks by vectors alone)."""
    from ragtune.knowledge.store.keyword import TextIndex, available

    return TextIndex(texts) if available() and texts else None


def _mmr(sims: NDArray[np.float32], matrix: NDArray[np.float32], k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: greedy picks balancing similarity and novelty."""
    import numpy as np

    chosen: list[int] = []
    available = np.ones(len(sims), dtype=bool)
    redundancy = np.zeros(len(sims), dtype=np.float32)  # max similarity to a chosen example
    for step in range(k):
        # The first pick is the most similar example; redundancy means nothing before it.
        score = sims if step == 0 else lam * sims - (1.0 - lam) * redundancy
        score = np.where(available, score, -np.inf)
        best = int(np.argmax(score))  # the first maximum: ties go to the earlier line
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, matrix @ matrix[best])
    return chosen


def with_training_shots(
    examples: ExampleSet, pool: Sequence[Example], k: int, embedder: Embedder
) -> ExampleSet:
    """Each example with the ``k`` examples of ``pool`` most like its input, most alike first,
    as :func:`select_examples` chooses them at run time (the pool's texts embedded with their
    context, the input alone; cosine and BM25 fused, ties to the earlier line).

    An example is never its own shot, nor is another with the same input (a duplicate would
    teach copying). ``pool`` is the training side of the split, so a held-out example's answer
    never appears in a training prompt.

    Args:
        examples: The examples to give shots (their ``context`` is left as it is).
        pool: The examples shots are chosen from.
        k: Shots per example; fewer when the pool is smaller.
        embedder: The embedder the runtime selects with (the project's).

    Raises:
        ValueError: ``k`` is negative.
    """
    import numpy as np

    if k < 0:
        raise ValueError(f"k must be 0 or more, got {k}")
    if k == 0 or not pool:
        return examples
    vectors = embedder.embed([example_text(e.input, e.context) for e in pool])
    matrix = np.asarray(vectors, dtype=np.float32)
    queries = np.asarray(embedder.embed([e.input for e in examples.examples]), dtype=np.float32)
    words = _words([example_text(e.input, e.context) for e in pool])
    given = []
    for example, sims in zip(examples.examples, queries @ matrix.T, strict=True):
        order = fused_order(sims, words, example.input)
        picked = [pool[i] for i in order if pool[i].input != example.input][:k]
        given.append(replace(example, shots=tuple(picked)))
    return replace(examples, examples=given)

"""Context-aware training (RAFT): each training example carries the retrieved context it will be
served with, so the adapter learns to read context instead of memorising facts.

RAFT (Zhang et al., 2024, "RAFT: Adapting Language Model to Domain Specific RAG") trains on
prompts that hold the relevant document among distractors. Here, for a behaviour capability
served together with retrieval (``context_from:`` in ragtune.yaml), every example's input is
searched in those capabilities' knowledge, as the runtime would search it:

- the top hit is the relevant passage (an example that brings its own ``context`` keeps that
  instead), kept in a share ``oracle_share`` of the examples;
- the next hits are distractors, chosen at random among the following ones - close enough to
  look relevant, so the adapter learns that not every passage in the prompt matters;
- the passages are shuffled (``order="shuffled"``, RAFT's way: the relevant one may be
  anywhere), or kept in the order the search ranked them (``order="retrieved"``, as the runtime
  serves them: the adapter learns how far the ranking can be trusted), and numbered exactly as
  the runtime numbers them (:func:`ragtune.context.format_context`).

The result records which chunks were quoted, at which snapshot, with their text hashes:
``ragtune plan`` compares them with the live knowledge and says when an adapter has text that
has since been superseded baked in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ragtune.adapters import ContextRecord
from ragtune.adapters.config import CONTEXT_ORDERS
from ragtune.behavior.counterfactual import change_figures
from ragtune.behavior.examples import Example, ExampleSet
from ragtune.context import Passage, format_context, text_sha1

if TYPE_CHECKING:
    from ragtune.adapters import TrainConfig

__all__ = ["ContextSettings", "Retrieve", "TrainingContext", "add_context"]

Retrieve = Callable[[str, int], Sequence[Passage]]
"""Given a query and ``k``, the top ``k`` passages (best first), as the runtime retrieves."""

Pick = Callable[[Example, Sequence[Passage]], int]
"""Given an example and its hits, the index of the relevant one (default: the top hit)."""


@dataclass(frozen=True)
class ContextSettings:
    """How context is added to training examples.

    Attributes:
        passages: Passages per example: the relevant one and ``passages - 1`` distractors.
        oracle_share: Share of examples whose context holds the relevant passage; the rest get
            distractors only, so the adapter also learns to answer when retrieval missed
            (RAFT's P; the paper finds 0.6-0.8 best).
        pool: Hits searched per example; distractors are drawn at random from hits 2..pool.
        chars: Each passage is clipped to this many characters, to bound the prompt.
        order: ``shuffled``, or ``retrieved``: the search's top passages in its order, the
            relevant one where it ranked (in the last place when it ranked lower; left out and
            the next hit in its place when the example goes without it); ``reranked`` places
            them as ``retrieved`` does, in the order the retrieve function gives, which for it
            is the hits reordered by their clause closest to the query
            (:meth:`ragtune.knowledge.base.KnowledgeBase.passages`).
        counterfactual: Share of the examples with their relevant passage whose figures are
            changed, in the context and the answer alike
            (:mod:`ragtune.behavior.counterfactual`), so that only reading gets them right.
    """

    passages: int = 3
    oracle_share: float = 0.8
    pool: int = 8
    chars: int = 480
    order: str = "shuffled"
    counterfactual: float = 0.0

    @classmethod
    def of(cls, config: TrainConfig) -> ContextSettings:
        """The settings a training configuration asks for (``context_*``), with a pool of
        at least 8 hits."""
        return cls(
            passages=config.context_passages,
            oracle_share=config.context_oracle_share,
            pool=max(8, config.context_passages + 2),
            chars=config.context_chars,
            order=config.context_order,
            counterfactual=config.context_counterfactual,
        )

    def __post_init__(self) -> None:
        if self.passages < 1 or self.pool < self.passages:
            raise ValueError(
                f"context passages must be >= 1 and <= pool, got passages={self.passages}, "
                f"pool={self.pool}"
            )
        if not 0.0 <= self.oracle_share <= 1.0:
            raise ValueError(f"oracle_share must be between 0 and 1, got {self.oracle_share!r}")
        if not 0.0 <= self.counterfactual <= 1.0:
            raise ValueError(
                f"counterfactual share must be between 0 and 1, got {self.counterfactual!r}"
            )
        if self.order not in CONTEXT_ORDERS:
            raise ValueError(
                f"context order must be one of {', '.join(CONTEXT_ORDERS)}, got {self.order!r}"
            )


@dataclass
class TrainingContext:
    """What the context added to a training set was made from (for the adapter's manifest).

    Attributes:
        capabilities: The knowledge capabilities searched.
        snapshot: The knowledge snapshot searched.
        settings: The settings used.
        quoted: One entry per distinct chunk placed in a prompt: its ``chunk_id``,
            ``document``, ``section`` and ``text_hash``.
        with_oracle: Examples whose context holds their relevant passage.
        counterfactual: Examples whose figures were changed (context and answer alike).
    """

    capabilities: list[str]
    snapshot: int
    settings: ContextSettings
    quoted: list[dict[str, str]] = field(default_factory=list)
    with_oracle: int = 0
    counterfactual: int = 0

    def to_record(self) -> ContextRecord:
        """The manifest's ``context`` entry."""
        return ContextRecord(
            capabilities=list(self.capabilities),
            snapshot=self.snapshot,
            passages=self.settings.passages,
            oracle_share=self.settings.oracle_share,
            chars=self.settings.chars,
            with_oracle=self.with_oracle,
            quoted=list(self.quoted),
            counterfactual=self.counterfactual,
        )


def add_context(
    examples: ExampleSet,
    retrieve: Retrieve,
    settings: ContextSettings,
    *,
    capabilities: Sequence[str],
    snapshot: int,
    seed: int = 0,
    pick: Pick | None = None,
) -> tuple[ExampleSet, TrainingContext]:
    """The examples with retrieved context, and a record of what was quoted.

    The same examples, knowledge snapshot, settings and seed always give the same contexts.

    Args:
        examples: The behaviour examples (the file's path and hash are kept).
        retrieve: The search the runtime uses (restricted to ``capabilities``).
        settings: Passages per example, oracle share, pool and clipping.
        capabilities: The knowledge capabilities searched, for the record.
        snapshot: The knowledge snapshot searched, for the record.
        seed: Seeds which examples lose their relevant passage, the distractors and the order.
        pick: Chooses the relevant passage among the hits (a question's answer may sit in the
            second hit); default the top one.
    """
    rng = random.Random(seed)
    record = TrainingContext(list(capabilities), snapshot, settings)
    quoted: dict[str, dict[str, str]] = {}
    out: list[Example] = []
    for example in examples.examples:
        hits = list(retrieve(example.input, settings.pool))
        own = example.context
        at = 0  # the relevant passage's rank: an example's own context comes first
        if own:
            relevant: Passage | None = Passage(
                text=own, document="", section="", chunk_id="", text_hash=text_sha1(own)
            )
            hits = [h for h in hits if h.text.strip() not in own]
        elif hits:
            at = pick(example, hits) if pick is not None else 0
            relevant = hits.pop(at)
        else:
            relevant = None
        keep = relevant is not None and rng.random() < settings.oracle_share
        wanted = settings.passages - (1 if keep else 0)
        if settings.order in ("retrieved", "reranked"):
            passages = hits[:wanted]
            if keep and relevant is not None:
                passages.insert(min(at, len(passages)), relevant)
        else:
            distractors = rng.sample(hits, min(wanted, len(hits)))
            passages = distractors + ([relevant] if keep and relevant is not None else [])
            rng.shuffle(passages)
        record.with_oracle += keep
        for passage in passages:
            if passage.chunk_id:
                quoted.setdefault(
                    passage.chunk_id,
                    {
                        "chunk_id": passage.chunk_id,
                        "document": passage.document,
                        "section": passage.section,
                        "text_hash": passage.text_hash,
                    },
                )
        context = format_context(passages, settings.chars) if passages else None
        output = example.output
        if keep and context and settings.counterfactual and rng.random() < settings.counterfactual:
            changed = change_figures((context,), output, rng)
            if changed is not None:
                (context,), output = changed
                record.counterfactual += 1
        out.append(replace(example, context=context, output=output))
    record.quoted = sorted(quoted.values(), key=lambda q: (q["document"], q["chunk_id"]))
    return replace(examples, examples=out), record

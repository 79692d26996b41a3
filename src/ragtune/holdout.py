"""Which eval lines an adapter may learn from and which are only ever scored.

The eval set is split once, the same way everywhere: ``ragtune build`` trains a knowledge
capability's reader adapter on the *train* lines only, and the lab scores every adapter it
trains on the *test* lines (reporting the train lines apart, as "seen"). The split is decided by
a hash of the line's ``input`` and a seed, not by its position, so:

- a line keeps its side when lines are added, removed or reordered;
- build and lab agree without sharing any state;
- a different ``seed`` gives a different split (the lab records the seed it used in
  ``lab.json``).

With ``share=0.5`` about half the lines are held out; on a handful of lines the halves are
uneven, as any random split would be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["HELD_OUT_SHARE", "SPLIT_SEED", "input_key", "is_held_out", "split"]

SPLIT_SEED = 0
"""The seed of the split everyone uses unless told otherwise."""

HELD_OUT_SHARE = 0.5
"""The share of lines held out for scoring."""

T = TypeVar("T")


def input_key(text: str) -> str:
    """A short stable key of a request's text (whitespace-normalised), as adapter manifests
    record what they were trained on."""
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()[:16]


def is_held_out(text: str, *, seed: int = SPLIT_SEED, share: float = HELD_OUT_SHARE) -> bool:
    """Whether the eval line with this ``input`` is held out (scored, never trained on).

    Raises:
        ValueError: ``share`` outside 0..1.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"held-out share must be from 0 to 1, got {share!r}")
    digest = hashlib.sha256(f"{seed}\x00{' '.join(text.split())}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def split(
    items: Iterable[T],
    key: Callable[[T], str],
    *,
    seed: int = SPLIT_SEED,
    share: float = HELD_OUT_SHARE,
) -> tuple[list[T], list[T]]:
    """``(train, held_out)``: the items in their order, by :func:`is_held_out` of ``key(item)``."""
    train: list[T] = []
    held: list[T] = []
    for item in items:
        (held if is_held_out(key(item), seed=seed, share=share) else train).append(item)
    return train, held

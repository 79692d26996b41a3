"""The eval split: decided by each line's input and the seed, never by position."""

from __future__ import annotations

import pytest

from ragtune.holdout import is_held_out, split

LINES = [f"Question number {i} about clause {i * 7}?" for i in range(400)]


def test_split_is_about_the_share_and_partitions_the_lines() -> None:
    train, held = split(LINES, str)
    assert sorted(train + held) == sorted(LINES)
    assert not set(train) & set(held)
    assert 0.42 < len(held) / len(LINES) < 0.58
    _, most = split(LINES, str, share=0.9)
    assert len(most) > 330


def test_a_line_keeps_its_side_when_others_change() -> None:
    _, held = split(LINES, str)
    _, held_reordered = split([*reversed(LINES[:200]), "a new line?"], str)
    assert set(held_reordered) - {"a new line?"} == set(held) & set(LINES[:200])
    # Spacing does not move a line.
    assert is_held_out("How  long\tis the NDA?") == is_held_out("How long is the NDA?")


def test_seed_changes_the_split_and_share_is_checked() -> None:
    a = {x for x in LINES if is_held_out(x, seed=0)}
    b = {x for x in LINES if is_held_out(x, seed=1)}
    assert a != b
    assert not any(is_held_out(x, share=0.0) for x in LINES)
    assert all(is_held_out(x, share=1.0) for x in LINES)
    with pytest.raises(ValueError, match=r"1\.5"):
        is_held_out("x", share=1.5)

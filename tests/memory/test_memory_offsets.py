"""passes/memory_offsets.py: best-fit placement in a given order, the peak as a lower bound, and
assign_offsets (four greedy orders, then a seeded hill climb) on block sets whose optimal arena is
known; alignment of sizes."""

from __future__ import annotations

from typing import Sequence

import pytest
from graphopt.passes.plan_memory._offsets import Block, align, assign_offsets, lower_bound, place
from hypothesis import given, settings
from hypothesis import strategies as st


def _overlap_free(blocks: Sequence[Block], offsets: Sequence[int]) -> bool:
    """No two blocks live at a common step share a byte."""
    for i, a in enumerate(blocks):
        for j in range(i):
            b = blocks[j]
            if a.start <= b.end and b.start <= a.end and a.size and b.size \
                    and offsets[i] < offsets[j] + b.size and offsets[j] < offsets[i] + a.size:
                return False
    return True


def _greedy_orders(blocks: Sequence[Block]) -> list[list[int]]:
    """The four orders assign_offsets starts from (size/start, size/length, area, start/size)."""
    indices = range(len(blocks))
    return [sorted(indices, key=lambda i: (-blocks[i].size, blocks[i].start, i)),
            sorted(indices, key=lambda i: (-blocks[i].size, -(blocks[i].end - blocks[i].start), i)),
            sorted(indices, key=lambda i: (-(blocks[i].size * (blocks[i].end - blocks[i].start + 1)), i)),
            sorted(indices, key=lambda i: (blocks[i].start, -blocks[i].size, i))]


@pytest.mark.parametrize(("size", "alignment", "aligned"), [
    (100, 64, 128), (128, 64, 128), (1, 64, 64), (0, 64, 0), (7, 1, 7), (20, 48, 48), (49, 48, 96)])
def test_align_rounds_a_size_up_to_a_multiple_of_the_alignment(size: int, alignment: int,
                                                                aligned: int) -> None:
    assert align(size, alignment) == aligned


def test_greedy_by_size_alone_is_optimal_on_a_staircase() -> None:
    """A(100, steps 0-1) at 0; B(50, 1-2) above A; C(50, 2-3) overlaps only B and fits below it."""
    blocks = [Block(100, 0, 1), Block(50, 1, 2), Block(50, 2, 3)]
    assert lower_bound(blocks, 4) == 150
    assert place(blocks, [0, 1, 2], 4) == ([0, 100, 0], 150)
    assert assign_offsets(blocks, 4) == ([0, 100, 0], 150)


def test_place_puts_a_block_into_the_smallest_gap_that_fits() -> None:
    """Three 2-byte blocks live at steps 0-2 with gaps of 5 and 3 bytes between them (left by blocks
    that die at step 0): a 3-byte block live at steps 1-2 goes into the 3-byte gap at 9, not the
    first gap at 2."""
    blocks = [Block(2, 0, 2), Block(5, 0, 0), Block(2, 0, 2), Block(3, 0, 0), Block(2, 0, 2), Block(3, 1, 2)]
    assert place(blocks, range(6), 2) == ([0, 2, 7, 9, 12, 9], 14)


def test_a_later_greedy_order_reaches_the_bound_when_the_first_does_not() -> None:
    """A(2, step 1), B(2, step 3), C(1, steps 1-2), D(1, steps 2-3): peak 3. Largest first puts A and
    B both at 0, so C (above A) and D (above B, beside C) stack to 4; by start time, D goes below B
    and the arena is 3."""
    blocks = [Block(2, 1, 1), Block(2, 3, 3), Block(1, 1, 2), Block(1, 2, 3)]
    orders = _greedy_orders(blocks)
    assert lower_bound(blocks, 4) == 3
    assert place(blocks, orders[0], 4) == ([0, 0, 2, 3], 4)
    assert [place(blocks, order, 4)[1] for order in orders] == [4, 4, 4, 3]
    offsets, arena = assign_offsets(blocks, 4)
    assert (offsets, arena) == ([0, 1, 2, 0], 3)
    assert _overlap_free(blocks, offsets)


def test_the_hill_climb_reaches_the_bound_when_no_greedy_order_does() -> None:
    blocks = [Block(2, 1, 1), Block(1, 2, 3), Block(1, 0, 2), Block(2, 3, 3)]
    assert lower_bound(blocks, 4) == 3
    assert [place(blocks, order, 4)[1] for order in _greedy_orders(blocks)] == [4, 4, 4, 4]
    assert assign_offsets(blocks, 4, budget=0) == ([0, 3, 2, 0], 4)  # no climb: the first greedy order
    offsets, arena = assign_offsets(blocks, 4)
    assert (offsets, arena) == ([0, 0, 2, 1], 3)
    assert _overlap_free(blocks, offsets)
    assert assign_offsets(blocks, 4) == (offsets, arena)  # seeded: the same answer every time


def test_nothing_to_place_needs_no_arena() -> None:
    assert assign_offsets([], 0) == ([], 0)
    assert lower_bound([], 3) == 0


BLOCKS = st.lists(st.tuples(st.integers(0, 64), st.integers(0, 9), st.integers(0, 4)), max_size=12).map(
    lambda items: [Block(size, start, min(start + length, 9)) for size, start, length in items])


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(BLOCKS)
def test_assign_offsets_is_sound_and_never_worse_than_any_single_greedy_order(blocks: list[Block]) -> None:
    offsets, arena = assign_offsets(blocks, 9)
    assert _overlap_free(blocks, offsets)
    assert arena == max((o + b.size for o, b in zip(offsets, blocks)), default=0)
    assert lower_bound(blocks, 9) <= arena
    assert all(arena <= place(blocks, order, 9)[1] for order in _greedy_orders(blocks))

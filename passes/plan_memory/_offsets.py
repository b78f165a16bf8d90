"""Arena offsets for buffers with known lifetimes: greedy-by-size placement (as in TFLite: each buffer,
largest first, goes into the smallest gap between the buffers it overlaps in time), tried in a few
orders, then a seeded hill climb over the placement order while the arena is above the lower bound."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from ._lifetimes import peak_bytes


@dataclass(frozen=True)
class Block:
    """One buffer to place: aligned size and live steps (inclusive)."""

    size: int
    start: int
    end: int


def align(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment if alignment > 1 else size


def place(blocks: Sequence[Block], order: Sequence[int], steps: int) -> tuple[list[int], int]:
    """Offsets for ``blocks`` placed in ``order`` (best-fit gap among time-overlapping blocks)."""
    offsets = [0] * len(blocks)
    live: list[list[int]] = [[] for _ in range(steps + 1)]
    arena = 0
    for index in order:
        block = blocks[index]
        seen: set[int] = set()
        conflicts: list[tuple[int, int]] = []
        for step in range(block.start, block.end + 1):
            for other in live[step]:
                if other not in seen:
                    seen.add(other)
                    conflicts.append((offsets[other], offsets[other] + blocks[other].size))
        conflicts.sort()
        best, best_gap, cursor = -1, None, 0
        for low, high in conflicts:
            gap = low - cursor
            if gap >= block.size and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, high)
        offset = best if best >= 0 else cursor
        offsets[index] = offset
        arena = max(arena, offset + block.size)
        for step in range(block.start, block.end + 1):
            live[step].append(index)
    return offsets, arena


def lower_bound(blocks: Sequence[Block], steps: int) -> int:
    return peak_bytes(((b.size, b.start, b.end) for b in blocks), steps)


def assign_offsets(blocks: Sequence[Block], steps: int, budget: int = 200,
                   seed: int = 0) -> tuple[list[int], int]:
    """The best placement found: greedy orders first, then up to ``budget`` hill-climb moves (fewer
    for very large graphs, so that planning stays near-linear); stops at the lower bound."""
    bound = lower_bound(blocks, steps)
    indices = list(range(len(blocks)))
    candidates = [
        sorted(indices, key=lambda i: (-blocks[i].size, blocks[i].start, i)),
        sorted(indices, key=lambda i: (-blocks[i].size, -(blocks[i].end - blocks[i].start), i)),
        sorted(indices, key=lambda i: (-(blocks[i].size * (blocks[i].end - blocks[i].start + 1)), i)),
        sorted(indices, key=lambda i: (blocks[i].start, -blocks[i].size, i)),
    ]
    best_order, (best_offsets, best_arena) = candidates[0], place(blocks, candidates[0], steps)
    for order in candidates[1:]:
        if best_arena <= bound:
            break
        offsets, arena = place(blocks, order, steps)
        if arena < best_arena:
            best_order, best_offsets, best_arena = order, offsets, arena
    moves = min(budget, max(0, 2_000_000 // max(1, len(blocks))))
    rng = random.Random(seed)
    current = list(best_order)
    for _ in range(moves):
        if best_arena <= bound or len(current) < 2:
            break
        trial = list(current)
        top = [i for i in range(len(trial)) if best_offsets[trial[i]] + blocks[trial[i]].size == best_arena]
        moved = trial.pop(rng.choice(top) if top and rng.random() < 0.5 else rng.randrange(len(trial)))
        trial.insert(rng.randrange(len(trial) + 1), moved)
        offsets, arena = place(blocks, trial, steps)
        if arena <= best_arena:
            current, best_offsets, best_arena = trial, offsets, arena
    return best_offsets, best_arena

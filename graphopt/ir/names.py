"""One name generator for all values and nodes on export, so names never collide (SSA)."""

from __future__ import annotations

import re


class NameGenerator:
    """Hands out unique names, keeping a proposed name whenever it is still free."""

    __slots__ = ("_taken", "_counters")

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._counters: dict[str, int] = {}

    def reserve(self, name: str) -> bool:
        """Claim ``name`` if free; return whether it was."""
        if name in self._taken:
            return False
        self._taken.add(name)
        return True

    def fresh(self, stem: str) -> str:
        """A new unique name derived from ``stem`` (deterministic: a per-stem counter)."""
        stem = re.sub(r"_\d+$", "", stem) or "v"
        n = self._counters.get(stem, 0)
        while True:
            candidate = f"{stem}_{n}"
            n += 1
            if candidate not in self._taken:
                self._counters[stem] = n
                self._taken.add(candidate)
                return candidate

    def claim(self, proposed: str | None, stem: str) -> str:
        """``proposed`` if it is non-empty and free, else a fresh name from ``stem``."""
        if proposed and self.reserve(proposed):
            return proposed
        return self.fresh(proposed or stem)

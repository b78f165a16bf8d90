"""Fixtures for the pass-infrastructure tests."""

from __future__ import annotations

import sys
from typing import Iterator

import pytest

from graphopt.pass_infra.registry import DEFAULT_REGISTRY, PassRegistry


@pytest.fixture
def default_registry() -> Iterator[PassRegistry]:
    """The global registry, restored afterwards (passes registered by a test do not leak)."""
    DEFAULT_REGISTRY.load_entry_points()
    saved = dict(DEFAULT_REGISTRY._passes)
    modules = set(sys.modules)
    yield DEFAULT_REGISTRY
    DEFAULT_REGISTRY._passes.clear()
    DEFAULT_REGISTRY._passes.update(saved)
    for name in set(sys.modules) - modules:
        if name.startswith(("graphopt_plugin_", "graphopt_test_plugin")):
            del sys.modules[name]

"""Fixtures for the pass-infrastructure tests."""

from __future__ import annotations

import sys
from typing import Iterator

import pytest

from graphopt.pass_infra.registry import DEFAULT_REGISTRY, PassRegistry


@pytest.fixture
def default_registry() -> Iterator[PassRegistry]:
    """The global registry, restored afterwards (passes registered by a test do not leak)."""
    modules = set(sys.modules)
    with DEFAULT_REGISTRY.scope() as registry:
        yield registry
    for name in set(sys.modules) - modules:
        if name.startswith(("graphopt_plugin_", "graphopt_test_plugin")):
            del sys.modules[name]

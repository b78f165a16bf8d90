"""The fixture files in git are exactly what fixtures/make_fixtures.py builds, and stay small."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _builder():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixture_files_match_their_builder() -> None:
    """Regenerate with `python fixtures/make_fixtures.py` when this fails."""
    module = _builder()
    for name, build in module.FIXTURES.items():
        assert (FIXTURES / name).read_bytes() == build().SerializeToString(deterministic=True), name


def test_fixtures_stay_under_five_megabytes() -> None:
    """The brief caps committed fixtures at 5 MB in total."""
    total = sum(os.path.getsize(p) for p in FIXTURES.iterdir() if p.is_file())
    assert total < 5 * 2**20

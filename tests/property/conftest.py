"""Hypothesis profiles for the property suite.

``ci`` (default): derandomized, no example database, a fixed budget per test that adds up to more than
2000 generated graphs. ``long``: randomized and ten times the examples, for local bug hunting:
``HYPOTHESIS_PROFILE=long python -m pytest tests/property``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
              print_blob=True)
settings.register_profile("ci", derandomize=True, database=None, **COMMON)
settings.register_profile("long", derandomize=False, max_examples=1000, **COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

"""Example budgets of the property suite: the ci profile's counts, ten times as many under ``long``."""

from __future__ import annotations

import os


def examples(n: int) -> int:
    """``n`` examples under the ci profile, ten times as many under ``long``."""
    return n * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else n

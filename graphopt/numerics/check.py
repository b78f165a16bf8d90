"""The per-pass numeric equivalence check: the product's promise, as a pass-manager instrument."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphopt.errors import RuntimeCheckError
from graphopt.ir.model import Model
from graphopt.numerics.compare import Mismatch, compare_outputs, max_errors
from graphopt.numerics.interface import adapt_feeds, adapt_outputs
from graphopt.numerics.run import run_model
from graphopt.pass_infra.base import PassResult
from graphopt.pass_infra.manager import PassRecord


@dataclass
class NumericCheck:
    """Compares each changed model's outputs with the original's reference outputs.

    The reference is computed once; each check costs one onnxruntime session on the changed model.
    A model whose interface layout was changed (see graphopt.numerics.interface) is fed and compared in
    the original layout.
    """

    feeds: dict[str, np.ndarray]
    reference: dict[str, Any]
    tolerance: tuple[float, float] | None = None
    base_inputs: dict[str, list[int]] = field(default_factory=dict)  # interface perms of the reference
    base_outputs: dict[str, list[int]] = field(default_factory=dict)
    sessions: int = 0
    failures: list[tuple[str, list[Mismatch]]] = field(default_factory=list)

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Nothing to do before a pass."""

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Return a failure reason when the changed model no longer matches the reference."""
        if not result.changed:
            return None
        return self.check(record, model)

    def check(self, record: PassRecord, model: Model) -> str | None:
        """Run ``model`` and compare; records max errors on ``record.checks['numeric']``."""
        self.sessions += 1
        try:
            feeds = adapt_feeds(model, self.feeds, self.base_inputs)
            actual = adapt_outputs(model, run_model(model, feeds, what=f"model after pass {record.name!r}"),
                                   self.base_outputs)
        except RuntimeCheckError as exc:
            record.checks["numeric"] = {"ok": False, "error": str(exc)}
            return str(exc)
        mismatches = compare_outputs(self.reference, actual, self.tolerance)
        max_abs, max_rel = max_errors(self.reference, actual)
        record.checks["numeric"] = {"ok": not mismatches, "max_abs": max_abs, "max_rel": max_rel}
        if mismatches:
            self.failures.append((record.name, mismatches))
            return "numeric check failed: " + "; ".join(str(m) for m in mismatches[:3])
        return None

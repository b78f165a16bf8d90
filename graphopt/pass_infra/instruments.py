"""Instruments that run around passes: IR verification and IR dumps (numeric checks live in
graphopt.numerics.check)."""

from __future__ import annotations

import os
import re

from graphopt.errors import VerificationError
from graphopt.ir.model import Model
from graphopt.ir.verify import verify
from graphopt.pass_infra.base import PassResult
from graphopt.pass_infra.manager import PassRecord


class VerifyIR:
    """Run the IR verifier after every pass that changed the model."""

    cause = "verifier"  # how the pass manager labels the rollbacks this instrument causes

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Nothing to do before a pass."""

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Return the verifier's message when the changed IR is inconsistent."""
        if not result.changed:
            return None
        try:
            verify(model)
        except VerificationError as exc:
            return str(exc)
        return None


class DumpIR:
    """Write the model after each changing pass to ``folder/NN-pass-name.onnx``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.count = 0
        os.makedirs(folder, exist_ok=True)

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Nothing to do before a pass."""

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Save a copy of the changed model; never fails the pass."""
        if result.changed:
            from graphopt.onnx_io.save import save_model

            self.count += 1
            safe = re.sub(r"[^\w\-]", "_", record.name)
            save_model(model, os.path.join(self.folder, f"{self.count:03d}-{safe}.onnx"))
        return None

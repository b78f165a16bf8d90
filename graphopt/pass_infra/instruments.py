"""Instruments that run around passes: IR verification and IR dumps (numeric checks live in
graphopt.numerics.check)."""

from __future__ import annotations

import os
import re
from typing import Callable

from graphopt.errors import VerificationError
from graphopt.ir.model import Model
from graphopt.ir.printer import format_model
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

    def on_failure(self, record: PassRecord, model: Model, failure: str) -> None:
        """Nothing to do when a pass fails."""


class ReportStage:
    """Tell a watcher (the CLI's live status line) which pass is running and which is being checked.

    Placed before the numeric check, so "checking" shows while onnxruntime compares; never fails a pass.
    """

    def __init__(self, watch: Callable[[str], None]) -> None:
        self.watch = watch

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Say which pass starts, and in which fixed-point round."""
        where = f" (round {record.round})" if record.round else ""
        self.watch(f"running {record.name}{where} · {record.nodes_before} nodes")

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Say that a changing pass is being verified and checked."""
        if result.changed:
            self.watch(f"checking {record.name} · {len(list(model.graph.all_nodes()))} nodes")
        return None

    def on_failure(self, record: PassRecord, model: Model, failure: str) -> None:
        """Nothing to say: the rollback is reported with the pass."""


DUMP_FORMATS = ("onnx", "text", "both")


class DumpIR:
    """Write the model after each changing pass to ``folder/NNN-pass-name.onnx`` (and/or ``.txt``, the
    one-line-per-node text form); a pass that fails is dumped as ``NNN-pass-name.FAILED.*`` as it was
    before its rollback."""

    def __init__(self, folder: str, dump_format: str = "onnx") -> None:
        self.folder = folder
        self.dump_format = dump_format
        self.count = 0
        os.makedirs(folder, exist_ok=True)

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Nothing to do before a pass."""

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Save a copy of the changed model; never fails the pass."""
        if result.changed:
            self._dump(record, model, "")
        return None

    def on_failure(self, record: PassRecord, model: Model, failure: str) -> None:
        """Save the model the failing pass left, with the failure as the text dump's first line."""
        self._dump(record, model, ".FAILED", f"# {record.name} failed: {failure}\n")

    def _dump(self, record: PassRecord, model: Model, suffix: str, header: str = "") -> None:
        self.count += 1
        safe = re.sub(r"[^\w\-]", "_", record.name)
        stem = os.path.join(self.folder, f"{self.count:03d}-{safe}{suffix}")
        if self.dump_format in ("onnx", "both"):
            from graphopt.onnx_io.save import save_model

            try:
                save_model(model, stem + ".onnx")
            except Exception as exc:  # noqa: BLE001 - a broken IR cannot always be exported: say so instead
                with open(stem + ".onnx.error.txt", "w", encoding="utf-8") as handle:
                    handle.write(f"{exc}\n")
        if self.dump_format in ("text", "both"):
            with open(stem + ".txt", "w", encoding="utf-8") as handle:
                handle.write(header + format_model(model))

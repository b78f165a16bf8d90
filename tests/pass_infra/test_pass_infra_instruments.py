"""Instruments: VerifyIR reports broken IR only after changing passes; DumpIR writes one file per change."""

from __future__ import annotations

from pathlib import Path

import onnx
from pass_infra_kit import LeavesDanglingUse, messy_model, registry

from graphopt import PassResult, import_model
from graphopt.pass_infra.instruments import DumpIR, VerifyIR
from graphopt.pass_infra.manager import PassManager, PassRecord
from graphopt.pass_infra.pipeline import parse_pipeline


def test_verify_ir_returns_none_for_sound_ir_and_the_message_for_broken_ir() -> None:
    """after_pass answers a failure reason (not an exception) so the manager can roll back."""
    model = import_model(messy_model())
    record = PassRecord("p")
    assert VerifyIR().after_pass(record, model, PassResult(True)) is None
    LeavesDanglingUse().run(model)
    reason = VerifyIR().after_pass(record, model, PassResult(True))
    assert reason is not None and reason.startswith("IR verification failed: ")
    assert VerifyIR().after_pass(record, model, PassResult(False)) is None


def test_dump_ir_writes_one_file_per_changing_pass(tmp_path: Path) -> None:
    """DCE and fold-constants change the model, topological-sort does not: two numbered files."""
    dump = DumpIR(str(tmp_path / "dumps"))
    pipeline = "eliminate-dead-code,fold-constants,topological-sort"
    PassManager(parse_pipeline(pipeline), [dump], registry=registry()).run(import_model(messy_model()))
    files = sorted(p.name for p in (tmp_path / "dumps").iterdir())
    assert files == ["001-eliminate-dead-code.onnx", "002-fold-constants.onnx"]
    after_dce = onnx.load(str(tmp_path / "dumps" / files[0]))
    after_fold = onnx.load(str(tmp_path / "dumps" / files[1]))
    assert [n.op_type for n in after_dce.graph.node] == ["Relu", "Add", "Mul"]
    assert [n.op_type for n in after_fold.graph.node] == ["Relu", "Mul"]
    onnx.checker.check_model(after_fold)


def test_dump_ir_makes_pass_names_safe_for_file_names(tmp_path: Path) -> None:
    """Characters other than word characters and dashes become underscores."""
    dump = DumpIR(str(tmp_path))
    dump.after_pass(PassRecord("my.pass/v2"), import_model(messy_model()), PassResult(True))
    assert [p.name for p in tmp_path.iterdir()] == ["001-my_pass_v2.onnx"]


def test_dump_ir_does_not_dump_a_rolled_back_pass(tmp_path: Path) -> None:
    """An instrument before it vetoes the change, so DumpIR is not asked."""
    dump = DumpIR(str(tmp_path / "d"))
    manager = PassManager(parse_pipeline("leaves-dangling-use"), [VerifyIR(), dump],
                          registry=registry(LeavesDanglingUse))
    report = manager.run(import_model(messy_model()))
    assert report.records[0].status == "rolled-back"
    assert list((tmp_path / "d").iterdir()) == []

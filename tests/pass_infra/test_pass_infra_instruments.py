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


def test_dump_ir_dumps_the_model_a_failing_pass_left(tmp_path: Path) -> None:
    """The verifier vetoes the change; DumpIR's failure hook still writes what the pass left (as text:
    the broken IR cannot be exported, which the ONNX dump's place says), before the rollback."""
    dump = DumpIR(str(tmp_path / "d"), "both")
    manager = PassManager(parse_pipeline("leaves-dangling-use"), [VerifyIR(), dump],
                          registry=registry(LeavesDanglingUse))
    report = manager.run(import_model(messy_model()))
    assert report.records[0].status == "rolled-back"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "001-leaves-dangling-use.FAILED.onnx.error.txt", "001-leaves-dangling-use.FAILED.txt"]
    text = (tmp_path / "d" / "001-leaves-dangling-use.FAILED.txt").read_text()
    assert text.startswith(f"# leaves-dangling-use failed: {report.records[0].failure}\nmodel opsets [")


def test_dump_format_text_writes_one_line_per_node_to_diff(tmp_path: Path) -> None:
    """The text form names every node with its typed outputs and inputs; the DCE dump lacks the dead node."""
    dump = DumpIR(str(tmp_path), "text")
    PassManager(parse_pipeline("eliminate-dead-code,fold-constants"), [dump],
                registry=registry()).run(import_model(messy_model()))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["001-eliminate-dead-code.txt", "002-fold-constants.txt"]
    after_dce = (tmp_path / files[0]).read_text().splitlines()
    after_fold = (tmp_path / files[1]).read_text().splitlines()
    node_lines = [line.strip() for line in after_dce
                  if " = " in line and not line.strip().startswith("const")]
    assert [line.split(" = ")[1].split("(")[0].split(" ")[0] for line in node_lines] == ["Relu", "Add", "Mul"]
    assert sum(" = Add" in line for line in after_fold) == 0 and after_fold[0].startswith("model opsets [")

"""The human-readable tables of graphopt.report: sizes, the op table and the pass table."""

from __future__ import annotations

from collections import Counter

import onnx
import pytest

from graphopt import import_model
from graphopt.api import OptimizeResult
from graphopt.pass_infra.manager import PassRecord, PipelineReport
from graphopt.report import format_bytes, op_table, pass_table


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (-1024, "-1.0 KB"),
                                    (5 * 2**20, "5.0 MB"), (3 * 2**30, "3.0 GB"), (2**42, "4096.0 GB")])
def test_format_bytes(n: int, text: str) -> None:
    """Bytes below 1 KiB are whole; larger sizes get one decimal; GB is the largest unit."""
    assert format_bytes(n) == text


def test_op_table_sorts_by_count_before_then_name_and_marks_changes() -> None:
    """Ops new after optimization appear with 0 before; totals close the table."""
    before = Counter({"Conv": 2, "Add": 1, "Identity": 1})
    table = op_table(before, Counter({"Conv": 2, "Add": 1, "Gemm": 1}))
    assert table.splitlines() == [
        "op type    before    after",
        "Conv            2        2",
        "Add             1        1",
        "Identity        1        0  *",
        "Gemm            0        1  *",
        "total           4        4",
    ]


def test_pass_table_shows_status_nodes_weights_check_and_failures() -> None:
    """A checked pass shows its relative error; a rolled-back one shows FAILED and the reason."""
    ok = PassRecord("fold-constants", status="changed", nodes_before=5, nodes_after=3, bytes_before=100,
                    bytes_after=2148, checks={"numeric": {"ok": True, "max_abs": 0.0, "max_rel": 3e-7}})
    bad = PassRecord("swap", status="rolled-back", nodes_before=3, nodes_after=3,
                     checks={"numeric": {"ok": False}}, failure="numeric check failed: output 'y'")
    model = import_model(onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], [])))
    result = OptimizeResult(model, PipelineReport("p", [ok, bad]), Counter(), Counter(), "each")
    lines = pass_table(result).splitlines()
    assert lines[0].split() == ["pass", "status", "time", "nodes", "weights", "Δ", "check"]
    assert lines[1].split() == ["fold-constants", "changed", "0ms", "5->3", "2.0", "KB", "ok", "(rel",
                                "3.0e-07)"]
    assert lines[2].split() == ["swap", "rolled-back", "0ms", "3->3", "0", "FAILED"]
    assert lines[3] == "    ! numeric check failed: output 'y'"

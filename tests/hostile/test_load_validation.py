"""Corrupt models found by the fuzz sweep end at load with one clear error (exit 2), and a model whose
integer division traps onnxruntime (SIGFPE) is an error of the check (exit 5), not graphopt's death."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt.cli import main
from graphopt.numerics.run import has_integer_division


def _relu_model() -> onnx.ModelProto:
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="r")], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [2])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    return path


def _optimize(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str]]:
    out = path.with_name("out.onnx")
    code = main(["optimize", str(path), "-o", str(out), "-q", *extra])
    assert not out.exists() or code == 0
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_name_that_is_not_utf8_is_a_load_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _relu_model().SerializeToString().replace(b"Relu", b"Rel\xf9")
    code, err = _optimize(_write(tmp_path, data), capsys)
    assert code == 2 and len(err) == 1
    assert err[0] == ("graphopt: error: model.graph.node: field 'op_type' holds bytes that are not UTF-8 "
                      "(b'Rel\\xf9')")


@pytest.mark.parametrize("edit,message", [
    (lambda t: setattr(t, "data_type", 99), "tensor 'w': unknown data type 99"),
    (lambda t: t.dims.extend([2**62, 2**62]), "tensor 'w': impossible dims [2, 4611686018427387904, "),
    (lambda t: t.dims.__setitem__(0, 10**12),
     "a tensor's data does not match its type and dims [1000000000000]"),
])
def test_an_initializer_that_cannot_be_real_is_a_load_error(  # type: ignore[no-untyped-def]
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, message: str) -> None:
    model = _relu_model()
    model.graph.node[0].op_type = "Add"
    model.graph.node[0].input.append("w")
    model.graph.initializer.append(nh.from_array(np.ones(2, np.float32), "w"))
    edit(model.graph.initializer[0])
    code, err = _optimize(_write(tmp_path, model.SerializeToString()), capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_an_unknown_element_type_on_an_input_is_a_load_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    model = _relu_model()
    model.graph.input[0].type.tensor_type.elem_type = 999
    code, err = _optimize(_write(tmp_path, model.SerializeToString()), capsys)
    assert code == 2 and err == ["graphopt: error: 'x' is declared with unknown element type 999"]


def test_integer_division_that_traps_onnxruntime_is_a_check_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """INT_MIN / -1 kills onnxruntime with SIGFPE; the check runs it in a child process."""
    inits = [nh.from_array(np.array([np.iinfo(np.int32).min, 4], np.int32), "w"),
             nh.from_array(np.array([-1, 2], np.int32), "m")]
    graph = h.make_graph([h.make_node("Div", ["w", "m"], ["d"]), h.make_node("Add", ["x", "d"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.INT32, [2])],
                         [h.make_tensor_value_info("y", T.INT32, [2])], inits)
    path = _write(tmp_path, h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]).SerializeToString())
    code, err = _optimize(path, capsys)
    assert code == 5 and len(err) == 1
    assert err[0].startswith("graphopt: error: onnxruntime crashed (SIGFPE) running the original model")
    code, err = _optimize(path, capsys, "--check", "off")  # without checks nothing runs it
    assert code == 0


def test_only_divisions_that_can_trap_are_isolated() -> None:
    assert has_integer_division([T.INT64]) and has_integer_division([None])
    assert not has_integer_division([T.FLOAT, T.FLOAT16]) and not has_integer_division([])


def test_a_constant_whose_value_attribute_has_the_wrong_type_is_a_load_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """value_float holding a string: onnxruntime returns the string, so reading .f (0.0) would be wrong."""
    node = h.make_node("Constant", [], ["y"], name="c")
    node.attribute.append(onnx.AttributeProto(name="value_float", type=onnx.AttributeProto.STRING, s=b"one"))
    graph = h.make_graph([node], "g", [], [h.make_tensor_value_info("y", T.FLOAT, [])])
    path = _write(tmp_path, h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]).SerializeToString())
    code, err = _optimize(path, capsys)
    assert code == 2 and err == ["graphopt: error: Constant node 'c': attribute value_float has type STRING, "
                                 "not FLOAT"]

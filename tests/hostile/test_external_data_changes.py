"""A data file that changes between loading the model and reading its weights is refused: the offsets
were checked against the file as it was, so reading another file at them could give garbage."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import ExternalDataError
from graphopt.onnx_io import load_model


def test_a_data_file_replaced_after_load_is_refused_when_the_weights_are_read(tmp_path: Path) -> None:
    weight = numpy_helper.from_array(np.arange(1024, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])], [weight])
    path = tmp_path / "m.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path),
                    save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    model = load_model(str(path))  # lazy: the data file is not mapped yet
    data = tmp_path / "m.onnx.data"
    replacement = tmp_path / "other.data"
    replacement.write_bytes(np.full(2048, 7, np.float32).tobytes())
    os.replace(replacement, data)  # another file under the same name
    (const,) = model.graph.consts
    with pytest.raises(ExternalDataError, match="changed since the model was loaded"):
        const.const.numpy()  # type: ignore[union-attr]

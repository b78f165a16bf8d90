"""certain_failure: every failure it names is one onnxruntime raises, and it names none it cannot know.

Each rule is pinned twice. The node is built with its graph inputs declared *without* shapes (so
onnxruntime cannot refuse the model at load time: only its kernel can object) and run on arrays of the
offending shapes, which must raise; the same node with those shapes declared, imported and typed by
``refresh_types``, must get the exact reason from ``certain_failure``. Valid and unknown ranks get no
reason, and a hypothesis property checks over random ranks that a claimed failure is always real.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import onnx
import onnxruntime
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

from graphopt import import_model
from graphopt.analyses.certain_failures import _CHECKS, AXIS_OPS, certain_failure
from graphopt.analyses.shapes import refresh_types

FLOAT = TensorProto.FLOAT
ORT_ERRORS = (Fail, InvalidArgument, RuntimeException)  # what a failing kernel raises through the bindings


@dataclass(frozen=True)
class Case:
    """One node: its op, the shapes of its float graph inputs (a str is a symbolic dim), its attributes
    and its int64 constant inputs (initializers placed after the graph inputs)."""

    op: str
    shapes: tuple[tuple[int | str, ...], ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    consts: tuple[Sequence[int], ...] = ()
    opset: int = 17
    outputs: int = 1
    domain: str = ""


def proto(case: Case, known: bool) -> onnx.ModelProto:
    """The one-node model; ``known`` declares the input shapes, otherwise only their element type."""
    names = [f"x{i}" for i in range(len(case.shapes))]
    inputs = [h.make_tensor_value_info(n, FLOAT, list(s) if known else None)
              for n, s in zip(names, case.shapes)]
    consts = [nh.from_array(np.asarray(c, dtype=np.int64), f"c{i}") for i, c in enumerate(case.consts)]
    outs = [f"y{i}" for i in range(case.outputs)]
    node = h.make_node(case.op, names + [c.name for c in consts], outs, domain=case.domain, **case.attrs)
    outputs = [h.make_tensor_value_info(o, FLOAT, None) for o in outs]
    graph = h.make_graph([node], "g", inputs, outputs, consts)
    opsets = [h.make_opsetid("", case.opset)] + ([h.make_opsetid(case.domain, 1)] if case.domain else [])
    model = h.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def judged(case: Case, known: bool = True) -> str | None:
    """certain_failure on the node after import and type inference."""
    model = import_model(proto(case, known))
    refresh_types(model)
    (node,) = list(model.graph)
    return certain_failure(node, model.opset)


def session(case: Case) -> onnxruntime.InferenceSession:
    """An onnxruntime session (no graph optimisation, quiet) on the node with shape-less inputs."""
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(proto(case, known=False).SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def feeds(case: Case, symbolic: int = 1) -> dict[str, np.ndarray]:
    """Arrays of the case's shapes (a symbolic dim takes the size ``symbolic``)."""
    return {f"x{i}": np.ones([d if isinstance(d, int) else symbolic for d in s], np.float32)
            for i, s in enumerate(case.shapes)}


LSTM_W, LSTM_R = (1, 8, 3), (1, 8, 2)  # one direction, hidden_size 2 (4 gates), input_size 3
GRU_W, GRU_R = (1, 6, 3), (1, 6, 2)
RNN_W, RNN_R = (1, 2, 3), (1, 2, 2)
RANK = "Input X must have 3 dimensions only"
POOL = "Input dimension cannot be less than 3"
AXIS = "axis 2 is not in valid range [-2,1]"

# (case, exact reason, fragment of onnxruntime's message): one or more per rule of the module's table.
FAILING = [
    pytest.param(Case("LSTM", ((2, 3), LSTM_W, LSTM_R), {"hidden_size": 2}),
                 "LSTM input X has rank 2, needs 3", RANK, id="LSTM-rank2"),
    pytest.param(Case("LSTM", ((1, 2, 3, 1), LSTM_W, LSTM_R), {"hidden_size": 2}),
                 "LSTM input X has rank 4, needs 3", RANK, id="LSTM-rank4"),
    pytest.param(Case("GRU", ((2, 3), GRU_W, GRU_R), {"hidden_size": 2}),
                 "GRU input X has rank 2, needs 3", RANK, id="GRU-rank2"),
    pytest.param(Case("RNN", ((1, 2, 3, 1), RNN_W, RNN_R), {"hidden_size": 2}),
                 "RNN input X has rank 4, needs 3", RANK, id="RNN-rank4"),
    pytest.param(Case("Conv", ((1, 3), (1, 3))),
                 "Conv input X has rank 2, needs at least 3", "X num_dims must be >= 3", id="Conv-rank2"),
    pytest.param(Case("Conv", ((1, 1, 3, 3), (1, 1, 3))), "Conv input X has rank 4 but W has rank 3",
                 "X num_dims does not match W num_dims", id="Conv-W-rank"),
    pytest.param(Case("ConvTranspose", ((1, 3), (1, 3))),
                 "ConvTranspose input X has rank 2, needs at least 3",
                 "Input X must have at least 3 dimensions", id="ConvTranspose-rank2"),
    pytest.param(Case("ConvTranspose", ((1, 1, 3, 3), (1, 1, 3))),
                 "ConvTranspose input X has rank 4 but W has rank 3",
                 "X num_dims does not match W num_dims", id="ConvTranspose-W-rank"),
    *[pytest.param(Case(op, ((1, 3),), {"kernel_shape": [1]}), f"{op} input X has rank 2, needs at least 3",
                   POOL, id=f"{op}-rank2") for op in ("MaxPool", "AveragePool", "LpPool")],
    *[pytest.param(Case(op, ((3,),)), f"{op} input X has rank 1, needs at least 3", POOL, id=f"{op}-rank1")
      for op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")],
    pytest.param(Case("MatMul", ((), (2, 2))), "MatMul operand has rank 0",
                 "left_num_dims and right_num_dims must be >= 1", id="MatMul-A-rank0"),
    pytest.param(Case("MatMul", ((2, 2), ())), "MatMul operand has rank 0",
                 "left_num_dims and right_num_dims must be >= 1", id="MatMul-B-rank0"),
    pytest.param(Case("Transpose", ((2, 3),), {"perm": [0, 2, 1]}),
                 "Transpose perm has 3 entries for an input of rank 2",
                 "perm size: 3 does not match input rank: 2", id="Transpose"),
    pytest.param(Case("Concat", ((2, 3), (2, 3, 1)), {"axis": 0}), "Concat inputs have ranks [2, 3]",
                 "Ranks of input data are different", id="Concat"),
    pytest.param(Case("Squeeze", ((2, 1),), consts=([2],)), "Squeeze axis 2 is out of range for rank 2",
                 AXIS, id="Squeeze17-range"),
    pytest.param(Case("Squeeze", ((2, 1),), consts=([-2],)), "Squeeze axis -2 has size 2, not 1",
                 "Dimension of input 0 must be 1 instead of 2", id="Squeeze17-size"),
    pytest.param(Case("Squeeze", ((2, 1),), {"axes": [2]}, opset=11),
                 "Squeeze axis 2 is out of range for rank 2", AXIS, id="Squeeze11-range"),
    pytest.param(Case("Squeeze", ((2, 1),), {"axes": [0]}, opset=11), "Squeeze axis 0 has size 2, not 1",
                 "Dimension of input 0 must be 1 instead of 2", id="Squeeze11-size"),
    pytest.param(Case("Unsqueeze", ((2, 1),), consts=([3],)),
                 "Unsqueeze axis 3 is out of range for output rank 3",
                 "axis 3 is not in valid range [-3,2]", id="Unsqueeze17"),
    pytest.param(Case("Unsqueeze", ((2, 1),), consts=([0, -5],)),
                 "Unsqueeze axis -5 is out of range for output rank 4",
                 "axis -5 is not in valid range [-4,3]", id="Unsqueeze17-negative"),
    pytest.param(Case("Unsqueeze", ((2, 1),), {"axes": [3]}, opset=11),
                 "Unsqueeze axis 3 is out of range for output rank 3",
                 "axis 3 is not in valid range [-3,2]", id="Unsqueeze11"),
    pytest.param(Case("Flatten", ((2, 3),), {"axis": 3}), "Flatten axis 3 is out of range for rank 2",
                 "The rank of input tensor must be >= axis", id="Flatten-above"),
    pytest.param(Case("Flatten", ((2, 3),), {"axis": -3}), "Flatten axis -3 is out of range for rank 2",
                 "axis -3 is not in valid range [-2,1]", id="Flatten-below"),
    pytest.param(Case("Flatten", ((),)), "Flatten axis 1 is out of range for rank 0",
                 "The rank of input tensor must be >= axis", id="Flatten-default-axis-rank0"),
    *[pytest.param(Case(op, ((2, 3),), {"axis": 2}), f"{op} axis 2 is out of range for rank 2", AXIS, id=op)
      for op in ("Softmax", "LogSoftmax", "Hardmax")],
    pytest.param(Case("Softmax", ((2, 3),), {"axis": -3}), "Softmax axis -3 is out of range for rank 2",
                 "axis -3 is not in valid range [-2,1]", id="Softmax-negative"),
    pytest.param(Case("Softmax", ((2, 3),), {"axis": 2}, opset=11),
                 "Softmax axis 2 is out of range for rank 2", AXIS, id="Softmax11"),
    pytest.param(Case("Gather", ((2, 3),), {"axis": 2}, consts=([0],)),
                 "Gather axis 2 is out of range for rank 2", AXIS, id="Gather"),
    pytest.param(Case("Split", ((2, 4),), {"axis": 2}, outputs=2), "Split axis 2 is out of range for rank 2",
                 AXIS, id="Split"),
]


def test_every_rule_of_the_module_has_a_failing_case() -> None:
    """The table above covers every op the module judges (a new rule needs a pinned case)."""
    assert {p.values[0].op for p in FAILING} == set(_CHECKS) | AXIS_OPS


@pytest.mark.parametrize(("case", "reason", "message"), FAILING)
def test_onnxruntime_raises_at_run_time_on_the_named_failure(case: Case, reason: str, message: str) -> None:
    """The model loads (nothing is known about the inputs), and the kernel refuses the offending shapes."""
    run = session(case)
    with pytest.raises(ORT_ERRORS, match=re.escape(message)):
        run.run(None, feeds(case))


@pytest.mark.parametrize(("case", "reason", "message"), FAILING)
def test_known_ranks_give_the_exact_reason(case: Case, reason: str, message: str) -> None:
    assert judged(case) == reason


@pytest.mark.parametrize(("case", "reason", "message"), FAILING)
def test_unknown_ranks_give_no_reason(case: Case, reason: str, message: str) -> None:
    assert judged(case, known=False) is None


# onnxruntime returns early on an empty Softmax/LogSoftmax/Hardmax input whatever the axis, and Concat skips
# an empty input whose rank is at least that of the first non-empty one: with a dim that may be 0 the
# module must decline to judge these (it claimed failures here before it knew).
DECLINED_WHEN_MAYBE_EMPTY = {"Concat-x1", "Softmax-x0", "Softmax-negative-x0", "Softmax11-x0",
                             "LogSoftmax-x0", "Hardmax-x0"}


def _may_be_empty(param: Any, index: int) -> Any:
    """The failing case with input ``index``'s first dim symbolic ("N"): ranks, so the claim, are
    unchanged, and a claim of failure in every run must cover the runs with N = 0."""
    case, reason, _ = param.values
    shapes = list(case.shapes)
    shapes[index] = ("N", *shapes[index][1:])
    name = f"{param.id}-x{index}"
    return pytest.param(dataclasses.replace(case, shapes=tuple(shapes)), reason, id=name)


MAY_BE_EMPTY = [_may_be_empty(p, i) for p in FAILING if "has size" not in p.values[1]
                for i, shape in enumerate(p.values[0].shapes) if shape]


def test_maybe_empty_inputs_are_not_judged_where_onnxruntime_accepts_empty_ones() -> None:
    """The six cases onnxruntime runs when the symbolic dim is 0 get no claim; every other one keeps it."""
    assert DECLINED_WHEN_MAYBE_EMPTY <= {p.id for p in MAY_BE_EMPTY}
    for param in MAY_BE_EMPTY:
        case, reason = param.values
        # Concat-x0 still fails when empty (the empty input has the lower rank), but the module compares
        # only inputs known to be non-empty: declined too, conservatively
        declined = param.id in DECLINED_WHEN_MAYBE_EMPTY or param.id == "Concat-x0"
        assert judged(case) == (None if declined else reason), param.id
        if param.id in DECLINED_WHEN_MAYBE_EMPTY:
            session(case).run(None, feeds(case, symbolic=0))  # runs: a claim would have been wrong


@pytest.mark.parametrize(("case", "reason"), MAY_BE_EMPTY)
def test_a_claim_holds_when_a_symbolic_dim_is_zero(case: Case, reason: str) -> None:
    """Only the fact that onnxruntime raises is pinned: which check fires first depends on the empty input
    (an empty first Concat input gives "Input rank must be at least the reference input rank")."""
    claim = judged(case)
    if claim is not None:  # a fixed module may decline to judge a maybe-empty input: no claim, no check
        assert claim == reason
        run = session(case)
        with pytest.raises(ORT_ERRORS):
            run.run(None, feeds(case, symbolic=0))


# (case, shape of the first output): valid ranks, no reason, and onnxruntime computes the output.
VALID = [
    pytest.param(Case("LSTM", ((2, 1, 3), LSTM_W, LSTM_R), {"hidden_size": 2}), (2, 1, 1, 2), id="LSTM"),
    pytest.param(Case("GRU", ((2, 1, 3), GRU_W, GRU_R), {"hidden_size": 2}), (2, 1, 1, 2), id="GRU"),
    pytest.param(Case("RNN", ((2, 1, 3), RNN_W, RNN_R), {"hidden_size": 2}), (2, 1, 1, 2), id="RNN"),
    pytest.param(Case("Conv", ((1, 1, 3, 3), (1, 1, 2, 2))), (1, 1, 2, 2), id="Conv"),
    pytest.param(Case("ConvTranspose", ((1, 1, 3, 3), (1, 1, 2, 2))), (1, 1, 4, 4), id="ConvTranspose"),
    pytest.param(Case("MaxPool", ((1, 1, 3),), {"kernel_shape": [2]}), (1, 1, 2), id="MaxPool"),
    pytest.param(Case("LpPool", ((1, 1, 3, 3),), {"kernel_shape": [2, 2]}), (1, 1, 2, 2), id="LpPool"),
    pytest.param(Case("GlobalAveragePool", ((1, 2, 3),)), (1, 2, 1), id="GlobalAveragePool"),
    pytest.param(Case("MatMul", ((3,), (3, 2))), (2,), id="MatMul"),
    pytest.param(Case("Transpose", ((2, 3),), {"perm": [1, 0]}), (3, 2), id="Transpose"),
    pytest.param(Case("Concat", ((2, 3), (1, 3)), {"axis": 0}), (3, 3), id="Concat"),
    pytest.param(Case("Squeeze", ((2, 1),), consts=([-1],)), (2,), id="Squeeze17"),
    pytest.param(Case("Squeeze", (("N", 1),), consts=([0],)), (1,), id="Squeeze17-symbolic-dim"),
    pytest.param(Case("Squeeze", ((2, 1),), {"axes": [1]}, opset=11), (2,), id="Squeeze11"),
    pytest.param(Case("Unsqueeze", ((2, 1),), consts=([-3, 3],)), (2, 1, 1, 1), id="Unsqueeze17"),
    pytest.param(Case("Unsqueeze", ((2, 1),), {"axes": [2]}, opset=11), (2, 1, 1), id="Unsqueeze11"),
    pytest.param(Case("Flatten", ((2, 3),), {"axis": 2}), (6, 1), id="Flatten-axis-equal-to-rank"),
    pytest.param(Case("Flatten", ((2, 3),), {"axis": -2}), (1, 6), id="Flatten-axis-minus-rank"),
    pytest.param(Case("Softmax", ((2, 3),), {"axis": -2}), (2, 3), id="Softmax"),
    pytest.param(Case("Hardmax", ((2, 3),)), (2, 3), id="Hardmax-default-axis"),
    pytest.param(Case("Gather", ((2, 3),), {"axis": 1}, consts=([0],)), (2, 1), id="Gather"),
    pytest.param(Case("Split", ((2, 4),), {"axis": 1}, outputs=2), (2, 2), id="Split"),
]


@pytest.mark.parametrize(("case", "shape"), VALID)
def test_valid_ranks_give_no_reason_and_run(case: Case, shape: tuple[int, ...]) -> None:
    assert judged(case) is None
    assert session(case).run(None, feeds(case))[0].shape == shape


def test_squeeze_axes_from_a_graph_input_are_not_judged() -> None:
    """From opset 13 the axes are an input: only a constant one is known in every run."""
    model = proto(Case("Squeeze", ((2, 1),)), known=True)
    model.graph.input.append(h.make_tensor_value_info("axes", TensorProto.INT64, [1]))
    model.graph.node[0].input.append("axes")
    imported = import_model(model)
    refresh_types(imported)
    assert certain_failure(next(iter(imported.graph)), imported.opset) is None


def test_ops_outside_the_standard_domain_are_not_judged() -> None:
    assert judged(Case("Concat", ((2, 3), (2, 3, 1)), {"axis": 0}, domain="com.example")) is None


# ---- property: a claimed failure is always one onnxruntime raises ----------------------------------------

PROPERTY_OPS = ("Squeeze", "Unsqueeze", "Concat", "Transpose", "Flatten", "Softmax", "LSTM")
shapes = st.lists(st.integers(0, 3), min_size=1, max_size=5).map(tuple)  # 0: empty tensors too


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """One node of PROPERTY_OPS on random ranks (1-5) and dims (1-3), with parameters that may or may
    not fit them (Squeeze and Unsqueeze take their axes as an attribute at opset 11, a constant at 17)."""
    op, x = draw(st.sampled_from(PROPERTY_OPS)), draw(shapes)
    if op in ("Squeeze", "Unsqueeze"):
        axes = draw(st.lists(st.integers(-7, 6), min_size=1, max_size=2))
        if draw(st.booleans()):
            return Case(op, (x,), {"axes": axes}, opset=11)
        return Case(op, (x,), consts=(axes,))
    if op == "Concat":
        return Case(op, (x, draw(shapes)), {"axis": draw(st.integers(-5, 4))})
    if op == "Transpose":
        return Case(op, (x,), {"perm": list(draw(st.permutations(range(draw(st.integers(1, 5))))))})
    if op in ("Flatten", "Softmax"):
        return Case(op, (x,), {"axis": draw(st.integers(-6, 6))})
    size = x[2] if len(x) == 3 else 3  # a rank-3 X gets a matching W, so only the rank can be wrong
    return Case(op, (x, (1, 8, size), LSTM_R), {"hidden_size": 2})


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(cases())
def test_certain_failure_never_claims_a_failure_onnxruntime_does_not_raise(case: Case) -> None:
    claim = judged(case)
    event("claimed" if claim else "not claimed")
    if claim is not None:
        run = session(case)
        with pytest.raises(ORT_ERRORS):
            run.run(None, feeds(case))

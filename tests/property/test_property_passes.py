"""Every registered pass and the default pipeline preserve semantics on random models, are
idempotent, and give byte-identical output twice; import/export round-trips bit-exactly.

A pass that changes the model's interface layout (convert-layout, ``--layout nhwc``) is judged the way
the numeric check judges it: fed the original inputs permuted as the interface perms recorded in the
model say, with its outputs permuted back (graphopt.numerics.interface).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import event, given, reject, settings
from hypothesis import strategies as st
from property_budget import examples

import graphopt
from graphopt.errors import RuntimeCheckError
from graphopt.ir.clone import clone_model
from graphopt.ir.model import Model
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.interface import adapt_feeds, adapt_outputs, interface_perms
from graphopt.numerics.run import run_model, run_proto
from graphopt.onnx_io.exporter import export_model
from graphopt.onnx_io.save import model_bytes
from graphopt.pass_infra.registry import DEFAULT_REGISTRY
from graphopt.testing.asserts import assert_ir_consistent, assert_pass_preserves_semantics
from graphopt.testing.layout import NotWrappable, wrap_layout_sensitive
from graphopt.testing.strategies import feeds, models

BUILTIN = ["convert-layout", "convert-opset", "eliminate-common-subexpressions", "eliminate-dead-channels",
           "eliminate-dead-code",
           "fold-constants", "fuse-affine", "fuse-batchnorm", "fuse-conv-branches", "fuse-horizontal",
           "fuse-matmul-add",
           "fuse-normalization", "fuse-ort-contrib", "fuse-pad", "fuse-space-to-depth", "inline-functions",
           "optimize-transposes",
           "plan-memory", "prune-failing-branches", "simplify-chains", "topological-sort",
           "convert-precision"]
# Passes that change the model's inputs/outputs (layout), which assert_pass_preserves_semantics cannot
# judge: it feeds both models the same arrays and compares the outputs as they come. Each has its own
# property below that feeds and compares in the original layout.
INTERFACE_CHANGING = ["convert-layout", "convert-opset"]  # convert-opset: needs a target option
REDUCED_PRECISION = ["convert-precision"]  # not exact by design: judged against its drift budget below
SAME_INTERFACE = [name for name in BUILTIN if name not in INTERFACE_CHANGING + REDUCED_PRECISION]
RICH = dict(max_nodes=16, constants=True, dead_branches=True, shape_subgraphs=True)
FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
          onnx.TensorProto.BFLOAT16)


def test_every_builtin_pass_is_covered_here() -> None:
    """A new built-in pass must be added to this suite (and so be proven sound): each built-in is either
    in the same-interface parametrization or has an interface-aware property of its own."""
    builtin = {n for n, cls in DEFAULT_REGISTRY.all().items() if cls.__module__.startswith("graphopt.passes")}
    assert builtin == set(BUILTIN)
    assert sorted(SAME_INTERFACE + INTERFACE_CHANGING + REDUCED_PRECISION) == sorted(BUILTIN)
    # covered by test_convert_layout_*, test_convert_opset_* and test_precision_* below
    assert INTERFACE_CHANGING == ["convert-layout", "convert-opset"]
    assert REDUCED_PRECISION == ["convert-precision"]


@settings(max_examples=examples(400))
@given(st.data())
def test_import_export_round_trip_is_bit_exact(data: st.DataObject) -> None:
    """import + export changes nothing onnxruntime can observe, and the IR is consistent."""
    proto = data.draw(models(**RICH, if_subgraphs=True, dynamic_batch=data.draw(st.booleans())))
    inputs = data.draw(feeds(proto))
    model = graphopt.import_model(proto)
    assert_ir_consistent(model)
    before = run_proto(proto, inputs)
    after = run_proto(model_bytes(model), inputs)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


@pytest.mark.parametrize("pass_name", SAME_INTERFACE)
@settings(max_examples=examples(400))
@given(data=st.data())
def test_builtin_pass_preserves_semantics(pass_name: str, data: st.DataObject) -> None:
    """Outputs and their shapes stay equal (within tolerance); the IR stays consistent."""
    proto = data.draw(models(**RICH, if_subgraphs=data.draw(st.booleans())))
    assert_pass_preserves_semantics(pass_name, proto, feeds=data.draw(feeds(proto)))


# Half the time one image-like input ([N, C, L] or [N, C, H, W]); else the inputs models() draws itself.
IMAGE_INPUTS = st.one_of(st.none(),
                         st.lists(st.integers(1, 4), min_size=3, max_size=4).map(lambda s: [tuple(s)]))


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def _rank(value: onnx.ValueInfoProto) -> int:
    return len(value.type.tensor_type.shape.dim)


def _to_last(rank: int) -> list[int]:
    """NC[D]HW -> N[D]HWC."""
    return [0, *range(2, rank), 1]


def _transposes(model: Model) -> int:
    return sum(node.op_type == "Transpose" for node in model.graph.all_nodes())


def _in_original_layout(model: Model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """``model``'s outputs on the original-layout ``inputs``, permuted back to the original layout."""
    return adapt_outputs(model, run_model(model, adapt_feeds(model, inputs), what="converted model"))


@settings(max_examples=examples(150))
@given(data=st.data())
def test_convert_opset_preserves_semantics_or_refuses_cleanly(data: st.DataObject) -> None:
    """A random model converted to a random opset (up or down, 11..21) either computes the same outputs
    at the target opset, or is refused with an OpsetConversionError naming the op and node."""
    from graphopt.errors import OpsetConversionError

    proto = data.draw(models(**RICH, if_subgraphs=data.draw(st.booleans())))
    target = data.draw(st.sampled_from([11, 12, 13, 14, 16, 17, 18, 19, 20, 21]))
    inputs = data.draw(feeds(proto))
    model = graphopt.import_model(proto)
    try:
        stats = DEFAULT_REGISTRY.create("convert-opset", {"target": str(target)}).run(model).stats
    except OpsetConversionError as exc:
        assert " node " in str(exc)
        reject()
    # a decomposition reassociates float arithmetic (onnxruntime's fused kernels round differently)
    tolerance = (1e-5, 1e-6) if any(key.startswith("decomposed_") for key in stats) else None
    assert model.opset == target
    assert_ir_consistent(model)
    before = run_proto(proto, inputs)
    try:
        after = run_proto(model_bytes(model), inputs)
    except RuntimeCheckError as exc:  # valid at the target, but onnxruntime has no kernel for that dtype
        assert "NOT_IMPLEMENTED" in str(exc), exc
        reject()
    assert not compare_outputs(before, after, tolerance), (target, compare_outputs(before, after, tolerance))


@settings(max_examples=examples(400))
@given(data=st.data())
def test_convert_layout_preserves_semantics_in_the_original_layout(data: st.DataObject) -> None:
    """convert-layout, automatic (every float input/output of rank 4-5) or given names (float, rank 3-5,
    or 'none'): exactly the chosen inputs/outputs become channels-last, each through one Transpose, with
    the same names, order and element types and the permuted declared shapes; the recorded interface perms
    say so; the IR stays consistent; and fed the permuted original inputs, the outputs permuted back
    equal the original's (shapes included)."""
    proto = data.draw(models(**RICH, input_shapes=data.draw(IMAGE_INPUTS),
                             if_subgraphs=data.draw(st.booleans()), dynamic_batch=data.draw(st.booleans())))
    inputs = data.draw(feeds(proto))
    weights = {t.name for t in proto.graph.initializer}
    graph_inputs = [v for v in proto.graph.input if v.name not in weights]

    def floats(values: list[onnx.ValueInfoProto], low: int) -> list[str]:
        return [v.name for v in values if v.type.tensor_type.elem_type in FLOATS and low <= _rank(v) <= 5]

    if data.draw(st.booleans(), label="automatic"):
        options: dict[str, str] = {}
        chosen_in, chosen_out = set(floats(graph_inputs, 4)), set(floats(list(proto.graph.output), 4))
    else:
        pick = st.sampled_from((True, True, False))  # each eligible name 2 in 3 (st.booleans: mostly none)
        chosen_in = {name for name in floats(graph_inputs, 3) if data.draw(pick, label=name)}
        chosen_out = {name for name in floats(list(proto.graph.output), 3) if data.draw(pick, label=name)}
        # Names as a list, which only the pass's own constructor takes (a pipeline text splits at ',').
        options = {"inputs": ",".join(sorted(chosen_in)) or "none",
                   "outputs": ",".join(sorted(chosen_out)) or "none"}
    original = graphopt.import_model(proto)
    candidate = clone_model(original)
    result = DEFAULT_REGISTRY.create("convert-layout", options).run(candidate)
    counts = (("inputs_converted", len(chosen_in)), ("outputs_converted", len(chosen_out)))
    assert (result.changed, result.stats) == (bool(chosen_in or chosen_out), {k: n for k, n in counts if n})
    assert_ir_consistent(candidate)
    expected_in = {v.name: _to_last(_rank(v)) for v in graph_inputs if v.name in chosen_in}
    expected_out = {v.name: _to_last(_rank(v)) for v in proto.graph.output if v.name in chosen_out}
    assert interface_perms(candidate) == (expected_in, expected_out)
    assert _transposes(candidate) == _transposes(original) + len(chosen_in) + len(chosen_out)

    exported = export_model(candidate)
    for before, after, perms in ((graph_inputs, [v for v in exported.graph.input if v.name not in weights],
                                  expected_in), (list(proto.graph.output), list(exported.graph.output),
                                                 expected_out)):
        assert [v.name for v in after] == [v.name for v in before]
        assert [v.type.tensor_type.elem_type for v in after] == [v.type.tensor_type.elem_type for v in before]
        for old, new in zip(before, after):
            perm = perms.get(old.name, list(range(_rank(old))))
            assert _dims(new) == [_dims(old)[p] for p in perm], old.name

    mismatches = compare_outputs(run_proto(proto, inputs), _in_original_layout(candidate, inputs))
    assert not mismatches, "; ".join(str(m) for m in mismatches)


@settings(max_examples=examples(300))
@given(data=st.data())
def test_default_pipeline_with_layout_nhwc_preserves_semantics_in_the_original_layout(
        data: st.DataObject) -> None:
    """--layout nhwc (convert-layout, then the default pipeline with optimize-transposes) keeps the
    outputs in the original layout, and leaves no more Transposes than the input had plus the boundary
    ones convert-layout put in."""
    proto = data.draw(models(**RICH, input_shapes=data.draw(IMAGE_INPUTS),
                             if_subgraphs=data.draw(st.booleans()), dynamic_batch=data.draw(st.booleans())))
    inputs = data.draw(feeds(proto))
    result = graphopt.optimize(proto, layout="nhwc", check="off", on_failure="raise")
    assert_ir_consistent(result.model)
    converted = result.report.records[0]
    assert converted.name == "convert-layout"
    boundary = converted.stats.get("inputs_converted", 0) + converted.stats.get("outputs_converted", 0)
    assert _transposes(result.model) <= _transposes(graphopt.import_model(proto)) + boundary
    mismatches = compare_outputs(run_proto(proto, inputs), _in_original_layout(result.model, inputs))
    assert not mismatches, "; ".join(str(m) for m in mismatches)


# Layout-sensitive ops and the layout-agnostic ones between them: wrapped channels-last
# (graphopt.testing.layout), such a model has Transposes around every sensitive op, which is what
# optimize-transposes is for (random models rarely give it anything to do).
LAYOUT_OPS = ["Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
              "Pad", "Resize", "Relu", "Sigmoid", "Clip", "LeakyRelu", "HardSwish", "Abs", "Identity", "Add",
              "Mul", "Sub", "Concat", "Flatten"]


@settings(max_examples=examples(300))
@given(data=st.data())
def test_optimize_transposes_on_channels_last_wrapped_models(data: st.DataObject) -> None:
    """On a CNN wrapped channels-last, optimize-transposes preserves semantics and never leaves more
    Transposes than it found."""
    shape = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6)),
                      label="input shape")
    proto = data.draw(models(ops=LAYOUT_OPS, max_nodes=12, input_shapes=[shape], shape_subgraphs=False))
    try:
        wrapped = wrap_layout_sensitive(proto)
    except NotWrappable:
        reject()
    candidate = assert_pass_preserves_semantics("optimize-transposes", wrapped,
                                                feeds=data.draw(feeds(wrapped)))
    assert _transposes(candidate) <= _transposes(graphopt.import_model(wrapped))


@settings(max_examples=examples(500))
@given(data=st.data())
def test_default_pipeline_preserves_semantics(data: st.DataObject) -> None:
    """The default pipeline as a whole, on the richest models."""
    proto = data.draw(models(**RICH, if_subgraphs=True, dynamic_batch=data.draw(st.booleans())))
    assert_pass_preserves_semantics(graphopt.DEFAULT_PIPELINE, proto, feeds=data.draw(feeds(proto)))


@settings(max_examples=examples(300))
@given(proto=models(**RICH, if_subgraphs=True))
def test_default_pipeline_is_idempotent(proto: onnx.ModelProto) -> None:
    """A second run of the default pipeline changes nothing."""
    once = graphopt.optimize(proto, check="off", on_failure="raise").model
    again = graphopt.optimize(once, check="off", on_failure="raise")
    changed = [r.name for r in again.report.records if r.status != "unchanged"]
    assert changed == [], f"second run changed the model: {changed}"


@settings(max_examples=examples(200))
@given(proto=models(**RICH, if_subgraphs=True))
def test_default_pipeline_output_is_deterministic(proto: onnx.ModelProto) -> None:
    """Two independent runs write byte-identical files."""
    first = model_bytes(graphopt.optimize(proto, check="off").model)
    second = model_bytes(graphopt.optimize(proto, check="off").model)
    assert first == second


# Image-like inputs whose height and width divide by 2 and 3, so Concat draws Focus stems on them.
FOCUS_INPUTS = st.sampled_from([(1, 2, 6, 6), (2, 1, 6, 6), (1, 3, 4, 6)]).map(lambda s: [s])


@settings(max_examples=examples(200))
@given(data=st.data())
def test_focus_stems_keep_their_outputs_through_fuse_space_to_depth(data: st.DataObject) -> None:
    """Concat of strided Slices in any order (some of them Focus stems, some not) read by Convs and
    elementwise ops: fuse-space-to-depth and then the default pipeline keep every output."""
    proto = data.draw(models(ops=["Concat", "Slice", "Conv", "Relu", "Add", "Mul"], max_nodes=16,
                             input_shapes=data.draw(FOCUS_INPUTS), dynamic_batch=data.draw(st.booleans())))
    inputs = data.draw(feeds(proto))
    result = assert_pass_preserves_semantics("fuse-space-to-depth", proto, feeds=inputs)
    event("fused" if any(n.op_type == "SpaceToDepth" for n in result.graph) else "no Focus stem")
    assert_pass_preserves_semantics(graphopt.DEFAULT_PIPELINE, proto, feeds=inputs)


CHANNEL_WISE = ["Relu", "LeakyRelu", "SiLU", "Clip", "Sigmoid", "Mul", "Add", "Depthwise"]


@st.composite
def _pruned_chains(draw: st.DrawFn) -> onnx.ModelProto:
    """x -> Conv (drawn output channels zeroed, bias zeroed there or not) -> a drawn chain of
    channel-wise ops (Relu, LeakyRelu, SiLU, Clip, Sigmoid, Mul/Add by per-channel constants, a
    depthwise Conv) -> a reading Conv with drawn kernel and pads; sometimes a side read that stops it."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    channels = draw(st.integers(2, 6))
    dead = sorted(set(draw(st.lists(st.integers(0, channels - 1), min_size=1, max_size=channels - 1))))
    weight = rng.normal(0, 0.5, (channels, 3, 3, 3)).astype(np.float32)
    weight[dead] = 0
    bias = rng.normal(0, 0.5, channels).astype(np.float32)
    if draw(st.booleans()):
        bias[dead] = 0
    inits = {"w1": weight, "b1": bias}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["v0"], pads=[1] * 4)]
    last = "v0"
    for i in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(CHANNEL_WISE))
        out = f"v{i + 1}"
        if op == "SiLU":
            nodes += [helper.make_node("Sigmoid", [last], [f"s{i}"]),
                      helper.make_node("Mul", [last, f"s{i}"], [out])]
        elif op in ("Mul", "Add"):
            inits[f"c{i}"] = rng.normal(0, 1, (channels, 1, 1)).astype(np.float32)
            nodes.append(helper.make_node(op, [last, f"c{i}"], [out]))
        elif op == "Clip":
            inits[f"lo{i}"], inits[f"hi{i}"] = np.array(-0.5, np.float32), np.array(0.8, np.float32)
            nodes.append(helper.make_node("Clip", [last, f"lo{i}", f"hi{i}"], [out]))
        elif op == "Depthwise":
            inits[f"d{i}"] = rng.normal(0, 0.5, (channels, 1, 3, 3)).astype(np.float32)
            nodes.append(helper.make_node("Conv", [last, f"d{i}"], [out], group=channels,
                                          pads=[draw(st.integers(0, 1))] * 4))
        else:
            nodes.append(helper.make_node(op, [last], [out]))
        last = out
    kernel = draw(st.sampled_from([1, 3]))
    inits["w2"] = rng.normal(0, 0.5, (4, channels, kernel, kernel)).astype(np.float32)
    nodes.append(helper.make_node("Conv", [last, "w2"], ["y"], pads=[draw(st.integers(0, kernel // 2))] * 4))
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]
    if draw(st.integers(0, 4)) == 0:  # the chain also feeds a graph output: nothing may go
        outputs.append(helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "pruned", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                            ["N", 3, 6, 6])],
                              outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=examples(200))
@given(data=st.data())
def test_pruned_channels_keep_their_outputs_through_eliminate_dead_channels(data: st.DataObject) -> None:
    """Pruned Conv chains: the pass (and then the default pipeline) keeps every output, for a batch of
    1 and of 3."""
    proto = data.draw(_pruned_chains())
    model = assert_pass_preserves_semantics("eliminate-dead-channels", proto, feeds=data.draw(feeds(proto)))
    first = next(n for n in model.graph if n.op_type == "Conv")
    removed = first.inputs[1].const.shape[0] < proto.graph.initializer[0].dims[0]
    event("channels removed" if removed else "kept")
    batch3 = {"x": np.random.default_rng(3).normal(0, 1, (3, 3, 6, 6)).astype(np.float32)}
    assert_pass_preserves_semantics("eliminate-dead-channels", proto, feeds=batch3)
    assert_pass_preserves_semantics(graphopt.DEFAULT_PIPELINE, proto, feeds=batch3)


@settings(max_examples=examples(60))
@given(data=st.data())
def test_precision_fp16_gives_a_valid_model_within_its_budget(data: st.DataObject) -> None:
    """``optimize(precision="fp16")`` on a random model: the output passes onnx's full check and runs;
    when convert-precision was kept, every output on fresh inputs stays within its drift budget
    (max |fp16 - fp32| <= rtol * max |fp32| + atol), the budget its check held it to."""
    proto = data.draw(models(**RICH, if_subgraphs=data.draw(st.booleans())))
    inputs = data.draw(feeds(proto))
    keep_io = data.draw(st.booleans())
    try:
        result = graphopt.optimize(proto, precision="fp16", keep_io_types=keep_io)
    except RuntimeCheckError:
        reject()  # onnxruntime cannot run the original: nothing to compare with
    out = export_model(result.model)
    onnx.checker.check_model(out, full_check=True)
    record = next(r for r in result.report.records if r.name == "convert-precision")
    event(f"convert-precision {record.status}")
    wanted = {i.name: i.type.tensor_type.elem_type for i in out.graph.input}
    lowered = {k: v.astype(np.float16) if wanted.get(k) == onnx.TensorProto.FLOAT16 else v
               for k, v in inputs.items()}
    before, after = run_proto(proto, inputs), run_proto(out.SerializeToString(), lowered)
    if record.status != "changed":
        return
    rtol, atol = record.drift_budget
    for name, want in before.items():
        got = np.asarray(after[name])
        if want.dtype.kind != "f":
            continue
        want64, got64 = want.astype(np.float64), got.astype(np.float64)
        assert got.shape == want.shape
        finite = np.isfinite(want64)
        assert np.array_equal(finite, np.isfinite(got64)), name
        if finite.any():
            scale = np.abs(want64[finite]).max()
            assert np.abs(got64[finite] - want64[finite]).max() <= 4 * (rtol * scale + atol), name

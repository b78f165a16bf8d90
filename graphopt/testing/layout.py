"""Build channels-last-canonical models for testing transpose optimisation.

``wrap_layout_sensitive`` rewrites an NCHW model so that every activation between layout-sensitive
ops is NHWC: each Conv/pool/normalization gets a Transpose to NCHW before it and one back to NHWC
after it, the graph inputs one to NHWC and 4-D outputs one back to NCHW. The result computes the same
outputs; a good transpose optimiser reduces it to the original's Transpose count.
"""

from __future__ import annotations

import onnx
from onnx import helper

from graphopt.errors import NotWrappable

SENSITIVE = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
                       "GlobalMaxPool", "BatchNormalization", "InstanceNormalization", "LRN", "LpPool",
                       "GlobalLpPool", "DepthToSpace", "SpaceToDepth", "Pad", "Resize"})
# Ops that may read an NHWC activation unchanged: elementwise without axes, per-tensor Q/DQ, a
# Flatten/Reshape of a global pool's [N, 1, 1, C] (same element order as [N, C, 1, 1]); a Concat of
# NHWC tensors gets its axis remapped.
AXIS_FREE = frozenset({"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Add",
                       "Mul", "Sub", "Div", "Identity", "Dropout", "Max", "Min", "Sum", "Neg", "Abs"})
TO_LAST, TO_FIRST = [0, 2, 3, 1], [0, 3, 1, 2]




def wrap_layout_sensitive(model: onnx.ModelProto) -> onnx.ModelProto:
    """The NHWC-canonical version of a 4-D NCHW model (see the module docstring)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    ranks = _ranks(out)
    units = _unit_sized(out)
    nhwc: set[str] = set()  # names of tensors that are NHWC in the new graph
    nodes: list[onnx.NodeProto] = []
    counter = [0]

    def fresh(base: str) -> str:
        counter[0] += 1
        return f"{base}__wrap{counter[0]}"

    renamed: dict[str, str] = {}
    weights = {init.name for init in graph.initializer}  # listed as inputs too below IR version 4
    for value in graph.input:
        if ranks.get(value.name) == 4 and value.name not in weights:
            name = fresh(value.name)
            nodes.append(helper.make_node("Transpose", [value.name], [name], perm=TO_LAST))
            renamed[value.name] = name
            nhwc.add(name)
    global_pools: set[str] = set()
    for node in graph.node:
        inputs = [renamed.get(i, i) for i in node.input]
        if node.op_type in SENSITIVE:
            data = inputs[0]
            if data in nhwc:
                first = fresh(data)
                nodes.append(helper.make_node("Transpose", [data], [first], perm=TO_FIRST))
                inputs[0] = first
            new = onnx.NodeProto()
            new.CopyFrom(node)
            del new.input[:]
            new.input.extend(inputs)
            result = node.output[0]
            inner = fresh(result)
            new.output[0] = inner
            nodes.append(new)
            nodes.append(helper.make_node("Transpose", [inner], [result], perm=TO_LAST))
            nhwc.add(result)
            if node.op_type.startswith("Global"):
                global_pools.add(result)
            continue
        reads_nhwc = [i for i in inputs if i in nhwc]
        new = onnx.NodeProto()
        new.CopyFrom(node)
        if reads_nhwc:
            flat_of_pool = node.op_type in ("Flatten", "Reshape") and inputs[0] in global_pools
            per_tensor_qdq = node.op_type in ("QuantizeLinear", "DequantizeLinear") and \
                _size(graph, node.input[1]) == 1
            concat = node.op_type == "Concat" and all(i in nhwc for i in inputs)
            if concat:
                for attr in new.attribute:
                    if attr.name == "axis":
                        attr.i = TO_FIRST[attr.i % 4]  # NCHW axis a is NHWC axis TO_FIRST[a]
            elif node.op_type not in AXIS_FREE and not flat_of_pool and not per_tensor_qdq:
                raise NotWrappable(f"{node.op_type} node {node.name!r} reads an NHWC activation")
            elif node.op_type in AXIS_FREE and not all(not i or i in nhwc or i in units for i in inputs):
                # e.g. Add(conv, bias[C, 1, 1]): the operand would broadcast against W instead of C
                raise NotWrappable(f"{node.op_type} node {node.name!r} broadcasts an NHWC activation "
                                   "with an NCHW-shaped operand")
            if not flat_of_pool:
                nhwc.update(o for o in node.output if ranks.get(o) == 4)
            if per_tensor_qdq and inputs[0] in global_pools:
                global_pools.update(node.output)  # still a [N, 1, 1, C] pool result
        del new.input[:]
        new.input.extend(inputs)
        nodes.append(new)
    for value in graph.output:
        if value.name in nhwc:
            inner = fresh(value.name)
            for node in nodes:
                for i, name in enumerate(node.output):
                    if name == value.name:
                        node.output[i] = inner
                for i, name in enumerate(node.input):
                    if name == value.name:
                        node.input[i] = inner
            nodes.append(helper.make_node("Transpose", [inner], [value.name], perm=TO_FIRST))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return out


def _size(graph: onnx.GraphProto, name: str) -> int | None:
    """Element count of an initializer (None when ``name`` is not one)."""
    for init in graph.initializer:
        if init.name == name:
            count = 1
            for d in init.dims:
                count *= d
            return count
    return None


def _unit_sized(model: onnx.ModelProto) -> set[str]:
    """Names of the tensors known to hold one element (broadcast the same in any layout)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    units = {init.name for init in inferred.graph.initializer if all(d == 1 for d in init.dims)}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        shape = vi.type.tensor_type.shape
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") and d.dim_value == 1
                                                         for d in shape.dim):
            units.add(vi.name)
    return units


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    return ranks

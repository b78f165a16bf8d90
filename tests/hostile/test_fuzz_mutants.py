"""Seeded random edits of valid models (rewired, renamed, dropped, duplicated or retyped nodes; broken
attributes, dims, initializers, element types, outputs, opsets, IR versions) through ``graphopt optimize``,
judged by the rules of fuzz_kit. ``mutant(base, seed)`` is also what bench/hostile.py sweeps.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import onnx
import pytest
from fuzz_kit import KNOWN_SIGNATURES, assert_clean, params, run_case
from hostile_corpus import BASES, Case, add_attr, base_model
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from onnx import AttributeProto as A
from onnx import TensorProto as T
from onnx import helper as h

OPS = ("Relu", "Add", "Mul", "MatMul", "Gemm", "Conv", "Reshape", "Concat", "Gather", "Transpose",
       "Identity", "Shape", "Cast", "If", "Loop", "Split", "Squeeze", "Softmax", "BatchNormalization",
       "Where", "Constant", "Slice", "Expand", "NotAnOp")


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    found = [graph]
    for attr in (a for node in graph.node for a in node.attribute):
        for sub in [attr.g] if attr.type == A.GRAPH else attr.graphs:
            found += _graphs(sub)
    return found


def _random_edit(m: onnx.ModelProto, g: onnx.GraphProto, rng: random.Random) -> None:
    """One seeded edit of graph ``g`` (the main graph or a body) or of the model."""
    if not g.node:
        return
    names = [v.name for v in g.input] + [i.name for i in g.initializer] + ["ghost", ""]
    names += [o for n in g.node for o in n.output]
    node, vis = rng.choice(g.node), list(g.input) + list(g.output)
    attr = rng.choice(node.attribute) if node.attribute else None
    init = rng.choice(g.initializer) if g.initializer else None
    dims = [d for vi in vis for d in vi.type.tensor_type.shape.dim]
    types = [0, A.FLOAT, A.INT, A.STRING, A.INTS, A.TENSOR, A.GRAPH]
    huge, ints = [-10**12, -1, 0, 7, 2**40], [[], [0], [-1, 5], [2**40, 1, 1]]
    opsets, irs = [0, 1, 6, 9, 11, 13, 19, 21, 22, 99, 10**6], [0, 1, 3, 4, 7, 9, 10, 11, 99]
    attr_name = ["axis", "perm", "to", "alpha"]
    edits: list[Callable[[], object]] = [
        lambda: node.input and node.input.__setitem__(rng.randrange(len(node.input)), rng.choice(names)),
        lambda: node.output.__setitem__(0, rng.choice(names)),
        lambda: g.node.remove(node),
        lambda: g.node.append(node),
        lambda: setattr(node, "op_type", rng.choice(OPS)),
        lambda: add_attr(node, name=rng.choice(attr_name), type=A.INT, i=rng.randint(-3, 3)),
        lambda: attr and setattr(attr, "type", rng.choice(types)),
        lambda: attr and (setattr(attr, "i", rng.choice(huge)), setattr(attr, "type", A.INT)),
        lambda: attr and node.attribute.remove(attr),
        lambda: attr and (attr.ClearField("ints"), attr.ints.extend(rng.choice(ints))),
        lambda: dims and setattr(rng.choice(dims), "dim_value", rng.choice([0, -1, -7, 10**12, 2**62, 3])),
        lambda: init and setattr(init, "data_type", rng.randint(0, 25)),
        lambda: init and setattr(init, "raw_data", init.raw_data[: rng.randrange(len(init.raw_data) + 1)]),
        lambda: init and init.dims and init.dims.__setitem__(0, rng.choice([0, -2, 5, 10**12])),
        lambda: setattr(m.opset_import[0], "version", rng.choice(opsets)),
        lambda: setattr(m, "ir_version", rng.choice(irs)),
        lambda: g.output and g.output.remove(rng.choice(g.output)),
        lambda: g.output.append(h.make_tensor_value_info(rng.choice(names), T.FLOAT, None)),
        lambda: vis and setattr(rng.choice(vis).type.tensor_type, "elem_type", rng.randint(0, 25)),
    ]
    rng.choice(edits)()


def mutant(base: str, seed: int) -> Case:
    """1 to 3 seeded random edits of the base model's main graph or its bodies."""
    rng = random.Random(seed)
    model = base_model(base)
    for _ in range(rng.randint(1, 3)):
        _random_edit(model, rng.choice(_graphs(model.graph)), rng)
    return Case(f"mutant-{base}-s{seed}", model.SerializeToString())


MUTANTS = [mutant(base, seed) for base in BASES for seed in range(10)]


def test_mutants_are_deterministic_and_differ_from_their_base() -> None:
    assert [c.data for c in MUTANTS] == [mutant(c.name.split("-")[1], int(c.name.rsplit("s", 1)[1])).data
                                         for c in MUTANTS]
    assert sum(c.data != base_model(c.name.split("-")[1]).SerializeToString() for c in MUTANTS) >= 30


@pytest.mark.parametrize("case", params(MUTANTS))
def test_randomly_edited_model_ends_in_one_error_line_or_a_correct_output(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean(case, run_case(case, tmp_path, capsys))


@pytest.mark.slow
@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), seed=st.integers(10, 2**32 - 1))
def test_any_seeded_random_edit_ends_clean(tmp_path_factory: pytest.TempPathFactory,
                                           capsys: pytest.CaptureFixture[str], base: str, seed: int) -> None:
    """Edits that hit a bug already pinned (fuzz_kit.KNOWN_SIGNATURES) are rejected."""
    case = mutant(base, seed)
    outcome = run_case(case, tmp_path_factory.mktemp("case"), capsys)
    if outcome.problems and KNOWN_SIGNATURES and KNOWN_SIGNATURES.search(outcome.stderr):
        reject()
    assert_clean(case, outcome)

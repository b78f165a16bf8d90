"""Seeded check inputs: dtypes and shapes as declared, shared symbols equal, overrides, safe integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import Model, import_model
from graphopt.errors import UsageError
from graphopt.numerics.feeds import input_specs, make_feeds
from graphopt.numerics.user_inputs import load_arrays, parse_shapes


def _model(*inputs: onnx.ValueInfoProto, initializers: tuple[onnx.TensorProto, ...] = ()) -> Model:
    """A model whose graph only declares ``inputs`` (outputs: an Identity of the first)."""
    graph = h.make_graph([h.make_node("Identity", [inputs[0].name], ["out"])], "g", list(inputs),
                         [onnx.ValueInfoProto(name="out")], list(initializers))
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 8
    return import_model(proto)


def _info(name: str, elem: int, shape: list[int | str] | None) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def test_feeds_respect_each_inputs_dtype_and_static_shape() -> None:
    """float32, float16, int64, int32, bool and uint8 inputs get arrays of exactly that dtype and shape."""
    model = _model(_info("f", T.FLOAT, [2, 3]), _info("h", T.FLOAT16, [4]), _info("i", T.INT64, [5]),
                   _info("j", T.INT32, [1, 2]), _info("b", T.BOOL, [3]), _info("u", T.UINT8, []))
    feeds = make_feeds(model)
    assert {k: (v.dtype, v.shape) for k, v in feeds.items()} == {
        "f": (np.float32, (2, 3)), "h": (np.float16, (4,)), "i": (np.int64, (5,)),
        "j": (np.int32, (1, 2)), "b": (np.bool_, (3,)), "u": (np.uint8, ())}


def test_integer_inputs_are_zero_or_one() -> None:
    """Integers are safe as indices, masks and token types."""
    feeds = make_feeds(_model(_info("ids", T.INT64, [64, 64]), _info("m", T.INT32, [100])))
    assert set(np.unique(feeds["ids"])) == {0, 1}
    assert set(np.unique(feeds["m"])) == {0, 1}


def test_float_inputs_are_standard_normal_and_seeded() -> None:
    """Same seed, same arrays; another seed, other arrays; roughly N(0, 1)."""
    model = _model(_info("x", T.FLOAT, [100, 100]))
    first, again, other = make_feeds(model, seed=0), make_feeds(model, seed=0), make_feeds(model, seed=1)
    np.testing.assert_array_equal(first["x"], again["x"])
    assert not np.array_equal(first["x"], other["x"])
    assert abs(float(first["x"].mean())) < 0.05 and abs(float(first["x"].std()) - 1) < 0.05


def test_unknown_dims_are_one_on_axis_zero_and_thirty_two_elsewhere() -> None:
    """A dynamic batch is 1, other unknown dims 32 (named or not)."""
    model = _model(_info("x", T.FLOAT, ["N", "S", None]))
    assert make_feeds(model)["x"].shape == (1, 32, 32)


def test_shared_symbolic_dims_get_equal_values() -> None:
    """'B' and 'S' shared by ids and mask take one value each; an unrelated symbol stays independent."""
    model = _model(_info("ids", T.INT64, ["B", "S"]), _info("mask", T.INT64, ["B", "S"]),
                   _info("pos", T.INT64, ["S"]), _info("other", T.FLOAT, ["B", "T"]))
    feeds = make_feeds(model, shapes={"mask": (4, 7)})
    assert {k: v.shape for k, v in feeds.items()} == {"ids": (4, 7), "mask": (4, 7), "pos": (7,),
                                                      "other": (4, 32)}


def test_input_shape_override_wins_over_declared_dims() -> None:
    """--input-shape x=2,5 sets the whole shape of x."""
    model = _model(_info("x", T.FLOAT, ["N", 3]))
    assert make_feeds(model, shapes={"x": (2, 3)})["x"].shape == (2, 3)


def test_input_shape_override_of_wrong_rank_is_a_usage_error() -> None:
    """The message gives both ranks."""
    with pytest.raises(UsageError, match=r"^--input-shape x has rank 3, the model declares rank 2$"):
        make_feeds(_model(_info("x", T.FLOAT, ["N", 3])), shapes={"x": (1, 2, 3)})


def test_given_arrays_are_used_verbatim() -> None:
    """--inputs file.npz supplies arrays as they are."""
    given = np.arange(6, dtype=np.float32).reshape(2, 3)
    feeds = make_feeds(_model(_info("x", T.FLOAT, [2, 3]), _info("y", T.FLOAT, [1])), given={"x": given})
    assert feeds["x"] is given and feeds["y"].shape == (1,)


def test_inputs_with_initializer_defaults_are_not_fed() -> None:
    """IR<4 style inputs that have an initializer keep their default."""
    graph = h.make_graph([h.make_node("Add", ["x", "w"], ["out"])], "g",
                         [_info("x", T.FLOAT, [2]), _info("w", T.FLOAT, [2])],
                         [onnx.ValueInfoProto(name="out")],
                         [onnx.numpy_helper.from_array(np.ones(2, np.float32), "w")])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 3
    model = import_model(proto)
    assert [s[0] for s in input_specs(model)] == ["x"]
    assert list(make_feeds(model)) == ["x"]


def test_non_tensor_input_asks_for_an_inputs_file() -> None:
    """A sequence input cannot be generated."""
    seq = h.make_tensor_sequence_value_info("s", T.FLOAT, [2])
    model = _model(_info("x", T.FLOAT, [2]), seq)
    with pytest.raises(UsageError, match="^input 's' is not a tensor; provide it with --inputs file.npz$"):
        make_feeds(model)


@pytest.mark.parametrize("items,expected", [
    (["x=1,3,224,224"], {"x": (1, 3, 224, 224)}),
    (["ids=1,128", "mask=1, 128"], {"ids": (1, 128), "mask": (1, 128)}),
    (["scalar="], {"scalar": ()}),
    (["a=b=2"], {"a=b": (2,)}),
])
def test_parse_shapes(items: list[str], expected: dict[str, tuple[int, ...]]) -> None:
    """NAME=D0,D1,... with the name everything before the last '='."""
    assert parse_shapes(items) == expected


@pytest.mark.parametrize("item,reason", [
    ("x", "expected NAME=D0,D1,... with integers"),
    ("=1,2", "expected NAME=D0,D1,... with integers"),
    ("x=a,b", "expected NAME=D0,D1,... with integers"),
    ("x=1.5", "expected NAME=D0,D1,... with integers"),
    ("x=1,-1", "dimensions must be >= 0"),
])
def test_bad_shape_override_is_a_usage_error(item: str, reason: str) -> None:
    """The message quotes the item and says what is expected."""
    with pytest.raises(UsageError) as info:
        parse_shapes([item])
    assert str(info.value) == f"--input-shape {item!r}: {reason}"


def test_load_arrays_reads_arrays_by_name(tmp_path: Path) -> None:
    """An .npz maps input names to arrays."""
    path = tmp_path / "feeds.npz"
    np.savez(path, x=np.ones((2, 2), np.float32), ids=np.array([1, 0]))
    loaded = load_arrays(str(path))
    assert sorted(loaded) == ["ids", "x"]
    np.testing.assert_array_equal(loaded["ids"], np.array([1, 0]))


def test_load_arrays_of_a_bad_file_is_a_usage_error(tmp_path: Path) -> None:
    """A file that is not an .npz is reported, not a traceback."""
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(UsageError, match=r"^--inputs .*bad\.npz: a text file, not an \.npz; "
                                         r"save the inputs with "
                                         r"numpy\.savez"):
        load_arrays(str(path))

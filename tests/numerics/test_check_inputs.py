"""Check inputs chosen from the model: sizes its ops accept, values its comparisons and tables expect,
and what the user says about inputs validated against the model's real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt.cli import main
from graphopt.numerics.check import prepare_check


def _save(proto: onnx.ModelProto, folder: Path, name: str = "m.onnx") -> Path:
    proto.ir_version = 8
    path = folder / name
    onnx.save(proto, str(path))
    return path


def _rate_model() -> onnx.ModelProto:
    """silero's shape: a scalar ``sr`` compared with 16000 picks a branch; the 16 kHz branch wants 512
    samples (Reshape to [-1, 512]), the other 256; each branch scales x by a different weight."""
    def branch(name: str, samples: int, scale: float) -> onnx.GraphProto:
        shape = nh.from_array(np.array([-1, samples], np.int64), f"{name}_shape")
        k = nh.from_array(np.array(scale, np.float32), f"{name}_k")
        return h.make_graph([h.make_node("Reshape", ["x", f"{name}_shape"], [f"{name}_r"]),
                             h.make_node("Mul", [f"{name}_r", f"{name}_k"], [f"{name}_y"])], name, [],
                            [h.make_tensor_value_info(f"{name}_y", T.FLOAT, None)], [shape, k])
    rate = nh.from_array(np.array(16000, np.int64), "rate")
    nodes = [h.make_node("Equal", ["sr", "rate"], ["is16k"], name="is16k"),
             h.make_node("If", ["is16k"], ["y"], then_branch=branch("then", 512, 2.0),
                         else_branch=branch("else", 256, 3.0)),
             h.make_node("Identity", ["y"], ["out"])]
    graph = h.make_graph(nodes, "rate", [h.make_tensor_value_info("x", T.FLOAT, [1, "samples"]),
                                         h.make_tensor_value_info("sr", T.INT64, [])],
                         [h.make_tensor_value_info("out", T.FLOAT, None)], [rate])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _embedding_model() -> onnx.ModelProto:
    """Token ids into a 1000-row table; ids >= 1000 make onnxruntime fail."""
    table = nh.from_array(np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32), "table")
    graph = h.make_graph([h.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
                          h.make_node("Tanh", ["e"], ["y"])], "emb",
                         [h.make_tensor_value_info("ids", T.INT64, ["batch", "seq"])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["batch", "seq", 8])], [table])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _image_model() -> onnx.ModelProto:
    """A stride-2 Conv on a dynamic image; reflect padding needs spatial dims > 2."""
    w = nh.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    pads = nh.from_array(np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64), "pads")
    graph = h.make_graph([h.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
                          h.make_node("Conv", ["p", "w"], ["y"], strides=[2, 2])], "img",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, "H", "W"])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], [w, pads])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_a_compared_scalar_gets_the_constant_and_an_alternative_so_both_branches_run() -> None:
    """sr = 16000 on the first set; a second set takes the other branch (8000) with the sample count
    that branch accepts, found by trial runs."""
    checker = prepare_check(graphopt.import_model(_rate_model()))
    feeds = checker.reference.feeds
    assert [int(f["sr"]) for f in feeds] == [16000, 8000]
    assert feeds[0]["x"].shape[1] % 512 == 0 and feeds[1]["x"].shape[1] % 256 == 0
    assert checker.inputs.notes["sr"] == "int64[] = 16000 (compared with 16000 in Equal 'is16k')"
    assert checker.inputs.other_sets[0]["sr"] == "int64[] = 8000 (compared with 16000 in Equal 'is16k')"


def test_optimize_runs_its_checks_on_the_rate_model_with_no_flags(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0, and the printed check inputs say what sr is and why."""
    path = _save(_rate_model(), tmp_path)
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx")]) == 0
    out = capsys.readouterr().out
    assert "  sr: int64[] = 16000 (compared with 16000 in Equal 'is16k')\n" in out
    assert "  set 2: sr: int64[] = 8000 (compared with 16000 in Equal 'is16k')\n" in out


def test_token_ids_stay_below_the_table_size() -> None:
    """ids index a 1000-row table: drawn from [0, 1000), not {0, 1}; batch 1, a sequence length."""
    checker = prepare_check(graphopt.import_model(_embedding_model()))
    ids = checker.reference.feeds[0]["ids"]
    assert ids.min() >= 0 and ids.max() < 1000 and ids.max() > 1
    assert ids.shape == (1, 16)
    assert checker.inputs.notes["ids"] == "int64[1,16] in [0, 1000) (index into Gather 'embed' (size 1000))"


def test_image_dims_get_an_image_size() -> None:
    """N, H, W symbolic: batch 1 and a 224 image (a size strides and reflect pads accept)."""
    checker = prepare_check(graphopt.import_model(_image_model()))
    assert checker.reference.feeds[0]["x"].shape == (1, 3, 224, 224)


def _standardizing_model(nodes: list[str]) -> onnx.ModelProto:
    """torchvision detectors' entry: (x - mean) / std per channel (or x / 255 first), then a Conv."""
    rng = np.random.default_rng(0)
    consts = {"mean": np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1),
              "std": np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1),
              "k255": np.array(255.0, np.float32)}
    chain, current = [], "x"
    for i, (op, const) in enumerate(n.split(":") for n in nodes):
        chain.append(h.make_node(op, [current, const], [f"t{i}"], name=f"{op.lower()}{i}"))
        current = f"t{i}"
    w = nh.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = h.make_graph([*chain, h.make_node("Conv", [current, "w"], ["y"])], "std",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 32, 32])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)],
                         [w, *(nh.from_array(v, k) for k, v in consts.items())])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("nodes, center, spread", [
    (["Sub:mean", "Div:std"], 0.449, 0.226),
    (["Div:k255", "Sub:mean", "Div:std"], 0.449 * 255, 0.226 * 255),
])
def test_an_input_the_model_standardizes_gets_the_distribution_it_expects(
        nodes: list[str], center: float, spread: float) -> None:
    """A [0,1] image fed N(0,1) is a negative image to a detector (its scores saturate): the check
    feeds what the model's own (x - mean) / std maps to N(0,1), and says why."""
    checker = prepare_check(graphopt.import_model(_standardizing_model(nodes)))
    x = checker.reference.feeds[0]["x"]
    assert abs(float(x.mean()) - center) < 0.06 * spread and abs(float(x.std()) - spread) < 0.06 * spread
    names = ", ".join(f"{n.split(':')[0]} '{n.split(':')[0].lower()}{i}'" for i, n in enumerate(nodes))
    assert checker.inputs.notes["x"] == (f"float32[1,3,32,32] ~N({center:.3g}, {spread:.3g}) "
                                         f"(standardized by the model: {names})")


def test_given_inputs_win_and_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--input-value and --input-shape fix sr and the sample count; the table says where they came from."""
    path = _save(_rate_model(), tmp_path)
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--input-value", "sr=8000",
                 "--input-shape", "x=1,768"]) == 0
    out = capsys.readouterr().out
    assert "  x: float32[1,768] ~N(0,1)\n" in out and "  sr: int64[] = --input-value\n" in out


def test_input_range_bounds_the_values() -> None:
    """--input-range ids=5,7 gives ids in {5, 6, 7}."""
    from graphopt.numerics.user_inputs import build_request

    model = graphopt.import_model(_embedding_model())
    checker = prepare_check(model, build_request(model, ranges={"ids": (5, 7)}))
    assert set(np.unique(checker.reference.feeds[0]["ids"])) <= {5, 6, 7}
    assert checker.inputs.notes["ids"].endswith("in [5, 7] (--input-range)")


@pytest.mark.parametrize(("flags", "message"), [
    (["--input-shape", "X=1,3,64,64"], "--input-shape X: the model has no input 'X' (did you mean 'x'?); "
                                       "its inputs: x float32[N,3,H,W]"),
    (["--input-value", "xx=1"], "--input-value xx: the model has no input 'xx' (did you mean 'x'?)"),
    (["--input-range", "y=0,1"], "--input-range y: the model has no input 'y'"),
    (["--input-shape", "x=1,3,64"], "--input-shape x: shape [1, 3, 64] has rank 3, the model declares "
                                    "x float32[N,3,H,W] (rank 4)"),
    (["--input-shape", "x=1,4,64,64"], "--input-shape x: dim 1 is 4, but the model fixes it to 3"),
    (["--input-range", "x=1"], "--input-range 'x=1': expected NAME=LO,HI with two numbers"),
    (["--input-range", "x=2,1"], "--input-range 'x=2,1': LO must not exceed HI"),
    (["--input-value", "x=abc"], "--input-value 'x=abc': expected NAME=V[,V...] with numbers"),
    (["--check-iterations", "0"], "check_iterations must be at least 1, not 0"),
    (["--custom-op-library", "/nonexistent/libops.so"], "--custom-op-library /nonexistent/libops.so: no such "
                                                        "file"),
    (["--strict", "--check", "off"], "--strict needs numeric checks"),
], ids=["misspelled-shape", "misspelled-value", "unknown-range", "wrong-rank", "fixed-dim", "range-syntax",
        "range-order", "value-syntax", "iterations", "missing-library", "strict-without-checks"])
def test_mistakes_about_inputs_exit_2_naming_the_real_inputs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    path = _save(_image_model(), tmp_path)
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(path), "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"graphopt: error: {message}"), err
    assert not out.exists()


@pytest.mark.parametrize(("arrays", "message"), [
    ({"X": np.zeros((1, 3, 8, 8), np.float32)}, "--inputs X: the model has no input 'X' (did you mean 'x'?)"),
    ({"x": np.zeros((1, 3, 8, 8), np.float64)}, "--inputs x: dtype float64, the model expects float32"),
    ({"x": np.zeros((3, 8, 8), np.float32)}, "--inputs x: shape [3, 8, 8] has rank 3"),
], ids=["wrong-key", "wrong-dtype", "wrong-rank"])
def test_a_wrong_npz_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             arrays: dict[str, np.ndarray], message: str) -> None:
    path = _save(_image_model(), tmp_path)
    npz = tmp_path / "feeds.npz"
    np.savez(npz, **arrays)
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--inputs", str(npz)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"graphopt: error: {message}"), err


def test_an_npy_feeds_the_only_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A one-input model takes an .npy; its array is what the check feeds."""
    path = _save(_image_model(), tmp_path)
    npy = tmp_path / "x.npy"
    np.save(npy, np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype(np.float32))
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--inputs", str(npy)]) == 0
    assert "  x: float32[2,3,40,40] from --inputs\n" in capsys.readouterr().out


def test_a_sequence_input_is_generated_or_read_from_indexed_npz_keys(tmp_path: Path) -> None:
    """A sequence input gets two generated tensors by default; NAME[0], NAME[1] keys give its items."""
    from graphopt.numerics.user_inputs import build_request, load_arrays

    seq = h.make_tensor_sequence_value_info("s", T.FLOAT, [2, 3])
    graph = h.make_graph([h.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)], "seq", [seq],
                         [h.make_tensor_value_info("y", T.FLOAT, None)])
    model = graphopt.import_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))
    generated = prepare_check(model).reference.feeds[0]["s"]
    assert [a.shape for a in generated] == [(2, 3), (2, 3)]
    npz = tmp_path / "seq.npz"
    items = [np.full((2, 3), i, np.float32) for i in range(3)]
    np.savez(npz, **{f"s[{i}]": a for i, a in enumerate(items)})
    checker = prepare_check(model, build_request(model, arrays=load_arrays(str(npz))))
    assert [a.tolist() for a in checker.reference.feeds[0]["s"]] == [a.tolist() for a in items]
    assert checker.reference.outputs[0]["y"].shape == (6, 3)

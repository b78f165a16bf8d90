"""A synthetic model over 2 GB (a few large weights in a realistic MLP/LayerNorm stack, with things for
the passes to do), optimized by ``graphopt optimize`` in a child process: wall time, the child's peak
RSS against the model's size, the file sizes, and whether the written external data is valid
(onnx.checker on the path, and onnxruntime outputs equal to the original's).

Usage: /work/main/.venv/bin/python bench/large.py [--hidden 16384] [--layers 2] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
WORK = HERE / ".cache" / "large"


def build(path: Path, hidden: int, layers: int, width: int = 4096) -> int:
    """Write the model with external data; returns the weight bytes."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = "x"
    total = 0
    for i in range(layers):
        up = (rng.standard_normal((width, hidden), dtype=np.float32) * 0.01)
        down = (rng.standard_normal((hidden, width), dtype=np.float32) * 0.01)
        inits += [numpy_helper.from_array(up, f"w_up{i}"), numpy_helper.from_array(down, f"w_down{i}"),
                  numpy_helper.from_array(np.ones(width, np.float32), f"one{i}"),
                  numpy_helper.from_array(np.array([-1], np.int64), f"axes{i}"),
                  numpy_helper.from_array(np.array(1e-5, np.float32), f"eps{i}")]
        total += up.nbytes + down.nbytes
        p = f"l{i}_"
        nodes += [
            helper.make_node("MatMul", [x, f"w_up{i}"], [p + "h"]),
            helper.make_node("Relu", [p + "h"], [p + "r"]),
            helper.make_node("Dropout", [p + "r"], [p + "d"]),
            helper.make_node("MatMul", [p + "d", f"w_down{i}"], [p + "o"]),
            helper.make_node("Mul", [p + "o", f"one{i}"], [p + "o1"]),  # x * 1: a neutral element
            helper.make_node("Add", [p + "o1", x], [p + "res"]),
            # LayerNorm written out, as exporters do before opset 17
            helper.make_node("ReduceMean", [p + "res", f"axes{i}"], [p + "mean"]),
            helper.make_node("Sub", [p + "res", p + "mean"], [p + "c"]),
            helper.make_node("Mul", [p + "c", p + "c"], [p + "sq"]),
            helper.make_node("ReduceMean", [p + "sq", f"axes{i}"], [p + "var"]),
            helper.make_node("Add", [p + "var", f"eps{i}"], [p + "ve"]),
            helper.make_node("Sqrt", [p + "ve"], [p + "std"]),
            helper.make_node("Div", [p + "c", p + "std"], [p + "n"]),
        ]
        x = p + "n"
    graph = helper.make_graph(nodes, "large_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  [8, width])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [8, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)
    return total


def size(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def run_ort(path: Path, feeds: dict) -> list:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=16384)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the model files afterwards")
    parser.add_argument("--out", default=str(HERE / "results" / "large.md"))
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    source, output = WORK / "large.onnx", WORK / "large.opt.onnx"
    weights = build(source, args.hidden, args.layers) if not source.exists() else None
    input_size = size(source)
    before_stat = os.stat(source.with_name(source.name + ".data"))
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-m", "graphopt", "optimize", str(source), "-o", str(output)],
                           capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(child.stdout[-3000:], child.stderr[-2000:])
    lines = ["# A model over 2 GB", "", f"- input: {input_size / 1e9:.3f} GB ({source.name} + .data)"
             + (f", weights {weights / 1e9:.3f} GB" if weights else ""),
             f"- graphopt optimize: exit {child.returncode}, {seconds:.1f} s wall, child peak RSS "
             f"{peak / 1e9:.3f} GB = {peak / input_size:.2f} x the model size"]
    if child.returncode == 0:
        data = output.with_name(output.name + ".data")
        lines.append(f"- output: {size(output) / 1e9:.3f} GB ({output.stat().st_size} B model + "
                     f"{data.stat().st_size if data.exists() else 0} B data file)")
        onnx.checker.check_model(str(output))
        lines.append("- onnx.checker (on the path, external data included): ok")
        feeds = {"x": np.random.default_rng(1).standard_normal((8, 4096), dtype=np.float32)}
        expected, got = run_ort(source, feeds), run_ort(output, feeds)
        err = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got))
        lines.append(f"- onnxruntime on the output vs the input: max abs error {err:.2e}")
        before = onnx.load(str(output), load_external_data=False)
        lines.append(f"- nodes: {len(onnx.load(str(source), load_external_data=False).graph.node)} -> "
                     f"{len(before.graph.node)}")
    after_stat = os.stat(source.with_name(source.name + ".data"))
    lines.append(f"- input data file untouched: {before_stat.st_mtime_ns == after_stat.st_mtime_ns}")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    if not args.keep:
        for path in (source, output):
            for p in (path, path.with_name(path.name + ".data")):
                p.unlink(missing_ok=True)
    return 0 if child.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

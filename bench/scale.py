"""Synthetic-scale benchmark: how optimize time grows with graph size (10k and 100k nodes by default).

Usage: python bench/scale.py [--sizes 10000,100000] [--out DIR] [--repeats 2] [--timeout 300]

Builds (deterministically, with onnx.helper only) deep residual chains of MatMul blocks, each with a
shape sub-graph and removable no-ops, writes them to bench/.cache/scale/, then times ``floor`` and
``graphopt-nocheck`` on each through the same worker as the corpus runner (bench/tools.py, one fresh
process per run) and scores graphopt's output with bench/evaluate.py (no latency). bench/run.py runs the
same step after the corpus (``--no-scale`` skips it).

One block (11 nodes; every tensor is [2, 8] or smaller, so 100k nodes is a ~3 MB file)::

    h = Dropout(Identity(Relu(Add(MatMul(x, W_i), b_i))))
    target = Concat(Unsqueeze(Gather(Shape(x), 0), [0]), [-1])      # the shape sub-graph: [2, -1]
    x = Add(x, Reshape(h, target))                                   # the skip connection

A good optimizer folds every shape sub-graph to a constant, sees that the Reshape is then a no-op and
drops it with the Identity and the Dropout: 4 nodes per block are left.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from subproc import subprocess_run  # noqa: E402

NODES_PER_BLOCK = 11
DIM, BATCH = 8, 2
SIZES = (10_000, 100_000)
TOOLS = ("floor", "graphopt-nocheck")
REPEAT_SECONDS = 10.0
INPUTS = [{"name": "x0", "dtype": "float32", "shape": [BATCH, DIM]}]


def block(i: int, x: str) -> list[onnx.NodeProto]:
    """The 11 nodes of residual block ``i`` reading ``x``; its output is ``x{i+1}``."""
    p, make = f"b{i}_", helper.make_node
    return [
        make("MatMul", [x, f"{p}W"], [f"{p}mm"], name=f"{p}matmul"),
        make("Add", [f"{p}mm", f"{p}B"], [f"{p}bias"], name=f"{p}add_bias"),
        make("Relu", [f"{p}bias"], [f"{p}relu"], name=f"{p}relu"),
        make("Identity", [f"{p}relu"], [f"{p}id"], name=f"{p}identity"),
        make("Dropout", [f"{p}id"], [f"{p}drop"], name=f"{p}dropout"),
        make("Shape", [x], [f"{p}shape"], name=f"{p}shape"),
        make("Gather", [f"{p}shape", "zero"], [f"{p}dim0"], name=f"{p}gather", axis=0),
        make("Unsqueeze", [f"{p}dim0", "axes0"], [f"{p}dim0_1d"], name=f"{p}unsqueeze"),
        make("Concat", [f"{p}dim0_1d", "minus1"], [f"{p}target"], name=f"{p}concat", axis=0),
        make("Reshape", [f"{p}drop", f"{p}target"], [f"{p}reshaped"], name=f"{p}reshape"),
        make("Add", [x, f"{p}reshaped"], [f"x{i + 1}"], name=f"{p}skip"),
    ]


def build_chain(nodes: int, seed: int = 0) -> onnx.ModelProto:
    """A residual chain of about ``nodes`` nodes (whole blocks), the same bytes for the same arguments.

    Weights are tiny (std 1e-4, so 9,000 blocks grow the activations by a few times, not to inf).
    """
    rng = np.random.default_rng(seed)
    blocks = max(1, nodes // NODES_PER_BLOCK)
    graph_nodes: list[onnx.NodeProto] = []
    weights = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
               numpy_helper.from_array(np.array([0], np.int64), "axes0"),
               numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    for i in range(blocks):
        graph_nodes += block(i, f"x{i}")
        w = (rng.standard_normal((DIM, DIM)) * 1e-4).astype(np.float32)
        b = (rng.standard_normal(DIM) * 1e-4).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"b{i}_W"), numpy_helper.from_array(b, f"b{i}_B")]
    graph = helper.make_graph(
        graph_nodes, f"residual_chain_{blocks}_blocks",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [BATCH, DIM])],
        [helper.make_tensor_value_info(f"x{blocks}", TensorProto.FLOAT, [BATCH, DIM])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="graphopt-bench-scale")
    onnx.checker.check_model(model)
    return model


def write_models(out_dir: Path, sizes: tuple[int, ...]) -> dict[int, Path]:
    """Build each size into OUT_DIR/chain-<size>.onnx unless it is already there (temp file + rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for size in sizes:
        path = out_dir / f"chain-{size}.onnx"
        if not path.exists():
            tmp = path.with_suffix(".onnx.tmp")
            onnx.save(build_chain(size), tmp)
            tmp.replace(path)
        paths[size] = path
    return paths


def time_tool(tool: str, model: Path, work: Path, repeats: int, timeout: float,
              score: bool) -> dict[str, Any]:
    """Best of up to ``repeats`` fresh-process runs of one tool; graphopt's output is scored once.

    A run over REPEAT_SECONDS is not repeated: its noise is small next to it, and the budget is not.
    """
    runs: list[dict[str, Any]] = []
    out = work / "out" / model.name
    out.parent.mkdir(parents=True, exist_ok=True)
    job = {"tool": tool, "model": str(model), "out": str(out), "external": False, "inputs": INPUTS,
           "dynamic_shapes": {}}
    for _ in range(repeats):
        ran = subprocess_run("tools.py", job, work, timeout)
        runs.append(ran)
        if not ran["ok"]:
            return {"status": ran.get("status", "error"), "error": ran.get("error"), "runs": runs}
        if ran["seconds"] > REPEAT_SECONDS:
            break
    best = min(runs, key=lambda r: r["seconds"])
    record = {"status": "ok", "seconds": best["seconds"], "all_seconds": [r["seconds"] for r in runs],
              "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs)}
    if score:
        evaluate = {"mode": "compare", "model": str(out), "original": str(model), "inputs": INPUTS,
                    "reference": str(work.parent / "reference.npz"), "latency": False}
        scored = subprocess_run("evaluate.py", evaluate, work, timeout)
        record |= {"nodes": scored.get("nodes"), "size_bytes": scored.get("size_bytes"),
                   "within_tolerance": (scored.get("numeric") or {}).get("within_tolerance"),
                   "checker_error": scored.get("checker_error"), "score_error": scored.get("error")}
    return record


def run_scale(out_dir: Path, work_root: Path, sizes: tuple[int, ...], repeats: int, timeout: float,
              emit: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Build the chains, time every tool on each; one ``scale`` record per (size, tool), also emitted."""
    start = time.perf_counter()
    paths = write_models(out_dir, sizes)
    print(f"scale: built {', '.join(p.name for p in paths.values())} in {time.perf_counter() - start:.1f} s",
          flush=True)
    records = []
    for size, path in paths.items():
        work = work_root / f"scale-{size}"
        info = subprocess_run("evaluate.py", {"mode": "reference", "model": str(path), "inputs": INPUTS,
                                              "reference": str(work / "reference.npz"), "latency": False},
                              work, timeout)
        for tool in TOOLS:
            record = {"type": "scale", "size": size, "tool": tool, "model": path.name,
                      "input_nodes": info.get("nodes"), "input_size_bytes": info.get("size_bytes")}
            record |= time_tool(tool, path, work / tool, repeats, timeout, score=tool != "floor")
            emit(record)
            records.append(record)
            print(progress(record), flush=True)
    return records


def progress(record: dict[str, Any]) -> str:
    """One console line per (size, tool)."""
    head = f"  {record['model']:18s} {record['tool']:17s}"
    if record["status"] != "ok":
        return f"{head} {record['status'].upper()}: {str(record['error']).splitlines()[0][:150]}"
    nodes = f"nodes {record['input_nodes']} -> {record['nodes']}" if record.get("nodes") else ""
    ok = {True: "ok", False: "MISMATCH", None: ""}[record.get("within_tolerance")]
    return (f"{head} {record['seconds']:8.2f}s (runs {', '.join(f'{s:.2f}' for s in record['all_seconds'])})"
            f"  rss {record['peak_rss_bytes'] / 2**20:6.0f} MiB  {nodes} {ok}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="node counts, comma-separated")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / ".cache" / "scale", help="model folder")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "results" / "work-scale")
    parser.add_argument("--repeats", type=int, default=2,
                        help=f"runs per (size, tool), the best counts (none after a run over "
                             f"{REPEAT_SECONDS:g} s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per subprocess")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build and time the chains on their own; print the records as JSON lines."""
    args = parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    records = run_scale(args.out, args.work, sizes, args.repeats, args.timeout, lambda r: None)
    for record in records:
        print(json.dumps(record, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Layout benchmark: Transposes left after an NHWC interface conversion, graphopt next to its peers.

Usage: /work/venvs/bench/bin/python bench/layout.py [--models resnet50,mobilenetv2,...] [--out FILE.md]

For each model: (1) ``nhwc``: graphopt's convert-layout alone gives the channels-last interface (one
boundary Transpose per image input/output); every tool then optimizes that same file. (2) ``wrapped``:
the NCHW original with every layout-sensitive op wrapped in Transposes (graphopt.testing.layout), NCHW
interface; every tool optimizes it. Counted: Transposes (and in QDQ models, those inside the Q/DQ body),
numeric agreement with the original (feeds and outputs permuted for NHWC), and ORT latency (default
optimizations) of graphopt's NHWC model next to the NCHW original. A QDQ ResNet-50 is built with
onnxruntime.quantization (static, QDQ format, random calibration).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort

import graphopt
from graphopt.numerics.interface import adapt_feeds, adapt_outputs
from graphopt.testing.layout import NotWrappable, wrap_layout_sensitive

MODELS = Path(__file__).resolve().parent / ".cache" / "models"
DEFAULT = "resnet50,mobilenetv2,ppocr-det,ppocr-rec,ppocr-cls,resnet50-qdq"


def transposes(model: onnx.ModelProto) -> tuple[int, int]:
    """(all Transposes, Transposes between a DequantizeLinear and a QuantizeLinear: the QDQ body)."""
    nodes = list(model.graph.node)
    total = sum(n.op_type == "Transpose" for n in nodes)
    producer = {o: n for n in nodes for o in n.output}
    body = 0
    for n in nodes:
        if n.op_type != "Transpose":
            continue
        src = producer.get(n.input[0])
        if src is not None and src.op_type in ("DequantizeLinear", "QuantizeLinear"):
            body += 1
    return total, body


def _graphopt(path: str, out: str, **opts: Any) -> None:
    graphopt.optimize(path, check="off", **opts).save(out)


def _onnxsim(path: str, out: str) -> None:
    import onnxsim
    model, _ = onnxsim.simplify(onnx.load(path))
    onnx.save(model, out)


def _onnxslim(path: str, out: str) -> None:
    import onnxslim
    onnx.save(onnxslim.slim(onnx.load(path)), out)


def _onnxscript(path: str, out: str) -> None:
    import onnx_ir as ir
    import onnxscript.optimizer
    model = ir.load(path)
    onnxscript.optimizer.optimize(model)
    ir.save(model, out)


def _ort(level: ort.GraphOptimizationLevel) -> Callable[[str, str], None]:
    def run(path: str, out: str) -> None:
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.optimized_model_filepath = out
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return run


TOOLS: dict[str, Callable[[str, str], None]] = {
    "graphopt": lambda p, o: _graphopt(p, o), "onnxsim": _onnxsim, "onnxslim": _onnxslim,
    "onnxscript": _onnxscript, "ort-basic": _ort(ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
    "ort-extended": _ort(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
}


def feeds_for(name: str, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Seeded inputs for the NCHW original at the corpus manifest's shapes (as the main benchmark);
    dims left unknown become 1 for the batch and 224 elsewhere."""
    manifest = json.loads((MODELS / "manifest.json").read_text())
    shapes = {spec["name"]: spec.get("shape") for m in manifest["models"]
              if m["name"] == name.replace("-qdq", "") for spec in m["inputs"]}
    rng = np.random.default_rng(0)
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = shapes.get(vi.name) or [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dims = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else 224) for i, d in enumerate(dims)]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        feeds[vi.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def run(path: str, feeds: dict[str, np.ndarray], level: Any = None) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = level or ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def latency(pairs: list[tuple[str, dict[str, np.ndarray]]], repeats: int = 40) -> list[list[float]]:
    """Seconds per run with ORT's default optimizations; the models run alternately, so that drifts
    of the machine hit them alike."""
    sessions = [(ort.InferenceSession(p, providers=["CPUExecutionProvider"]), f) for p, f in pairs]
    for sess, feeds in sessions:
        sess.run(None, feeds)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(repeats):
        for k, (sess, feeds) in enumerate(sessions):
            start = time.perf_counter()
            sess.run(None, feeds)
            times[k].append(time.perf_counter() - start)
    return times


def build_qdq_resnet(dst: Path) -> None:
    """Static QDQ quantization of the ResNet-50 export, calibrated on random images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    src = MODELS / "resnet50.onnx"
    name = onnx.load(str(src), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = 4

        def get_next(self) -> dict[str, np.ndarray] | None:
            if not self.left:
                return None
            self.left -= 1
            image = np.random.default_rng(self.left).standard_normal((1, 3, 224, 224))
            return {name: image.astype(np.float32)}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)


def bench_model(name: str, tmp: Path, rows: list[str], lat_rows: list[str]) -> None:
    src = MODELS / f"{name}.onnx"
    if name == "resnet50-qdq" and not src.exists():
        build_qdq_resnet(src)
    original = onnx.load(str(src))
    feeds = feeds_for(name, original)
    reference = run(str(src), feeds)
    nhwc_raw = tmp / f"{name}.nhwc-raw.onnx"
    _graphopt(str(src), str(nhwc_raw), pipeline="convert-layout")
    raw_model = graphopt.load_model(str(nhwc_raw))
    nhwc_feeds = adapt_feeds(raw_model, feeds)
    cases: list[tuple[str, Path, dict[str, np.ndarray], bool]] = [("nhwc", nhwc_raw, nhwc_feeds, True)]
    try:
        wrapped = tmp / f"{name}.wrapped.onnx"
        onnx.save(wrap_layout_sensitive(original), str(wrapped))
        cases.append(("wrapped", wrapped, feeds, False))
    except NotWrappable as exc:
        rows.append(f"| {name} | wrapped | not wrappable: {exc} | | | | | | |")
    for case, path, case_feeds, permuted in cases:
        cells = [f"{transposes(onnx.load(str(path)))[0]}"]
        graphopt_out = None
        for tool, fn in TOOLS.items():
            out = tmp / f"{name}.{case}.{tool}.onnx"
            try:
                fn(str(path), str(out))
                count, body = transposes(onnx.load(str(out)))
                outputs = run(str(out), case_feeds)
                if permuted:
                    outputs = list(adapt_outputs(graphopt.load_model(str(out)),
                                                 dict(zip([o.name for o in onnx.load(str(out)).graph.output],
                                                          outputs))).values())
                err = max(float(np.max(np.abs(a - b))) for a, b in zip(outputs, reference))
                qdq = f" (QDQ body {body})" if "qdq" in name else ""
                cells.append(f"{count}{qdq}, err {err:.1e}")
                if tool == "graphopt":
                    graphopt_out = out
            except Exception as exc:  # a peer failing is a result, not a crash
                cells.append(f"failed: {type(exc).__name__}")
        rows.append(f"| {name} | {case} | " + " | ".join(cells) + " |")
        if case == "nhwc" and graphopt_out is not None:
            full = tmp / f"{name}.graphopt-layout.onnx"
            _graphopt(str(src), str(full), layout="nhwc")
            runs = latency([(str(src), feeds), (str(src), feeds), (str(full), nhwc_feeds)])
            a, a2, b = (statistics.median(t) for t in runs)
            lat_rows.append(f"| {name} | {min(a, a2) * 1000:.2f} ms | {b * 1000:.2f} ms | "
                            f"{b / min(a, a2):.3f} | {abs(a - a2) / min(a, a2) * 100:.1f}% |")
        print(rows[-1], flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "layout.md"))
    args = parser.parse_args(argv)
    rows = ["| model | case | Transposes in | " + " | ".join(TOOLS) + " |",
            "|---|---|---|" + "---|" * len(TOOLS)]
    lat_rows = ["| model | NCHW original | graphopt NHWC | ratio | noise (original twice) |",
                "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            bench_model(name, Path(tmp), rows, lat_rows)
    text = "# Layout benchmark\n\nTransposes left (and max abs error vs the original):\n\n" + \
        "\n".join(rows) + "\n\nORT latency, default optimizations, median of 40 alternating runs:\n\n" + \
        "\n".join(lat_rows) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

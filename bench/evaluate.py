"""Benchmark evaluator: describe an original model or score a tool's output, in a fresh process.

Usage: python bench/evaluate.py JOB.json RESULT.json

JOB.json has ``mode``:
- ``reference``: ``model``, ``inputs``, ``reference`` (an .npz to write) -> node count, op histogram, domains,
  external-data flag and the original's outputs on the manifest feeds.
- ``compare``: ``model`` (a tool's output), ``original``, ``inputs``, ``reference`` (the .npz above) ->
  size, node count, op histogram, domains added, onnx.checker verdict and numeric agreement.
- ``latency``: ``model``, ``inputs`` -> latency only (the original measured a second time).

Outputs come from onnxruntime on CPU with graph optimisations disabled, so the numbers measure the file,
not ORT. ``reference`` and ``compare`` also measure ORT latency (``measure_latency``) unless the job has
``"latency": false``; every session uses one thread.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

STANDARD_DOMAINS = {"", "ai.onnx"}
# (rtol of the output's largest magnitude, atol) per float dtype, as graphopt's own checks use them.
TOLERANCES = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-5), "float16": (1e-2, 1e-3)}
LATENCY_LEVELS = {"disabled": "ORT_DISABLE_ALL", "enabled": "ORT_ENABLE_ALL"}
LATENCY_MIN_RUNS, LATENCY_MIN_SECONDS = 5, 1.0


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """Graphs held in a node's attributes (If branches, Loop/Scan bodies)."""
    found: list[onnx.GraphProto] = []
    for attr in node.attribute:
        found += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
    return found


def op_histogram(graph: onnx.GraphProto) -> Counter[str]:
    """Nodes per op type, subgraphs included; ops of other domains are keyed ``domain::op``."""
    counts: Counter[str] = Counter()
    for node in graph.node:
        key = node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}::{node.op_type}"
        counts[key] += 1
        for sub in subgraphs(node):
            counts += op_histogram(sub)
    return counts


def node_domains(ops: Counter[str]) -> list[str]:
    """Non-standard domains used by nodes (subgraphs included), from an op histogram."""
    return sorted({key.split("::")[0] for key in ops if "::" in key})


def opset_domains(model: onnx.ModelProto) -> list[str]:
    """Non-standard domains declared in opset_import (ORT declares every domain it knows, used or not)."""
    return sorted({o.domain for o in model.opset_import if o.domain not in STANDARD_DOMAINS})


def has_external_data(model: onnx.ModelProto) -> bool:
    """True if any main-graph initializer keeps its bytes in another file."""
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def files_size(path: Path, model: onnx.ModelProto) -> int:
    """Bytes of the model file plus the external data files its initializers point at."""
    locations = {entry.value for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                 for entry in t.external_data if entry.key == "location"}
    return path.stat().st_size + sum((path.parent / loc).stat().st_size for loc in locations)


def session(path: str, level: str = "ORT_DISABLE_ALL") -> Any:
    """An onnxruntime CPU session with one intra-op and one inter-op thread at a graph optimisation level.

    One thread makes latency comparable between tools and repeatable on a loaded 2-core machine, and
    makes the numeric reference independent of the machine's core count.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run_ort(sess: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name of one run of a session."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def time_runs(sess: Any, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Median (and min, p90) of timed runs after one warm-up: at least 5 runs lasting at least 1 s.

    A model slower than 0.2 s per run takes 5 runs, so a measurement costs about max(1 s, 6 runs).
    """
    sess.run(None, feeds)  # warm-up: allocates the arena, builds kernels' caches
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < LATENCY_MIN_RUNS or time.perf_counter() - started < LATENCY_MIN_SECONDS:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"median_ms": float(np.median(ms)), "min_ms": float(ms.min()),
            "p90_ms": float(np.percentile(ms, 90)), "runs": len(times),
            "seconds": time.perf_counter() - started}


def measure_latency(path: str, feeds: dict[str, np.ndarray], disabled: Any = None) -> dict[str, Any]:
    """ORT CPU latency of a model, 1 thread, graph optimisations disabled and enabled (ORT_ENABLE_ALL).

    ``disabled``: an existing ORT_DISABLE_ALL session of the same path (the numeric check's) to reuse.
    A level whose session cannot be built or run gets ``{"error": ...}``: a finding, not a crash.
    """
    out: dict[str, Any] = {}
    for key, level in LATENCY_LEVELS.items():
        try:
            sess = disabled if key == "disabled" and disabled is not None else session(path, level)
            out[key] = time_runs(sess, feeds)
        except Exception as exc:  # e.g. ORT_ENABLE_ALL refusing a fused op: recorded in the report
            out[key] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        sess = None  # free this level's session before building the next one
    return out


def compare_outputs(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, Any]:
    """Max abs error, max error relative to each output's largest magnitude, shape/dtype/name equality."""
    names_equal = list(actual) == list(expected)
    got = list(actual.values()) if not names_equal and len(actual) == len(expected) else None
    out: dict[str, Any] = {"names_equal": names_equal, "shapes_equal": True, "dtypes_equal": True,
                           "max_abs": 0.0, "max_rel": 0.0, "within_tolerance": True}
    for i, (name, ref) in enumerate(expected.items()):
        value = got[i] if got is not None else actual.get(name)
        if value is None or value.shape != ref.shape:
            out["shapes_equal"] = out["within_tolerance"] = False
            continue
        out["dtypes_equal"] &= value.dtype == ref.dtype
        a, e = value.astype(np.float64), ref.astype(np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(e)):
            out["within_tolerance"] = False
        finite = np.isfinite(a) & np.isfinite(e)
        diff = float(np.max(np.abs(a - e)[finite], initial=0.0))
        scale = float(np.max(np.abs(e)[finite], initial=0.0))
        out["max_abs"] = max(out["max_abs"], diff)
        out["max_rel"] = max(out["max_rel"], diff / scale if scale else diff)
        rtol, atol = TOLERANCES.get(str(ref.dtype), (0.0, 0.0))  # ints and bools: exact
        out["within_tolerance"] &= diff <= atol + rtol * scale
    out["within_tolerance"] &= out["dtypes_equal"]
    return out


def check(path: str) -> str | None:
    """onnx.checker on the path (works past 2 GB); None if valid, else the first line of the error."""
    try:
        onnx.checker.check_model(path)
    except Exception as exc:  # any checker complaint is a finding, not a crash
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


def describe(path: str, model: onnx.ModelProto) -> dict[str, Any]:
    """Structure of a model file (loaded without its external weights)."""
    ops = op_histogram(model.graph)
    return {"nodes": sum(ops.values()), "nodes_nonconst": sum(ops.values()) - ops["Constant"],
            "nodes_top": len(model.graph.node), "ops": dict(sorted(ops.items())),
            "domains": node_domains(ops), "opset_domains": opset_domains(model),
            "external_data": has_external_data(model),
            "size_bytes": files_size(Path(path), model)}


def dynamic_inputs(graph: onnx.GraphProto) -> list[str]:
    """Graph inputs (initializers aside) whose declared shape has a dimension that is not a fixed size."""
    weights = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in weights and i.type.HasField("tensor_type")
            and any(not d.HasField("dim_value") or d.dim_value <= 0 for d in i.type.tensor_type.shape.dim)]


def reference(job: dict[str, Any]) -> dict[str, Any]:
    """Describe the original and store its outputs on the manifest feeds."""
    model = onnx.load(job["model"], load_external_data=False)
    result = describe(job["model"], model) | {"dynamic_inputs": dynamic_inputs(model.graph)}
    del model
    sess, feeds = session(job["model"]), feeds_of(job)
    outputs = run_ort(sess, feeds)
    np.savez(job["reference"], **{f"{i}": v for i, v in enumerate(outputs.values())})
    Path(job["reference"] + ".names.json").write_text(json.dumps(list(outputs)))
    result["outputs"] = {n: list(v.shape) for n, v in outputs.items()}
    if job.get("latency", True):
        result["latency"] = measure_latency(job["model"], feeds, sess)
    return result


def load_reference(path: str) -> dict[str, np.ndarray]:
    """Outputs saved by ``reference``, in order, by name."""
    names = json.loads(Path(path + ".names.json").read_text())
    with np.load(path) as data:
        return {name: data[str(i)] for i, name in enumerate(names)}


def compare(job: dict[str, Any]) -> dict[str, Any]:
    """Score a tool's output against the original."""
    out = describe(job["model"], onnx.load(job["model"], load_external_data=False))
    original = onnx.load(job["original"], load_external_data=False)
    original_ops = op_histogram(original.graph)
    out["domains_added"] = sorted(set(out.pop("domains")) - set(node_domains(original_ops)))
    # ops of a non-standard domain the original did not use (ORT's QuickGelu in a model that already
    # held other com.microsoft ops): not portable ONNX either
    out["custom_ops_added"] = sorted(k for k in out["ops"] if "::" in k and k not in original_ops)
    out["opset_domains_added"] = sorted(set(out.pop("opset_domains")) - set(opset_domains(original)))
    del original
    out["checker_error"] = check(job["model"])
    sess, feeds = None, feeds_of(job)
    try:
        sess = session(job["model"])
        out["numeric"] = compare_outputs(run_ort(sess, feeds), load_reference(job["reference"]))
    except Exception as exc:  # ORT refusing the output is a result
        out["numeric"] = {"error": f"{type(exc).__name__}: {exc}"[:2000], "within_tolerance": False}
    if job.get("latency", True) and "error" not in out["numeric"]:
        out["latency"] = measure_latency(job["model"], feeds, sess)
    return out


def latency(job: dict[str, Any]) -> dict[str, Any]:
    """Latency of ``model`` alone: the original measured again after the tools, to show the noise."""
    return {"latency": measure_latency(job["model"], feeds_of(job))}


def feeds_of(job: dict[str, Any]) -> dict[str, np.ndarray]:
    """The manifest feeds, exactly as corpus.py builds them."""
    return corpus.make_feeds([corpus.InputSpec.from_json(i) for i in job["inputs"]])


MODES = {"reference": reference, "compare": compare, "latency": latency}


def main(argv: list[str]) -> int:
    """Run the job in argv[0]; write the result (or the error) to argv[1]."""
    from subproc import worker_main

    return worker_main(argv, lambda job: {"ok": True} | MODES[job["mode"]](job))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmark worker: run ONE optimizer on ONE model in this fresh process and write a JSON result.

Usage: python bench/tools.py JOB.json RESULT.json

JOB.json (written by bench/run.py): ``tool``, ``model`` (input path), ``out`` (output path), ``external``
(write weights as external data), ``inputs`` (manifest input specs) and ``dynamic_shapes`` (manifest shapes
of the inputs whose declared shape is not fully static).

The tool's modules are imported and its inputs built *before* the timer starts, so ``seconds`` covers the
tool's own work only: load + optimize + save. ``peak_rss_bytes`` is this process's peak resident set
(imports included), read from /proc/self/status (VmHWM) after the work.
"""

from __future__ import annotations

import importlib
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (numpy only; torch is imported lazily inside corpus_torch)


@dataclass(frozen=True)
class Job:
    """One (tool, model) run as described by JOB.json."""

    tool: str
    model: str
    out: str
    external: bool
    inputs: list[dict[str, Any]]
    dynamic_shapes: dict[str, list[int]]

    @property
    def data_location(self) -> str:
        """File name (relative to the output) of the external weights, when ``external``."""
        return Path(self.out).name + ".data"

    def feeds(self) -> dict[str, Any]:
        """The manifest inputs (fixed values and int ranges honoured), as the runner's reference uses."""
        return corpus.make_feeds([corpus.InputSpec.from_json(i) for i in self.inputs])

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Concrete shape of every manifest input."""
        return {i["name"]: tuple(i["shape"]) for i in self.inputs}


# A tool gets the job and the arguments prepared before the timer; it returns tool-specific extras.
ToolFn = Callable[[Job, dict[str, Any]], dict[str, Any]]


def raw_weights(model: onnx.ModelProto) -> None:
    """Move initializers held in typed fields (float_data...) to raw_data, the only form onnx externalizes."""
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        if not tensor.HasField("raw_data") and tensor.data_location != onnx.TensorProto.EXTERNAL:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))


def save_proto(model: onnx.ModelProto, job: Job) -> None:
    """onnx.save, with all weights in one external file when the job asks for external data."""
    if job.external:
        raw_weights(model)  # onnxsim writes weights as float_data, which onnx.save would keep inline
        onnx.save(model, job.out, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=job.data_location, size_threshold=1024)
    else:
        onnx.save(model, job.out)


def run_floor(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnx.load + onnx.save of the same file: the cost any tool pays just to read and write it."""
    save_proto(onnx.load(job.model), job)
    return {}


def prep_graphopt(job: Job) -> dict[str, Any]:
    """Feeds and shapes for graphopt's numeric checks, built before the timer."""
    return {"input_shapes": job.shapes(), "inputs": job.feeds()}


def _graphopt(job: Job, prep: dict[str, Any], check: str) -> dict[str, Any]:
    """graphopt.optimize(path) + result.save(out); the report's rolled-back passes go into the extras."""
    import graphopt

    result = graphopt.optimize(job.model, check=check, **prep)
    result.save(job.out, external_data=True if job.external else None)
    report = result.report
    return {
        "passes_run": len(report.records),
        "rolled_back": [{"pass": r.step or r.name, "failure": r.failure} for r in report.rolled_back],
        "warnings": list(report.warnings),
        "check_sessions": result.check_sessions,
    }


def run_graphopt_nocheck(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """graphopt with check="off"."""
    return _graphopt(job, prep, "off")


def run_graphopt_check(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """graphopt with check="each" on the manifest inputs (rolled-back passes recorded)."""
    return _graphopt(job, prep, "each")


def run_onnxsim(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnxsim.simplify keeping the model's interface: dynamic inputs stay dynamic, as with graphopt.

    The benchmark shapes go to ``test_input_shapes`` (its own check) only; overwriting them would turn
    a dynamic model into a static one, which is a different product, not a better simplification.
    """
    import onnxsim

    source: Any = job.model if job.external else onnx.load(job.model)  # a >2 GB proto cannot cross to C++
    shapes = job.dynamic_shapes or None
    model, ok = onnxsim.simplify(source, test_input_shapes=shapes)
    save_proto(model, job)
    return {"onnxsim_check_ok": bool(ok), "test_input_shapes": shapes}


def run_onnxslim(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnxslim.slim(model) with its defaults."""
    import onnxslim

    model = onnxslim.slim(job.model if job.external else onnx.load(job.model))
    save_proto(model, job)
    return {}


def run_onnxoptimizer(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnxoptimizer.optimize(model) with its default fuse-and-eliminate passes (handles >2 GB itself)."""
    import onnxoptimizer

    save_proto(onnxoptimizer.optimize(onnx.load(job.model)), job)
    return {}


def run_onnxscript(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnxscript.optimizer.optimize on an onnx_ir model, its native form (lazy weights, no proto copies)."""
    import onnx_ir as ir
    import onnxscript.optimizer

    model = ir.load(job.model)
    onnxscript.optimizer.optimize(model)  # in place for an ir.Model (returns the same object)
    ir.save(model, job.out, external_data=job.data_location if job.external else None)
    return {}


def _ort(job: Job, level_name: str) -> dict[str, Any]:
    """onnxruntime offline optimisation: the session writes its optimized graph to ``out``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level_name)
    options.optimized_model_filepath = job.out
    if job.external:
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                         job.data_location)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                         "1024")
    ort.InferenceSession(job.model, options, providers=["CPUExecutionProvider"])
    return {}


def run_ort_basic(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime ORT_ENABLE_BASIC offline optimisation."""
    return _ort(job, "ORT_ENABLE_BASIC")


def run_ort_extended(job: Job, prep: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime ORT_ENABLE_EXTENDED offline optimisation (may add com.microsoft ops)."""
    return _ort(job, "ORT_ENABLE_EXTENDED")


# name -> (modules imported before the timer, input preparation before the timer, the timed work).
# graphopt imports onnxruntime and onnx.reference lazily; importing them first keeps that out of the timer.
TOOLS: dict[str, tuple[tuple[str, ...], Callable[[Job], dict[str, Any]] | None, ToolFn]] = {
    "floor": ((), None, run_floor),
    "graphopt-nocheck": (("graphopt", "onnxruntime", "onnx.reference"), prep_graphopt, run_graphopt_nocheck),
    "graphopt-check": (("graphopt", "onnxruntime", "onnx.reference"), prep_graphopt, run_graphopt_check),
    "onnxsim": (("onnxsim", "onnxruntime"), None, run_onnxsim),
    "onnxslim": (("onnxslim", "onnxruntime"), None, run_onnxslim),
    "onnxoptimizer": (("onnxoptimizer",), None, run_onnxoptimizer),
    "onnxscript": (("onnx_ir", "onnxscript.optimizer"), None, run_onnxscript),
    "ort-basic": (("onnxruntime",), None, run_ort_basic),
    "ort-extended": (("onnxruntime",), None, run_ort_extended),
}
ALIASES = {"floor-again": "floor"}  # the same tool run a second time, to show same-file noise


def tool_names() -> list[str]:
    """Every runnable tool name, aliases included, in the runner's default order."""
    names = list(TOOLS)
    return names + list(ALIASES)


def peak_rss_bytes() -> int:
    """This process's peak resident set: VmHWM of its own address space.

    Not getrusage's ru_maxrss: Linux carries the parent's high-water mark across a vfork+exec (which is
    how subprocess starts this worker), so ru_maxrss never reads below the runner's own RSS.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # no /proc: KiB, as Linux counts


def run_job(job: Job) -> dict[str, Any]:
    """Import, prepare, then time the tool's work; return seconds, RSS and the tool's extras."""
    modules, prepare, work = TOOLS[ALIASES.get(job.tool, job.tool)]
    for module in modules:
        importlib.import_module(module)
    prep = prepare(job) if prepare else {}
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    extra = work(job, prep)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    return {"ok": True, "seconds": seconds, "peak_rss_bytes": peak, "rss_before_bytes": rss_before,
            "extra": extra}


def main(argv: list[str]) -> int:
    """Run the job in argv[0]; write the result (or the error) to argv[1]."""
    from subproc import worker_main

    return worker_main(argv, lambda job: run_job(Job(**job)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

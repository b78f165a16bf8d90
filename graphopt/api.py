"""The Python API: ``optimize`` a model with a pipeline and per-pass numeric checks.

Example:
    >>> from graphopt import optimize                          # doctest: +SKIP
    >>> result = optimize("model.onnx", check="each")          # doctest: +SKIP
    >>> result.save("model.opt.onnx")                          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx

from graphopt.errors import NumericMismatchError, PassFailedError, RuntimeCheckError, UsageError
from graphopt.ir.clone import clone_model
from graphopt.ir.model import Model
from graphopt.numerics.check import NumericCheck
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.interface import interface_perms
from graphopt.numerics.run import run_model
from graphopt.onnx_io.importer import import_model, load_model
from graphopt.onnx_io.save import save_model
from graphopt.pass_infra.instruments import DumpIR, VerifyIR
from graphopt.pass_infra.manager import PassManager, PassRecord, PipelineReport
from graphopt.pass_infra.pipeline import format_pipeline, parse_pipeline, pass_names, pass_steps
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

DEFAULT_PIPELINE = ("fixpoint(eliminate-dead-code,fold-constants,prune-failing-branches,"
                    "eliminate-common-subexpressions,fuse-pad,"
                    "fuse-batchnorm,fuse-normalization,fuse-affine,fuse-matmul-add,simplify-chains,"
                    "optimize-transposes){max=8},"
                    "topological-sort")
CHECK_MODES = ("each", "final", "off")
TARGETS = {"onnx": "", "ort": "fuse-ort-contrib"}  # target -> pass appended to the pipeline


@dataclass
class OptimizeOptions:
    """Everything ``optimize`` can be told; the CLI flags map one to one onto these fields."""

    pipeline: str = DEFAULT_PIPELINE
    check: str = "each"
    on_failure: str = "rollback"
    disable: tuple[str, ...] = ()
    seed: int = 0
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] | None = None
    tolerance: tuple[float, float] | None = None
    plugins: tuple[str, ...] = ()
    verify: bool = True
    dump_dir: str | None = None
    target: str = "onnx"
    never_worse: bool = True
    layout: str | None = None  # "nhwc": convert-layout runs first (channels-last interface)
    opset: int | None = None  # convert-opset{target=N} runs first


@dataclass
class OptimizeResult:
    """The optimized model (IR), the per-pass report and the check summary."""

    model: Model
    report: PipelineReport
    ops_before: Counter
    ops_after: Counter
    check_mode: str
    check_sessions: int = 0
    final_check: dict[str, Any] | None = None

    def save(self, path: str, *, external_data: bool | None = None, threshold: int = 1024) -> None:
        """Write the optimized model atomically (see graphopt.onnx_io.save_model)."""
        save_model(self.model, path, external_data=external_data, threshold=threshold)


def op_histogram(model: Model) -> Counter:
    """Node count per (qualified) op type as the model would be written, subgraphs included.

    Constants that export writes as Constant nodes (graph outputs; all of them below IR version 4)
    count as such.
    """
    counts = Counter(n.qualified_type for n in model.graph.all_nodes())
    for graph in model.graph.all_graphs():
        as_nodes = len(graph.consts) if model.ir_version < 4 else \
            sum(v.is_graph_output for v in graph.consts)
        if as_nodes:
            counts["Constant"] += as_nodes
    return counts


def as_model(source: Model | onnx.ModelProto | str | os.PathLike) -> Model:
    """Accept a path, a ModelProto or an IR Model."""
    if isinstance(source, Model):
        return source
    if isinstance(source, onnx.ModelProto):
        return import_model(source)
    return load_model(os.fspath(source))


def optimize(source: Model | onnx.ModelProto | str | os.PathLike,
             options: OptimizeOptions | None = None, *,
             progress: Callable[[PassRecord], None] | None = None, **overrides: Any) -> OptimizeResult:
    """Run a pipeline on a model with per-pass numeric checks and rollback.

    ``overrides`` are OptimizeOptions fields (``optimize(path, check="off")``).
    """
    opts = options or OptimizeOptions()
    if overrides:
        opts = OptimizeOptions(**{**opts.__dict__, **overrides})
    if opts.check not in CHECK_MODES:
        raise UsageError(f"check must be one of {', '.join(CHECK_MODES)}, not {opts.check!r}")
    if opts.on_failure not in ("rollback", "raise"):
        raise UsageError(f"on_failure must be 'rollback' or 'raise', not {opts.on_failure!r}")
    for plugin in opts.plugins:
        DEFAULT_REGISTRY.load_plugin(plugin)
    if opts.target not in TARGETS:
        raise UsageError(f"target must be one of {', '.join(TARGETS)}, not {opts.target!r}")
    steps = parse_pipeline(opts.pipeline)
    if opts.layout is not None:
        steps = parse_pipeline(f"convert-layout{{layout={opts.layout}}},{format_pipeline(steps)}")
    if opts.opset is not None:
        steps = parse_pipeline(f"convert-opset{{target={opts.opset}}},{format_pipeline(steps)}")
    extra = TARGETS[opts.target]
    if extra and extra not in pass_names(steps):
        steps = parse_pipeline(f"{format_pipeline(steps)},{extra}")
    for name in [*pass_names(steps), *opts.disable]:
        DEFAULT_REGISTRY.get(name)  # fail early, before any work, on an unknown name
    for step in pass_steps(steps):
        DEFAULT_REGISTRY.create(step.name, step.options)  # ... and on options a pass refuses
    model = as_model(source)
    ops_before = Counter(model.source_ops) if model.source_ops else op_histogram(model)
    checker = _make_checker(model, opts) if opts.check != "off" else None
    original = clone_model(model) if opts.check == "final" else None
    instruments: list[Any] = [VerifyIR()] if opts.verify else []
    if checker is not None and opts.check == "each":
        instruments.append(checker)
    if opts.dump_dir:
        instruments.append(DumpIR(opts.dump_dir))
    manager = PassManager(steps, instruments, frozenset(opts.disable), opts.on_failure,
                          progress=progress, pipeline_text=format_pipeline(steps),
                          never_worse=opts.never_worse)
    report = manager.run(model)
    if opts.opset is not None and model.opset != opts.opset:  # asked for, not delivered: no output
        failure = next((r.failure for r in report.rolled_back if r.name == "convert-opset"), "rolled back")
        raise PassFailedError(f"conversion to opset {opts.opset} failed its check: {failure}")
    if opts.opset is not None:
        _check_standard(model, opts.opset)
    result = OptimizeResult(model, report, ops_before, Counter(), opts.check)
    if checker is not None and opts.check == "final":
        _final_check(result, checker, original, opts)
    result.ops_after = op_histogram(result.model)
    result.check_sessions = checker.sessions if checker is not None else 0
    return result


def _check_standard(model: Model, opset: int) -> None:
    """A converted model must also pass onnx.checker at its new opset (models over the 2 GB protobuf
    limit are checked node by node by the numeric check alone)."""
    import onnx

    from graphopt.onnx_io import export_model

    proto = export_model(model)
    try:
        onnx.checker.check_model(proto)
    except ValueError as exc:
        if "2GB" in str(exc) or "too large" in str(exc).lower():
            return
        raise PassFailedError(f"the model converted to opset {opset} fails onnx.checker: "
                              f"{str(exc).splitlines()[0]}") from None
    except onnx.checker.ValidationError as exc:
        raise PassFailedError(f"the model converted to opset {opset} fails onnx.checker: "
                              f"{str(exc).splitlines()[0]}") from None


def _make_checker(model: Model, opts: OptimizeOptions) -> NumericCheck:
    feeds = make_feeds(model, seed=opts.seed, shapes=opts.input_shapes, given=opts.inputs)
    try:
        reference = run_model(model, feeds, what="original model")
    except RuntimeCheckError as exc:
        shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in feeds.items())
        raise RuntimeCheckError(f"{exc} [generated check inputs: {shapes}; give realistic ones with "
                                "--input-shape NAME=DIMS or --inputs FILE.npz, or use --check off]") from None
    base_inputs, base_outputs = interface_perms(model)  # a file converted before: checks are relative
    return NumericCheck(feeds, reference, opts.tolerance, base_inputs, base_outputs)


def _final_check(result: OptimizeResult, checker: NumericCheck, original: Model | None,
                 opts: OptimizeOptions) -> None:
    record = PassRecord("final-check")
    failure = checker.check(record, result.model)
    result.final_check = dict(record.checks.get("numeric", {}), failure=failure)
    if failure is None:
        return
    if opts.on_failure == "raise":
        raise NumericMismatchError(f"the optimized model is not equivalent: {failure}")
    assert original is not None
    result.model = original
    result.report.warnings.append(f"final check failed, original model kept: {failure}")

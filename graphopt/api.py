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

from graphopt.errors import PassFailedError, UsageError
from graphopt.final_check import final_check
from graphopt.fix_dims import fix_dims, settle_output_types
from graphopt.ir.clone import clone_model
from graphopt.ir.model import Model
from graphopt.numerics.check import NumericCheck, describe_inputs, prepare_check
from graphopt.numerics.user_inputs import build_request
from graphopt.onnx_io.importer import import_model, load_model
from graphopt.onnx_io.save import save_model
from graphopt.pass_infra.changes import ChangeLog
from graphopt.pass_infra.instruments import DumpIR, ReportStage, VerifyIR
from graphopt.pass_infra.manager import PassManager, PassRecord, PipelineReport
from graphopt.pass_infra.pipeline import format_pipeline, parse_pipeline, pass_names, pass_steps
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

DEFAULT_PIPELINE = ("fixpoint(eliminate-dead-code,fold-constants,prune-failing-branches,"
                    "eliminate-common-subexpressions,fuse-space-to-depth,fuse-pad,"
                    "fuse-batchnorm,fuse-conv-branches,fuse-normalization,fuse-affine,eliminate-dead-channels,"
                    "fuse-horizontal,"
                    "fuse-matmul-add,simplify-chains,optimize-transposes){max=8},"
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
    inputs: dict[str, Any] | None = None  # whole arrays by input name (a list for a sequence input)
    input_values: dict[str, np.ndarray] = field(default_factory=dict)  # fill values (scalars broadcast)
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # inclusive [lo, hi]
    check_iterations: int = 1  # seeded input sets every check compares
    custom_op_libraries: tuple[str, ...] = ()  # onnxruntime custom-op libraries for the checks
    tolerance: tuple[float, float] | None = None
    plugins: tuple[str, ...] = ()
    verify: bool = True
    dump_dir: str | None = None
    dump_format: str = "onnx"  # onnx | text | both
    target: str = "onnx"
    never_worse: bool = True
    layout: str | None = None  # "nhwc": convert-layout runs first (channels-last interface)
    opset: int | None = None  # convert-opset{target=N} runs first
    fix_dims: dict[str, Any] = field(default_factory=dict)  # see graphopt.fix_dims (e.g. {"batch": 1})
    fold_size_limit: int | None = None  # bytes: fold any constant result up to this size (overrides
    # fold-constants' never-larger trade, like onnxsim's --no-large-tensor and onnxslim's --size-threshold)
    shape_inference: bool = True  # False: never run onnx shape inference (huge or inference-breaking models)
    outputs: tuple[str, ...] | None = None  # keep only these graph outputs (any tensor), before the checks
    inline_functions: bool = False  # inline-functions runs first (model-local functions inlined)
    diff: bool = False  # record each kept pass's removed/added/changed nodes and values (result.changes)
    precision: str | None = None  # "fp16" | "bf16": convert-precision runs after the pipeline
    keep_io_types: bool = False  # with precision: inputs and outputs stay float32
    keep_fp32: tuple[str, ...] = ()  # with precision: node names or op types that keep float32
    precision_rtol: float | None = None  # with precision: the outputs' drift budget (default per dtype)
    precision_auto: bool = False  # with precision: mixed precision, the most sensitive nodes keep float32


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
    check_inputs: dict[str, Any] | None = None  # what the check inputs are and why (describe_inputs)
    fixed_dims: dict[str, Any] = field(default_factory=dict)  # input name -> new shape (--fix-dims)
    changes: list[Any] | None = None  # PassChanges per kept pass, with OptimizeOptions.diff

    def strict_problems(self) -> list[str]:
        """What ``--strict`` refuses: rollbacks (other than the never-worse rule's), weak or failed
        checks, a failed final check, problems a pass recovered from (an evaluator bug), or no checks."""
        if self.check_mode == "off":
            return ["checks are off"]
        problems = [f"pass {r.name!r} rolled back ({r.cause or 'failed'}): {r.failure}"
                    for r in self.report.rolled_back if r.cause != "never-worse"]
        problems += [f"pass {r.name!r}: weak check ({r.checks['numeric'].get('unproven_nodes', 0)} changed "
                     "node(s) reach no informative tensor)" for r in self.report.records
                     if r.status == "changed" and r.checks.get("numeric", {}).get("strength") == "weak"]
        problems += [f"pass {r.name!r}: {w}" for r in self.report.records for w in r.warnings]
        final = self.final_check or {}
        if final.get("strength") == "weak":
            problems.append("final check: weak")
        if final.get("failure"):
            problems.append(f"final check failed: {final['failure']}")
        return problems

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
             progress: Callable[[PassRecord], None] | None = None,
             watch: Callable[[str], None] | None = None, **overrides: Any) -> OptimizeResult:
    """Run a pipeline on a model with per-pass numeric checks and rollback.

    ``overrides`` are OptimizeOptions fields (``optimize(path, check="off")``). ``progress`` sees each
    pass record when its pass ends; ``watch`` hears what is happening now ("loading", "running
    fold-constants (round 2)", "checking ..."), for a live status line.
    """
    say = watch or (lambda _stage: None)
    opts = options or OptimizeOptions()
    if overrides:
        opts = OptimizeOptions(**{**opts.__dict__, **overrides})
    if opts.check_iterations < 1:
        raise UsageError(f"check_iterations must be at least 1, not {opts.check_iterations}")
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
    if opts.inline_functions and "inline-functions" not in pass_names(steps):
        steps = parse_pipeline(f"inline-functions,{format_pipeline(steps)}")
    if opts.precision is not None:
        steps = parse_pipeline(f"{format_pipeline(steps)},{_precision_steps(opts)}")
    extra = TARGETS[opts.target]
    if extra and extra not in pass_names(steps):
        steps = parse_pipeline(f"{format_pipeline(steps)},{extra}")
    for name in [*pass_names(steps), *opts.disable]:
        DEFAULT_REGISTRY.get(name)  # fail early, before any work, on an unknown name
    for step in pass_steps(steps):
        DEFAULT_REGISTRY.create(step.name, step.options)  # ... and on options a pass refuses
    if opts.fold_size_limit is not None:
        steps = _with_fold_size_limit(steps, opts.fold_size_limit)
    say(f"loading {os.path.basename(os.fspath(source))}" if isinstance(source, (str, os.PathLike))
        else "importing the model")
    model = as_model(source)
    model.shape_inference = opts.shape_inference
    fixed = fix_dims(model, opts.fix_dims) if opts.fix_dims else None
    if opts.outputs is not None:
        _select_outputs(model, opts)
    ops_before = Counter(model.source_ops) if model.source_ops else op_histogram(model)
    if opts.check != "off":
        say("choosing check inputs and running the original model")
    checker = _make_checker(model, opts) if opts.check != "off" else None
    original = clone_model(model) if opts.check == "final" else None
    if checker is None and opts.custom_op_libraries:
        raise UsageError("--custom-op-library is only used by the numeric checks, which are off")
    instruments: list[Any] = [VerifyIR()] if opts.verify else []
    if watch is not None:
        instruments.append(ReportStage(watch))  # before the checker: "checking" shows while it runs
    if checker is not None and opts.check == "each":
        instruments.append(checker)
    if opts.dump_dir:
        instruments.append(DumpIR(opts.dump_dir, opts.dump_format))
    change_log = ChangeLog() if opts.diff else None
    if change_log is not None:
        instruments.append(change_log)  # last: it sees only what every other instrument accepted
    manager = PassManager(steps, instruments, frozenset(opts.disable), opts.on_failure,
                          progress=progress, pipeline_text=format_pipeline(steps),
                          never_worse=opts.never_worse)
    report = manager.run(model)
    if opts.opset is not None and model.opset != opts.opset:  # asked for, not delivered: no output
        failure = next((r.failure for r in report.rolled_back if r.name == "convert-opset"), "rolled back")
        raise PassFailedError(f"conversion to opset {opts.opset} failed its check: {failure}")
    if opts.opset is not None:
        _check_standard(model, opts.opset)
    if opts.inline_functions and model.functions:  # asked for, not delivered: no output
        failure = next((r.failure for r in report.rolled_back if r.name == "inline-functions"), "skipped")
        raise PassFailedError(f"inlining the model-local functions failed: {failure}")
    result = OptimizeResult(model, report, ops_before, Counter(), opts.check)
    if fixed is not None:
        result.fixed_dims = {name: list(shape) for name, shape in fixed.inputs.items()}
    if checker is not None:
        result.check_inputs = describe_inputs(checker.inputs)
    if checker is not None and opts.check == "final":
        assert original is not None
        say("final check: comparing the optimized model with the original")
        final_check(result, checker, original, opts, steps, progress, change_log)
    if change_log is not None:
        result.changes = change_log.kept(result.report.records)
    if fixed is not None:
        settle_output_types(result.model)
    result.ops_after = op_histogram(result.model)
    result.check_sessions = checker.sessions if checker is not None else 0
    return result


def _precision_steps(opts: OptimizeOptions) -> str:
    """convert-precision after the pipeline (BatchNorms folded, norms fused first), then the Cast
    chains its boundaries leave collapsed and what died removed."""
    if opts.precision not in ("fp16", "bf16"):
        raise UsageError(f"precision must be fp16 or bf16, not {opts.precision!r}")
    for name in opts.keep_fp32:
        if not name or any(c in name for c in "+;{}"):
            raise UsageError(f"--keep-fp32: {name!r} is not a node name or op type")
    options = [f"dtype={opts.precision}", f"keep_io_types={str(opts.keep_io_types).lower()}",
               f"seed={opts.seed}"]
    if opts.keep_fp32:
        options.append("keep_fp32=" + "+".join(opts.keep_fp32))
    if opts.precision_auto:
        options.append("auto=true")
    if opts.precision_rtol is not None:
        options.append(f"rtol={opts.precision_rtol!r}")
    return f"convert-precision{{{';'.join(options)}}},simplify-chains,eliminate-dead-code"


def _with_fold_size_limit(steps: list[Any], limit: int) -> list[Any]:
    """The pipeline with ``size_limit`` set on every fold-constants step that does not set its own."""
    if limit < 0:
        raise UsageError(f"the fold size limit must be at least 0 bytes, not {limit}")
    for step in pass_steps(steps):
        if step.name == "fold-constants" and "size_limit" not in step.options:
            step.options["size_limit"] = str(limit)
    return steps


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


def _select_outputs(model: Model, opts: OptimizeOptions) -> None:
    """``--outputs`` before the checker sees the model, so every check compares those outputs."""
    from graphopt.extract import set_outputs
    from graphopt.numerics.feeds import make_feeds

    feeds = (lambda: make_feeds(model, seed=opts.seed, shapes=opts.input_shapes, given=opts.inputs)) \
        if opts.check != "off" else None
    set_outputs(model, opts.outputs or (), feeds)


def _make_checker(model: Model, opts: OptimizeOptions) -> NumericCheck:
    """Validate what the user said about inputs, choose the rest from the model, capture the reference."""
    request = build_request(model, opts.input_shapes, opts.inputs, opts.input_values, opts.input_ranges)
    for path in opts.custom_op_libraries:
        if not os.path.isfile(path):
            raise UsageError(f"--custom-op-library {path}: no such file (give the path of the shared "
                             "library that registers the ops, e.g. a .so built against onnxruntime)")
    return prepare_check(model, request, seed=opts.seed, iterations=opts.check_iterations,
                         tolerance=opts.tolerance, libraries=opts.custom_op_libraries)


def simplify(model: onnx.ModelProto | str | os.PathLike, *, return_result: bool = False,
             **options: Any) -> onnx.ModelProto | tuple[onnx.ModelProto, OptimizeResult]:
    """``optimize`` for code written against onnxsim's ``simplify`` or onnxslim's ``slim``: takes a
    ModelProto or a path and returns the optimized ModelProto (the input is never modified).

    ``options`` are OptimizeOptions fields; with ``return_result`` the OptimizeResult (per-pass
    report, checks) comes back too.

    Example:
        >>> import graphopt                                         # doctest: +SKIP
        >>> simplified = graphopt.simplify("model.onnx", fix_dims={"batch": 1})  # doctest: +SKIP
    """
    from graphopt.onnx_io import export_model

    result = optimize(model, **options)
    proto = export_model(result.model)
    return (proto, result) if return_result else proto

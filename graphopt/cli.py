"""The ``graphopt`` command line: optimize, check, list-passes.

Every user mistake ends in one line on stderr and a documented exit code (see README); outputs are
written atomically, so an interrupted or failed run never leaves a partial file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Sequence

from graphopt.cli_extract import add_extract_parser, cmd_extract, split_names
from graphopt.cli_plan import add_plan_parser, cmd_plan, pipeline_text
from graphopt.errors import GraphoptError, UsageError
from graphopt.onnx_io.save import write_text_atomic

EXIT_INTERNAL = 70
EXIT_MISMATCH = 1
EXIT_OUT_OF_MEMORY = 7
EXIT_STRICT = 4  # --strict: a rollback, a weak check or a failed final check


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate for tests and docs)."""
    parser = argparse.ArgumentParser(prog="graphopt", description="Optimize ONNX models, verified.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)
    opt = sub.add_parser("optimize", help="optimize a model")
    opt.add_argument("input", help="model .onnx file")
    opt.add_argument("-o", "--output", help="output path (default: INPUT with .opt.onnx)")
    opt.add_argument("--in-place", action="store_true", help="overwrite the input file")
    opt.add_argument("--pipeline", help="pipeline text, e.g. 'fold-constants,eliminate-dead-code'")
    opt.add_argument("--disable", action="append", default=[], metavar="PASS",
                     help="skip a pass of the pipeline (repeatable)")
    opt.add_argument("--check", choices=("each", "final", "off"), default="each",
                     help="numeric check after each changing pass (default), once at the end, or never")
    opt.add_argument("--on-failure", choices=("rollback", "raise"), default="rollback",
                     help="roll back a failing pass and go on (default), or stop")
    opt.add_argument("--seed", type=int, default=0, help="seed of the generated check inputs")
    _add_input_flags(opt)
    opt.add_argument("--strict", action="store_true",
                     help="exit 4 when a pass is rolled back (never-worse excepted), a check is weak or "
                          "the final check fails (for CI); the output is still written")
    opt.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE",
                     help="load passes from a .py file or module (repeatable)")
    opt.add_argument("--external-data", action="store_true",
                     help="write weights to OUTPUT.data (default: when the input keeps external data, "
                          "or above ~1.8 GB)")
    opt.add_argument("--external-data-threshold", type=int, default=1024, metavar="BYTES",
                     help="tensors at least this large go to the data file (default 1024)")
    opt.add_argument("--report", metavar="FILE.json", help="write a JSON report")
    opt.add_argument("--plot", metavar="FILE.svg", help="write an SVG chart of the node count after each "
                     "pass that changed the model (rolled-back passes and fixed-point rounds marked)")
    opt.add_argument("--dump-ir", metavar="DIR", help="save the model after each changing pass (and the "
                     "model a failing pass left, as NNN-pass.FAILED.*)")
    opt.add_argument("--dump-format", choices=("onnx", "text", "both"), default="onnx",
                     help="--dump-ir files: ONNX models, a one-line-per-node text form to diff, or both")
    opt.add_argument("--no-verify", action="store_true", help="skip the IR verifier after passes")
    opt.add_argument("--target", choices=("onnx", "ort"), default="onnx",
                     help="onnx: standard ONNX only (default); ort: also onnxruntime contrib ops (FusedConv)")
    opt.add_argument("--layout", choices=("nhwc",),
                     help="make image-like inputs/outputs channels-last (runs convert-layout first)")
    opt.add_argument("--opset", type=int, metavar="N",
                     help="convert the default ONNX domain to opset N first (up or down, checked)")
    opt.add_argument("--fix-dims", action="append", default=[], metavar="SPEC",
                     help="fix input dims in the output model, then fold what they make static: "
                          "NAME=D0,D1,... (an input's shape, ? keeps a dim), NAME:AXIS=N, or DIM=N (a dim "
                          "name such as batch, wherever it is used); repeatable")
    opt.add_argument("--fold-size-limit", type=int, metavar="BYTES",
                     help="fold every constant result up to BYTES, even when the file grows (default: "
                          "fold only what does not make the model larger)")
    opt.add_argument("--skip-shape-inference", action="store_true",
                     help="never run onnx shape inference (for models it breaks or takes long on); "
                          "folding then knows only the shapes the file declares")
    opt.add_argument("--allow-worse", action="store_true",
                     help="keep a pass's result even when it adds nodes or bytes (never-worse rule off)")
    opt.add_argument("--outputs", metavar="NAME[,NAME...]",
                     help="keep only these graph outputs (any tensor; an intermediate becomes an output)")
    opt.add_argument("--inline-functions", action="store_true",
                     help="inline model-local functions first (runs inline-functions, checked)")
    opt.add_argument("--plan-memory", action="store_true",
                     help="end with plan-memory: planned node order, plan in metadata_props (see 'plan')")
    opt.add_argument("--stats", action="store_true",
                     help="print per-rule statistics: attempts, matches, rejections by reason, time")
    opt.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    opt.add_argument("-v", "--verbose", action="store_true",
                     help="also print what passes log on stderr (e.g. which If branch was pruned and why)")
    chk = sub.add_parser("check", help="compare two models numerically")
    chk.add_argument("reference")
    chk.add_argument("candidate")
    chk.add_argument("--seed", type=int, default=0, help="seed of the generated check inputs")
    _add_input_flags(chk)
    add_plan_parser(sub)
    add_extract_parser(sub)
    lst = sub.add_parser("list-passes", help="list the registered passes")
    lst.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE")
    return parser


def _add_input_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say what the check inputs are (shared by optimize and check)."""
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                        help="shape of an input in checks (repeatable; default: chosen from the model)")
    parser.add_argument("--inputs", metavar="FILE.npz|FILE.npy",
                        help="check inputs by input name (a sequence as NAME[0], NAME[1]...; .npy: the "
                             "only input)")
    parser.add_argument("--input-value", action="append", default=[], metavar="NAME=V[,V...]",
                        help="value of an input: a scalar (broadcast) or a 1-D tensor (repeatable)")
    parser.add_argument("--input-range", action="append", default=[], metavar="NAME=LO,HI",
                        help="draw an input's values uniformly from [LO, HI] (repeatable)")
    parser.add_argument("--check-iterations", type=int, default=1, metavar="N",
                        help="compare outputs on N seeded input sets (default 1)")
    parser.add_argument("--custom-op-library", action="append", default=[], metavar="PATH",
                        help="onnxruntime custom-op library the checks load (repeatable; "
                             "onnxruntime-extensions is loaded by itself when installed)")
    parser.add_argument("--rtol", type=float, help="override the relative tolerance of checks")
    parser.add_argument("--atol", type=float, help="override the absolute tolerance of checks")


def _input_options(args: argparse.Namespace) -> dict[str, object]:
    """OptimizeOptions fields from the input flags (parsed; validated against the model later)."""
    from graphopt.numerics.user_inputs import load_arrays, parse_ranges, parse_shapes, parse_values

    return {"input_shapes": parse_shapes(args.input_shape),
            "inputs": load_arrays(args.inputs) if args.inputs else None,
            "input_values": parse_values(args.input_value), "input_ranges": parse_ranges(args.input_range),
            "check_iterations": args.check_iterations, "custom_op_libraries": tuple(args.custom_op_library),
            "seed": args.seed, "tolerance": _tolerance(args)}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="graphopt: %(message)s")
    # the application decides, not the library; reset each call (main() also runs in-process in tests)
    verbose = getattr(args, "verbose", False)
    logging.getLogger("graphopt").setLevel(logging.INFO if verbose else logging.NOTSET)
    try:
        if args.command == "optimize":
            return cmd_optimize(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "plan":
            return cmd_plan(args)
        if args.command == "extract":
            return cmd_extract(args)
        return cmd_list_passes(args)
    except GraphoptError as exc:
        print(f"graphopt: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `graphopt list-passes | head`: the reader left; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("graphopt: interrupted; no output was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("graphopt: error: out of memory; no output was written (try --check off, smaller "
              "--input-shape dims, or a machine with more memory)", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    except Exception as exc:
        if args.debug:
            raise
        print(f"graphopt: internal error: {type(exc).__name__}: {exc} "
              "(please report it; --debug shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _tolerance(args: argparse.Namespace) -> tuple[float, float] | None:
    if args.rtol is None and args.atol is None:
        return None
    return (args.rtol if args.rtol is not None else 1e-4, args.atol if args.atol is not None else 1e-5)


def _output_path(args: argparse.Namespace) -> str:
    if args.in_place:
        if args.output:
            raise UsageError("--in-place and --output exclude each other")
        return args.input
    output = args.output or (os.path.splitext(args.input)[0] + ".opt.onnx")
    if os.path.exists(args.input) and os.path.exists(output) and os.path.samefile(args.input, output):
        raise UsageError("the output would overwrite the input; pass --in-place to allow that")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UsageError(f"output folder {folder} does not exist")
    return output


def cmd_optimize(args: argparse.Namespace) -> int:
    """``graphopt optimize``."""
    from graphopt.api import DEFAULT_PIPELINE, OptimizeOptions, optimize
    from graphopt.fix_dims import parse_fix_dims
    from graphopt.report import check_inputs_text, format_bytes, json_report, op_table, pass_table, rule_table

    output = _output_path(args)
    if args.plot and not os.path.isdir(os.path.dirname(os.path.abspath(args.plot))):
        raise UsageError(f"--plot folder {os.path.dirname(os.path.abspath(args.plot))} does not exist")
    if args.strict and args.check == "off":
        raise UsageError("--strict needs numeric checks; drop --check off or --strict")
    pipeline = args.pipeline or DEFAULT_PIPELINE
    inputs = _input_options(args)
    if args.plan_memory:
        shapes = inputs["input_shapes"]
        pipeline += "," + pipeline_text({k: list(v) for k, v in shapes.items()})  # type: ignore[attr-defined]
    options = OptimizeOptions(
        pipeline=pipeline, check=args.check, on_failure=args.on_failure,
        disable=tuple(args.disable), **inputs,  # type: ignore[arg-type]
        plugins=tuple(args.plugin), verify=not args.no_verify, dump_dir=args.dump_ir,
        dump_format=args.dump_format,
        target=args.target, never_worse=not args.allow_worse, layout=args.layout, opset=args.opset,
        fix_dims=parse_fix_dims(args.fix_dims), fold_size_limit=args.fold_size_limit,
        shape_inference=not args.skip_shape_inference,
        outputs=tuple(split_names(args.outputs)) if args.outputs is not None else None,
        inline_functions=args.inline_functions)
    progress = None if args.quiet or not sys.stderr.isatty() else _progress
    start = time.perf_counter()
    _refuse_overwriting_data(args.input, output)
    result = optimize(args.input, options, progress=progress)
    external = args.external_data or _had_external_data(result.model)
    result.save(output, external_data=True if external else None,
                threshold=args.external_data_threshold)
    seconds = time.perf_counter() - start
    size_in, size_out = _size(args.input), _size(output)
    if not args.quiet:
        print(op_table(result.ops_before, result.ops_after))
        print()
        if result.check_inputs:
            print(check_inputs_text(result.check_inputs))
            print()
        print(pass_table(result))
        print()
        if args.stats:
            print(rule_table(result))
            print()
        print(f"size {format_bytes(size_in)} -> {format_bytes(size_out)}; {seconds:.2f}s; "
              f"checks: {args.check} ({result.check_sessions} onnxruntime sessions)")
        for warning in result.report.warnings:
            print(f"warning: {warning}")
        for rec in result.report.rolled_back:
            print(f"rolled back: {rec.name}: {rec.failure}\n  reproduce: "
                  f"{_repro_line(args, rec.history + [rec.step or rec.name])}")
        print(f"wrote {output}")
    problems = result.strict_problems() if args.strict else []
    if args.report:
        write_text_atomic(args.report, json_report(result, {
            "input": args.input, "output": output, "size_before": size_in, "size_after": size_out,
            "seconds": seconds, **({"strict_problems": problems} if args.strict else {})}))
    if args.plot:
        from graphopt.plots.reduction import reduction_svg

        write_text_atomic(args.plot, reduction_svg(result.report.records, sum(result.ops_before.values()),
                                                   title=os.path.basename(args.input)))
    if problems:
        print(f"graphopt: strict: {len(problems)} problem(s): {'; '.join(problems)}", file=sys.stderr)
        return EXIT_STRICT
    return 0


def _had_external_data(model) -> bool:  # type: ignore[no-untyped-def]
    """Whether the input kept weights in external data: the output then keeps that layout."""
    return any(v.const.is_external for g in model.graph.all_graphs() for v in g.consts)


def _refuse_overwriting_data(input_path: str, output: str) -> None:
    """The output (or its .data file) must not replace a data file the input's weights live in. Only
    when such a file already exists beside the input is the input's list of data files read."""
    folder = os.path.dirname(os.path.abspath(input_path))
    targets = [t for t in (output, output + ".data") if os.path.isfile(t)
               and os.path.dirname(os.path.realpath(t)) == os.path.realpath(folder)]
    if not targets:
        return
    import onnx

    try:
        proto = onnx.load(input_path, load_external_data=False)
    except Exception:  # noqa: BLE001 - the loader already accepted it; nothing more to learn here
        return
    locations = {os.path.realpath(os.path.join(folder, entry.value))
                 for tensor in _all_tensors(proto.graph) for entry in tensor.external_data
                 if entry.key == "location"}
    for target in targets:
        if os.path.realpath(target) in locations:
            raise UsageError(f"writing {output} would overwrite {target}, which holds the input's weights; "
                             "choose another output name")


def _all_tensors(graph):  # type: ignore[no-untyped-def]
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            for body in ([attr.g] if attr.HasField("g") else list(attr.graphs)):
                yield from _all_tensors(body)


def _repro_line(args: argparse.Namespace, passes: list[str]) -> str:
    given = [*(f" --input-shape {s}" for s in args.input_shape),
             *(f" --input-value {s}" for s in args.input_value),
             *(f" --input-range {s}" for s in args.input_range),
             *(f" --custom-op-library {s}" for s in args.custom_op_library),
             *([f" --inputs {args.inputs}"] if args.inputs else []),
             *([f" --check-iterations {args.check_iterations}"] if args.check_iterations != 1 else []),
             *(f" --plugin {p}" for p in args.plugin)]
    return (f"graphopt optimize {args.input} -o /tmp/repro.onnx --pipeline '{','.join(passes)}' "
            f"--seed {args.seed} --on-failure raise{''.join(given)}")


def _progress(record) -> None:  # type: ignore[no-untyped-def]
    print(f"  {record.name:<24} {record.status:<12} {record.seconds * 1000:6.0f}ms", file=sys.stderr)


def _size(path: str) -> int:
    total = os.path.getsize(path)
    data = path + ".data"
    return total + (os.path.getsize(data) if os.path.exists(data) else 0)


def cmd_check(args: argparse.Namespace) -> int:
    """``graphopt check A B``: exit 0 when equivalent, 1 when not. The inputs are chosen from A as
    ``optimize`` chooses them; tensors B shares by name with A are compared too. B may have the NHWC
    interface that ``--layout nhwc`` gave it (recorded in its metadata): it is fed and read in A's."""
    from graphopt.numerics.check import describe_inputs, prepare_check
    from graphopt.numerics.interface import interface_difference
    from graphopt.numerics.user_inputs import build_request
    from graphopt.onnx_io import load_model
    from graphopt.report import check_inputs_text

    ref, cand = load_model(args.reference), load_model(args.candidate)
    given = _input_options(args)
    problems, fixed_shapes = interface_difference(ref, cand)
    if problems:
        print(f"NOT equivalent: the interfaces differ: {'; '.join(problems)}")
        return EXIT_MISMATCH
    if not given["input_shapes"] and not given["inputs"]:
        given["input_shapes"] = fixed_shapes  # check where the candidate is defined (fixed dims)
    request = build_request(ref, given["input_shapes"], given["inputs"], given["input_values"],  # type: ignore[arg-type]
                            given["input_ranges"])  # type: ignore[arg-type]
    checker = prepare_check(ref, request, seed=args.seed, iterations=args.check_iterations,
                            tolerance=_tolerance(args), libraries=tuple(args.custom_op_library))
    outcome = checker.outcome(cand, f"model {args.candidate}")
    print(check_inputs_text(describe_inputs(checker.inputs)))
    outputs = len(checker.reference.output_names)
    if outcome.failure is not None:
        print(f"NOT equivalent: {outcome.failure}")
        return EXIT_MISMATCH
    strength = "weak: the reference cannot reveal a change" if outcome.strength == "weak" else "equivalent"
    print(f"{strength}: {outputs} outputs, {outcome.compared} intermediate tensors compared, "
          f"max abs err {outcome.max_abs:.3g}, max rel err {outcome.max_rel:.3g}")
    return 0


def _pass_options(cls: type) -> str:
    """``name=default`` for each option field of a pass class (what ``pass{name=value}`` sets)."""
    import dataclasses

    if not dataclasses.is_dataclass(cls):
        return ""
    shown = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        shown.append(f"{f.name}={'' if default is None else default}")
    return " ".join(shown)


def cmd_list_passes(args: argparse.Namespace) -> int:
    """``graphopt list-passes``."""
    from graphopt.api import DEFAULT_PIPELINE
    from graphopt.pass_infra.registry import DEFAULT_REGISTRY

    for plugin in args.plugin:
        DEFAULT_REGISTRY.load_plugin(plugin)
    passes = DEFAULT_REGISTRY.all()
    width = max([24, *(len(name) for name in passes)])
    for name, cls in passes.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<{width}} {doc[0] if doc else ''}")
        options = _pass_options(cls)
        if options:
            print(f"{'':<{width}}   options: {options}")
    print(f"\ndefault pipeline: {DEFAULT_PIPELINE}")
    return 0

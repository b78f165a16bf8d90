"""``graphopt optimize``: validate every output path, run the pipeline, write atomically, report."""

from __future__ import annotations

import argparse
import os
import sys
import time

from graphopt.cli_args import input_options
from graphopt.cli_extract import split_names
from graphopt.cli_plan import pipeline_text
from graphopt.errors import UsageError
from graphopt.onnx_io.save import write_text_atomic
from graphopt.report import (
    check_inputs_text,
    format_bytes,
    json_report,
    op_table,
    pass_table,
    precision_text,
    rule_table,
)

EXIT_STRICT = 4  # --strict: a rollback, a weak check or a failed final check


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


def _validate_side_outputs(args: argparse.Namespace) -> None:
    """``--report``, ``--plot`` and ``--dump-ir`` must be writable before any work starts."""
    for flag, path in (("--report", args.report), ("--plot", args.plot)):
        if not path or (flag == "--report" and path == "-"):
            continue
        if os.path.isdir(path):
            raise UsageError(f"{flag} {path} is a folder; give a file name")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"{flag} folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"{flag}: cannot write to folder {folder}")
    if args.dump_ir:
        if os.path.exists(args.dump_ir) and not os.path.isdir(args.dump_ir):
            raise UsageError(f"--dump-ir {args.dump_ir} is a file; give a folder (it is created if missing)")
        existing = os.path.abspath(args.dump_ir)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
            raise UsageError(f"--dump-ir {args.dump_ir}: cannot create it inside {existing}")


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """OptimizeOptions from the flags."""
    from graphopt.api import DEFAULT_PIPELINE, OptimizeOptions
    from graphopt.fix_dims import parse_fix_dims

    pipeline = args.pipeline or DEFAULT_PIPELINE
    inputs = input_options(args)
    if args.plan_memory:
        shapes = inputs["input_shapes"]
        pipeline += "," + pipeline_text({k: list(v) for k, v in shapes.items()})  # type: ignore[attr-defined]
    return OptimizeOptions(
        pipeline=pipeline, check=args.check, on_failure=args.on_failure,
        disable=tuple(args.disable), **inputs,  # type: ignore[arg-type]
        plugins=tuple(args.plugin), verify=not args.no_verify, dump_dir=args.dump_ir,
        dump_format=args.dump_format,
        target=args.target, never_worse=not args.allow_worse, layout=args.layout, opset=args.opset,
        fix_dims=parse_fix_dims(args.fix_dims), fold_size_limit=args.fold_size_limit,
        shape_inference=not args.skip_shape_inference,
        outputs=tuple(split_names(args.outputs)) if args.outputs is not None else None,
        inline_functions=args.inline_functions, diff=args.diff, precision=args.precision,
        keep_io_types=args.keep_io_types, keep_fp32=tuple(n for text in args.keep_fp32
                                                          for n in split_names(text)),
        precision_rtol=args.precision_budget, precision_auto=args.auto)


def cmd_optimize(args: argparse.Namespace) -> int:
    """``graphopt optimize``."""
    from graphopt.api import optimize
    from graphopt.cli_console import colour_off, is_terminal, live_status

    output = _output_path(args)
    _validate_side_outputs(args)
    if (args.keep_io_types or args.keep_fp32 or args.auto or args.precision_budget is not None) \
            and not args.precision:
        raise UsageError("--keep-io-types, --keep-fp32, --auto and --precision-budget need "
                         "--precision fp16|bf16")
    if args.strict and args.check == "off":
        raise UsageError("--strict needs numeric checks; drop --check off or --strict")
    options = _options(args)
    no_color = colour_off(args.no_color)
    json_to_stdout = args.report == "-"
    start = time.perf_counter()
    _refuse_overwriting_data(args.input, output)
    with live_status(not args.quiet and is_terminal(sys.stderr), no_color) as watch:
        result = optimize(args.input, options, watch=watch)
        watch(f"writing {output}")
        external = args.external_data or _had_external_data(result.model)
        result.save(output, external_data=True if external else None,
                    threshold=args.external_data_threshold)
    seconds = time.perf_counter() - start
    size_in, size_out = _size(args.input), _size(output)
    if not args.quiet and not json_to_stdout:
        _print_result(args, result, output, f"size {format_bytes(size_in)} -> {format_bytes(size_out)}; "
                      f"{seconds:.2f}s; checks: {args.check} ({result.check_sessions} onnxruntime sessions)",
                      rich_tables=is_terminal(sys.stdout), no_color=no_color)
    problems = result.strict_problems() if args.strict else []
    if args.report:
        text = json_report(result, {
            "input": args.input, "output": output, "size_before": size_in, "size_after": size_out,
            "seconds": seconds, **({"strict_problems": problems} if args.strict else {}),
            **({"diff": [c.as_dict() for c in result.changes or []]} if args.diff else {})})
        if json_to_stdout:
            print(text)
        else:
            write_text_atomic(args.report, text)
    if args.plot:
        from graphopt.plots.reduction import reduction_svg

        write_text_atomic(args.plot, reduction_svg(result.report.records, sum(result.ops_before.values()),
                                                   title=os.path.basename(args.input)))
    if problems:
        print(f"graphopt: strict: {len(problems)} problem(s): {'; '.join(problems)}", file=sys.stderr)
        return EXIT_STRICT
    return 0


def _print_result(args: argparse.Namespace, result, output: str, summary: str,  # type: ignore[no-untyped-def]
                  rich_tables: bool, no_color: bool) -> None:
    """The tables: rich on a terminal, the plain text of graphopt.report elsewhere."""
    from graphopt.pass_infra.changes import diff_text

    diff = diff_text(result.changes or []) if args.diff else None
    rules = rule_table(result) if args.stats else None
    precision = precision_text(result)
    if precision is not None:
        summary = f"{precision}\n{summary}"
    rolled_back = [(f"{rec.name}: {rec.failure}", _repro_line(args, rec.history + [rec.step or rec.name]))
                   for rec in result.report.rolled_back]
    if rich_tables:
        from graphopt.cli_console import make_console, print_summary

        print_summary(make_console(sys.stdout, no_color), result, summary, rolled_back, output, rules, diff)
        return
    print(op_table(result.ops_before, result.ops_after))
    print()
    if result.check_inputs:
        print(check_inputs_text(result.check_inputs))
        print()
    print(pass_table(result))
    print()
    for block in (diff, rules):
        if block is not None:
            print(block)
            print()
    print(summary)
    for warning in result.report.warnings:
        print(f"warning: {warning}")
    for failure, repro in rolled_back:
        print(f"rolled back: {failure}\n  reproduce: {repro}")
    print(f"wrote {output}")


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


def _size(path: str) -> int:
    total = os.path.getsize(path)
    data = path + ".data"
    return total + (os.path.getsize(data) if os.path.exists(data) else 0)

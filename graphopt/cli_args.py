"""The ``graphopt`` argument parser: every subcommand, flag, its help text and the exit codes."""

from __future__ import annotations

import argparse

from graphopt.cli_extract import add_extract_parser
from graphopt.cli_inspect import add_inspect_parser
from graphopt.cli_plan import add_plan_parser

EXIT_CODES = """exit codes:
  0   success (optimize: output written, rolled-back passes reported; check: equivalent)
  1   check: the models are not equivalent
  2   usage error or unreadable model (one line on stderr says what and how to fix it)
  3   IR invariant broken (a bug in a pass)
  4   a pass failed with --on-failure raise, or --strict found a problem (the output is still written)
  5   onnxruntime cannot load or run the original model for a check (--check off optimizes anyway)
  6   the output could not be written
  7   out of memory (nothing written)
  70  internal error (please report it; --debug shows the traceback)
  130 interrupted (nothing written)"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate for tests and docs)."""
    parser = argparse.ArgumentParser(prog="graphopt", description="Optimize ONNX models, verified.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)
    opt = sub.add_parser("optimize", help="optimize a model", description="Optimize a model; every "
                         "changing pass is checked numerically against onnxruntime and rolled back if it "
                         "changes an output.", epilog=EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
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
    add_input_flags(opt)
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
    opt.add_argument("--report", metavar="FILE.json", help="write a JSON report ('-': to stdout, instead "
                     "of the tables)")
    opt.add_argument("--diff", action="store_true", help="print which nodes and values each pass removed, "
                     "added or changed (all of them in --report)")
    opt.add_argument("--no-color", action="store_true", help="plain text even on a terminal (NO_COLOR too)")
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
    opt.add_argument("--precision", choices=("fp16", "bf16"),
                     help="convert float32 to float16 or bfloat16 after optimizing, within a drift budget "
                          "(outputs within 1e-2 of their magnitude for fp16, 5e-2 for bf16)")
    opt.add_argument("--keep-io-types", action="store_true",
                     help="with --precision: inputs and outputs stay float32 (Casts at the interface)")
    opt.add_argument("--keep-fp32", action="append", default=[], metavar="OP_OR_NODE[,...]",
                     help="with --precision: op types or node names that keep float32 (repeatable)")
    opt.add_argument("--auto", action="store_true",
                     help="with --precision: mixed precision, keeping the nodes that drift most in float32 "
                          "until the outputs fit the budget")
    opt.add_argument("--precision-budget", type=float, metavar="RTOL",
                     help="with --precision: the outputs' drift budget relative to their magnitude")
    opt.add_argument("--plan-memory", action="store_true",
                     help="end with plan-memory: planned node order, plan in metadata_props (see 'plan')")
    opt.add_argument("--stats", action="store_true",
                     help="print per-rule statistics: attempts, matches, rejections by reason, time")
    opt.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    opt.add_argument("-v", "--verbose", action="store_true",
                     help="also print what passes log on stderr (e.g. which If branch was pruned and why)")
    chk = sub.add_parser("check", help="compare two models numerically", epilog=EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Compare CANDIDATE with REFERENCE on inputs chosen from REFERENCE; "
                                     "tensors they share by name are compared too.")
    chk.add_argument("reference", help="the model whose outputs are right (.onnx)")
    chk.add_argument("candidate", help="the model to compare with it (.onnx), e.g. an optimized copy")
    chk.add_argument("--seed", type=int, default=0, help="seed of the generated check inputs")
    add_input_flags(chk)
    add_plan_parser(sub)
    add_extract_parser(sub)
    add_inspect_parser(sub)
    lst = sub.add_parser("list-passes", help="list the registered passes")
    lst.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE",
                     help="also list the passes of a .py file or module (repeatable)")
    return parser


def add_input_flags(parser: argparse.ArgumentParser) -> None:
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


def input_options(args: argparse.Namespace) -> dict[str, object]:
    """OptimizeOptions fields from the input flags (parsed; validated against the model later)."""
    from graphopt.numerics.user_inputs import load_arrays, parse_ranges, parse_shapes, parse_values

    return {"input_shapes": parse_shapes(args.input_shape),
            "inputs": load_arrays(args.inputs) if args.inputs else None,
            "input_values": parse_values(args.input_value), "input_ranges": parse_ranges(args.input_range),
            "check_iterations": args.check_iterations, "custom_op_libraries": tuple(args.custom_op_library),
            "seed": args.seed, "tolerance": tolerance(args)}



def tolerance(args: argparse.Namespace) -> tuple[float, float] | None:
    if args.rtol is None and args.atol is None:
        return None
    return (args.rtol if args.rtol is not None else 1e-4, args.atol if args.atol is not None else 1e-5)


def version_text() -> str:
    """``graphopt X (onnx Y, onnxruntime Z, Python V)``: what a bug report needs."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from graphopt import __version__

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return (f"graphopt {__version__} (onnx {of('onnx')}, onnxruntime {of('onnxruntime')}, "
            f"Python {platform.python_version()})")

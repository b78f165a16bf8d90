"""``graphopt extract``: write the sub-model between named tensors, checked against the original."""

from __future__ import annotations

import argparse
import os
from collections import Counter

from graphopt.errors import UsageError


def add_extract_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``extract`` subcommand's flags."""
    ext = sub.add_parser("extract", help="write the sub-model between named tensors (checked)")
    ext.add_argument("input", help="model .onnx file (never modified)")
    ext.add_argument("--inputs", required=True, metavar="NAME[,NAME...]",
                     help="tensors that become the sub-model's inputs (graph inputs or intermediates)")
    ext.add_argument("--outputs", required=True, metavar="NAME[,NAME...]",
                     help="tensors that become the sub-model's outputs")
    ext.add_argument("-o", "--output", required=True, metavar="SUB.onnx", help="where to write it")
    ext.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                     help="shape of a (dynamic) original input in the check run (repeatable)")
    ext.add_argument("--seed", type=int, default=0, help="seed of the check run's inputs")
    ext.add_argument("--no-check", action="store_true",
                     help="skip the numeric check (types must then come from the model or inference)")


def split_names(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]`` (blank entries dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def cmd_extract(args: argparse.Namespace) -> int:
    """``graphopt extract``: validate the output path first, cut, check, write atomically."""
    from graphopt.extract import extract
    from graphopt.numerics.user_inputs import parse_shapes
    from graphopt.onnx_io import load_model
    from graphopt.onnx_io.save import save_model

    inputs, outputs = split_names(args.inputs), split_names(args.outputs)
    if not inputs or not outputs:
        raise UsageError("extract: name at least one tensor in --inputs and in --outputs")
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise UsageError(f"output folder {folder} does not exist")
    if os.path.exists(args.output) and os.path.exists(args.input) \
            and os.path.samefile(args.input, args.output):
        raise UsageError("the output would overwrite the input; choose another -o")
    model = load_model(args.input)
    before = len(model.graph)  # main-graph nodes (a body counts with its holder)
    result = extract(model, inputs, outputs, check=not args.no_check, seed=args.seed,
                     shapes=parse_shapes(args.input_shape))
    save_model(model, args.output)
    ops = Counter(n.op_type for n in model.graph)
    print(f"kept {len(model.graph)} of {before} nodes ({result.removed} removed): "
          + ", ".join(f"{op} x{count}" for op, count in ops.most_common()))
    print("inputs: " + ", ".join(_typed(v) for v in model.graph.inputs))
    print("outputs: " + ", ".join(_typed(v) for v in model.graph.outputs))
    check = ("off" if result.max_abs is None else
             f"sub-model outputs equal the original's tensors (max abs err {result.max_abs:.3g})")
    print(f"onnx.checker: ok; numeric check: {check}")
    print(f"wrote {args.output}")
    return 0


def _typed(value) -> str:  # type: ignore[no-untyped-def]
    from onnx import TensorProto

    dtype = value.dtype or (value.declared or (None, None))[0]
    shape = value.shape if value.shape is not None else (value.declared or (None, None))[1]
    name = TensorProto.DataType.Name(dtype).lower() if dtype else "?"
    dims = "x".join("?" if d is None else str(d) for d in shape) if shape is not None else "?"
    return f"{value.name} ({name}[{dims}])"

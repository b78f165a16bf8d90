"""``graphopt plan``: plan activation memory for a model, verify the plan, and write it as JSON, an SVG
picture and/or inside the model; prints naive sum, lower bounds, arena and ratio."""

from __future__ import annotations

import argparse
import os
import time

from graphopt.errors import UnsoundPlanError, UsageError

EXIT_UNSOUND = 1




def add_plan_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plan = sub.add_parser("plan", help="plan activation memory: order, shared buffers, arena offsets")
    plan.add_argument("input", help="model .onnx file")
    plan.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                      help="fix a dynamic input's dims for planning (repeatable)")
    plan.add_argument("--inputs", metavar="FILE.npz",
                      help="inputs by name, for sizes that only a run shows, and for --execute")
    plan.add_argument("--json", metavar="FILE.json", help="write the plan as JSON")
    plan.add_argument("--svg", metavar="FILE.svg", help="write a picture of the plan")
    plan.add_argument("-o", "--output", metavar="OUT.onnx",
                      help="write the model in the planned order, the plan in its metadata_props")
    plan.add_argument("--inplace", choices=("none", "unary", "binary"), default="unary",
                      help="ops that may write over a dying input (default: unary elementwise)")
    plan.add_argument("--order", choices=("auto", "keep"), default="auto",
                      help="auto: memory-aware schedule when it lowers the peak; keep: stored order")
    plan.add_argument("--alignment", type=int, default=64, help="offset alignment in bytes (default 64)")
    plan.add_argument("--execute", action="store_true",
                      help="also run the model node by node inside one arena and compare the outputs")
    plan.add_argument("--seed", type=int, default=0, help="seed of the inputs for --execute")
    plan.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE",
                      help="load passes from a .py file or module (repeatable)")


def pipeline_text(shapes: dict[str, list[int]], inplace: str = "unary", order: str = "auto",
                  alignment: int = 64, inputs: str | None = None) -> str:
    """The plan-memory step for these options in pipeline syntax."""
    options = [f"inplace={inplace}", f"order={order}", f"alignment={alignment}"]
    if inputs:
        options.append(f"inputs={inputs}")
    if shapes:
        options.append("shapes=" + "+".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items()))
    return "plan-memory{" + ";".join(options) + "}"


def cmd_plan(args: argparse.Namespace) -> int:
    from graphopt.api import OptimizeOptions, optimize
    from graphopt.memory import METADATA_KEY, MemoryPlan
    from graphopt.memory.execute import check_by_execution
    from graphopt.memory.plot import plan_svg
    from graphopt.memory.verify import check_plan
    from graphopt.numerics.feeds import make_feeds
    from graphopt.numerics.user_inputs import load_arrays, parse_shapes
    from graphopt.onnx_io import export_model
    from graphopt.onnx_io.save import write_text_atomic

    if args.alignment < 1:
        raise UsageError("--alignment must be at least 1")
    shapes = {k: list(v) for k, v in parse_shapes(args.input_shape).items()}
    if args.inputs and not os.path.isfile(args.inputs):
        raise UsageError(f"--inputs {args.inputs}: no such file")
    text = pipeline_text(shapes, args.inplace, args.order, args.alignment, args.inputs)
    options = OptimizeOptions(pipeline=text,
                              check="off", plugins=tuple(args.plugin))
    start = time.perf_counter()
    result = optimize(args.input, options)
    seconds = time.perf_counter() - start
    model = result.model
    plan = MemoryPlan.from_json(model.metadata_props[METADATA_KEY])
    proto = export_model(model)
    problems = check_plan(proto, plan)
    if problems:
        raise UnsoundPlanError(f"the plan failed verification: {problems[0]} ({len(problems)} problems)")
    print(plan.summary())
    print(f"planned in {seconds:.3f}s (load and save included); verified: no two live tensors share "
          "bytes except declared views and in-place writes")
    if args.execute:
        given = load_arrays(args.inputs) if args.inputs else None
        feeds = make_feeds(model, seed=args.seed, shapes=shapes or None, given=given)
        mismatches = check_by_execution(proto, plan, feeds)
        if mismatches:
            raise UnsoundPlanError(f"running inside the planned arena changed the outputs: {mismatches[0]}")
        print("executed node by node inside one arena: outputs equal a normal onnxruntime run")
    if args.json:
        write_text_atomic(args.json, plan.to_json(indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.svg:
        write_text_atomic(args.svg, plan_svg(plan, title=args.input.rsplit("/", 1)[-1]))
        print(f"wrote {args.svg}")
    if args.output:
        result.save(args.output)
        print(f"wrote {args.output}")
    return 0

"""``graphopt check`` (two models compared numerically) and ``graphopt list-passes``."""

from __future__ import annotations

import argparse

from graphopt.cli_args import input_options, tolerance

EXIT_MISMATCH = 1


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
    given = input_options(args)
    problems, fixed_shapes = interface_difference(ref, cand)
    if problems:
        print(f"NOT equivalent: the interfaces differ: {'; '.join(problems)}")
        return EXIT_MISMATCH
    if not given["input_shapes"] and not given["inputs"]:
        given["input_shapes"] = fixed_shapes  # check where the candidate is defined (fixed dims)
    request = build_request(ref, given["input_shapes"], given["inputs"], given["input_values"],  # type: ignore[arg-type]
                            given["input_ranges"])  # type: ignore[arg-type]
    checker = prepare_check(ref, request, seed=args.seed, iterations=args.check_iterations,
                            tolerance=tolerance(args), libraries=tuple(args.custom_op_library))
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

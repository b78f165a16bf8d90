"""The ONNX backend node tests converted to several opsets: graphopt's convert-opset next to
onnx.version_converter. A conversion counts as successful when onnxruntime runs the converted model
and reproduces the test's expected outputs; a converted model whose numbers are wrong is counted as
"silently wrong" (worse than a refusal).

Usage: .venv/bin/python bench/opset_backend.py [--targets 11,13,17,21] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import backend_suite  # noqa: E402

import graphopt  # noqa: E402
from graphopt.pass_infra.registry import DEFAULT_REGISTRY  # noqa: E402


def graphopt_convert(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    ir = graphopt.import_model(model)
    DEFAULT_REGISTRY.create("convert-opset", {"target": str(target)}).run(ir)
    return graphopt.export_model(ir)


def outcome(case: backend_suite.Case, convert, target: int) -> str:  # type: ignore[no-untyped-def]
    """'ok', 'refused' (an error while converting or loading) or 'wrong' (runs, wrong numbers)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = convert(case.model, target)
    except Exception:
        return "refused"
    got = backend_suite.ort_run(converted, case.inputs)
    if got is None:
        return "refused"
    return "ok" if backend_suite.all_close(got, case.expected, case.rtol, case.atol) else "wrong"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="11,13,17,21")
    default_out = Path(__file__).resolve().parent / "results" / "opset_backend.md"
    parser.add_argument("--out", default=str(default_out))
    args = parser.parse_args(argv)
    targets = [int(t) for t in args.targets.split(",")]
    cases = [c for c in backend_suite.all_cases()
             if c.deterministic and backend_suite.ort_correct(c.name) is not None]
    tools = {"graphopt": graphopt_convert, "version_converter": onnx.version_converter.convert_version}
    counts = {(tool, t): Counter() for tool in tools for t in targets}
    wrong: list[str] = []
    for case in cases:
        for target in targets:
            for tool, fn in tools.items():
                result = outcome(case, fn, target)
                counts[(tool, target)][result] += 1
                if result == "wrong" and tool == "graphopt":
                    wrong.append(f"- {case.name} -> {target}")
    lines = [f"# Backend node tests converted ({len(cases)} cases that onnxruntime runs correctly)", "",
             "| tool | " + " | ".join(f"to {t}: ok / refused / wrong" for t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    for tool in tools:
        cells = [f"{counts[(tool, t)]['ok']} / {counts[(tool, t)]['refused']} / {counts[(tool, t)]['wrong']}"
                 for t in targets]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    lines += ["", "graphopt conversions with wrong numbers:", *(wrong or ["none"])]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ONNX backend node tests converted to several opsets: graphopt's convert-opset next to
onnx.version_converter. A conversion counts as successful when onnxruntime runs the converted model
and reproduces the test's expected outputs; a converted model whose numbers are wrong is counted as
"silently wrong" (worse than a refusal). A converted model that onnxruntime cannot load or run counts as
refused, with the reason "onnxruntime: <first line of its error>".

Usage: .venv/bin/python bench/opset_backend.py [--targets 11,13,17,21,28] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import backend_suite  # noqa: E402
from opset import first_line, reason_key, shorten  # noqa: E402  (bench/ is the script's directory)

import graphopt  # noqa: E402
from graphopt.pass_infra.registry import DEFAULT_REGISTRY  # noqa: E402

EXAMPLES = 3  # case names listed per refusal reason


def graphopt_convert(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    ir = graphopt.import_model(model)
    DEFAULT_REGISTRY.create("convert-opset", {"target": str(target)}).run(ir)
    return graphopt.export_model(ir)


def ort_outputs(model: onnx.ModelProto, feeds: dict[str, Any]) -> list[Any]:
    """backend_suite.ort_run's session (optimisations off, one thread), but raising instead of None."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    return sess.run(names, {k: v for k, v in feeds.items() if k in wanted})


def outcome(case: backend_suite.Case, convert, target: int) -> tuple[str, str | None]:  # type: ignore[no-untyped-def]
    """('ok' | 'refused' | 'wrong', the normalised reason of a refusal).

    Refused: an error while converting, or onnxruntime cannot load or run the result. Wrong: it runs and
    gives numbers other than the test's expected outputs.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = convert(case.model, target)
    except Exception as exc:
        return "refused", reason_key(f"{type(exc).__name__}: {first_line(exc)}")
    try:
        got = ort_outputs(converted, case.inputs)
    except Exception as exc:
        return "refused", reason_key(f"onnxruntime: {first_line(exc)}")
    return ("ok" if backend_suite.all_close(got, case.expected, case.rtol, case.atol) else "wrong"), None


def reason_table(reasons: dict[str, list[str]]) -> list[str]:
    """Markdown rows: every reason with its count and up to EXAMPLES case names, most frequent first."""
    if not reasons:
        return ["none"]
    rows = ["| count | reason | examples |", "|---:|---|---|"]
    for reason, names in sorted(reasons.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ", ".join(names[:EXAMPLES]) + (", …" if len(names) > EXAMPLES else "")
        cell = shorten(reason).replace("|", "\\|")
        rows.append(f"| {len(names)} | {cell} | {shown} |")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="11,13,17,21,28")
    default_out = Path(__file__).resolve().parent / "results" / "opset_backend.md"
    parser.add_argument("--out", default=str(default_out))
    args = parser.parse_args(argv)
    targets = [int(t) for t in args.targets.split(",")]
    cases = [c for c in backend_suite.all_cases()
             if c.deterministic and backend_suite.ort_correct(c.name) is not None]
    tools = {"graphopt": graphopt_convert, "version_converter": onnx.version_converter.convert_version}
    counts = {(tool, t): Counter() for tool in tools for t in targets}
    refusals: dict[tuple[str, int], dict[str, list[str]]] = {(tool, t): defaultdict(list)
                                                             for tool in tools for t in targets}
    wrong: list[str] = []
    for case in cases:
        for target in targets:
            for tool, fn in tools.items():
                result, reason = outcome(case, fn, target)
                counts[(tool, target)][result] += 1
                if reason is not None:
                    refusals[(tool, target)][reason].append(case.name)
                if result == "wrong" and tool == "graphopt":
                    wrong.append(f"- {case.name} -> {target}")
    lines = [f"# Backend node tests converted ({len(cases)} cases that onnxruntime runs correctly)", "",
             "| tool | " + " | ".join(f"to {t}: ok / refused / wrong" for t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    for tool in tools:
        cells = [f"{counts[(tool, t)]['ok']} / {counts[(tool, t)]['refused']} / {counts[(tool, t)]['wrong']}"
                 for t in targets]
        lines.append(f"| {tool} | " + " | ".join(cells) + " |")
    lines += ["", "graphopt conversions with wrong numbers:", *(wrong or ["none"]), "",
              "## Refusals by reason", "",
              "Messages normalised by bench/opset.py's reason_key: quoted names become '…', digits in "
              "unquoted node names and the C++ source locations of onnx's and onnxruntime's asserts are "
              "dropped. A converted model that onnxruntime cannot load or run counts as refused (reason "
              "`onnxruntime: …`).", ""]
    for tool in tools:
        for target in targets:
            found = refusals[(tool, target)]
            lines += [f"### {tool} to {target}: {counts[(tool, target)]['refused']} refused, "
                      f"{len(found)} reasons", "", *reason_table(found), ""]
    text = "\n".join(lines)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

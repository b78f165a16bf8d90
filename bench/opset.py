"""Opset conversion matrix: graphopt's convert-opset next to onnx.version_converter on real exports.

Usage: /work/venvs/bench/bin/python bench/opset.py [--models a,b] [--targets 11-21] [--out FILE.md]

A cell is ok when the converted model passes onnx.checker (full check) and onnxruntime gives the
original's outputs within graphopt's tolerances on seeded inputs at the corpus manifest's shapes.
graphopt runs ``convert-opset`` alone with its own per-pass numeric check and on_failure=raise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

import graphopt
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.run import run_proto

MODELS = Path(__file__).resolve().parent / ".cache" / "models"
DEFAULT_MODELS = ("resnet50-opset11,resnet50-opset13,resnet50,mobilenetv2-opset11,mobilenetv2-opset13,"
                  "mobilenetv2,bert-base-opset14,bert-base,resnet50-dynamo")
# Legacy torch exports at older opsets, built here when missing. BERT's scaled_dot_product_attention
# exports from opset 14 only, so its oldest variant is 14.
VARIANTS = {**{f"{arch}-opset{opset}": (arch, opset) for arch in ("resnet50", "mobilenetv2")
               for opset in (11, 13)}, "bert-base-opset14": ("bert-base", 14)}


def model_path(name: str) -> Path:
    """The corpus file, or an opset variant exported by torch on first use (bench venv)."""
    path = MODELS / f"{name}.onnx"
    if path.exists() or name not in VARIANTS:
        return path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import corpus
    import corpus_torch

    arch, opset = VARIANTS[name]
    spec = next(s for s in corpus.model_specs() if s.name == arch)
    corpus_torch.export_legacy(arch, path, corpus.make_feeds(spec.inputs), opset)
    return path


def verify(original: onnx.ModelProto, converted: onnx.ModelProto, feeds: dict) -> str | None:
    """None when the converted model is valid and equivalent, else the first reason."""
    try:
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:
        return f"checker: {str(exc).splitlines()[0][:80]}"
    try:
        mismatches = compare_outputs(run_proto(original, feeds), run_proto(converted, feeds))
    except Exception as exc:
        return f"onnxruntime: {str(exc).splitlines()[0][:80]}"
    return None if not mismatches else f"numbers: {mismatches[0]}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--targets", default="11-21")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "opset.md"))
    args = parser.parse_args(argv)
    low, high = (int(x) for x in args.targets.split("-"))
    targets = list(range(low, high + 1))
    rows = {"graphopt": [], "version_converter": []}
    refusals: list[str] = []
    totals = {"graphopt": 0, "version_converter": 0}
    for name in args.models.split(","):
        original = onnx.load(str(model_path(name)))
        source = next(o.version for o in original.opset_import if o.domain in ("", "ai.onnx"))
        feeds = make_feeds(graphopt.import_model(original), seed=0)
        cells = {"graphopt": [], "version_converter": []}
        for target in targets:
            try:
                result = graphopt.optimize(original, pipeline=f"convert-opset{{target={target}}}",
                                           on_failure="raise")
                reason = verify(original, graphopt.export_model(result.model), feeds)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
            cells["graphopt"].append("ok" if reason is None else "FAIL")
            if reason is not None:
                refusals.append(f"- {name} {source} -> {target}: {reason}")
            try:
                converted = onnx.version_converter.convert_version(original, target)
                reason = verify(original, converted, feeds)
            except Exception as exc:
                reason = f"{type(exc).__name__}"
            cells["version_converter"].append("ok" if reason is None else "FAIL")
            print(name, target, cells["graphopt"][-1], cells["version_converter"][-1], flush=True)
        for tool in rows:
            totals[tool] += cells[tool].count("ok")
            rows[tool].append(f"| {name} ({source}) | " + " | ".join(cells[tool]) + " |")
    header = "| model (source opset) | " + " | ".join(map(str, targets)) + " |\n|---|" + "---|" * len(targets)
    text = "# Opset conversion matrix\n\n"
    for tool in rows:
        text += f"## {tool}: {totals[tool]} of {len(rows[tool]) * len(targets)} cells ok\n\n{header}\n"
        text += "\n".join(rows[tool]) + "\n\n"
    text += "## graphopt refusals and failures\n\n" + ("\n".join(refusals) or "none") + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Opset conversion matrix: graphopt's convert-opset next to onnx.version_converter on real exports.

Usage: /work/venvs/bench/bin/python bench/opset.py [--models a,b] [--targets 11-28|11,13,17] [--out FILE.md]

A cell is ok when the converted model passes onnx.checker (full check) and onnxruntime gives the
original's outputs within graphopt's tolerances on seeded inputs at the corpus manifest's shapes.
graphopt runs ``convert-opset`` alone with its own per-pass numeric check and on_failure=raise.
Targets default to 11 up to the newest opset the installed onnx knows. The report ends with the
failures of each tool grouped by reason (node names normalised away), with the cells each one hits.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import onnx

import graphopt
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.run import run_proto

MODELS = Path(__file__).resolve().parent / ".cache" / "models"
DEFAULT_MODELS = ("resnet50-opset11,resnet50-opset13,resnet50,mobilenetv2-opset11,mobilenetv2-opset13,"
                  "mobilenetv2,bert-base-opset11,bert-base-opset13,bert-base-opset14,bert-base,resnet50-dynamo")
# Legacy torch exports at older opsets, built here when missing: name -> (arch, opset, attention).
# BERT's default (sdpa) attention exports as scaled_dot_product_attention, which the legacy exporter
# supports from opset 14 only; below 14 BERT is built with transformers' eager attention instead
# (MatMul/Softmax), the same weights under the same seed.
VARIANTS: dict[str, tuple[str, int, str | None]] = {
    **{f"{arch}-opset{opset}": (arch, opset, None) for arch in ("resnet50", "mobilenetv2")
       for opset in (11, 13)},
    **{f"bert-base-opset{opset}": ("bert-base", opset, "eager" if opset < 14 else None)
       for opset in (11, 13, 14)},
}
EXPORT_TOL = 1e-4  # a fresh variant's onnxruntime outputs vs torch's: max|d| / max(1, max|torch|)
# Failure messages are grouped after these normalisations (see reason_key).
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # node names as graphopt (repr) and onnxruntime quote them
NODE_NAME = re.compile(r"(\b[Nn]ode \(|node name: |Name:)([^\s),]*)")  # unquoted: onnx and onnxruntime
ASSERTION = re.compile(r"/\S+:\d+: \S+: Assertion `.*?` failed: ")  # onnx's C++ file:line: function prefix
ENFORCE = re.compile(r"(Status Message: )/\S+:\d+ .* was false\. ")  # onnxruntime's file:line signature
ERRORS = re.compile(r"\(max abs err [^)]*\)")  # a numeric mismatch's magnitudes differ per cell


def model_path(name: str) -> Path:
    """The corpus file, or an opset variant exported by torch on first use (bench venv)."""
    path = MODELS / f"{name}.onnx"
    if path.exists() or name not in VARIANTS:
        return path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import corpus
    import corpus_torch

    arch, opset, attention = VARIANTS[name]
    spec = next(s for s in corpus.model_specs() if s.name == arch)
    feeds = corpus.make_feeds(spec.inputs)
    _, reference = corpus_torch.export_legacy(arch, path, feeds, opset, attn_implementation=attention)
    diff = corpus.max_rel_diff(corpus.run_onnxruntime(path, feeds), reference)
    if diff > EXPORT_TOL:
        path.unlink()
        raise RuntimeError(f"{name}: onnxruntime differs from torch by {diff:.2e} (> {EXPORT_TOL}); "
                           "file removed")
    print(f"{name}: exported, onnxruntime vs torch {diff:.2e}", flush=True)
    return path


def first_line(exc: object) -> str:
    """The first non-empty line of an exception's message (or of any text)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def reason_key(message: str) -> str:
    """A failure message with the model-specific parts normalised away, to group failures by reason.

    Quoted names become '…', digits in unquoted node names (``Node (Add_12)``) are dropped, so are onnx's
    C++ assertion prefixes (``/path/file.h:66: function: Assertion `…` failed:``), the C++ location and
    signature of an onnxruntime ORT_ENFORCE, and the error magnitudes of a numeric mismatch.
    """
    key = QUOTED.sub("'…'", first_line(message))
    key = NODE_NAME.sub(lambda m: m[1] + re.sub(r"\d+", "", m[2]), key)
    key = ENFORCE.sub(r"\1… ", ASSERTION.sub("", key))
    return ERRORS.sub("(max abs err …)", key)


def shorten(reason: str, limit: int = 240) -> str:
    """A reason cut to `limit` characters for the report (the grouping uses the whole of it)."""
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


def verify(original: onnx.ModelProto, converted: onnx.ModelProto, feeds: dict) -> str | None:
    """None when the converted model is valid and equivalent, else the first reason."""
    try:
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:
        return f"checker: {first_line(exc)}"
    try:
        mismatches = compare_outputs(run_proto(original, feeds), run_proto(converted, feeds))
    except Exception as exc:
        return f"onnxruntime: {first_line(exc)}"
    return None if not mismatches else f"numbers: {mismatches[0]}"


def convert_graphopt(original: onnx.ModelProto, target: int, feeds: dict) -> str | None:
    """graphopt's convert-opset alone (with its own numeric check); None when ok, else the reason."""
    try:
        result = graphopt.optimize(original, pipeline=f"convert-opset{{target={target}}}", on_failure="raise")
        return verify(original, graphopt.export_model(result.model), feeds)
    except Exception as exc:
        return f"{type(exc).__name__}: {first_line(exc)}"


def convert_onnx(original: onnx.ModelProto, target: int, feeds: dict) -> str | None:
    """onnx.version_converter; None when ok, else the reason."""
    try:
        return verify(original, onnx.version_converter.convert_version(original, target), feeds)
    except Exception as exc:
        return f"{type(exc).__name__}: {first_line(exc)}"


TOOLS = {"graphopt": convert_graphopt, "version_converter": convert_onnx}


def parse_targets(text: str) -> list[int]:
    """'11-21' (a range), '11,13,17' or a mix of both: the target opsets in order."""
    targets: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        targets += range(int(low), int(high or low) + 1)
    return targets


def spans(targets: list[int]) -> str:
    """[11, 12, 13, 17] -> '11-13, 17'."""
    runs: list[list[int]] = []
    for t in targets:
        if runs and t == runs[-1][-1] + 1:
            runs[-1].append(t)
        else:
            runs.append([t])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def grouped(failures: dict[str, list[tuple[str, int]]]) -> list[str]:
    """One bullet per reason, most frequent first: count, reason and the cells (model -> targets)."""
    lines = []
    for reason, cells in sorted(failures.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        by_model: dict[str, list[int]] = defaultdict(list)
        for model, target in cells:
            by_model[model].append(target)
        where = "; ".join(f"{model} -> {spans(ts)}" for model, ts in by_model.items())
        lines.append(f"- **{len(cells)}** × {shorten(reason)}  \n  cells: {where}")
    return lines or ["none"]


def report(targets: list[int], rows: dict[str, dict[str, list[str]]], failures: dict[str, dict]) -> str:
    """The markdown report: one matrix per tool, then each tool's failures grouped by reason."""
    header = "| model (source opset) | " + " | ".join(map(str, targets)) + " |\n|---|" + "---|" * len(targets)
    text = "# Opset conversion matrix\n\n"
    for tool, matrix in rows.items():
        ok = sum(cells.count("ok") for cells in matrix.values())
        text += f"## {tool}: {ok} of {len(matrix) * len(targets)} cells ok\n\n{header}\n"
        text += "".join(f"| {label} | {' | '.join(cells)} |\n" for label, cells in matrix.items()) + "\n"
    text += ("## Refusals and failures\n\nGrouped by reason: the exception type (or checker / onnxruntime / "
             "numbers) and the first line of its message, normalised by reason_key (quoted node names "
             "replaced by '…', C++ source locations dropped).\n\n")
    for tool in rows:
        count = sum(len(cells) for cells in failures[tool].values())
        text += f"### {tool}: {count} cells, {len(failures[tool])} reasons\n\n"
        text += "\n".join(grouped(failures[tool])) + "\n\n"
    return text.rstrip() + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--targets", default=f"11-{onnx.defs.onnx_opset_version()}")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "opset.md"))
    args = parser.parse_args(argv)
    targets = parse_targets(args.targets)
    rows: dict[str, dict[str, list[str]]] = {tool: {} for tool in TOOLS}
    failures: dict[str, dict[str, list[tuple[str, int]]]] = {tool: defaultdict(list) for tool in TOOLS}
    for name in args.models.split(","):
        original = onnx.load(str(model_path(name)))
        source = next(o.version for o in original.opset_import if o.domain in ("", "ai.onnx"))
        feeds = make_feeds(graphopt.import_model(original), seed=0)
        label = f"{name} ({source})"
        for target in targets:
            for tool, convert in TOOLS.items():
                reason = convert(original, target, feeds)
                rows[tool].setdefault(label, []).append("ok" if reason is None else "FAIL")
                if reason is not None:
                    failures[tool][reason_key(reason)].append((label, target))
            print(name, target, *(rows[tool][label][-1] for tool in TOOLS), flush=True)
    text = report(targets, rows, failures)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

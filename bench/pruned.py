"""Dead channels after structured pruning: what graphopt's eliminate-dead-channels removes.

Usage: /work/venvs/bench/bin/python bench/pruned.py [--out FILE.md]

A user prunes a CNN with ``torch.nn.utils.prune.ln_structured`` (whole output channels of every Conv
but the stem set to zero), makes it permanent with ``prune.remove`` and exports it. Two forms per
model: ``conv`` (only the Conv weights are pruned; the BatchNorm after each keeps its beta, so a dead
channel holds a constant) and ``conv+bn`` (the pruned channels' BN scale and shift are zeroed as
well, as network-slimming style pruning leaves them: the channel is exactly 0). For each, the table
gives nodes, weight bytes and Conv/Gemm MACs of the export, of graphopt's default output and of
onnxsim's, and graphopt's max relative error against the export (onnxruntime, 1 thread).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, shape_inference

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_zoo  # noqa: E402

import graphopt  # noqa: E402

AMOUNT = 0.3
MODELS = ("resnet18", "mobilenet_v2")


def export_pruned(arch: str, with_bn: bool, dest: Path) -> None:
    """Random-weight torchvision ``arch``, BN calibrated, 30% of every non-stem Conv's channels pruned."""
    import torch
    from torch.nn.utils import prune

    torchvision = corpus_zoo._torchvision()
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    corpus_zoo.calibrate_bn(model, lambda dtype: (torch.randn(2, 3, 224, 224, dtype=dtype),))
    modules = list(model.modules())
    for i, module in enumerate(modules):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels > 3 and module.groups == 1:
            prune.ln_structured(module, "weight", amount=AMOUNT, n=2, dim=0)
            prune.remove(module, "weight")
            bn = modules[i + 1] if i + 1 < len(modules) else None
            if with_bn and isinstance(bn, torch.nn.BatchNorm2d):
                dead = (module.weight.detach().reshape(module.out_channels, -1).abs().sum(1) == 0)
                with torch.no_grad():
                    bn.weight[dead] = 0
                    bn.bias[dead] = 0
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(dest), input_names=["input"],
                      output_names=["logits"], opset_version=17, dynamo=False)


def macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of every Conv and Gemm/MatMul with a constant weight (static shapes)."""
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if not out or len(node.input) < 2 or node.input[1] not in weights:
            continue
        w = weights[node.input[1]]
        if node.op_type == "Conv":
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            total += int(np.prod(out)) * w[0 if node.op_type == "MatMul" or not _trans_b(node) else 1]
    return total


def _trans_b(node: onnx.NodeProto) -> bool:
    return any(a.name == "transB" and a.i for a in node.attribute)


def describe(model: onnx.ModelProto) -> dict[str, Any]:
    """Nodes, weight bytes and MACs."""
    weight_bytes = sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    return {"nodes": len(model.graph.node), "bytes": weight_bytes, "macs": macs(model)}


def max_rel(a: onnx.ModelProto, b: onnx.ModelProto) -> float:
    """max |b - a| / max |a| on one seeded input, onnxruntime CPU, one thread, no graph optimizations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = {"input": np.random.default_rng(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)}
    ra = ort.InferenceSession(a.SerializeToString(), options).run(None, x)[0]
    rb = ort.InferenceSession(b.SerializeToString(), options).run(None, x)[0]
    return float(np.abs(rb - ra).max() / np.abs(ra).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "pruned.md")
    args = parser.parse_args(argv)
    import onnxsim

    rows = ["| model | pruned | tool | nodes | weight MB | MMACs | channels removed | max rel err |",
            "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for arch in MODELS:
            for with_bn in (False, True):
                path = Path(work) / f"{arch}-{with_bn}.onnx"
                export_pruned(arch, with_bn, path)
                original = onnx.load(path)
                result = graphopt.optimize(original)
                optimized = graphopt.export_model(result.model)
                removed = sum(r.stats.get("channels", 0) for r in result.report.records
                              if r.name == "eliminate-dead-channels")
                simplified, _ = onnxsim.simplify(onnx.load(path))
                form = "conv+bn" if with_bn else "conv"
                for tool, model, err in (("export", original, "-"), ("onnxsim 0.8.1", simplified, "-"),
                                         ("graphopt", optimized, f"{max_rel(original, optimized):.1e}")):
                    d = describe(model)
                    chans = str(removed) if tool == "graphopt" else "-"
                    rows.append(f"| {arch} | {form} | {tool} | {d['nodes']} | {d['bytes'] / 1e6:.2f} | "
                                f"{d['macs'] / 1e6:.0f} | {chans} | {err} |")
                print(rows[-1], flush=True)
    text = "# Dead channels after structured pruning\n\n" + "\n".join(rows) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

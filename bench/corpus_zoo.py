"""Export more model families with random (seeded) weights: torchvision, timm, ultralytics YOLO, text models.

Each `export_*` function has the corpus builder shape `(dest, feeds, **kwargs) -> (source, torch reference
outputs)`. Every dependency beyond torch is imported lazily; a missing one raises `ModuleNotFoundError`
naming the pinned requirement, so `corpus.py` reports the (optional) model as skipped.

torchvision's PyPI wheel is a CUDA build whose `_C` extension does not load beside the CPU torch;
`tv_ops.import_torchvision()` stands in pure-PyTorch `nms` / `roi_align` ops. timm and ultralytics import
torchvision, so they go through it too.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

SEED = 0
SSD_CLS_STD = 0.1  # SSDlite classification convs re-initialised wider (torchvision: 0.03); 0.3 saturates
TORCHVISION = "torchvision==0.28.0"
TIMM = "timm==1.0.31"
ULTRALYTICS = "ultralytics==8.4.190"


def _require(module: str, requirement: str) -> None:
    """Raise a clear ModuleNotFoundError if `module` is not importable."""
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"needs {requirement}: /work/venvs/bench/bin/pip install --no-deps "
                                  f"{requirement} (see bench/requirements*.txt)")


def _torchvision() -> Any:
    """Import torchvision through bench/tv_ops.py (pure-PyTorch nms/roi_align if its _C does not load)."""
    _require("torchvision", TORCHVISION)
    import tv_ops

    return tv_ops.import_torchvision()


def _tv_describe() -> str:
    """torchvision's version, and whether tv_ops' stand-in ops are in use."""
    import tv_ops

    return tv_ops.describe()


class _Adapter:
    """Factory for a positional-in, tuple-out nn.Module around `fn(model, *args)` (lazy: imports torch)."""

    @staticmethod
    def wrap(model: Any, fn: Callable[..., tuple[Any, ...]]) -> Any:
        import torch

        class Adapter(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
                return fn(self.model, *args)

        # eval too: the exporter restores the wrapper's mode afterwards (see corpus_torch._make_wrapper).
        return Adapter().eval()


def calibrate_bn(model: Any, make_args: Callable[[Any], tuple[Any, ...]], steps: int = 2,
                 run: Callable[..., Any] | None = None) -> int:
    """Set BN running stats from seeded noise so eval-mode activations stay O(1); return the BN count.

    Only the BN layers are put in training mode (the rest stays in eval: detection models need no targets,
    dropout stays off); momentum None makes the stats a cumulative average over the `steps` batches. Done in
    float64 so the float32 stats do not depend on the thread count (as corpus_torch.calibrate_batchnorm).
    `run(model, *args)` replaces `model(*args)` when only part of the model needs running.
    """
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    model.double()
    with torch.no_grad():
        for _ in range(steps):
            args = make_args(torch.float64)
            (run or (lambda m, *a: m(*a)))(model, *args)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        bn.eval()
    model.float()
    return len(bns)


def _reference(module: Any, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run the torch module on the benchmark feeds; outputs as numpy arrays."""
    import torch

    with torch.no_grad():
        outs = module(*[torch.from_numpy(feeds[n]) for n in names])
    return [o.detach().numpy() for o in outs]


def _export(module: Any, dest: Path, feeds: dict[str, np.ndarray], input_names: list[str],
            output_names: list[str], opset: int, dynamic_axes: dict[str, dict[int, str]] | None = None,
            preserve_bn: bool = True) -> str:
    """Legacy (TorchScript) export through a temp file; return the exporter description."""
    import torch

    kwargs: dict[str, Any] = {}
    if preserve_bn:
        # PRESERVE on an eval-mode model skips the peephole pass that folds BN into Conv (corpus_torch).
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    if dynamic_axes:
        kwargs["dynamic_axes"] = dynamic_axes
    tmp = dest.with_name(dest.name + ".partial")
    args = tuple(torch.from_numpy(feeds[n]) for n in input_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=output_names, **kwargs)
    tmp.replace(dest)
    desc = [f"dynamo=False, opset_version={opset}"]
    if preserve_bn:
        desc.append("training=PRESERVE")
    if dynamic_axes:
        axes = sorted({a for d in dynamic_axes.values() for a in d.values()})
        desc.append(f"dynamic_axes={','.join(axes)}")
    return f"torch=={torch.__version__} torch.onnx.export({', '.join(desc)})"


# --------------------------------------------------------------------------------------------- torchvision

def _tv_detection(tv: Any, arch: str) -> tuple[Any, Callable[..., tuple[Any, ...]], list[str],
                                               Callable[..., Any]]:
    """A random-init torchvision detector whose scores spread enough to give stable detections.

    Returns (model, forward, output names, BN calibration run): two-stage (RPN + RoI heads) detectors have
    BN in the backbone only; single-stage SSD(lite) has it in the head too, so the head runs as well.
    """
    import torch

    model = getattr(tv.models.detection, arch)(weights=None, weights_backbone=None).eval()
    # Fresh heads give near-uniform scores (1/91 < score_thresh 0.05: no detection at all) and near-equal
    # objectness, where top-k / NMS order would hang on float noise. Wider logits make the ranking stable.
    if hasattr(model, "rpn"):
        torch.nn.init.normal_(model.rpn.head.cls_logits.weight, std=1.0)
        torch.nn.init.normal_(model.roi_heads.box_predictor.cls_score.weight, std=0.3)

        def calib(m: Any, images: Any) -> Any:
            return m.backbone(m.transform(images)[0].tensors)
    elif hasattr(model, "head") and hasattr(model.head, "classification_head"):  # SSD / SSDlite
        for block in model.head.classification_head.module_list:
            last = block[-1] if isinstance(block, torch.nn.Sequential) else block
            torch.nn.init.normal_(last.weight, std=SSD_CLS_STD)

        def calib(m: Any, images: Any) -> Any:
            return m.head(list(m.backbone(m.transform(images)[0].tensors).values()))
    else:
        raise ValueError(f"{arch}: only two-stage (RPN + RoI heads) and SSD detectors are set up here")

    def forward(m: Any, image: Any) -> tuple[Any, ...]:
        out = m([image])[0]
        return out["boxes"], out["labels"], out["scores"]

    return model, forward, ["boxes", "labels", "scores"], calib


def export_torchvision(arch: str, task: str, dest: Path, feeds: dict[str, np.ndarray], opset: int = 17,
                       calib_batch: int = 2) -> tuple[str, list[np.ndarray]]:
    """Export a torchvision model (task: detection, segmentation, video, classification)."""
    import torch

    tv = _torchvision()
    torch.manual_seed(SEED)
    (input_name, value), = feeds.items()
    shape = list(value.shape)
    run: Callable[..., Any] | None = None
    if task == "detection":
        model, forward, outputs, run = _tv_detection(tv, arch)

        def make_args(dtype: Any) -> tuple[Any, ...]:  # detectors take images in [0, 1]
            return ([torch.rand(*shape, dtype=dtype) for _ in range(calib_batch)],)
        # BN is calibrated on the transformed (normalised, resized) batch, through `run` (backbone, + head
        # for SSD).
    else:
        module = {"segmentation": tv.models.segmentation, "video": tv.models.video,
                  "classification": tv.models}[task]
        kwargs: dict[str, Any] = {"weights": None}
        if task == "segmentation":
            kwargs.update(weights_backbone=None, aux_loss=False)
        model = getattr(module, arch)(**kwargs).eval()
        if task == "segmentation":
            def forward(m: Any, x: Any) -> tuple[Any, ...]:
                return (m(x)["out"],)
            outputs = ["out"]
        else:
            def forward(m: Any, x: Any) -> tuple[Any, ...]:
                return (m(x),)
            outputs = ["logits"]

        def make_args(dtype: Any) -> tuple[Any, ...]:
            return (torch.randn(calib_batch, *shape[1:], dtype=dtype),)
    n_bn = calibrate_bn(model, make_args, run=run)
    module = _Adapter.wrap(model, forward)
    exporter = _export(module, dest, feeds, [input_name], outputs, opset)
    noise = "uniform [0,1) images" if task == "detection" else "noise"
    calibrated = f", {n_bn} BN layers' running stats calibrated on seeded {noise}" if n_bn else ""
    heads = ", classification logits re-initialised wider (stable ranking)" if task == "detection" else ""
    source = (f"{_tv_describe()} models.{'' if task == 'classification' else task + '.'}{arch}(weights=None) "
              f"random weights torch.manual_seed({SEED}){calibrated}{heads}, eval(); {exporter}")
    return source, _reference(module, [input_name], feeds)


# ------------------------------------------------------------------------------------------------------ timm

def export_timm(arch: str, dest: Path, feeds: dict[str, np.ndarray],
                opset: int = 17) -> tuple[str, list[np.ndarray]]:
    """Export `timm.create_model(arch, pretrained=False)` (training-time form: no reparameterisation)."""
    import torch

    _torchvision()  # timm imports torchvision
    _require("timm", TIMM)
    import timm

    torch.manual_seed(SEED)
    model = timm.create_model(arch, pretrained=False).eval()
    (input_name, value), = feeds.items()

    def make_args(dtype: Any) -> tuple[Any, ...]:
        return (torch.randn(2, *value.shape[1:], dtype=dtype),)

    n_bn = calibrate_bn(model, make_args)
    module = _Adapter.wrap(model, lambda m, x: (m(x),))
    exporter = _export(module, dest, feeds, [input_name], ["logits"], opset)
    calibrated = f", {n_bn} BN layers' running stats calibrated on seeded noise" if n_bn else ""
    source = (f"timm=={timm.__version__} create_model({arch!r}, pretrained=False) random weights "
              f"torch.manual_seed({SEED}){calibrated}, eval(); {exporter}")
    return source, _reference(module, [input_name], feeds)


# ------------------------------------------------------------------------------------------------ ultralytics

def _yolo_outputs(out: Any) -> list[np.ndarray]:
    """The eval-mode outputs that the ONNX export keeps, in its order (output0, output1, ...).

    Detect and Pose return (y, raw preds) and export y; Segment returns ((y, proto), raw preds) and exports
    y and proto. The raw-prediction part (a dict or list of feature maps) is not exported.
    """
    import torch

    first = out[0] if isinstance(out, (tuple, list)) else out
    tensors = [first] if isinstance(first, torch.Tensor) else list(first)
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(f"unexpected YOLO output structure: {type(first).__name__}")
    return [t.numpy() for t in tensors]


def export_yolo(cfg: str, dest: Path, feeds: dict[str, np.ndarray],
                opset: int = 18) -> tuple[str, list[np.ndarray]]:
    """Build a YOLO from its YAML (random weights), calibrate BN, export with ultralytics' own exporter.

    The exporter runs as `yolo export format=onnx simplify=False`: it fuses BN into Conv, sets the Detect
    head to export mode and calls torch.onnx.export (legacy, opset `opset`). simplify=False because slimming
    the graph is what the benchmarked tools do. AutoUpdate (pip installs at run time) is switched off.
    """
    import torch

    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_OFFLINE", "True")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "graphopt-bench-ultralytics"))
    _torchvision()  # ultralytics imports torchvision
    _require("ultralytics", ULTRALYTICS)
    import ultralytics
    from ultralytics import YOLO

    (input_name, value), = feeds.items()
    if input_name != "images":
        raise ValueError(f"ultralytics names its input 'images', not {input_name!r}")
    imgsz = list(value.shape[2:])
    torch.manual_seed(SEED)
    yolo = YOLO(cfg)
    net = yolo.model

    def make_args(dtype: Any) -> tuple[Any, ...]:
        return (torch.rand(2, *value.shape[1:], dtype=dtype),)  # images are [0, 1]

    n_bn = calibrate_bn(net, make_args)
    for m in net.modules():  # Detect caches anchors per input shape (and dtype): drop the float64 ones
        if hasattr(m, "anchors") and hasattr(m, "shape"):
            m.shape = None
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(feeds[input_name]))
    reference = _yolo_outputs(out)
    with tempfile.TemporaryDirectory() as work:
        cwd = os.getcwd()
        os.chdir(work)  # the exporter writes next to the (YAML-named) model
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                path = yolo.export(format="onnx", imgsz=imgsz, opset=opset, simplify=False, dynamic=False,
                                   half=False, batch=int(value.shape[0]), device="cpu")
            Path(path).replace(dest)
        finally:
            os.chdir(cwd)
    source = (f"ultralytics=={ultralytics.__version__} YOLO({cfg!r}) random weights "
              f"torch.manual_seed({SEED}), {n_bn} BN layers' running stats calibrated on seeded uniform "
              f"[0,1) images; YOLO.export(format='onnx', imgsz={imgsz}, opset={opset}, simplify=False) "
              f"(BN fused by ultralytics) with torch=={torch.__version__}")
    return source, reference


# ----------------------------------------------------------------------------------------- transformers text

TEXT_MODELS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (config class, model class, config overrides)
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_layer": 4, "n_embd": 256, "n_head": 4, "use_cache": False}),
    "distilbert": ("DistilBertConfig", "DistilBertModel", {"n_layers": 2}),
    "t5-small-encoder": ("T5Config", "T5EncoderModel", {}),
    "whisper-tiny-encoder": ("WhisperConfig", "WhisperModel", {}),
}


def export_transformers(arch: str, dest: Path, feeds: dict[str, np.ndarray], opset: int = 17,
                        output_names: tuple[str, ...] = ("last_hidden_state",),
                        dynamic: tuple[str, ...] = ("batch", "sequence"),
                        attn_implementation: str | None = None) -> tuple[str, list[np.ndarray]]:
    """Export a randomly initialised transformers model; inputs are the feeds' names, in order.

    Dynamic axes as a default transformers export gives them: every input and output gets
    `dynamic` (batch, sequence) on its leading axes.
    """
    import torch
    import tv_ops
    tv_ops.ensure_importable()  # transformers imports torchvision when it is installed
    import transformers

    config_name, model_name, overrides = TEXT_MODELS[arch]
    kwargs = dict(overrides)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    torch.manual_seed(SEED)
    config = getattr(transformers, config_name)(**kwargs)
    model = getattr(transformers, model_name)(config).eval()
    encoder_only = arch.endswith("-encoder") and model_name != "T5EncoderModel"
    if encoder_only:
        model = model.get_encoder()
    input_names = list(feeds)
    names = list(output_names)

    def forward(m: Any, *args: Any) -> tuple[Any, ...]:
        out = m(**dict(zip(input_names, args)))
        return tuple(out[n] for n in names)

    module = _Adapter.wrap(model, forward)
    axes = {n: dict(enumerate(dynamic[:feeds[n].ndim])) for n in input_names}
    axes.update({n: dict(enumerate(dynamic)) for n in names})
    logging.getLogger("transformers").setLevel(logging.ERROR)
    exporter = _export(module, dest, feeds, input_names, names, opset, axes, preserve_bn=False)
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    encoder = ".get_encoder()" if encoder_only else ""
    source = (f"transformers=={transformers.__version__} {model_name}({config_name}({shown})){encoder}"
              f" random weights torch.manual_seed({SEED}), eval(); {exporter}")
    return source, _reference(module, input_names, feeds)

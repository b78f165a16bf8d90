"""Export randomly initialised transformers architectures to ONNX with torch.onnx.export."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tv_ops

SEED = 0
IMAGE_ARCHS = {
    "resnet50": ("ResNetConfig", "ResNetForImageClassification"),
    "mobilenetv2": ("MobileNetV2Config", "MobileNetV2ForImageClassification"),
}
TEXT_ARCHS = {"bert-base": ("BertConfig", "BertModel")}
IMAGE_IO = (["pixel_values"], ["logits"])
TEXT_IO = (["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state", "pooler_output"])


def _make_wrapper(model: Any, input_names: list[str], output_names: list[str]) -> Any:
    """Wrap a transformers model so it takes positional tensors and returns a tuple (in eval mode)."""
    import torch

    class TupleOutputs(torch.nn.Module):
        """Positional-in, tuple-out adapter around a transformers model."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.model(**dict(zip(input_names, args)))
            return tuple(out[name] for name in output_names)

    # The wrapper must be in eval mode too: the exporter restores the *wrapper's* original
    # mode afterwards, which would otherwise flip the inner model back into training.
    return TupleOutputs().eval()


def calibrate_batchnorm(model: Any, steps: int = 2, batch: int = 4) -> None:
    """Set BN running stats from seeded noise batches so eval-mode activations stay O(1)."""
    import torch

    # Fresh init leaves mean=0, var=1, so in eval mode nothing renormalises the std-0.02 convs
    # and MobileNetV2's logits collapse to ~1e-22 (denormals, and no useful numeric check).
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    # float64 so the float32 stats do not depend on the thread count's reduction order.
    model.double().train()
    with torch.no_grad():
        for _ in range(steps):
            model(pixel_values=torch.randn(batch, 3, 224, 224, dtype=torch.float64))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.float().eval()


def build_module(arch: str, attn_implementation: str | None = None) -> tuple[Any, list[str], list[str]]:
    """Build a seeded, eval-mode model for `arch`; return (module, input names, output names).

    `attn_implementation` (e.g. "eager") goes to the transformers config; None keeps its default (sdpa
    for BERT), whose scaled_dot_product_attention the legacy exporter supports from opset 14 only.
    """
    import torch

    tv_ops.ensure_importable()  # transformers imports torchvision when it is installed
    import transformers

    specs = {**IMAGE_ARCHS, **TEXT_ARCHS}
    if arch not in specs:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(specs)}")
    config_name, model_name = specs[arch]
    attn = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    torch.manual_seed(SEED)
    model = getattr(transformers, model_name)(getattr(transformers, config_name)(**attn)).eval()
    if arch in IMAGE_ARCHS:
        calibrate_batchnorm(model)
    input_names, output_names = IMAGE_IO if arch in IMAGE_ARCHS else TEXT_IO
    return _make_wrapper(model, list(input_names), list(output_names)), list(input_names), list(output_names)


def _dynamic_axes(input_names: list[str], output_names: list[str]) -> dict[str, dict[int, str]]:
    """Dynamic batch/sequence axes for the text models."""
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes[output_names[0]] = {0: "batch", 1: "sequence"}
    axes[output_names[1]] = {0: "batch"}
    return axes


def _reference(module: Any, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run the torch module on the benchmark feeds to get reference outputs."""
    import torch

    with torch.no_grad():
        outs = module(*[torch.from_numpy(feeds[n]) for n in names])
    return [o.numpy() for o in outs]


def _describe(arch: str, exporter: str, attn_implementation: str | None = None) -> str:
    """Human-readable provenance string."""
    import torch
    import transformers

    config_name, model_name = {**IMAGE_ARCHS, **TEXT_ARCHS}[arch]
    calibrated = ", BN running stats calibrated on seeded noise" if arch in IMAGE_ARCHS else ""
    config = "" if attn_implementation is None else f"attn_implementation={attn_implementation!r}"
    return (f"transformers=={transformers.__version__} {model_name}({config_name}({config})) random weights "
            f"torch.manual_seed({SEED}){calibrated}, eval(); "
            f"torch=={torch.__version__} torch.onnx.export({exporter})")


def export_legacy(arch: str, dest: Path, feeds: dict[str, np.ndarray], opset: int, dynamic: bool = False,
                  attn_implementation: str | None = None) -> tuple[str, list[np.ndarray]]:
    """Export with the legacy TorchScript exporter; return (source, torch reference outputs).

    Pass attn_implementation="eager" to export BERT below opset 14 (see `build_module`).
    """
    import torch

    module, inputs, outputs = build_module(arch, attn_implementation)
    kwargs: dict[str, Any] = {}
    if arch in IMAGE_ARCHS:
        # PRESERVE (model is in eval mode) skips the eval peephole pass that folds BN into Conv,
        # so BatchNormalization nodes survive as inference BN (training_mode=0, one output).
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    if dynamic:
        kwargs["dynamic_axes"] = _dynamic_axes(inputs, outputs)
    tmp = dest.with_name(dest.name + ".partial")
    args = tuple(torch.from_numpy(feeds[n]) for n in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset,
                          input_names=inputs, output_names=outputs, **kwargs)
    tmp.replace(dest)
    opts = [f"{k}={v}" if k != "dynamic_axes" else "dynamic_axes=batch,sequence" for k, v in kwargs.items()]
    desc = ", ".join([f"dynamo=False, opset_version={opset}", *opts])
    return _describe(arch, desc, attn_implementation), _reference(module, inputs, feeds)


def export_dynamo(arch: str, dest: Path, feeds: dict[str, np.ndarray], opset: int,
                  optimize: bool) -> tuple[str, list[np.ndarray]]:
    """Export with the torch.export-based exporter; return (source, torch reference outputs)."""
    import torch

    module, inputs, outputs = build_module(arch)
    tmp = dest.with_name(dest.name + ".partial")
    args = tuple(torch.from_numpy(feeds[n]) for n in inputs)
    # Silence "torchvision is not installed. Skipping torchvision::nms" and the like.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(tmp), dynamo=True, opset_version=opset, input_names=inputs,
                          output_names=outputs, external_data=False, optimize=optimize, verbose=False)
    tmp.replace(dest)
    desc = f"dynamo=True, opset_version={opset}, optimize={optimize}"
    return _describe(arch, desc), _reference(module, inputs, feeds)

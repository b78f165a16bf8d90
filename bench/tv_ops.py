"""Pure-PyTorch `torchvision::nms` / `roi_align` ops, so the PyPI torchvision wheel imports beside CPU torch.

PyPI's Linux torchvision wheel is a CUDA build: its `_C.so` links libtorch_cuda / libc10_cuda, which the
CPU torch does not ship, so it fails to load. torchvision then still registers fake kernels for
`torchvision::nms` and `torchvision::qnms` at import time, which raises "operator torchvision::nms does
not exist", and its detection models call `torch.ops.torchvision.nms` / `roi_align` directly.

`import_torchvision()` defines those ops (same schemas as torchvision's C++ ones) with CPU kernels written
in PyTorch, then imports torchvision and tells it its ops exist. The op names are unchanged, so the ONNX
symbolics torchvision registers for the legacy exporter (`torchvision/ops/_register_onnx_ops.py`) still
turn them into NonMaxSuppression and RoiAlign. Only what the corpus' models need is defined: no
roi_pool, ps_roi_*, deform_conv2d or backward ops. If the real extension loads (a matching CPU build),
nothing is defined and torchvision is used as it is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

_LIBRARY: list[Any] = []  # keeps the torch.library.Library alive (its ops vanish when it is collected)
NMS_SCHEMA = "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
ROI_ALIGN_SCHEMA = ("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")


def nms(dets: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy NMS as torchvision's CPU kernel does it: stable descending sort, suppress IoU > threshold."""
    import torch

    order = torch.sort(scores, stable=True, descending=True).indices
    boxes = dets[order]
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        width = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        height = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = width * height
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def roi_align(input: Any, rois: Any, spatial_scale: float, pooled_height: int, pooled_width: int,
              sampling_ratio: int, aligned: bool) -> Any:
    """torchvision's own pure-PyTorch roi_align (a transcription of its CUDA kernel), run uncompiled."""
    module = importlib.import_module("torchvision.ops.roi_align")

    # `_roi_align` is wrapped in a lazy torch.compile; __wrapped__ is the plain function.
    fn = getattr(module._roi_align, "__wrapped__", module._roi_align)
    return fn(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)


def _roi_align_fake(input: Any, rois: Any, spatial_scale: float, pooled_height: int, pooled_width: int,
                    sampling_ratio: int, aligned: bool) -> Any:
    """Shape function for tracing exporters (torch.export)."""
    return input.new_empty((rois.size(0), input.size(1), pooled_height, pooled_width))


def _extension_loads() -> bool:
    """Whether torchvision's compiled `_C` extension loads (without importing torchvision)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("torchvision is not installed")
    candidates = sorted(Path(spec.origin).parent.glob("_C*.so"))
    try:
        torch.ops.load_library(str(candidates[0]))
    except (IndexError, OSError):
        return False
    return True


def define_ops() -> bool:
    """Define the pure-PyTorch ops unless the real extension loads; return True if they were defined."""
    import torch

    if _LIBRARY or _extension_loads():
        return bool(_LIBRARY)
    lib = torch.library.Library("torchvision", "DEF")
    lib.define(NMS_SCHEMA)
    lib.define("q" + NMS_SCHEMA)  # torchvision registers a fake kernel for qnms at import: it must exist
    lib.define(ROI_ALIGN_SCHEMA)
    lib.impl("nms", nms, "CPU")
    lib.impl("roi_align", roi_align, "CPU")
    torch.library.register_fake("torchvision::roi_align", _roi_align_fake, lib=lib)
    _LIBRARY.append(lib)
    return True


def import_torchvision() -> ModuleType:
    """Import torchvision, with the pure-PyTorch ops standing in for a `_C` extension that does not load."""
    shimmed = define_ops()
    import torchvision

    if shimmed:
        # Both modules look the flag up by name: roi_align would otherwise torch.compile its fallback.
        # (By module object: the attribute `torchvision.ops.roi_align` is the function, not the module.)
        for name in ("torchvision.extension", "torchvision.ops.roi_align"):
            importlib.import_module(name)._has_ops = _has_ops
    return torchvision


def _has_ops() -> bool:
    """Stand-in for torchvision.extension._has_ops: a plain top-level def, not a lambda, because tracing
    scripts batched_nms -> nms -> _assert_has_ops -> _has_ops and TorchScript compiles it from its source."""
    return True


def ensure_importable() -> None:
    """Make `import torchvision` safe if it is installed (no-op otherwise); call before importing
    transformers or timm, which import torchvision when it is present and then fail on its missing ops."""
    if importlib.util.find_spec("torchvision") is not None:
        import_torchvision()


def describe() -> str:
    """Provenance note for the manifest."""
    import torchvision

    shim = " with bench/tv_ops.py's pure-PyTorch nms/roi_align (the wheel's CUDA _C does not load)"
    return f"torchvision=={torchvision.__version__}" + (shim if _LIBRARY else "")

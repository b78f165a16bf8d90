"""Recognise the files people mistake for ONNX models (PyTorch checkpoints, TFLite, Keras, Paddle...)
by their first bytes or their suffix, so the error says what the file is and how to get an ONNX model."""

from __future__ import annotations

import os
import zipfile

EXPORT_HINTS = {
    "pytorch": "this is a PyTorch file, export it to ONNX first (torch.onnx.export)",
    "tflite": "this is a TensorFlow Lite model; convert it to ONNX first "
              "(python -m tf2onnx.convert --tflite)",
    "keras": "this is a Keras/HDF5 model; convert it to ONNX first (tf2onnx.convert.from_keras)",
    "paddle": "this is a Paddle model; convert it to ONNX first (paddle2onnx)",
    "safetensors": "this is a safetensors weight file, not a model graph; export the model to ONNX first "
                   "(torch.onnx.export, or optimum-cli export onnx for transformers)",
    "zip": "this is a zip archive, not an ONNX model; unpack it and pass the .onnx file inside",
}
SUFFIXES = {".pt": "pytorch", ".pth": "pytorch", ".ckpt": "pytorch", ".tflite": "tflite", ".h5": "keras",
            ".keras": "keras", ".pdmodel": "paddle", ".pdiparams": "paddle", ".safetensors": "safetensors"}


def foreign_format(path: str) -> str | None:
    """What to tell a user who passed a non-ONNX model file, or None when it may be ONNX."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    kind = _by_content(path, head)
    if kind is None and SUFFIXES.get(os.path.splitext(path)[1].lower()) and not _may_be_onnx(head):
        kind = SUFFIXES[os.path.splitext(path)[1].lower()]
    return EXPORT_HINTS[kind] if kind else None


def _by_content(path: str, head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):  # torch.save and TorchScript write zip archives with data.pkl
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "zip"
        torch_like = any(n.endswith(("data.pkl", "constants.pkl", "version")) for n in names)
        return "pytorch" if torch_like else ("keras" if "config.json" in names and
                                             any(n.endswith(".h5") for n in names) else "zip")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pytorch"  # a pickle: the legacy torch.save format
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras"
    return None


def _may_be_onnx(head: bytes) -> bool:
    """An ONNX file starts with a protobuf field tag (ir_version, opset_import, producer...)."""
    return bool(head) and head[0] in (0x08, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42)

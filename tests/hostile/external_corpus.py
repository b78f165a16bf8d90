"""Hostile external data: models whose tensors keep their bytes in files beside them (or not), for
tests/hostile/test_fuzz_*.py and bench/hostile.py (tests/hostile is not a package: import as a module).

A file missing, too short, a directory, a FIFO, bad offsets and lengths, and locations outside the model's
folder (``../``, absolute, a symlink leading out), for a tensor held by an initializer, a sparse
initializer, a Constant node, a Constant in an If body or in a model-local function.
"""

from __future__ import annotations

import numpy as np
import onnx
from hostile_corpus import MODEL_NAME, S4, Case, edit, function_model, sparse_tensor
from onnx import TensorProto as T

CONST = "w = Constant <value = float[4] {0.0, 0.0, 0.0, 0.0}> ()"
BODY = (f"y = If (c) <then_branch = tb () => (float[4] z) {{ {CONST}\n z = Add(x, w) }}, "
        "else_branch = eb () => (float[4] z) { z = Neg(x) }>")


def externalize(t: T, location: str, **entries: str) -> None:
    """Move ``t``'s payload to an external entry (no ``location`` key when ``location`` is empty)."""
    t.ClearField("float_data")
    t.data_location = T.EXTERNAL
    for key, value in {**({"location": location} if location else {}), **entries}.items():
        t.external_data.add(key=key, value=value)


def ext_model(location: str, where: str = "initializer", **entries: str) -> onnx.ModelProto:
    """``y = Add(x, w)``, the float[4] ``w`` stored at ``location`` and held by ``where``."""
    if where == "sparse":  # two values: the first 8 bytes of the file
        return edit(S4, "y = Add(x, s)", lambda m: externalize(sparse_tensor(m).values, location, **entries))
    if where == "function":
        model = function_model(f"{CONST}\n b = Add(a, w)", S4)
        externalize(model.functions[0].node[0].attribute[0].t, location, **entries)
        return model
    if where == "body":
        return edit("(bool c, float[4] x) => (float[4] y)", BODY, lambda m: externalize(
            m.graph.node[0].attribute[0].g.node[0].attribute[0].t, location, **entries))
    if where == "constant":
        return edit(S4, f"{CONST}\n y = Add(x, w)", lambda m: externalize(
            m.graph.node[0].attribute[0].t, location, **entries))
    return edit(S4, "y = Add(x, w)", lambda m: externalize(m.graph.initializer[0], location, **entries),
                "float[4] w = {0.0, 0.0, 0.0, 0.0}")


def external_cases() -> list[Case]:
    """Every hostile external-data case (named ``ext-...``), for each place a tensor can sit."""
    data = np.arange(4, dtype=np.float32).tobytes()
    inside, secret = (("w.bin", data),), (("../secret.bin", data),)
    rows = [  # name, model, files, links, fifos
        ("valid", ext_model("w.bin"), inside),
        ("valid-offset-length", ext_model("w.bin", offset="4", length="16"), (("w.bin", bytes(4) + data),)),
        ("missing-file", ext_model("w.bin")), ("parent-escape", ext_model("../secret.bin"), secret),
        ("absolute", ext_model("/etc/hostname")), ("absolute-dev-zero", ext_model("/dev/zero")),
        ("symlink-escape", ext_model("w.bin"), secret, (("w.bin", "../secret.bin"),)),
        ("symlink-inside", ext_model("link.bin"), inside, (("link.bin", "w.bin"),)),
        ("directory", ext_model("sub"), (("sub/x", data),)),
        ("fifo", ext_model("pipe.bin"), (), (), ("pipe.bin",)),
        ("offset-beyond-file", ext_model("w.bin", offset="1000000"), inside),
        ("length-beyond-file", ext_model("w.bin", length="1000"), inside),
        ("length-short", ext_model("w.bin", length="4"), inside),
        ("offset-negative", ext_model("w.bin", offset="-4"), inside),
        ("offset-not-int", ext_model("w.bin", offset="four"), inside),
        ("file-short", ext_model("w.bin"), (("w.bin", data[:6]),)),
        ("no-location", ext_model("")), ("location-is-model", ext_model(MODEL_NAME))]
    for where in ("sparse", "constant", "body", "function"):
        fits = (("w.bin", data[:8]),) if where == "sparse" else inside  # the sparse values are 2 floats
        rows += [(f"{where}-valid", ext_model("w.bin", where), fits),
                 (f"{where}-missing-file", ext_model("w.bin", where)),
                 (f"{where}-parent-escape", ext_model("../secret.bin", where), secret),
                 (f"{where}-absolute", ext_model("/etc/hostname", where))]
    return [Case(f"ext-{name}", model.SerializeToString(), *extra) for name, model, *extra in rows]


EXTERNAL = external_cases()

"""Hostile external data: a file missing, too short, a directory, a FIFO, bad offsets and lengths, and
locations outside the model's folder (``../``, absolute, a symlink leading out), for a tensor held by an
initializer, a sparse initializer, a Constant node, a Constant in an If body or in a model-local function.

Every case must end clean (the rules of test_fuzz_cli); on top of that, data outside the model's folder
must be refused with exit 2 wherever the tensor sits, and a valid model's output must run from its own
folder (it may not keep pointing at the input's data).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from hostile_corpus import MODEL_NAME, S4, Case, edit, function_model, place, snapshot, sparse_tensor
from onnx import TensorProto as T
from test_fuzz_cli import assert_clean, params, run_case

from graphopt.cli import main

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
VALID_BUGS = {f"ext-{where}-valid": "not supported: graphopt keeps sparse initializers and model-local "
              "functions verbatim, so it refuses external data in them (exit 2) rather than leave the output "
              "pointing at the input's folder" for where in ("sparse", "function")}
OUTSIDE = [c for c in EXTERNAL if "escape" in c.name or "absolute" in c.name]
VALID = [c for c in EXTERNAL if c.name.endswith("valid") or c.name.endswith("-inside")]
MISFIT = [c for c in EXTERNAL if c.name[4:] in ("missing-file", "directory", "fifo", "offset-beyond-file",
                                                 "length-beyond-file", "length-short", "offset-negative",
                                                 "offset-not-int", "file-short", "no-location")]



@pytest.mark.parametrize("case", params(EXTERNAL))
def test_hostile_external_data_ends_in_one_error_line_or_a_correct_output(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean(case, run_case(case, tmp_path, capsys))


@pytest.mark.parametrize("case", params(OUTSIDE))
def test_data_outside_the_model_folder_is_refused_wherever_the_tensor_sits(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_case(case, tmp_path, capsys)
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    # sparse initializers and function tensors are refused before any location is even resolved
    pattern = "(escapes|resolves outside) the model folder|keeps its data in an external file"
    assert re.search(pattern, outcome.stderr), outcome.stderr


@pytest.mark.parametrize("case", params(MISFIT))
def test_external_data_that_does_not_fit_the_tensor_is_refused_on_load(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Missing, unreadable, too short, or entries that contradict the tensor: exit 2 naming the tensor."""
    outcome = run_case(case, tmp_path, capsys)
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    assert outcome.stderr.startswith("graphopt: error: tensor 'w'"), outcome.stderr


@pytest.mark.parametrize("checks", ["each", "off"])
@pytest.mark.parametrize("case", params(VALID, VALID_BUGS))
def test_valid_external_data_gives_an_output_that_runs_from_its_own_folder(
        case: Case, checks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run_case writes to ``out/``, away from the input's data: onnx.checker and onnxruntime load it there."""
    outcome = run_case(case, tmp_path, capsys, "--check", checks)
    assert outcome.code == 0, (outcome.code, outcome.stderr)
    assert_clean(case, outcome)


def test_an_output_over_the_input_external_data_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = place(next(c for c in EXTERNAL if c.name == "ext-valid"), tmp_path)
    before = snapshot(tmp_path)
    code = main(["optimize", str(model), "-o", str(model.parent / "w.bin")])
    stderr = capsys.readouterr().err
    assert (code, snapshot(tmp_path)) == (2, before), stderr

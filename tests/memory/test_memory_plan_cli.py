"""``graphopt plan`` and ``graphopt optimize --plan-memory`` in-process: the printed summary, the JSON,
SVG and model files they write, the error for a dynamic model without --input-shape, and packaging."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from memory_kit import plan_of

from graphopt import load_model
from graphopt.cli import main
from graphopt.memory import METADATA_KEY, MemoryPlan
from graphopt.memory.verify import check_plan
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.run import run_proto

SVG = "{http://www.w3.org/2000/svg}"
SUMMARY = """\
tensors planned:        16 over 16 steps
naive (sum of all):          0.056 MB
lower bound, no sharing:     0.016 MB
lower bound, sharing:        0.016 MB  (aliases and in-place ops save 0.0%)
arena:                       0.016 MB  (arena / lower bound = 1.000)"""


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _feeds(path: Path) -> dict[str, np.ndarray]:
    return make_feeds(load_model(str(path)), seed=0, shapes={"x": (1, 3, 16, 16)})


def test_plan_prints_the_summary_and_writes_json_svg_and_a_model_that_runs_the_same(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tiny_cnn.parent
    json_path, svg_path, out = folder / "plan.json", folder / "plan.svg", folder / "planned.onnx"
    code = main(["plan", str(tiny_cnn), "--input-shape", "x=1,3,16,16", "--json", str(json_path),
                 "--svg", str(svg_path), "-o", str(out), "--execute"])
    printed = capsys.readouterr()
    assert (code, printed.err) == (0, "")
    lines = printed.out.splitlines()
    assert "\n".join(lines[:5]) == SUMMARY
    assert re.fullmatch(r"planned in \d+\.\d{3}s \(load and save included\); verified: no two live tensors "
                        r"share bytes except declared views and in-place writes", lines[5])
    assert lines[6:] == ["executed node by node inside one arena: outputs equal a normal onnxruntime run",
                         f"wrote {json_path}", f"wrote {svg_path}", f"wrote {out}"]

    plan = MemoryPlan.from_json(json_path.read_text())
    assert (plan.arena_bytes, plan.lower_bound_bytes, plan.naive_bytes, plan.steps, len(plan.tensors)) == \
        (16384, 16384, 58880, 16, 16)
    assert plan.input_shapes == {"x": [1, 3, 16, 16]}
    assert MemoryPlan.from_json(_metadata(out)[METADATA_KEY]) == plan
    assert check_plan(onnx.load(str(out)), plan) == []

    svg = ET.fromstring(svg_path.read_text())
    assert svg.tag == f"{SVG}svg"
    assert svg.find(f"{SVG}rect").attrib == {"width": "1000", "height": "600", "fill": "white"}
    rects = svg.findall(f"{SVG}g[@id='buffers']/{SVG}rect")
    drawn = [t.name for t in plan.tensors if t.offset is not None and t.alias_of is None]
    assert len(drawn) == 12 and len(rects) == len(drawn)
    assert sorted(r.find(f"{SVG}title").text.split(":")[0] for r in rects) == sorted(drawn)

    feeds = _feeds(tiny_cnn)
    expected, got = run_proto(onnx.load(str(tiny_cnn)), feeds), run_proto(onnx.load(str(out)), feeds)
    assert list(got) == ["logits"]
    np.testing.assert_array_equal(got["logits"], expected["logits"])


def test_plan_options_reach_the_plan(tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_path = tiny_cnn.parent / "plan.json"
    assert main(["plan", str(tiny_cnn), "--input-shape", "x=1,3,16,16", "--inplace", "none",
                 "--order", "keep", "--alignment", "1", "--json", str(json_path)]) == 0
    plan = MemoryPlan.from_json(json_path.read_text())
    assert (plan.planner, plan.alignment, plan.arena_bytes) == (
        {"inplace": "none", "order": "keep"}, 1, 16384)
    assert not any(t.in_place for t in plan.tensors)
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {json_path}"


@pytest.mark.parametrize(("extra", "message"), [
    ([], "graphopt: error: the size of c1 of Conv node 'conv1' is not static; fix dynamic input dims with "
         "--input-shape NAME=D0,D1,..."),
    (["--input-shape", "x=1,3,16,16", "--alignment", "0"], "graphopt: error: --alignment must be at least 1"),
])
def test_plan_refuses_with_one_line_exit_2_and_writes_nothing(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    folder = tiny_cnn.parent
    code = main(["plan", str(tiny_cnn), *extra, "--json", str(folder / "p.json"), "--svg",
                 str(folder / "p.svg"), "-o", str(folder / "p.onnx")])
    printed = capsys.readouterr()
    assert (code, printed.out, printed.err) == (2, "", message + "\n")
    assert sorted(p.name for p in folder.iterdir()) == ["tiny_cnn.onnx"]


def test_optimize_with_plan_memory_ends_with_a_plan_for_the_optimized_model(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny_cnn.parent / "opt.onnx"
    assert main(["optimize", str(tiny_cnn), "--plan-memory", "--input-shape", "x=1,3,16,16", "-o", str(out),
                 "-q"]) == 0
    assert capsys.readouterr().err == ""
    saved = onnx.load(str(out))
    assert [n.op_type for n in saved.graph.node] == ["Conv", "Relu", "Conv", "GlobalAveragePool", "Reshape",
                                                     "Gemm"]
    plan = plan_of(load_model(str(out)))
    assert (plan.steps, plan.input_shapes, plan.planner) == (
        6, {"x": [1, 3, 16, 16]}, {"inplace": "unary", "order": "auto"})
    assert [[t.name for t in plan.tensors if t.in_place], plan.arena_bytes, plan.lower_bound_bytes] == [
        [saved.graph.node[1].output[0]], 16384, 16384]
    assert check_plan(saved, plan) == []
    feeds = _feeds(tiny_cnn)
    assert compare_outputs(run_proto(onnx.load(str(tiny_cnn)), feeds), run_proto(saved, feeds)) == []


def test_every_graphopt_package_is_listed_for_the_build() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[2]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "graphopt").rglob("__init__.py")}
    assert "graphopt.memory" in found
    assert found <= listed, sorted(found - listed)

"""graphopt.memory.plot: the plan picture has a legend for its colours, ticks in MB and in steps, axis
titles, the largest buffers named (and only a few of them), and the same bytes for the same plan."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from memory_kit import planned, residual_cnn, typed

from graphopt.memory import MemoryPlan, Placement
from graphopt.memory.plot import LABELLED, plan_svg

NS = {"s": "http://www.w3.org/2000/svg"}
MB = 1024 * 1024


def _svg(plan: MemoryPlan, title: str = "") -> ET.Element:
    return ET.fromstring(plan_svg(plan, title))


def _texts(root: ET.Element, group: str) -> list[str]:
    return ["".join(t.itertext()) for t in root.findall(f".//s:g[@id='{group}']/s:text", NS)]


def _plan(sizes: dict[str, int], steps: int = 10) -> MemoryPlan:
    """Tensors stacked in the arena in the given order, tensor i live over steps i..i+1."""
    tensors, offset = [], 0
    for i, (name, size) in enumerate(sizes.items()):
        tensors.append(Placement(name, size, i % steps, i % steps + 1, offset))
        offset += size
    return MemoryPlan(alignment=64, arena_bytes=offset, lower_bound_bytes=offset // 2,
                      lower_bound_unshared_bytes=offset, naive_bytes=offset, steps=steps, order=[],
                      tensors=tensors)


def test_legend_names_both_colours_and_the_lower_bound_and_the_colours_mean_it() -> None:
    _, plan, _ = planned(typed(residual_cnn()))
    root = _svg(plan)
    assert [t.text for t in root.findall(".//s:g[@id='legend']/s:text", NS)] == [
        "buffer of one tensor", "shared by views / in-place ops", "lower bound (peak live bytes)"]
    rects = root.findall(".//s:g[@id='buffers']/s:rect", NS)
    shared = {r.find("s:title", NS).text.split(":")[0] for r in rects if r.get("class") == "shared"}
    reused = {t.alias_of for t in plan.tensors if t.alias_of}
    assert shared and shared == reused & {t.name for t in plan.tensors if not t.alias_of}
    assert {r.get("class") for r in rects} == {"alone", "shared"}


def test_y_ticks_are_in_mb_at_their_offsets_and_x_ticks_are_steps() -> None:
    plan = _plan({"a": 3 * MB, "b": 2 * MB, "c": 5 * MB})
    root = _svg(plan)
    labels = _texts(root, "y-ticks")
    assert labels == ["0 MB", "2 MB", "4 MB", "6 MB", "8 MB", "10 MB"]
    ys = [float(t.get("y")) - 4 for t in root.findall(".//s:g[@id='y-ticks']/s:text", NS)]
    per_mb = (ys[0] - ys[-1]) / 10
    rects = root.findall(".//s:g[@id='buffers']/s:rect", NS)
    buffers = {r.find("s:title", NS).text.split(":")[0]: r for r in rects}
    top_of_c = float(buffers["c"].get("y"))  # c lies at 5..10 MB: its top edge is the 10 MB tick
    assert abs(top_of_c - ys[-1]) < 0.01 and abs(float(buffers["c"].get("height")) - 5 * per_mb) < 0.01
    assert _texts(root, "x-ticks") == ["0", "2", "4", "6", "8", "10"]  # steps 0..10, a round step apart
    assert root.find(".//s:text[@id='x-title']", NS).text == "schedule step"
    assert root.find(".//s:text[@id='y-title']", NS).text == "arena offset (MB)"


def test_the_largest_buffers_are_named_with_their_size_largest_first_and_badged() -> None:
    sizes = {f"t{i}": (i + 1) * 4096 for i in range(8)} | {"huge_activation": 3 * MB // 2}
    root = _svg(_plan(sizes))
    names = [t.text for t in root.findall(".//s:g[@id='largest']/s:text[@class='largest-name']", NS)]
    assert names == ["1. huge_activation", "2. t7", "3. t6", "4. t5", "5. t4"]
    assert _texts(root, "largest")[0] == "largest buffers (top 5)"
    sizes_text = [t.text for t in root.findall(".//s:g[@id='largest']/s:text[@class='largest-size']", NS)]
    assert sizes_text[:2] == ["1.50 MB, steps 8..9", "32.00 KB, steps 7..8"]
    badge = root.find(".//s:g[@id='badges']/s:circle", NS)
    huge = next(r for r in root.findall(".//s:g[@id='buffers']/s:rect", NS)
                if r.find("s:title", NS).text.startswith("huge_activation:"))
    x, y, w, h = (float(huge.get(k)) for k in ("x", "y", "width", "height"))
    assert x <= float(badge.get("cx")) <= x + w and y <= float(badge.get("cy")) <= y + h


def test_ten_thousand_buffers_get_all_their_rectangles_but_only_a_few_labels() -> None:
    long = "/model/encoder/layer.0/attention/self/MatMul_output_0"
    sizes = {f"{long}_{i}": 64 * (1 + i % 50) for i in range(10_000)}
    root = _svg(_plan(sizes, steps=2000))
    assert len(root.findall(".//s:g[@id='buffers']/s:rect", NS)) == 10_000
    assert len(root.findall(".//s:g[@id='badges']/s:circle", NS)) == LABELLED
    assert len(root.findall(".//s:text[@class='largest-name']", NS)) == LABELLED
    assert len(_texts(root, "x-ticks")) <= 11 and len(_texts(root, "y-ticks")) <= 11
    first = root.find(".//s:text[@class='largest-name']", NS)
    assert len(first.text) <= 40 and "…" in first.text
    largest = min(name for name, size in sizes.items() if size == 64 * 50)  # ties go by name
    assert first.find("s:title", NS).text == largest  # the full name is one hover away


def test_the_same_plan_draws_the_same_bytes() -> None:
    _, plan, _ = planned(typed(residual_cnn()))
    again = MemoryPlan.from_json(plan.to_json())
    assert plan_svg(plan, "m.onnx") == plan_svg(again, "m.onnx")
    assert plan_svg(plan, "m.onnx") != plan_svg(plan, "other.onnx")

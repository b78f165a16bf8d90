"""graphopt.plots.reduction: one bar per pass run that changed the model (rolled-back ones in their own
colour), at the node count the record gives, rounds of a fixed point separated, weight bytes on a
second axis, and the same bytes for the same records."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from graphopt.pass_infra.manager import PassRecord
from graphopt.plots.reduction import COLOURS, reduction_svg

NS = {"s": "http://www.w3.org/2000/svg"}
KB = 1024


def _rec(name: str, status: str, before: int, after: int, round_: int = 1, weights: tuple[int, int] = (0, 0),
         failure: str | None = None) -> PassRecord:
    return PassRecord(name, name, status, 0.01, before, after, weights[0], weights[1], failure=failure,
                      round=round_)


RECORDS = [
    _rec("eliminate-dead-code", "changed", 120, 100, weights=(40 * KB, 40 * KB)),
    _rec("fold-constants", "changed", 100, 80, weights=(40 * KB, 36 * KB)),
    _rec("fuse-pad", "unchanged", 80, 80, weights=(36 * KB, 36 * KB)),
    _rec("fuse-batchnorm", "rolled-back", 80, 80, weights=(36 * KB, 36 * KB), failure="check failed"),
    _rec("fuse-affine", "disabled", 0, 0),
    _rec("eliminate-dead-code", "changed", 80, 70, round_=2, weights=(36 * KB, 30 * KB)),
    _rec("fold-constants", "unchanged", 70, 70, round_=2, weights=(30 * KB, 30 * KB)),
    _rec("eliminate-dead-code", "unchanged", 70, 70, round_=3, weights=(30 * KB, 30 * KB)),
    _rec("topological-sort", "changed", 70, 70, round_=0, weights=(30 * KB, 30 * KB)),
]
SHOWN = [r for r in RECORDS if r.status in ("changed", "rolled-back")]


def _svg(records: list[PassRecord] = RECORDS, nodes_before: int = 120, title: str = "m.onnx") -> ET.Element:
    return ET.fromstring(reduction_svg(records, nodes_before, title))


def _scale(root: ET.Element, group: str) -> tuple[float, float]:
    """(y of 0, px per unit) read from a tick group's grid lines and their labels."""
    lines = root.findall(f".//s:g[@id='{group}']/s:line", NS)
    values = [float(t.text.split()[0]) for t in root.findall(f".//s:g[@id='{group}']/s:text", NS)]
    ys = [float(line.get("y1")) for line in lines]
    return ys[0], (ys[0] - ys[-1]) / (values[-1] - values[0])


def _bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//s:g[@id='bars']/s:rect", NS)


def test_one_bar_per_changing_or_rolled_back_run_after_the_input_bar() -> None:
    bars = _bars(_svg())
    assert [b.get("class") for b in bars] == ["bar input"] + [f"bar {r.status}" for r in SHOWN]
    labels = [t.text for t in _svg().findall(".//s:g[@id='x-labels']/s:text", NS)]
    assert labels == ["input"] + [r.name for r in SHOWN]


def test_bar_heights_are_the_node_counts_on_the_node_axis() -> None:
    root = _svg()
    zero, per_node = _scale(root, "y-ticks")
    heights = [(zero - float(b.get("y"))) / per_node for b in _bars(root)]
    assert [round(h, 2) for h in heights] == [120.0] + [float(r.nodes_after) for r in SHOWN]
    assert all(abs(float(b.get("y")) + float(b.get("height")) - zero) < 0.01 for b in _bars(root))
    assert [t.text for t in root.findall(".//s:g[@id='y-ticks']/s:text", NS)] == [
        "0", "25", "50", "75", "100"]


def test_rolled_back_runs_have_their_own_colour_and_a_legend_entry() -> None:
    root = _svg()
    fills = {b.get("class"): b.get("fill") for b in _bars(root)}
    assert fills["bar rolled-back"] == COLOURS["rolled-back"] != fills["bar changed"] != fills["bar input"]
    assert [t.text for t in root.findall(".//s:g[@id='legend']/s:text", NS)] == [
        "input", "changed the model", "rolled back (change undone)", "weight bytes (right axis)"]
    swatches = [r.get("fill") for r in root.findall(".//s:g[@id='legend']/s:rect", NS)]
    assert swatches == [COLOURS["input"], COLOURS["changed"], COLOURS["rolled-back"]]
    tip = _bars(root)[3].find("s:title", NS).text
    assert tip.startswith("fuse-batchnorm (round 1): rolled-back, nodes 80 -> 80") and "check failed" in tip


def test_fixpoint_rounds_are_labelled_where_they_start_and_passes_outside_are_not() -> None:
    root = _svg()
    assert [t.text for t in root.findall(".//s:g[@id='rounds']/s:text", NS)] == ["round 1", "round 2"]
    lines = [float(line.get("x1")) for line in root.findall(".//s:g[@id='rounds']/s:line", NS)]
    bars = _bars(root)
    starts = [float(bars[i].get("x")) - 3 for i in (1, 4)]  # first bar of round 1, first of round 2
    assert lines == starts


def test_weight_bytes_line_follows_the_records_on_its_own_axis() -> None:
    root = _svg()
    zero, per_kb = _scale(root, "weight-ticks")
    assert {t.text.split()[1] for t in root.findall(".//s:g[@id='weight-ticks']/s:text", NS)} == {"KB"}
    points = root.find(".//s:polyline[@id='weights']", NS).get("points").split()
    kb = [round((zero - float(p.split(",")[1])) / per_kb, 2) for p in points]
    assert kb == [40.0] + [r.bytes_after / KB for r in SHOWN]


def test_a_run_where_nothing_changed_draws_the_input_alone_and_says_what_is_hidden() -> None:
    root = _svg([_rec("fold-constants", "unchanged", 5, 5)], nodes_before=5)
    assert [b.get("class") for b in _bars(root)] == ["bar input"]
    subtitle = root.findall("s:text", NS)[1].text
    assert subtitle == "0 pass runs changed the model, 0 rolled back; 1 runs without a change are not shown"


def test_an_import_bar_shows_nodes_the_import_removed_before_any_pass() -> None:
    root = _svg(nodes_before=125)  # e.g. five Constant nodes in the file became initializers
    bars = _bars(root)
    assert [b.get("class") for b in bars[:3]] == ["bar input", "bar input", "bar changed"]
    assert bars[1].find("s:title", NS).text.endswith(": 120 nodes")
    assert root.findall("s:text", NS)[0].text == "m.onnx: 125 -> 70 nodes (-44.0%)"


def test_the_same_records_draw_the_same_bytes() -> None:
    assert reduction_svg(RECORDS, 120, "m.onnx") == reduction_svg(list(RECORDS), 120, "m.onnx")

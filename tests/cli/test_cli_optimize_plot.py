"""`graphopt optimize --plot FILE.svg`: the chart of the run is written beside the report, its bars are
the report's changing passes at their node counts, two runs give the same bytes, and a plot into a
missing folder is refused before any work."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_kit import CHANGING

from graphopt.cli import main

NS = {"s": "http://www.w3.org/2000/svg"}


def _nodes_of_bars(root: ET.Element) -> list[float]:
    """Each bar's height read back in nodes through the y-axis ticks."""
    lines = root.findall(".//s:g[@id='y-ticks']/s:line", NS)
    values = [float(t.text) for t in root.findall(".//s:g[@id='y-ticks']/s:text", NS)]
    zero, top = float(lines[0].get("y1")), float(lines[-1].get("y1"))
    per_node = (zero - top) / (values[-1] - values[0])
    bars = root.findall(".//s:g[@id='bars']/s:rect", NS)
    return [round((zero - float(b.get("y"))) / per_node, 2) for b in bars]


def test_plot_draws_the_changing_passes_of_the_report_at_their_node_counts(tiny_cnn: Path) -> None:
    out, report, plot = (tiny_cnn.with_name(n) for n in ("out.onnx", "report.json", "run.svg"))
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--report", str(report), "--plot", str(plot),
                 "-q"]) == 0
    passes = json.loads(report.read_text())["passes"]
    changed = [p for p in passes if p["status"] in ("changed", "rolled-back")]
    assert {p["name"] for p in changed} == CHANGING and len(changed) == len(CHANGING)
    root = ET.fromstring(plot.read_text())
    labels = [t.text for t in root.findall(".//s:g[@id='x-labels']/s:text", NS)]
    assert labels == ["input"] + [p["name"] for p in changed]
    assert _nodes_of_bars(root) == [16.0] + [float(p["nodes_after"]) for p in changed] == [16, 12, 8, 7, 6]
    assert root.findall("s:text", NS)[0].text == "tiny_cnn.onnx: 16 -> 6 nodes (-62.5%)"
    assert [t.text for t in root.findall(".//s:g[@id='rounds']/s:text", NS)] == ["round 1"]
    assert sorted(os.listdir(tiny_cnn.parent)) == ["out.onnx", "report.json", "run.svg", "tiny_cnn.onnx"]


def test_two_runs_write_the_same_plot_bytes(tiny_cnn: Path) -> None:
    first, second = tiny_cnn.with_name("a.svg"), tiny_cnn.with_name("b.svg")
    for plot in (first, second):
        assert main(["optimize", str(tiny_cnn), "-o", str(tiny_cnn.with_name("o.onnx")), "--plot", str(plot),
                     "-q"]) == 0
    assert first.read_bytes() == second.read_bytes()


def test_plot_into_a_missing_folder_is_refused_before_any_work(tiny_cnn: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    plot = tiny_cnn.parent / "no_such_dir" / "run.svg"
    code = main(["optimize", str(tiny_cnn), "-o", str(tiny_cnn.with_name("out.onnx")), "--plot", str(plot)])
    printed = capsys.readouterr()
    message = f"graphopt: error: --plot folder {plot.parent} does not exist\n"
    assert (code, printed.out, printed.err) == (2, "", message)
    assert sorted(os.listdir(tiny_cnn.parent)) == ["tiny_cnn.onnx"]  # no model: refused before optimizing

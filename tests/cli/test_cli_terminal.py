"""`graphopt optimize` on a terminal: the rich tables (pinned as a screenshot at a fixed width), the
coloured check column, the live status line on a real pseudo-terminal, and plain text everywhere else."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_kit import run_on_a_terminal

from graphopt import optimize
from graphopt.cli_console import check_cell, make_console, print_summary
from graphopt.pass_infra.changes import diff_text

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SCREENSHOT = """\
ops
 op type             before  after    Δ
 Conv                     2      2
 MatMul                   2      0   -2
 Add                      1      0   -1
 BatchNormalization       1      0   -1
 Cast                     1      0   -1
 Concat                   1      0   -1
 Dropout                  1      0   -1
 Gather                   1      0   -1
 GlobalAveragePool        1      1
 Identity                 1      0   -1
 Relu                     1      1
 Reshape                  1      1
 Shape                    1      0   -1
 Unsqueeze                1      0   -1
 Gemm                     0      1   +1
 total                   16      6  -10

check inputs (1 set, chosen in 1 trial run(s) of the original):
  x: float32[1,3,16,16] ~N(0,1)

passes
 round  pass                             status     time  nodes  weights Δ  check
     1  eliminate-dead-code              changed     0ms  16→12    -1.0 KB  ok (rel 0.0e+00, 8 tensors)
     1  fold-constants                   changed     0ms   12→8       -8 B  ok (rel 0.0e+00, 4 tensors)
     1  prune-failing-branches           unchanged   0ms      8             -
     1  eliminate-common-subexpressions  unchanged   0ms      8             -
     1  fuse-space-to-depth              unchanged   0ms      8             -
     1  fuse-pad                         unchanged   0ms      8             -
     1  fuse-batchnorm                   changed     0ms    8→7     -128 B  ok (rel ~, 5 tensors)
     1  fuse-conv-branches               unchanged   0ms      7             -
     1  fuse-normalization               unchanged   0ms      7             -
     1  fuse-affine                      unchanged   0ms      7             -
     1  eliminate-dead-channels          unchanged   0ms      7             -
     1  fuse-horizontal                  unchanged   0ms      7             -
     1  fuse-matmul-add                  changed     0ms    7→6             ok (rel ~, 4 tensors)
     1  simplify-chains                  unchanged   0ms      6             -
     1  optimize-transposes              unchanged   0ms      6             -
     2  13 passes                        unchanged   0ms      6             fixed point
        topological-sort                 unchanged   0ms      6             -

size 5.7 KB -> 4.2 KB; 0.20s; checks: each (4 onnxruntime sessions)
wrote out.onnx
"""


def _render(tiny_cnn: Path, diff: bool = False) -> tuple[str, str]:
    """The terminal output for tiny_cnn at width 110 (times zeroed), as text and with its ANSI styles."""
    result = optimize(tiny_cnn, diff=diff)
    for rec in result.report.records:
        rec.seconds = 0.0
    console = make_console(io.StringIO(), no_color=False, width=110, record=True)
    print_summary(
        console,
        result,
        "size 5.7 KB -> 4.2 KB; 0.20s; checks: each (4 onnxruntime sessions)",
        [],
        "out.onnx",
        None,
        diff_text(result.changes or []) if diff else None,
    )
    return console.export_text(styles=False, clear=False), console.export_text(styles=True)


def test_the_terminal_tables_look_like_this(tiny_cnn: Path) -> None:
    """The screenshot: aligned columns, a round column, the second fixed-point round (nothing changed)
    folded into one line, the weight and node deltas; rounded relative errors shown as ``rel ~``."""
    text, _ = _render(tiny_cnn)
    shot = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    assert re.sub(r"rel [1-9]\.\de-0[5-8]", "rel ~", shot) == SCREENSHOT  # float32 rounding, not exact


def test_the_check_column_is_coloured_by_strength(tiny_cnn: Path) -> None:
    _, styled = _render(tiny_cnn)
    assert "\x1b[32mok\x1b[0m" in styled  # green ok
    assert "\x1b[32mchanged  \x1b[0m" in styled
    for check, word, code in (
        ({"ok": True, "strength": "weak", "max_rel": 0.0, "unproven_nodes": 2}, "weak", "33"),
        ({"ok": False, "strength": "failed", "first_diverging": "y"}, "FAILED", "1;31"),
    ):
        console = make_console(io.StringIO(), no_color=False, width=100, record=True)
        console.print(check_cell(check))
        assert f"\x1b[{code}m{word}\x1b[0m" in console.export_text(styles=True)


def test_no_color_keeps_the_tables_and_drops_the_colour(tiny_cnn: Path) -> None:
    result = optimize(tiny_cnn)
    console = make_console(io.StringIO(), no_color=True, width=110, record=True)
    print_summary(console, result, "summary", [], "out.onnx", None, None)
    styled = console.file.getvalue()  # what reached the terminal (an export keeps every style)
    assert re.search(r"2  13 passes\s+unchanged.*fixed point", ANSI.sub("", styled))
    assert "\x1b[2m" in styled  # dim still marks the unchanged rows
    assert not re.search(r"\x1b\[(3\d|1;3\d)m", styled)  # no colour codes (bold and dim may remain)


def test_diff_on_the_terminal_colours_removals_and_additions(tiny_cnn: Path) -> None:
    text, styled = _render(tiny_cnn, diff=True)
    assert "  fuse-matmul-add (round 1): -2 +1 ~0 nodes, -1 +0 values" in text
    assert "\x1b[31m    - Add 1, MatMul 1: fc_add, fc_matmul" in styled
    assert "\x1b[32m    + Gemm 1: fc_matmul" in styled


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it wrote, and the exit code."""
    return run_on_a_terminal(args, {**os.environ, "COLUMNS": "110", **env})


@pytest.mark.parametrize("no_color", [False, True])
def test_a_real_terminal_gets_the_status_line_and_rich_tables(tiny_cnn: Path, no_color: bool) -> None:
    out = tiny_cnn.with_name("tty.onnx")
    env = {"NO_COLOR": "1"} if no_color else {"NO_COLOR": ""}
    code, screen = _on_a_terminal(["optimize", str(tiny_cnn), "-o", str(out)], env)
    assert code == 0, screen
    plain = ANSI.sub("", screen)
    for stage in (
        "loading tiny_cnn.onnx",
        "choosing check inputs and running the original model",
        "running fold-constants (round 1) · 12 nodes",
        "checking fuse-batchnorm · 7 nodes",
        f"writing {out}",
    ):  # the live status line, one stage after the other
        assert stage in plain, stage
    assert re.search(r"2  13 passes\s+unchanged.*fixed point", plain)  # the rich pass table
    assert re.search(r"fuse-batchnorm\s+changed\s+\d+ms\s+8→7", plain)
    assert f"wrote {out}" in plain
    assert bool(re.search(r"\x1b\[32m", screen)) is not no_color  # green only with colour on
    assert out.exists()


def test_quiet_on_a_terminal_prints_nothing(tiny_cnn: Path) -> None:
    code, screen = _on_a_terminal(
        ["optimize", str(tiny_cnn), "-o", str(tiny_cnn.with_name("q.onnx")), "-q"], {}
    )
    assert (code, screen) == (0, "")


def test_a_pipe_gets_plain_text_without_escape_codes(tiny_cnn: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphopt",
            "optimize",
            str(tiny_cnn),
            "-o",
            str(tiny_cnn.with_name("p.onnx")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "\x1b[" not in proc.stdout
    assert proc.stdout.splitlines()[0] == "op type              before    after"
    assert "fixed point" not in proc.stdout  # plain text keeps one line per pass run

"""graphopt.plots.svg: round ticks that print exactly, sizes as a reader says them, clipped names."""

from __future__ import annotations

import pytest

from graphopt.plots.svg import clip, human_bytes, ticks


@pytest.mark.parametrize(("top", "integer", "labels"), [
    (120, True, ["0", "25", "50", "75", "100"]),
    (10, True, ["0", "2", "4", "6", "8", "10"]),
    (3, True, ["0", "1", "2", "3"]),
    (4.6, True, ["0", "1", "2", "3", "4"]),
    (0.015625, False, ["0.000", "0.005", "0.010", "0.015"]),  # a 16 KB arena in MB
    (1, False, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
    (0.012, False, ["0.0000", "0.0025", "0.0050", "0.0075", "0.0100"]),
    (0, False, ["0"]),
])
def test_ticks_are_round_steps_from_zero_printed_exactly(top: float, integer: bool,
                                                          labels: list[str]) -> None:
    values, decimals = ticks(top, integer=integer)
    assert [f"{v:.{decimals}f}" for v in values] == labels


def test_human_bytes_picks_the_unit_that_keeps_four_digits() -> None:
    assert [human_bytes(n) for n in (20, 1536, 3 * 1024 ** 2 // 2, 5 * 1024 ** 3)] == [
        "20 B", "1.50 KB", "1.50 MB", "5.00 GB"]


def test_clip_keeps_both_ends_of_a_long_name() -> None:
    assert clip("short", 10) == "short"
    assert clip("/model/layer.11/attention/MatMul_output_0", 21) == "/model/lay…l_output_0"  # 10 + 1 + 10
    assert len(clip("x" * 100, 21)) == 21

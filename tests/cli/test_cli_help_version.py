"""`--version`, help text on every option of every subcommand, and the exit codes in `--help`."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import onnx
import onnxruntime
import pytest

import graphopt
from graphopt.cli_args import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_names_graphopt_onnx_onnxruntime_and_python() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "graphopt", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"graphopt {graphopt.__version__} (onnx {onnx.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, Python {sys.version.split()[0]})"
    )


def test_every_subcommand_is_listed() -> None:
    assert set(_subparsers(build_parser())) >= {"optimize", "check", "plan", "extract", "list-passes"}


@pytest.mark.parametrize("command", sorted(_subparsers(build_parser())))
def test_every_option_and_argument_has_help(command: str) -> None:
    parser = _subparsers(build_parser())[command]
    assert parser.description or parser.format_usage(), command
    missing = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert missing == [], f"{command}: no help for {missing}"


@pytest.mark.parametrize("argv", [["--help"], ["optimize", "--help"], ["check", "--help"]])
def test_help_lists_the_exit_codes(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "graphopt", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    codes = re.findall(r"^  (\d+) +\S", proc.stdout.split("exit codes:")[1], flags=re.M)
    assert codes == ["0", "1", "2", "3", "4", "5", "6", "7", "70", "130"]


def test_check_help_explains_its_two_models() -> None:
    text = _subparsers(build_parser())["check"].format_help()
    assert "the model whose outputs are right" in text
    assert "the model to compare with it" in text

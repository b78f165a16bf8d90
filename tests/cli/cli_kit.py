"""What the `graphopt optimize` tests expect of the default pipeline on fixtures/tiny_cnn.onnx, and helpers
to read a written model or a report record (tests/cli is not a package: import as a module, like passes_kit).

The pass names come from ``graphopt.DEFAULT_PIPELINE``; only tests/pass_infra/test_pass_infra_optimize_api.py
pins its text.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import onnx

from graphopt import DEFAULT_PIPELINE
from graphopt.pass_infra.pipeline import Fixpoint, parse_pipeline, pass_names

OP_TABLE = """\
op type              before    after
Conv                      2        2
MatMul                    2        0  *
Add                       1        0  *
BatchNormalization        1        0  *
Cast                      1        0  *
Concat                    1        0  *
Dropout                   1        0  *
Gather                    1        0  *
GlobalAveragePool         1        1
Identity                  1        0  *
Relu                      1        1
Reshape                   1        1
Shape                     1        0  *
Unsqueeze                 1        0  *
Gemm                      0        1  *
total                    16        6"""

OPS_AFTER = ["Conv", "Relu", "Conv", "GlobalAveragePool", "Reshape", "Gemm"]  # tiny_cnn, optimized


def fixpoint_and_tail(text: str) -> tuple[list[str], list[str]]:
    """The pass names inside the pipeline's leading fixed point, and the names of the steps after it."""
    loop, *tail = parse_pipeline(text)
    assert isinstance(loop, Fixpoint), text
    return pass_names(loop.steps), pass_names(tail)


FIXPOINT, TAIL = fixpoint_and_tail(DEFAULT_PIPELINE)
# The default pipeline's fixed point on tiny_cnn: these four change the model in the first iteration, then a
# second iteration finds nothing. It reruns only the passes up to the last change (fuse-matmul-add): those
# after it (simplify-chains, optimize-transposes: the model has no Transpose) found nothing on the final
# model, and nothing changed since, so they are not rerun.
CHANGING = {"eliminate-dead-code", "fold-constants", "fuse-batchnorm", "fuse-matmul-add"}
RERUN = FIXPOINT[:max(FIXPOINT.index(name) for name in CHANGING) + 1]
DEFAULT_RUN = [*((name, "changed" if name in CHANGING else "unchanged") for name in FIXPOINT),
               *((name, "unchanged") for name in RERUN),
               *((name, "unchanged") for name in TAIL)]
NAME_WIDTH = max(len(name) for name, _ in DEFAULT_RUN)  # 31: the pass table's first column fits the longest


def file_ops(path: Path) -> list[str]:
    """The op types of the model file at ``path``, in node order."""
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def numeric_check(record: dict) -> tuple[str, float, float]:
    """A report pass record's check strength and max errors (the record also counts tensors, nodes...)."""
    numeric = record["checks"]["numeric"]
    return numeric["strength"], numeric["max_abs"], numeric["max_rel"]


def run_on_a_terminal(args: list[str], env: dict[str, str], *, with_stderr: bool = True) -> tuple[int, str]:
    """Run ``python -m graphopt ARGS`` with stdout (and stderr) on a pseudo-terminal; its exit code and
    everything it wrote there. ``env`` replaces the environment."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "graphopt", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower if with_stderr else subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")

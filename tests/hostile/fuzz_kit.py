"""Running a hostile case through ``graphopt optimize`` and judging the run, for tests/hostile/test_fuzz_*.py
(tests/hostile is not a package: import as a module, like hostile_corpus).

Every case runs in-process through ``graphopt.cli.main`` under a time limit (SIGALRM). The rules a run
must obey are ``run_problems`` (any exit) and ``judge_output`` (exit 0); bench/hostile.py applies the same
two functions to thousands of cases, one subprocess each. A case that trips a known bug is listed in
``KNOWN_BUGS`` (the case itself is the minimal reproduction) and marked xfail(strict=True) by ``params``:
fixing the bug makes it pass, which fails the suite until the entry is removed.
"""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import onnx
import pytest
from hostile_corpus import Case, place, snapshot

from graphopt.cli import main

LIMIT = 20.0  # seconds per in-process case
DOCUMENTED = (0, 1, 2, 3, 4, 5, 6)  # README "Command line"; 70 is an internal error, never acceptable
OUTPUTS = {"out.onnx", "out.onnx.data"}

# case name -> the bug it trips today and what should happen instead; each case is its own minimal repro.
# Empty since 86525a6 and 43a509b fixed what this suite found (non-UTF-8 names, unknown element types,
# payloads that do not fit their dims, bad external offsets and lengths, SIGFPE in onnxruntime, Constant
# attributes of the wrong type); the external-data bugs still open are in test_fuzz_external.py.
KNOWN_BUGS: dict[str, str] = {}
# stderr signatures of known bugs: random damage that hits one is rejected by the hypothesis tests
KNOWN_SIGNATURES: re.Pattern[str] | None = None


class CaseTimeout(BaseException):
    """Raised by the alarm; not an Exception, so graphopt's main() cannot turn it into exit 70."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds`` (checked between Python bytecodes)."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    """How a run ended: its exit code (None after a hang), what it printed, and what is wrong with it."""

    code: int | None
    stdout: str
    stderr: str
    problems: list[str] = field(default_factory=list)


def run_problems(code: int, stdout: str, stderr: str, root: Path, before: dict[str, str]) -> list[str]:
    """What is wrong with a finished run whose input lives in ``root/model`` and output in ``root/out``."""
    problems = []
    if code not in DOCUMENTED:
        problems.append(f"exit {code} is not a documented code" + (" (a signal)" if code < 0 else ""))
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append("a traceback was printed")
    written = sorted(p.name for p in (root / "out").iterdir())
    if code != 0:
        lines = stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("graphopt: error: "):
            problems.append(f"stderr is not one 'graphopt: error: ' line: {stderr[-300:]!r}")
        if stdout:
            problems.append(f"a failed run printed to stdout: {stdout[-200:]!r}")
        if written:
            problems.append(f"a failed run left files in the output folder: {written}")
    elif "out.onnx" not in written:
        problems.append("exit 0 without an output file")
    elif set(written) - OUTPUTS:
        problems.append(f"temporary or extra files beside the output: {written}")
    if snapshot(root) != before:
        problems.append("the input or a file beside it was modified")
    return problems


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """onnxruntime on the file itself (it reads external data itself), graph optimisations off."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    return dict(zip(names, session.run(names, {k: v for k, v in feeds.items() if k in wanted})))


def checker_error(path: Path) -> str | None:
    """Why onnx.checker rejects the file at ``path``, or None when it accepts it."""
    try:
        onnx.checker.check_model(str(path))
        return None
    except Exception as exc:  # ValidationError, but also protobuf and OS errors on broken files
        return f"{type(exc).__name__}: {str(exc)[:200]}"


def judge_output(src: Path, out: Path, check: Callable[[list[str]], int]) -> list[str]:
    """What is wrong with the output of a run that exited 0: it must load, pass onnx.checker when the
    input does, and, when onnxruntime runs the input file itself, compute the same (compared here, with
    graphopt's tolerances) and satisfy ``check(["check", IN, OUT]) == 0`` (the CLI's main)."""
    from graphopt.numerics.compare import compare_outputs
    from graphopt.numerics.feeds import make_feeds
    from graphopt.onnx_io import load_model

    try:
        onnx.load(str(out))
    except Exception as exc:
        return [f"the output does not load: {exc}"]
    problems = []
    if (error := checker_error(out)) and not checker_error(src):
        problems.append(f"the output fails onnx.checker, the input passes: {error}")
    try:
        feeds = make_feeds(load_model(str(src)))
        expected = ort_run(src, feeds)
    except Exception:
        return problems  # onnxruntime does not run the input: nothing to compare with
    try:
        problems += [f"the output computes something else: {m}" for m in compare_outputs(
            expected, ort_run(out, feeds))]
    except Exception as exc:
        problems.append(f"onnxruntime runs the input but not the output: {str(exc)[:300]}")
    if (code := check(["check", str(src), str(out)])) != 0:
        problems.append(f"graphopt check IN OUT exits {code}")
    return problems


def run_case(case: Case, root: Path, capsys: pytest.CaptureFixture[str], *options: str) -> Outcome:
    """Place ``case`` under ``root``, optimize it in-process into ``root/out`` and judge the run."""
    model = place(case, root)
    (root / "out").mkdir()
    out = root / "out" / "out.onnx"
    before = snapshot(root)
    try:
        with time_limit(LIMIT):
            code = main(["optimize", str(model), "-o", str(out), *options])
    except CaseTimeout as exc:
        return Outcome(None, "", "", [f"hang: {exc}"])
    except SystemExit as exc:  # argparse; never expected with a valid command line
        code = exc.code if isinstance(exc.code, int) else 2
    stdout, stderr = capsys.readouterr()
    outcome = Outcome(code, stdout, stderr, run_problems(code, stdout, stderr, root, before))
    if code == 0 and not outcome.problems:
        try:
            with time_limit(LIMIT):
                outcome.problems += judge_output(model, out, main)
        except CaseTimeout as exc:
            outcome.problems.append(f"judging the output hung: {exc}")
        capsys.readouterr()
    return outcome


def params(cases: Iterable[Case], bugs: dict[str, str] | None = None) -> list[Any]:
    """pytest params named after the cases; those in ``bugs`` (default KNOWN_BUGS) are marked
    xfail(strict=True) with the bug as the reason."""
    bugs = KNOWN_BUGS if bugs is None else bugs
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=bugs[c.name])]
                         if c.name in bugs else []) for c in cases]


def assert_clean(case: Case, outcome: Outcome) -> None:
    """Fail, naming the case, its exit code and every problem, unless the run ended clean."""
    assert not outcome.problems, f"{case.name} (exit {outcome.code}): " + "; ".join(outcome.problems)

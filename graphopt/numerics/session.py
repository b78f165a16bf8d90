"""One onnxruntime session over a model, reused for many runs: the trial runs that choose check inputs,
the reference run and each check. Runs are on the CPU with graph optimisations off (we test our
rewrites, not onnxruntime's), optionally with custom-op libraries, and in a child process when an
integer division could kill graphopt itself (SIGFPE)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from graphopt.errors import RuntimeCheckError
from graphopt.numerics.custom_ops import explain_load_failure, extension_libraries

INLINE_LIMIT = 1_500_000_000  # above this a model is run from a temporary file with external data


def session_options(libraries: Sequence[str] = ()) -> Any:
    """ORT options for checks: no graph optimisation, quiet logs, deterministic thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4  # failures reach the user as one GraphoptError line, not ORT logs
    opts.intra_op_num_threads = 1 if (os.cpu_count() or 1) <= 2 else 2
    opts.inter_op_num_threads = 1
    for path in libraries:
        opts.register_custom_ops_library(path)
    return opts


@dataclass
class Prepared:
    """What a session is built from: serialized bytes (or a file), feeds it always needs (weights
    passed as inputs), the ops' domains (for error messages) and whether to isolate it."""

    data: bytes | None
    path: str | None = None
    fixed_feeds: dict[str, np.ndarray] | None = None
    isolate: bool = False
    custom_ops: tuple[tuple[str, str, str], ...] = ()  # (domain, op_type, node name) outside ORT's own


class ModelSession:
    """A loaded model; ``run(feeds, outputs)`` returns the requested outputs (all by default) by name.

    Example:
        >>> session = ModelSession(Prepared(proto.SerializeToString()), "original model")  # doctest: +SKIP
        >>> session.run({"x": x})["y"]                                                     # doctest: +SKIP
    """

    def __init__(self, prepared: Prepared, what: str, libraries: Sequence[str] = (), *,
                 add_extensions: bool = True) -> None:
        self.prepared, self.what = prepared, what
        extra = extension_libraries(prepared.custom_ops) if add_extensions else ()
        self.libraries = tuple(dict.fromkeys([*libraries, *extra]))
        self._session: Any = None
        self.output_names: list[str] = []
        self.input_names: set[str] = set()
        if not prepared.isolate:
            self._open()
        else:  # opened in a child per run; the names come from the model itself
            self.output_names, self.input_names = _declared_interface(prepared)

    def _open(self) -> None:
        import onnxruntime as ort

        source = self.prepared.path if self.prepared.path is not None else self.prepared.data
        try:
            self._session = ort.InferenceSession(source, session_options(self.libraries),
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RuntimeCheckError(explain_load_failure(self.what, first_line(exc), self.prepared.custom_ops,
                                                         self.libraries)) from None
        self.output_names = [o.name for o in self._session.get_outputs()]
        # IR < 4 initializers that are also graph inputs can be overridden: feed them too
        self.input_names = {i.name for i in [*self._session.get_inputs(),
                                             *self._session.get_overridable_initializers()]}

    def run(self, feeds: dict[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        """Run once; ``outputs`` picks a subset of the graph outputs (None: all of them)."""
        all_feeds = {**feeds, **(self.prepared.fixed_feeds or {})}
        if self.prepared.isolate:
            return _run_in_child(self.prepared, all_feeds, self.what, outputs, self.libraries)
        wanted = {k: v for k, v in all_feeds.items() if k in self.input_names}
        names = list(outputs) if outputs is not None else self.output_names
        try:
            values = self._session.run(names, wanted)
        except Exception as exc:
            raise RuntimeCheckError(f"onnxruntime failed to run the {self.what}: {first_line(exc)}") from None
        return dict(zip(names, values))


def _declared_interface(prepared: Prepared) -> tuple[list[str], set[str]]:
    """Output and input names a model declares (for sessions that only open in a child process)."""
    import onnx

    proto = onnx.load(prepared.path, load_external_data=False) if prepared.path is not None \
        else onnx.load_from_string(prepared.data)
    return [o.name for o in proto.graph.output], {i.name for i in proto.graph.input}


_CHILD = r"""
import pickle, sys
from graphopt.numerics.session import ModelSession, Prepared
with open(sys.argv[1], "rb") as f:
    prepared, feeds, what, outputs, libraries = pickle.load(f)
prepared.isolate = False
session = ModelSession(prepared, what, libraries, add_extensions=False)
with open(sys.argv[2], "wb") as f:
    pickle.dump(session.run(feeds, outputs), f)
"""


def _run_in_child(prepared: Prepared, feeds: dict[str, Any], what: str, outputs: Sequence[str] | None,
                  libraries: Sequence[str]) -> dict[str, Any]:
    """Run in a separate Python process, so that a crash of onnxruntime is an error, not our death."""
    with tempfile.TemporaryDirectory(prefix="graphopt-run-") as folder:
        job, out = os.path.join(folder, "job.pkl"), os.path.join(folder, "out.pkl")
        with open(job, "wb") as f:
            pickle.dump((prepared, feeds, what, list(outputs) if outputs is not None else None,
                         list(libraries)), f)
        child = subprocess.run([sys.executable, "-c", _CHILD, job, out], capture_output=True, text=True)
        if child.returncode < 0:
            name = signal.Signals(-child.returncode).name
            raise RuntimeCheckError(f"onnxruntime crashed ({name}) running the {what}"
                                    + (": an integer division by zero or of the smallest integer by -1?"
                                       if name == "SIGFPE" else ""))
        if child.returncode != 0:
            lines = [line for line in child.stderr.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else f"exit code {child.returncode}"
            raise RuntimeCheckError(message.split("RuntimeCheckError: ", 1)[-1][:400])
        with open(out, "rb") as f:
            return pickle.load(f)  # noqa: S301 - written just now by our own child process


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (onnxruntime's are long), at most 400 characters."""
    text = str(exc).strip().splitlines()
    return text[0][:400] if text else type(exc).__name__

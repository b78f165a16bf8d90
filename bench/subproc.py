"""Run one bench worker (tools.py or evaluate.py) in a fresh interpreter with a timeout.

Shared by run.py (the corpus) and scale.py (the synthetic graphs). The worker gets JOB.json and writes
RESULT.json; its output goes to a log beside them. At the timeout the worker's whole session is killed,
so a tool that spawned helpers leaves nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent


def subprocess_run(script: str, job: dict[str, Any], folder: Path, timeout: float) -> dict[str, Any]:
    """Run ``bench/<script> JOB RESULT`` in a fresh interpreter; its JSON result, or why there is none."""
    folder.mkdir(parents=True, exist_ok=True)
    job_file, result_file = folder / f"{script}.job.json", folder / f"{script}.result.json"
    job_file.write_text(json.dumps(job))
    result_file.unlink(missing_ok=True)
    command = [sys.executable, str(BENCH_DIR / script), str(job_file), str(result_file)]
    start = time.perf_counter()
    with open(folder / f"{script}.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: kills the tool and anything it spawned
            proc.wait()
            return {"ok": False, "status": "timeout", "error": f"timed out after {timeout:g} s",
                    "wall_seconds": time.perf_counter() - start}
    wall = time.perf_counter() - start
    if result_file.exists():
        return json.loads(result_file.read_text()) | {"wall_seconds": wall}
    tail = (folder / f"{script}.log").read_text(errors="replace")[-1500:]
    return {"ok": False, "status": "crashed", "wall_seconds": wall,
            "error": f"exit code {proc.returncode} without a result; output tail:\n{tail}"}


def worker_main(argv: list[str], run: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """A worker's entry point: run the job in argv[0] and write its result (or the error) to argv[1]."""
    import traceback

    job = json.loads(Path(argv[0]).read_text())
    try:
        result = run(job)
    except Exception as exc:  # reported to the runner, which records it and goes on
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                  "traceback": traceback.format_exc()[-4000:]}
    Path(argv[1]).write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1

"""Benchmark runner: every tool on every corpus model, each run in a fresh subprocess with a timeout.

Usage: python bench/run.py [--only a,b] [--tools floor,onnxsim] [--models-dir DIR] [--timeout 600]
                           [--results DIR] [--keep-outputs]

Run it with the bench virtualenv (/work/venvs/bench/bin/python), where graphopt is installed in editable
mode. Tools run one after the other (never in parallel: timings and RSS would interfere). For each model:
the original is described and its outputs on the manifest feeds saved (bench/evaluate.py), then each tool
runs (bench/tools.py) and its output is scored (bench/evaluate.py), each in its own process. Writes
RESULTS/<timestamp>.jsonl (one record per line: meta, model, result, end) and RESULTS/report.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import report  # noqa: E402
import tools  # noqa: E402

EXTERNAL_BYTES = 1_800_000_000  # originals above this (or with external data) are saved with external data
PACKAGES = ("graphopt", "onnx", "onnxruntime", "onnxsim", "onnxslim", "onnxoptimizer", "onnxscript",
            "onnx-ir", "numpy", "protobuf")
DEFAULT_TOOLS = ["floor", "graphopt-nocheck", "graphopt-check", "onnxsim", "onnxslim", "onnxoptimizer",
                 "onnxscript", "ort-basic", "ort-extended", "floor-again"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=BENCH_DIR / ".cache" / "models",
                        help="folder with manifest.json (built by bench/corpus.py)")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                        help="comma-separated tools, run in this order")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per subprocess")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results", help="output folder")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the optimized models")
    return parser.parse_args(argv)


def pick(names: list[str], wanted: str, what: str) -> list[str]:
    """Filter names by a comma-separated selection (in its order), failing clearly on unknown names."""
    chosen = [n.strip() for n in wanted.split(",") if n.strip()] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from: {', '.join(names)}")
    return chosen


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


def describe_model(entry: dict[str, Any], models_dir: Path, work: Path, timeout: float) -> dict[str, Any]:
    """Reference run of the original: structure, dynamic inputs, outputs saved for the comparisons."""
    job = {"mode": "reference", "model": str(models_dir / entry["path"]), "inputs": entry["inputs"],
           "reference": str(work / "reference.npz")}
    info = subprocess_run("evaluate.py", job, work, timeout)
    if not info["ok"]:
        raise RuntimeError(f"{entry['name']}: cannot run the original: {info['error']}")
    return info


def tool_job(tool: str, entry: dict[str, Any], model: Path, info: dict[str, Any],
             out: Path) -> dict[str, Any]:
    """The JOB.json of one (tool, model) run."""
    shapes = {i["name"]: i["shape"] for i in entry["inputs"]}
    external = info["external_data"] or info["size_bytes"] > EXTERNAL_BYTES
    return {"tool": tool, "model": str(model), "out": str(out), "external": external,
            "inputs": entry["inputs"],
            "dynamic_shapes": {n: shapes[n] for n in info["dynamic_inputs"] if n in shapes}}


def run_tool(tool: str, entry: dict[str, Any], info: dict[str, Any], args: argparse.Namespace,
             work: Path) -> dict[str, Any]:
    """Run one tool on one model, then score its output; one JSONL record."""
    model = args.models_dir / entry["path"]
    folder = work / tool
    out = folder / "out" / f"{entry['name']}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    ran = subprocess_run("tools.py", tool_job(tool, entry, model, info, out), folder, args.timeout)
    record: dict[str, Any] = {"type": "result", "model": entry["name"], "tool": tool,
                              "status": "ok" if ran["ok"] else ran.get("status", "error"),
                              "error": ran.get("error"), "traceback": ran.get("traceback"),
                              "input_nodes": info["nodes"], "input_nodes_nonconst": info["nodes_nonconst"],
                              "input_size_bytes": info["size_bytes"]}
    record |= {k: ran.get(k) for k in ("seconds", "wall_seconds", "peak_rss_bytes", "rss_before_bytes",
                                       "extra")}
    if ran["ok"]:
        job = {"mode": "compare", "model": str(out), "original": str(model), "inputs": entry["inputs"],
               "reference": str(work / "reference.npz")}
        scored = subprocess_run("evaluate.py", job, folder, args.timeout)
        if not scored.pop("ok"):
            record |= {"status": "error", "error": f"evaluation failed: {scored.get('error')}"}
        scored.pop("wall_seconds", None)
        record |= scored
    if not args.keep_outputs:
        shutil.rmtree(folder / "out", ignore_errors=True)
    return record


def meta_record(args: argparse.Namespace, tools_run: list[str]) -> dict[str, Any]:
    """Versions and machine facts that make a run reproducible."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    git = ["git", "-C", str(BENCH_DIR.parent)]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "graphopt", "passes"],
                           capture_output=True, text=True).stdout.splitlines()
    return {"type": "meta", "started": datetime.now().isoformat(timespec="seconds"), "argv": sys.argv,
            "python": sys.executable, "tools": tools_run, "timeout": args.timeout, "versions": versions,
            "graphopt_commit": commit, "graphopt_uncommitted_files": dirty, "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(), "platform": platform.platform()}


def progress(record: dict[str, Any]) -> str:
    """One console line per (model, tool)."""
    if record["status"] != "ok":
        error = str(record["error"]).splitlines()[0][:150]
        return f"  {record['tool']:17s} {record['status'].upper()}: {error}"
    numeric = record.get("numeric", {})
    return (f"  {record['tool']:17s} {record['seconds']:8.2f}s  nodes {record['input_nodes']:5d} -> "
            f"{record['nodes']:5d}  rss {record['peak_rss_bytes'] / 2**20:7.0f} MiB  "
            f"rel err {numeric.get('max_rel', float('nan')):.1e}  "
            f"{'ok' if numeric.get('within_tolerance') else 'MISMATCH'}"
            f"{'' if record['checker_error'] is None else '  CHECKER FAILED'}")


def main(argv: list[str] | None = None) -> int:
    """Run every selected tool on every selected model; write the JSONL and the report."""
    args = parse_args(argv)
    start = time.perf_counter()
    manifest = json.loads((args.models_dir / "manifest.json").read_text())["models"]
    names = pick([m["name"] for m in manifest], args.only, "model(s)")
    tools_run = pick(tools.tool_names(), args.tools, "tool(s)")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    jsonl, work_root = args.results / f"{stamp}.jsonl", args.results / f"work-{stamp}"
    records: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        records.append(record)
        with open(jsonl, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    emit(meta_record(args, tools_run))
    for entry in (m for m in manifest if m["name"] in names):
        print(f"{entry['name']}", flush=True)
        work = work_root / entry["name"]
        try:
            info = describe_model(entry, args.models_dir, work, args.timeout)
        except RuntimeError as exc:  # the original itself does not run: nothing to compare against
            emit({"type": "model", "model": entry["name"], "error": str(exc)})
            print(f"  SKIPPED: {exc}", flush=True)
            continue
        emit({"type": "model", "model": entry["name"]} | {k: v for k, v in info.items() if k != "ok"})
        for tool in tools_run:
            emit(run_tool(tool, entry, info, args, work))
            print(progress(records[-1]), flush=True)
    emit({"type": "end", "wall_seconds": time.perf_counter() - start})
    if not args.keep_outputs:
        shutil.rmtree(work_root, ignore_errors=True)
    md = report.write_report(records, args.results)
    print(f"\n{jsonl}\n{md}\nwall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

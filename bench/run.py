"""Benchmark runner: every tool on every corpus model, each run in a fresh subprocess with a timeout.

Usage: python bench/run.py [--only a,b] [--tools floor,onnxsim] [--models-dir DIR] [--timeout 600]
                           [--results DIR] [--keep-outputs] [--no-latency] [--no-scale] [--scale-sizes N,M]

Run it with the bench virtualenv (/work/venvs/bench/bin/python), where graphopt is installed in editable
mode. Tools run one after the other (never in parallel: timings and RSS would interfere). For each model:
the original is described and its outputs on the manifest feeds saved (bench/evaluate.py), then each tool
runs (bench/tools.py) and its output is scored (bench/evaluate.py, ORT latency included), each in its own
process; last, the original's latency is measured again (the noise). Then the synthetic chains of
bench/scale.py are timed. Writes RESULTS/<timestamp>.jsonl (one record per line: meta, model, result,
latency-again, scale, end) and RESULTS/report.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import report  # noqa: E402
import scale  # noqa: E402
import tools  # noqa: E402
from subproc import subprocess_run  # noqa: E402

SHM = Path("/dev/shm")
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
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep the optimized models in RESULTS/work-<timestamp>/ (otherwise the work "
                             "folder is in /dev/shm when it has room, and removed at the end)")
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True,
                        help="measure ORT latency of the original (twice) and of every tool's output")
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the synthetic residual chains of bench/scale.py")
    parser.add_argument("--scale-sizes", default=",".join(map(str, scale.SIZES)),
                        help="node counts of the synthetic chains")
    return parser.parse_args(argv)


def pick(names: list[str], wanted: str, what: str) -> list[str]:
    """Filter names by a comma-separated selection (in its order), failing clearly on unknown names."""
    chosen = [n.strip() for n in wanted.split(",") if n.strip()] or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from: {', '.join(names)}")
    return chosen


def describe_model(entry: dict[str, Any], models_dir: Path, work: Path, timeout: float,
                   latency: bool) -> dict[str, Any]:
    """Reference run of the original: structure, dynamic inputs, outputs saved for the comparisons."""
    job = {"mode": "reference", "model": str(models_dir / entry["path"]), "inputs": entry["inputs"],
           "reference": str(work / "reference.npz"), "latency": latency}
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
               "reference": str(work / "reference.npz"),
               "latency": args.latency and tool not in report.FLOORS}  # the original is timed twice instead
        scored = subprocess_run("evaluate.py", job, folder, args.timeout)
        if not scored.pop("ok"):
            record |= {"status": "error", "error": f"evaluation failed: {scored.get('error')}"}
        scored.pop("wall_seconds", None)
        record |= scored
    if not args.keep_outputs:
        shutil.rmtree(folder / "out", ignore_errors=True)
    return record


def latency_again(entry: dict[str, Any], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The original's latency measured a second time, after the tools: the latency noise."""
    job = {"mode": "latency", "model": str(args.models_dir / entry["path"]), "inputs": entry["inputs"]}
    ran = subprocess_run("evaluate.py", job, work / "original-again", args.timeout)
    return {"type": "latency-again", "model": entry["name"], "latency": ran.get("latency"),
            "error": None if ran["ok"] else ran.get("error")}


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
            f"{'' if record['checker_error'] is None else '  CHECKER FAILED'}"
            + "".join(f"  {level} {fmt_ms(lat.get('median_ms'))}"
                      for level, lat in (record.get("latency") or {}).items()))


def latency_line(first: dict[str, Any] | None, again: dict[str, Any] | None) -> str:
    """Console line: the original's median latency, both times, at both ORT levels."""
    def ms(lat: dict[str, Any] | None, level: str) -> str:
        return fmt_ms((lat or {}).get(level, {}).get("median_ms"))
    return "  original latency  " + "  ".join(f"{level} {ms(first, level)} / again {ms(again, level)}"
                                               for level in ("disabled", "enabled"))


def fmt_ms(value: float | None) -> str:
    """Milliseconds with 3 significant digits, or a dash."""
    return "-" if value is None else f"{value:.3g} ms"


def work_folder(args: argparse.Namespace, stamp: str, largest: int) -> Path:
    """Where jobs, logs and tool outputs go: RAM (/dev/shm) when it has room and outputs are not kept.

    Writing a 440 MB output to disk puts the kernel's writeback in the next tools' timings (the floor ran
    from 0.4 to 1.0 s on the same file); tmpfs takes that out and is the same for every tool.
    """
    if not args.keep_outputs and SHM.is_dir() and os.access(SHM, os.W_OK) \
            and shutil.disk_usage(SHM).free > 3 * largest + 2**30:
        return SHM / f"graphopt-bench-{stamp}"
    return args.results / f"work-{stamp}"


def run_models(manifest: list[dict[str, Any]], tools_run: list[str], args: argparse.Namespace,
               work_root: Path, emit: Callable[[dict[str, Any]], None]) -> None:
    """Every tool on every model: describe the original, run and score each tool, time the original again."""
    for entry in manifest:
        print(f"{entry['name']}", flush=True)
        work = work_root / entry["name"]
        try:
            info = describe_model(entry, args.models_dir, work, args.timeout, args.latency)
        except RuntimeError as exc:  # the original itself does not run: nothing to compare against
            emit({"type": "model", "model": entry["name"], "error": str(exc)})
            print(f"  SKIPPED: {exc}", flush=True)
            continue
        emit({"type": "model", "model": entry["name"], "loadavg": os.getloadavg()}
             | {k: v for k, v in info.items() if k != "ok"})
        for tool in tools_run:
            record = run_tool(tool, entry, info, args, work)
            emit(record)
            print(progress(record), flush=True)
        if args.latency:
            again = latency_again(entry, args, work)
            emit(again)
            print(latency_line(info.get("latency"), again["latency"]), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run every selected tool on every selected model, then the synthetic scale; write JSONL and report."""
    args = parse_args(argv)
    start = time.perf_counter()
    manifest = json.loads((args.models_dir / "manifest.json").read_text())["models"]
    names = pick([m["name"] for m in manifest], args.only, "model(s)")
    manifest = [m for m in manifest if m["name"] in names]
    tools_run = pick(tools.tool_names(), args.tools, "tool(s)")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    jsonl = args.results / f"{stamp}.jsonl"
    work_root = work_folder(args, stamp, max((m.get("size_bytes", 0) for m in manifest), default=0))
    records: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        records.append(record)
        with open(jsonl, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    emit(meta_record(args, tools_run) | {"work": str(work_root)})
    try:
        run_models(manifest, tools_run, args, work_root, emit)
        if args.scale:
            sizes = tuple(int(s) for s in args.scale_sizes.split(","))
            scale.run_scale(scale.BENCH_DIR / ".cache" / "scale", work_root / "scale", sizes, repeats=2,
                            timeout=min(args.timeout, 300.0), emit=emit)
    finally:
        if not args.keep_outputs:
            shutil.rmtree(work_root, ignore_errors=True)
    emit({"type": "end", "wall_seconds": time.perf_counter() - start, "loadavg": os.getloadavg()})
    md = report.write_report(records, args.results)
    print(f"\n{jsonl}\n{md}\nwall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation benchmark: how many deliberate bugs does graphopt's default check catch?

Usage: python bench/mutations.py [--models-dir /work/models] [--only a,b] [--results bench/results]

For every corpus model (bench/corpus.py's manifest) and every mutation of bench/mutation_passes.py:

- the mutation is *detectable* when, on the bench's realistic inputs (the manifest feeds), it moves some
  output by more than 1e-3 relative (max |mutated - original| / max |original|);
- it is *caught* when ``graphopt.optimize`` with default options (no input flags: the check chooses its
  own inputs) rolls the mutation pass back on a numeric check.

Also runs the default pipeline once per model: any pass the check rolls back there is a false alarm.
Writes RESULTS/mutations.json and RESULTS/mutations.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
import corpus  # noqa: E402
import mutation_passes  # noqa: E402

DETECTABLE = 1e-3  # relative output change on the bench inputs that makes a mutation detectable


def output_change(reference: dict[str, Any], actual: dict[str, Any]) -> float:
    """Largest relative change over all outputs (inf for a changed integer output or a shape change)."""
    worst = 0.0
    for name, ref in reference.items():
        got = actual.get(name)
        ref_array, got_array = np.asarray(ref), np.asarray(got)
        if got is None or ref_array.shape != got_array.shape:
            return float("inf")
        if ref_array.dtype.kind not in "fc":
            worst = max(worst, 0.0 if np.array_equal(ref_array, got_array) else float("inf"))
            continue
        a, b = ref_array.astype(np.float64), got_array.astype(np.float64)
        finite = np.isfinite(a) & np.isfinite(b)
        if not np.array_equal(np.isfinite(a), np.isfinite(b)):
            return float("inf")
        scale = float(np.max(np.abs(a[finite]))) if finite.any() else 0.0
        diff = float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else 0.0
        worst = max(worst, diff / scale if scale > 0 else (float("inf") if diff > 0 else 0.0))
    return worst


def step_text(name: str, options: dict[str, Any]) -> str:
    """Pipeline text of one mutation step."""
    return name + "{" + ",".join(f"{k}={v}" for k, v in options.items()) + "}"


def check_one(path: Path, feeds: dict[str, np.ndarray], reference: dict[str, Any], name: str,
              options: dict[str, Any]) -> dict[str, Any]:
    """Apply one mutation directly (is it applicable, detectable?) and through optimize (caught?)."""
    import graphopt
    from graphopt.errors import RuntimeCheckError
    from graphopt.numerics.run import run_model
    from graphopt.pass_infra.registry import DEFAULT_REGISTRY

    model = graphopt.load_model(str(path))
    if not DEFAULT_REGISTRY.create(name, options).run(model).changed:
        return {"step": step_text(name, options), "applicable": False}
    try:
        change = output_change(reference, run_model(model, feeds, what="mutated model"))
    except RuntimeCheckError:  # the mutation makes the model fail on the bench inputs: detectable
        change = float("inf")
    start = time.perf_counter()
    result = graphopt.optimize(str(path), pipeline=step_text(name, options))
    record = result.report.records[0]
    caught = record.status == "rolled-back" and record.cause == "check"
    return {"step": step_text(name, options), "applicable": True, "output_change": change,
            "detectable": change > DETECTABLE, "caught": caught, "status": record.status,
            "strength": record.checks.get("numeric", {}).get("strength"), "failure": record.failure,
            "seconds": time.perf_counter() - start}


def default_run(path: Path) -> dict[str, Any]:
    """The default pipeline with default options: check rollbacks are false alarms."""
    import graphopt

    start = time.perf_counter()
    graphopt.optimize(str(path), check="off")
    unchecked = time.perf_counter() - start
    start = time.perf_counter()
    result = graphopt.optimize(str(path))
    alarms = [f"{r.name}: {r.failure}" for r in result.report.rolled_back if r.cause == "check"]
    weak = [r.name for r in result.report.records if r.checks.get("numeric", {}).get("strength") == "weak"]
    return {"seconds": time.perf_counter() - start, "seconds_check_off": unchecked,
            "false_alarms": alarms, "weak_checks": weak,
            "check_inputs": result.check_inputs}


def _verdict(outcome: dict[str, Any]) -> str:
    if not outcome["applicable"]:
        return "n/a"
    kind = "detectable" if outcome["detectable"] else "hidden"
    return f"change {outcome['output_change']:.2e} {kind:<10} {'CAUGHT' if outcome['caught'] else 'missed'}"


def run(models_dir: Path, only: set[str] | None) -> list[dict[str, Any]]:
    """Every model of the manifest (or ``only``), every mutation."""
    from graphopt.numerics.run import run_model
    from graphopt.onnx_io import load_model
    from graphopt.pass_infra.registry import DEFAULT_REGISTRY

    DEFAULT_REGISTRY.load_plugin(str(BENCH_DIR / "mutation_passes.py"))
    manifest = corpus.load_manifest(models_dir / "manifest.json")
    rows = []
    for model_name, entry in manifest.items():
        if only and model_name not in only:
            continue
        path = models_dir / entry["path"]
        feeds = corpus.make_feeds([corpus.InputSpec.from_json(i) for i in entry["inputs"]])
        reference = run_model(load_model(str(path)), feeds, what="original model")
        row = {"model": model_name, "default": default_run(path), "mutations": []}
        for name, options in mutation_passes.mutation_steps():
            outcome = check_one(path, feeds, reference, name, options)
            row["mutations"].append(outcome)
            print(f"{model_name:<24} {outcome['step']:<48} {_verdict(outcome)}", flush=True)
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    """Markdown table: per model, detectable / caught / missed, false alarms."""
    lines = ["| model | mutations applied | detectable | caught (of detectable) | caught (not detectable) "
             "| false alarms (default pipeline) | weak checks | optimize s, check each / off |",
             "|---|---|---|---|---|---|---|---|"]
    totals = [0, 0, 0, 0, 0]
    for row in rows:
        applied = [m for m in row["mutations"] if m["applicable"]]
        detectable = [m for m in applied if m["detectable"]]
        caught = [m for m in detectable if m["caught"]]
        extra = [m for m in applied if m["caught"] and not m["detectable"]]
        alarms = row["default"]["false_alarms"]
        counts = [len(applied), len(detectable), len(caught), len(extra), len(alarms)]
        totals = [t + c for t, c in zip(totals, counts)]
        default = row["default"]
        lines.append(f"| {row['model']} | {counts[0]} | {counts[1]} | {counts[2]}/{counts[1]} | {counts[3]} "
                     f"| {counts[4]} | {len(default['weak_checks'])} | {default['seconds']:.1f} / "
                     f"{default['seconds_check_off']:.1f} |")
        for m in detectable:
            if not m["caught"]:
                lines.append(f"| &nbsp;&nbsp;missed: {m['step']} | | change {m['output_change']:.2e} | "
                             f"{m['status']} | | | | |")
    lines.append(f"| **total** | {totals[0]} | {totals[1]} | {totals[2]}/{totals[1]} | {totals[3]} "
                 f"| {totals[4]} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("/work/models"))
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    rows = run(args.models_dir, set(args.only.split(",")) if args.only else None)
    args.results.mkdir(parents=True, exist_ok=True)
    suffix = "" if not args.only else "-" + "-".join(sorted(args.only.split(",")))
    (args.results / f"mutations{suffix}.json").write_text(json.dumps(rows, indent=1, default=str))
    table = summary(rows)
    (args.results / f"mutations{suffix}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Every ONNX backend node-test model through ``graphopt.optimize`` with default options, as a new user
would run it: does the check find inputs the original runs, or say precisely why not?

Usage: python bench/backend_sweep.py [--results bench/results] [--only SUBSTRING]

Counts per outcome: checked (checks ran; the passes' checks ok/weak/unchanged), each exit code with its
reasons grouped by their first words, and internal errors (bugs). The generated inputs are graphopt's
own, never the test's data sets. Writes RESULTS/backend_sweep.json and RESULTS/backend_sweep.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
import backend_suite  # noqa: E402


def reason_key(message: str) -> str:
    """A message with names and numbers blanked, to group like failures."""
    text = re.sub(r"'[^']*'", "'…'", message.split(" [on every generated")[0])
    text = re.sub(r"\d+", "N", text)
    return text[:150]


def sweep_one(case: Any) -> dict[str, Any]:
    """Optimize one case's model with defaults; what happened."""
    import graphopt
    from graphopt.errors import GraphoptError

    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = graphopt.optimize(case.model)
    except GraphoptError as exc:
        return {"name": case.name, "exit": exc.exit_code, "reason": str(exc),
                "seconds": time.perf_counter() - start}
    except Exception as exc:  # noqa: BLE001 - a bug, counted and reported
        return {"name": case.name, "exit": 70, "reason": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - start}
    strengths = Counter(r.checks["numeric"].get("strength") for r in result.report.records
                        if r.checks.get("numeric"))
    rollbacks = [f"{r.name} ({r.cause}): {r.failure}" for r in result.report.rolled_back
                 if r.cause != "never-worse"]
    return {"name": case.name, "exit": 0, "strengths": dict(strengths), "rollbacks": rollbacks,
            "sets": (result.check_inputs or {}).get("sets", 0), "seconds": time.perf_counter() - start}


def summary(rows: list[dict[str, Any]]) -> str:
    """Markdown: counts by outcome, then grouped reasons."""
    exits = Counter(r["exit"] for r in rows)
    checked = [r for r in rows if r["exit"] == 0]
    weak = sum(1 for r in checked if r["strengths"].get("weak"))
    rolled = [r for r in checked if r["rollbacks"]]
    lines = [f"{len(rows)} models; checked (exit 0): {exits.get(0, 0)}, of which with a weak pass check: "
             f"{weak}, with a pass rolled back by a check/verifier/exception: {len(rolled)}",
             "", "| exit | models |", "|---|---|"]
    lines += [f"| {code} | {count} |" for code, count in sorted(exits.items())]
    for code in sorted(c for c in exits if c != 0):
        lines += ["", f"exit {code}, by reason:", ""]
        reasons = Counter(reason_key(r["reason"]) for r in rows if r["exit"] == code)
        for reason, count in reasons.most_common():
            names = [r["name"] for r in rows if r["exit"] == code and reason_key(r["reason"]) == reason]
            lines.append(f"- {count} x {reason} (e.g. {', '.join(names[:3])})")
    if rolled:
        lines += ["", "rolled back:", ""]
        lines += [f"- {r['name']}: {'; '.join(r['rollbacks'])[:200]}" for r in rolled]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and write its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--only", help="only cases whose name contains this")
    args = parser.parse_args(argv)
    cases = [c for c in backend_suite.all_cases() if not args.only or args.only in c.name]
    rows = []
    for i, case in enumerate(cases):
        rows.append(sweep_one(case))
        if rows[-1]["exit"] != 0:
            print(f"[{i + 1}/{len(cases)}] {case.name}: exit {rows[-1]['exit']}: {rows[-1]['reason'][:160]}",
                  flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "backend_sweep.json").write_text(json.dumps(rows, indent=1))
    table = summary(rows)
    (args.results / "backend_sweep.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Human-readable tables and the JSON report of an optimize run."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from graphopt.api import OptimizeResult


def format_bytes(n: float) -> str:
    """``1.5 MB`` style sizes."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def op_table(before: Counter, after: Counter) -> str:
    """Node count per op type before and after, largest first, with totals."""
    ops = sorted(set(before) | set(after), key=lambda op: (-before.get(op, 0), op))
    width = max([len(op) for op in ops] + [8])
    lines = [f"{'op type':<{width}}  {'before':>7}  {'after':>7}"]
    for op in ops:
        b, a = before.get(op, 0), after.get(op, 0)
        mark = "" if a == b else "  *"
        lines.append(f"{op:<{width}}  {b:>7}  {a:>7}{mark}")
    lines.append(f"{'total':<{width}}  {sum(before.values()):>7}  {sum(after.values()):>7}")
    return "\n".join(lines)


def pass_table(result: OptimizeResult) -> str:
    """One line per pass run: status, time, node and byte deltas, numeric check."""
    lines = [f"{'pass':<24} {'status':<12} {'time':>8} {'nodes':>13} {'weights Δ':>11}  check"]
    for rec in result.report.records:
        check = rec.checks.get("numeric")
        check_text = "-" if not check else (
            f"ok (rel {check['max_rel']:.1e})" if check.get("ok") else "FAILED")
        nodes = f"{rec.nodes_before}->{rec.nodes_after}"
        delta = format_bytes(rec.bytes_after - rec.bytes_before) if rec.bytes_after != rec.bytes_before \
            else "0"
        lines.append(f"{rec.name:<24} {rec.status:<12} {rec.seconds * 1000:>6.0f}ms {nodes:>13} "
                     f"{delta:>11}  {check_text}")
        if rec.failure:
            lines.append(f"    ! {rec.failure}")
    return "\n".join(lines)


def json_report(result: OptimizeResult, extra: dict[str, Any]) -> str:
    """The full machine-readable report."""
    data = {
        **extra,
        "pipeline": result.report.pipeline,
        "check": result.check_mode,
        "check_sessions": result.check_sessions,
        "final_check": result.final_check,
        "warnings": result.report.warnings,
        "nodes_before": sum(result.ops_before.values()),
        "nodes_after": sum(result.ops_after.values()),
        "ops_before": dict(sorted(result.ops_before.items())),
        "ops_after": dict(sorted(result.ops_after.items())),
        "passes": [r.as_dict() for r in result.report.records],
    }
    return json.dumps(data, indent=2, sort_keys=False, default=str)

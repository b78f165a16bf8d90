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
    width = max([24, *(len(rec.name) for rec in result.report.records)])
    lines = [f"{'pass':<{width}} {'status':<12} {'time':>8} {'nodes':>13} {'weights Δ':>11}  check"]
    for rec in result.report.records:
        check_text = check_text_of(rec.checks.get("numeric"))
        nodes = f"{rec.nodes_before}->{rec.nodes_after}"
        delta = format_bytes(rec.bytes_after - rec.bytes_before) if rec.bytes_after != rec.bytes_before \
            else "0"
        lines.append(f"{rec.name:<{width}} {rec.status:<12} {rec.seconds * 1000:>6.0f}ms {nodes:>13} "
                     f"{delta:>11}  {check_text}")
        if rec.failure:
            lines.append(f"    ! {rec.failure}")
    return "\n".join(lines)


def check_text_of(check: dict[str, Any] | None) -> str:
    """``ok (rel 3.1e-07, 41 tensors)``, ``weak (...)``, ``unchanged`` or ``FAILED`` for a check record."""
    if not check:
        return "-"
    strength = check.get("strength", "ok" if check.get("ok") else "failed")
    if strength == "failed" or not check.get("ok", True):
        first = check.get("first_diverging")
        return f"FAILED at {first!r}" if first else "FAILED"
    if strength == "unchanged":
        return "unchanged (no numeric change)"
    tensors = check.get("compared", 0)
    detail = f"rel {check.get('max_rel', 0.0):.1e}" + (f", {tensors} tensors" if tensors else "")
    if "drift" in check:
        detail = f"drift {check.get('max_rel', 0.0):.1e} <= budget {check['drift']['budget']['rtol']:.0e}"
    if strength == "weak":
        return f"weak ({detail}; {check.get('unproven_nodes', 0)} changed nodes unproven)"
    return f"ok ({detail})"


def check_inputs_text(described: dict[str, Any]) -> str:
    """The check inputs, one line each, and what made the reference weak (if anything)."""
    sets = described.get("sets", 1)
    lines = [f"check inputs ({sets} set{'s' if sets != 1 else ''}, chosen in {described.get('trials', 0)} "
             "trial run(s) of the original):"]
    lines += [f"  {name}: {note}" for name, note in described.get("inputs", {}).items()]
    for number, differing in enumerate(described.get("other_sets", []), start=2):
        same = "" if differing else " same as set 1 but for the random values"
        lines.append(f"  set {number}:{same} " + "; ".join(f"{k}: {v}" for k, v in differing.items()))
    for output, why in described.get("weak_outputs", {}).items():
        lines.append(f"  weak output {output!r}: {why}")
    for skipped in described.get("skipped_sets", []):
        lines.append(f"  skipped {skipped}")
    return "\n".join(lines)


def precision_text(result: OptimizeResult) -> str | None:
    """What convert-precision did: nodes lowered and kept, Casts, drift per output against the budget,
    and the intermediates where it grows most (None when it did not run or was rolled back)."""
    rec = next((r for r in reversed(result.report.records) if r.name == "convert-precision"
                and r.status == "changed"), None)
    if rec is None:
        return None
    stats, drift = rec.stats, rec.checks.get("numeric", {}).get("drift", {})
    kept = ", ".join(f"{k[5:].replace('_', ' ')} {int(v)}" for k, v in sorted(stats.items())
                     if k.startswith("kept_") and k != "kept_fp32")
    count = {k: int(stats.get(k, 0)) for k in ("nodes_lowered", "kept_fp32", "casts", "flushed_to_zero")}
    lines = [f"precision: {count['nodes_lowered']} nodes lowered, {count['kept_fp32']} "
             f"kept float32{f' ({kept})' if kept else ''}, {count['casts']} Casts, "
             f"{count['flushed_to_zero']} weights flushed to zero"]
    if drift:
        budget = drift["budget"]["rtol"]
        outputs = ", ".join(f"{name} {rel:.1e}" for name, rel in drift["outputs"].items())
        lines.append(f"  drift per output (budget {budget:.0e} of its magnitude): {outputs}")
        hot = ", ".join(f"{h['tensor']} {h['max_rel']:.1e}" for h in drift["hottest_intermediates"])
        if hot:
            lines.append(f"  largest drift inside: {hot}")
    return "\n".join(lines)


def rule_stats(result: OptimizeResult) -> dict[str, dict[str, Any]]:
    """Per-rule statistics summed over every kept run of every rule-based pass, keyed ``pass/rule``.

    Runs that were rolled back are left out: their matches did not survive.
    """
    total: dict[str, dict[str, Any]] = {}
    for rec in result.report.records:
        if rec.status == "rolled-back":
            continue
        for rule, st in rec.rules.items():
            acc = total.setdefault(f"{rec.name}/{rule}", {"attempts": 0, "matches": 0,
                                                         "rejections": Counter(), "seconds": 0.0})
            acc["attempts"] += st["attempts"]
            acc["matches"] += st["matches"]
            acc["rejections"].update(st["rejections"])
            acc["seconds"] += st["seconds"]
    return {k: {**v, "rejections": dict(sorted(v["rejections"].items()))} for k, v in sorted(total.items())}


def rule_table(result: OptimizeResult) -> str:
    """``--stats``: one line per rule whose root op occurred (attempts, matches, time) and one per
    rejection reason."""
    lines = [f"{'rule':<48} {'attempts':>8} {'matches':>8} {'time':>8}"]
    for name, st in rule_stats(result).items():
        if not st["attempts"]:
            continue
        lines.append(f"{name:<48} {st['attempts']:>8} {st['matches']:>8} {st['seconds'] * 1000:>6.1f}ms")
        for reason, count in st["rejections"].items():
            lines.append(f"    rejected {count:>5}x  {reason}")
    return "\n".join(lines)


def json_report(result: OptimizeResult, extra: dict[str, Any]) -> str:
    """The full machine-readable report."""
    data = {
        **extra,
        "pipeline": result.report.pipeline,
        "check": result.check_mode,
        "check_sessions": result.check_sessions,
        "final_check": result.final_check,
        "check_inputs": result.check_inputs,
        "warnings": result.report.warnings,
        "nodes_before": sum(result.ops_before.values()),
        "nodes_after": sum(result.ops_after.values()),
        "ops_before": dict(sorted(result.ops_before.items())),
        "ops_after": dict(sorted(result.ops_after.items())),
        "passes": [r.as_dict() for r in result.report.records],
        "rules": rule_stats(result),
    }
    return json.dumps(data, indent=2, sort_keys=False, default=str)

"""Benchmark report: per-model tables and a summary from the runner's JSON lines.

Usage: python bench/report.py RESULTS/<timestamp>.jsonl [--out DIR]   (writes DIR/report.md and report.json)

Definitions:
- time/floor: the tool's load+optimize+save seconds over the best of ``floor`` and ``floor-again``
  (onnx.load + onnx.save of the same file): how many plain round trips of the file the tool costs.
- RSS/file: the worker's peak resident set (interpreter and imports included) over the original's size.
- rel err: max |output - original| / max |original| over all outputs (ORT CPU, no graph optimisations).
- best peer: fewest nodes among the non-graphopt tools whose output is within tolerance, passes
  onnx.checker and adds no non-standard domain (so ORT's com.microsoft fusions do not count).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

GRAPHOPT = ("graphopt-nocheck", "graphopt-check")
FLOORS = ("floor", "floor-again")
NOT_PEERS = (*GRAPHOPT, *FLOORS)


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a run."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def geomean(values: list[float]) -> float | None:
    """Geometric mean of positive values (None when empty)."""
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def by_model(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Result records as {model: {tool: record}}, in run order."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in records:
        if rec["type"] == "result":
            table.setdefault(rec["model"], {})[rec["tool"]] = rec
    return table


def floor_seconds(tools: dict[str, dict[str, Any]]) -> float | None:
    """Best of the floor runs of one model."""
    times = [tools[t]["seconds"] for t in FLOORS if t in tools and tools[t]["status"] == "ok"]
    return min(times) if times else None


def sound(rec: dict[str, Any]) -> bool:
    """Succeeded, numerically equal, valid for onnx.checker, no new domain."""
    return (rec["status"] == "ok" and rec.get("numeric", {}).get("within_tolerance", False)
            and rec.get("checker_error") is None and not rec.get("domains_added"))


def row(rec: dict[str, Any], floor: float | None) -> dict[str, Any]:
    """The compact per-(model, tool) numbers that go into report.json and the tables."""
    ok = rec["status"] == "ok"
    numeric = rec.get("numeric", {})
    peak = rec.get("peak_rss_bytes")
    return {
        "status": rec["status"], "error": rec.get("error"),
        "nodes": rec.get("nodes"), "nodes_ratio": rec["nodes"] / rec["input_nodes"] if ok else None,
        "nodes_nonconst": rec.get("nodes_nonconst"),
        "seconds": rec.get("seconds"), "time_per_floor": rec["seconds"] / floor if ok and floor else None,
        "peak_rss_bytes": rec.get("peak_rss_bytes"),
        "rss_growth_bytes": peak - rec["rss_before_bytes"] if peak else None,
        "rss_per_file": peak / rec["input_size_bytes"] if peak else None,
        "size_bytes": rec.get("size_bytes"), "max_abs_err": numeric.get("max_abs"),
        "max_rel_err": numeric.get("max_rel"), "shapes_equal": numeric.get("shapes_equal"),
        "within_tolerance": numeric.get("within_tolerance"), "numeric_error": numeric.get("error"),
        "checker_ok": rec.get("checker_error") is None if ok else None,
        "checker_error": rec.get("checker_error"),
        "domains_added": rec.get("domains_added"),
        "rolled_back": (rec.get("extra") or {}).get("rolled_back"),
    }


def best_peer(tools: dict[str, dict[str, Any]]) -> str | None:
    """The sound peer with the fewest nodes (ties: fewest non-Constant nodes, then name)."""
    peers = [(rec["nodes"], rec["nodes_nonconst"], name) for name, rec in tools.items()
             if name not in NOT_PEERS and sound(rec)]
    return min(peers)[2] if peers else None


def nodes_of(rec: dict[str, Any] | None) -> list[int] | None:
    """[nodes, non-Constant nodes] of a successful run."""
    return [rec["nodes"], rec["nodes_nonconst"]] if rec and rec["status"] == "ok" else None


def summarize(table: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Geometric means per tool and graphopt against the best peer, model by model."""
    per_tool: dict[str, dict[str, Any]] = {}
    for tool in dict.fromkeys(t for tools in table.values() for t in tools):
        rows = [row(tools[tool], floor_seconds(tools)) for tools in table.values() if tool in tools]
        ok = [r for r in rows if r["status"] == "ok"]
        per_tool[tool] = {"models": len(rows), "ok": len(ok),
                          "geomean_time_per_floor": geomean([r["time_per_floor"] for r in ok]),
                          "geomean_nodes_ratio": geomean([r["nodes_ratio"] for r in ok]),
                          "mismatches": sum(not r["within_tolerance"] for r in ok),
                          "checker_failures": sum(not r["checker_ok"] for r in ok)}
    versus = {}
    for model, tools in table.items():
        peer = best_peer(tools)
        first = next(iter(tools.values()))
        versus[model] = {"original": [first["input_nodes"], first["input_nodes_nonconst"]],
                         "best_peer": peer, "best_peer_nodes": nodes_of(tools.get(peer or ""))}
        versus[model] |= {tool: nodes_of(tools.get(tool)) for tool in GRAPHOPT}
    return {"per_tool": per_tool, "graphopt_vs_best_peer": versus}


def fmt(value: Any, spec: str, empty: str = "-") -> str:
    """Format a number, or a dash when missing."""
    return empty if value is None else format(value, spec)


def pair(nodes: list[int] | None) -> str:
    """'nodes (non-Constant)' or a dash."""
    return f"{nodes[0]} ({nodes[1]})" if nodes else "-"


def tool_line(tool: str, r: dict[str, Any]) -> str:
    """One markdown row of a per-model table."""
    if r["status"] != "ok":
        return f"| {tool} | **{r['status']}** | | | | | | | | | | {str(r['error']).splitlines()[0][:80]} |"
    numeric = fmt(r["max_rel_err"], ".1e") + ("" if r["within_tolerance"] else " **MISMATCH**")
    notes = [f"adds {', '.join(r['domains_added'])}"] if r["domains_added"] else []
    notes += [f"rolled back: {', '.join(x['pass'] for x in r['rolled_back'])}"] if r["rolled_back"] else []
    notes += [f"checker: {r['checker_error'][:60]}"] if r["checker_error"] else []
    return (f"| {tool} | ok | {r['nodes']} ({r['nodes_ratio']:.2f}) | {r['nodes_nonconst']} | "
            f"{r['seconds']:.2f} | {fmt(r['time_per_floor'], '.1f')} | {r['peak_rss_bytes'] / 2**20:.0f} | "
            f"{r['rss_growth_bytes'] / 2**20:.0f} | {r['rss_per_file']:.1f} | "
            f"{r['size_bytes'] / 1e6:.1f} | {numeric} | {'yes' if r['checker_ok'] else '**no**'} "
            f"{'; '.join(notes)} |")


def model_section(model: str, tools: dict[str, dict[str, Any]], info: dict[str, Any]) -> list[str]:
    """Markdown table of every tool on one model."""
    floor = floor_seconds(tools)
    runs = ", ".join(f"{t} {tools[t]['seconds']:.3f} s" for t in FLOORS if tools.get(t, {}).get("seconds"))
    lines = [f"### {model}", "", f"{info.get('nodes')} nodes, {info.get('size_bytes', 0) / 1e6:.1f} MB; "
             f"{runs or 'no floor run'}", "",
             "| tool | status | nodes (/orig) | non-Constant | time s | time/floor | peak RSS MiB | "
             "RSS growth MiB | RSS/file | size MB | max rel err | checker / notes |", "|---" * 12 + "|"]
    return lines + [tool_line(tool, row(rec, floor)) for tool, rec in tools.items()] + [""]


def summary_section(summary: dict[str, Any]) -> list[str]:
    """Markdown summary: geometric means per tool, then graphopt against the best peer."""
    lines = ["## Summary", "",
             "| tool | ok/models | geomean time/floor | geomean nodes/original | numeric mismatches | "
             "checker failures |", "|---" * 6 + "|"]
    for tool, t in summary["per_tool"].items():
        lines.append(f"| {tool} | {t['ok']}/{t['models']} | {fmt(t['geomean_time_per_floor'], '.2f')} "
                     f"| {fmt(t['geomean_nodes_ratio'], '.3f')} | {t['mismatches']} "
                     f"| {t['checker_failures']} |")
    lines += ["", "Nodes include subgraphs; (in parentheses) without Constant nodes.", "",
              "| model | original | graphopt-nocheck | graphopt-check | best peer | peer nodes | "
              "graphopt - peer |", "|---|---|---|---|---|---|---|"]
    for model, v in summary["graphopt_vs_best_peer"].items():
        ours, peer = v["graphopt-nocheck"], v["best_peer_nodes"]
        delta = f"{ours[0] - peer[0]:+d} ({ours[1] - peer[1]:+d})" if ours and peer else "-"
        lines.append(f"| {model} | {pair(v['original'])} | {pair(ours)} | {pair(v['graphopt-check'])} | "
                     f"{v['best_peer'] or '-'} | {pair(peer)} | {delta} |")
    return lines + [""]


def anomalies(table: dict[str, dict[str, dict[str, Any]]], infos: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown bullets for every failure, mismatch, checker error, new domain and rolled-back pass."""
    found = [f"- {model}: **skipped**: {info['error']}" for model, info in infos.items() if "error" in info]
    for model, tools in table.items():
        for tool, rec in tools.items():
            r, where = row(rec, None), f"{model} / {tool}"
            if r["status"] != "ok":
                found.append(f"- {where}: **{r['status']}**: {str(r['error']).splitlines()[0][:300]}")
                continue
            if not r["within_tolerance"]:
                found.append(f"- {where}: numeric mismatch: max abs {fmt(r['max_abs_err'], '.3g')}, max rel "
                             f"{fmt(r['max_rel_err'], '.3g')}, shapes equal {r['shapes_equal']}"
                             + (f", {r['numeric_error'][:200]}" if r["numeric_error"] else ""))
            if not r["checker_ok"]:
                found.append(f"- {where}: onnx.checker: {r['checker_error'][:300]}")
            if r["domains_added"]:
                found.append(f"- {where}: adds ops of {', '.join(r['domains_added'])}")
            for back in r["rolled_back"] or []:
                found.append(f"- {where}: rolled back `{back['pass']}`: {str(back['failure'])[:300]}")
    return ["## Anomalies", "", *(found or ["none"]), ""]


def write_report(records: list[dict[str, Any]], out_dir: Path) -> Path:
    """Write report.md and report.json into out_dir; return the markdown path."""
    meta = next((r for r in records if r["type"] == "meta"), {})
    end = next((r for r in records if r["type"] == "end"), {})
    infos = {r["model"]: r for r in records if r["type"] == "model"}
    table = by_model(records)
    summary = summarize(table)
    lines = ["# graphopt benchmark", "",
             f"started {meta.get('started')}, wall time {fmt(end.get('wall_seconds'), '.0f')} s, "
             f"{meta.get('cpus')} CPUs, load average at start {meta.get('loadavg')}", "",
             f"graphopt {meta.get('graphopt_commit', '')[:10]} "
             f"(+{len(meta.get('graphopt_uncommitted_files', []))} uncommitted files in graphopt/, passes/); "
             + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items() if k != "graphopt"), "",
             *summary_section(summary), *anomalies(table, infos), "## Per model", ""]
    for model, tools in table.items():
        lines += model_section(model, tools, infos.get(model, {}))
    md = out_dir / "report.md"
    md.write_text("\n".join(lines) + "\n")
    rows = {m: {t: row(rec, floor_seconds(tools)) for t, rec in tools.items()} for m, tools in table.items()}
    (out_dir / "report.json").write_text(json.dumps({"meta": meta, "end": end, "summary": summary,
                                                     "models": rows}, indent=1, default=str))
    return md


def main(argv: list[str] | None = None) -> int:
    """Rebuild the report of a finished (or interrupted) run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="folder (default: the JSONL's)")
    args = parser.parse_args(argv)
    print(write_report(load_jsonl(args.jsonl), args.out or args.jsonl.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark report: per-model tables and a summary from the runner's JSON lines.

Usage: python bench/report.py RESULTS/<timestamp>.jsonl [--out DIR]   (writes DIR/report.md and report.json)

Definitions:
- time/floor: the tool's load+optimize+save seconds over the best of ``floor`` and ``floor-again``
  (onnx.load + onnx.save of the same file): how many plain round trips of the file the tool costs.
- RSS/file: the worker's peak resident set (interpreter and imports included) over the original's size.
- rel err: max |output - original| / max |original| over all outputs (ORT CPU, no graph optimisations).
- best peer: fewest nodes among the non-graphopt tools whose output is within tolerance, passes
  onnx.checker and adds no op of a non-standard domain (so ORT's com.microsoft fusions do not count,
  even in a model that already used other com.microsoft ops).
- nodes/best peer: a tool's nodes over the best peer's on the same model.
- latency/original: median ORT CPU latency (1 thread) of the tool's output over the original's, at
  ORT_DISABLE_ALL ("off") and ORT_ENABLE_ALL ("on"); the original's is the better of its two measurements.
  report.json also has the same ratio of the fastest runs (``latency_*_min_ratio``), which a busy
  neighbour on the machine disturbs far less than the median.

The noise, targets and synthetic-scale sections come from bench/report_targets.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import report_targets
from report_targets import geomean

GRAPHOPT = ("graphopt-nocheck", "graphopt-check")
FLOORS = ("floor", "floor-again")
NOT_PEERS = (*GRAPHOPT, *FLOORS)
LEVELS = ("disabled", "enabled")


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """All records of a run."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


def latency_ms(latency: dict[str, Any] | None, level: str, stat: str = "median_ms") -> float | None:
    """One statistic of one ORT level from a latency dict, None if it was not measured or failed."""
    return ((latency or {}).get(level) or {}).get(stat)


def original_latency(first: dict[str, Any] | None, again: dict[str, Any] | None,
                     stat: str = "median_ms") -> dict[str, float | None]:
    """The original's latency per level: the better of its two measurements (like the floor's best run)."""
    out: dict[str, float | None] = {}
    for level in LEVELS:
        times = [t for t in (latency_ms(first, level, stat), latency_ms(again, level, stat)) if t]
        out[level] = min(times) if times else None
    return out


def sound(rec: dict[str, Any]) -> bool:
    """Succeeded, numerically equal, valid for onnx.checker, no new domain or custom op."""
    return (rec["status"] == "ok" and rec.get("numeric", {}).get("within_tolerance", False)
            and rec.get("checker_error") is None and not rec.get("domains_added")
            and not rec.get("custom_ops_added"))


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    return a / b if a is not None and b else None


def row(rec: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """The compact per-(model, tool) numbers that go into report.json and the tables.

    ``ctx`` is the model's context (``context``): floor seconds, original latency, best peer nodes.
    """
    ok = rec["status"] == "ok"
    numeric = rec.get("numeric", {})
    peak = rec.get("peak_rss_bytes")
    out = {
        "status": rec["status"], "error": rec.get("error"),
        "nodes": rec.get("nodes"), "nodes_ratio": rec["nodes"] / rec["input_nodes"] if ok else None,
        "nodes_per_best_peer": ratio(rec.get("nodes"), ctx.get("best_peer_nodes")) if ok else None,
        "nodes_nonconst": rec.get("nodes_nonconst"),
        "seconds": rec.get("seconds"),
        "time_per_floor": ratio(rec["seconds"], ctx.get("floor")) if ok else None,
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
        "latency_errors": {lv: v["error"] for lv, v in (rec.get("latency") or {}).items() if "error" in v},
    }
    for level in LEVELS:  # the min is reported too: it moves far less when the machine is shared
        ms, fastest = latency_ms(rec.get("latency"), level), latency_ms(rec.get("latency"), level, "min_ms")
        out[f"latency_{level}_ms"] = ms
        out[f"latency_{level}_ratio"] = ratio(ms, ctx.get("original_latency", {}).get(level))
        out[f"latency_{level}_min_ratio"] = ratio(fastest, ctx.get("original_latency_min", {}).get(level))
    return out


def best_peer(tools: dict[str, dict[str, Any]]) -> str | None:
    """The sound peer with the fewest nodes (ties: fewest non-Constant nodes, then name)."""
    peers = [(rec["nodes"], rec["nodes_nonconst"], name) for name, rec in tools.items()
             if name not in NOT_PEERS and sound(rec)]
    return min(peers)[2] if peers else None


def context(tools: dict[str, dict[str, Any]], info: dict[str, Any], again: dict[str, Any] | None) -> dict:
    """Per-model numbers every row is divided by: floor seconds, original latency, best peer nodes."""
    peer = best_peer(tools)
    return {"floor": floor_seconds(tools), "best_peer": peer,
            "best_peer_nodes": tools[peer]["nodes"] if peer else None,
            "original_latency": original_latency(info.get("latency"), (again or {}).get("latency")),
            "original_latency_min": original_latency(info.get("latency"), (again or {}).get("latency"),
                                                     "min_ms")}


def nodes_of(rec: dict[str, Any] | None) -> list[int] | None:
    """[nodes, non-Constant nodes] of a successful run."""
    return [rec["nodes"], rec["nodes_nonconst"]] if rec and rec["status"] == "ok" else None


def summarize(table: dict[str, dict[str, dict[str, Any]]], rows: dict[str, dict[str, dict[str, Any]]],
              contexts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Geometric means per tool and graphopt against the best peer, model by model."""
    per_tool: dict[str, dict[str, Any]] = {}
    for tool in dict.fromkeys(t for tools in table.values() for t in tools):
        tool_rows = [r[tool] for r in rows.values() if tool in r]
        ok = [r for r in tool_rows if r["status"] == "ok"]
        per_tool[tool] = {"models": len(tool_rows), "ok": len(ok),
                          "mismatches": sum(not r["within_tolerance"] for r in ok),
                          "checker_failures": sum(not r["checker_ok"] for r in ok)}
        for key in ("time_per_floor", "nodes_ratio", "nodes_per_best_peer", "latency_disabled_ratio",
                    "latency_enabled_ratio", "latency_disabled_min_ratio", "latency_enabled_min_ratio",
                    "rss_per_file"):
            per_tool[tool][f"geomean_{key}"] = geomean([r[key] for r in ok])
    versus = {}
    for model, tools in table.items():
        peer = contexts[model]["best_peer"]
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


def latency_cell(r: dict[str, Any], level: str) -> str:
    """'12.3 (0.97)': median ms and ratio to the original, or a dash."""
    if r[f"latency_{level}_ms"] is None:
        return "**error**" if level in r["latency_errors"] else "-"
    return f"{r[f'latency_{level}_ms']:.3g} ({fmt(r[f'latency_{level}_ratio'], '.2f')})"


def tool_line(tool: str, r: dict[str, Any]) -> str:
    """One markdown row of a per-model table."""
    if r["status"] != "ok":
        return f"| {tool} | **{r['status']}** |" + " |" * 11 + f" {str(r['error']).splitlines()[0][:80]} |"
    numeric = fmt(r["max_rel_err"], ".1e") + ("" if r["within_tolerance"] else " **MISMATCH**")
    notes = [f"adds {', '.join(r['domains_added'])}"] if r["domains_added"] else []
    notes += [f"rolled back: {', '.join(x['pass'] for x in r['rolled_back'])}"] if r["rolled_back"] else []
    notes += [f"checker: {r['checker_error'][:60]}"] if r["checker_error"] else []
    notes += [f"latency {lv}: {e[:60]}" for lv, e in r["latency_errors"].items()]
    return (f"| {tool} | ok | {r['nodes']} ({r['nodes_ratio']:.2f}) | {r['nodes_nonconst']} | "
            f"{r['seconds']:.2f} | {fmt(r['time_per_floor'], '.1f')} | {r['peak_rss_bytes'] / 2**20:.0f} | "
            f"{r['rss_growth_bytes'] / 2**20:.0f} | {r['rss_per_file']:.1f} | "
            f"{r['size_bytes'] / 1e6:.1f} | {numeric} | {latency_cell(r, 'disabled')} | "
            f"{latency_cell(r, 'enabled')} | {'yes' if r['checker_ok'] else '**no**'} {'; '.join(notes)} |")


def model_section(model: str, tools: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]],
                  info: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    """Markdown table of every tool on one model."""
    runs = ", ".join(f"{t} {tools[t]['seconds']:.3f} s" for t in FLOORS if tools.get(t, {}).get("seconds"))
    base = ctx["original_latency"]
    lines = [f"### {model}", "", f"{info.get('nodes')} nodes, {info.get('size_bytes', 0) / 1e6:.1f} MB; "
             f"{runs or 'no floor run'}; original latency {fmt(base['disabled'], '.3g')} ms off, "
             f"{fmt(base['enabled'], '.3g')} ms on", "",
             "| tool | status | nodes (/orig) | non-Constant | time s | time/floor | peak RSS MiB | "
             "RSS growth MiB | RSS/file | size MB | max rel err | latency off ms (/orig) | "
             "latency on ms (/orig) | checker / notes |", "|---" * 14 + "|"]
    return lines + [tool_line(tool, rows[tool]) for tool in tools] + [""]


def summary_section(summary: dict[str, Any]) -> list[str]:
    """Markdown summary: geometric means per tool, then graphopt against the best peer."""
    lines = ["## Summary", "", "Geometric means over the models a tool succeeded on.", "",
             "| tool | ok/models | time/floor | nodes/original | nodes/best peer | latency/original off | "
             "latency/original on | RSS/file | numeric mismatches | checker failures |", "|---" * 10 + "|"]
    for tool, t in summary["per_tool"].items():
        cells = [fmt(t[f"geomean_{k}"], spec) for k, spec in (
            ("time_per_floor", ".2f"), ("nodes_ratio", ".3f"), ("nodes_per_best_peer", ".3f"),
            ("latency_disabled_ratio", ".3f"), ("latency_enabled_ratio", ".3f"), ("rss_per_file", ".1f"))]
        lines.append(f"| {tool} | {t['ok']}/{t['models']} | {' | '.join(cells)} | {t['mismatches']} "
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


def anomalies(rows: dict[str, dict[str, dict[str, Any]]], infos: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown bullets for every failure, mismatch, checker error, new domain and rolled-back pass."""
    found = [f"- {model}: **skipped**: {info['error']}" for model, info in infos.items() if "error" in info]
    for model, tools in rows.items():
        for tool, r in tools.items():
            where = f"{model} / {tool}"
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
            for level, error in r["latency_errors"].items():
                found.append(f"- {where}: ORT latency ({level}) failed: {error[:300]}")
    return ["## Anomalies", "", *(found or ["none"]), ""]


def header(meta: dict[str, Any], end: dict[str, Any]) -> list[str]:
    """Title, run facts and versions."""
    return ["# graphopt benchmark", "",
            f"started {meta.get('started')}, wall time {fmt(end.get('wall_seconds'), '.0f')} s, "
            f"{meta.get('cpus')} CPUs, load average at start {fmt_load(meta.get('loadavg'))}, "
            f"at end {fmt_load(end.get('loadavg'))}", "",
            f"graphopt {meta.get('graphopt_commit', '')[:10]} "
            f"(+{len(meta.get('graphopt_uncommitted_files', []))} uncommitted files in graphopt/, passes/); "
            + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items() if k != "graphopt"), ""]


def fmt_load(load: list[float] | None) -> str:
    """'1.04 0.39 0.53' (1, 5, 15 minutes) or a dash."""
    return " ".join(f"{x:.2f}" for x in load) if load else "-"


def build(records: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The markdown lines and the JSON document of a run."""
    meta = next((r for r in records if r["type"] == "meta"), {})
    end = next((r for r in records if r["type"] == "end"), {})
    infos = {r["model"]: r for r in records if r["type"] == "model"}
    again = {r["model"]: r for r in records if r["type"] == "latency-again"}
    table = by_model(records)
    contexts = {m: context(tools, infos.get(m, {}), again.get(m)) for m, tools in table.items()}
    rows = {m: {t: row(rec, contexts[m]) for t, rec in tools.items()} for m, tools in table.items()}
    summary = summarize(table, rows, contexts)
    noise = report_targets.noise(table, infos, again)
    scale = report_targets.scale_summary([r for r in records if r["type"] == "scale"])
    targets = report_targets.targets(rows, infos, contexts, scale)
    lines = [*header(meta, end), *summary_section(summary), *report_targets.targets_section(targets),
             *report_targets.noise_section(noise), *report_targets.scale_section(scale),
             *anomalies(rows, infos), "## Per model", ""]
    for model, tools in table.items():
        lines += model_section(model, tools, rows[model], infos.get(model, {}), contexts[model])
    doc = {"meta": meta, "end": end, "summary": summary, "targets": targets, "noise": noise, "scale": scale,
           "contexts": contexts, "models": rows}
    return lines, doc


def write_report(records: list[dict[str, Any]], out_dir: Path) -> Path:
    """Write report.md and report.json into out_dir; return the markdown path."""
    lines, doc = build(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    md.write_text("\n".join(lines) + "\n")
    (out_dir / "report.json").write_text(json.dumps(doc, indent=1, default=str))
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

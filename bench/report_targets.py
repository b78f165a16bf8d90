"""Report sections that judge the numbers: same-file noise, the issue's targets, synthetic scale.

Used by bench/report.py; every function takes the rows report.py computed (see ``report.row``).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

GRAPHOPT, CHECKED = "graphopt-nocheck", "graphopt-check"
BIG_BYTES = 100_000_000  # "models over 100 MB" (decimal megabytes, as the tables print sizes)
SEVERAL = 3  # "strictly fewer nodes on several models"
SCALE_RATIO_GOAL = 11.0


def geomean(values: list[float | None]) -> float | None:
    """Geometric mean of positive values (None when empty)."""
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def spread(a: float | None, b: float | None) -> float | None:
    """How far apart two measurements of the same thing are: max/min - 1 (0.03 = 3%)."""
    return max(a, b) / min(a, b) - 1 if a and b else None


def noise(table: dict[str, dict[str, dict[str, Any]]], infos: dict[str, dict[str, Any]],
          again: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Same-file noise per model: the floor timed twice, the original's latency measured twice."""
    per_model: dict[str, dict[str, Any]] = {}
    for model, tools in table.items():
        times = [tools.get(t, {}).get("seconds") for t in ("floor", "floor-again")]
        entry: dict[str, Any] = {"floor_seconds": times, "time_spread": spread(*times)}
        lats = (infos.get(model, {}).get("latency"), again.get(model, {}).get("latency"))
        for level in ("disabled", "enabled"):
            ms = [((lat or {}).get(level) or {}).get("median_ms") for lat in lats]
            fastest = [((lat or {}).get(level) or {}).get("min_ms") for lat in lats]
            entry[f"latency_{level}_ms"] = ms
            entry[f"latency_{level}_spread"] = spread(*ms)
            entry[f"latency_{level}_min_spread"] = spread(*fastest)
        per_model[model] = entry
    summary = {}
    for key in ("time_spread", "latency_disabled_spread", "latency_enabled_spread",
                "latency_disabled_min_spread", "latency_enabled_min_spread"):
        values = [e[key] for e in per_model.values() if e[key] is not None]
        summary[key] = {"median": statistics.median(values) if values else None,
                        "max": max(values) if values else None}
    return {"models": per_model, "summary": summary}


def pct(value: float | None) -> str:
    """'3.1%' or a dash."""
    return "-" if value is None else f"{100 * value:.1f}%"


def noise_section(data: dict[str, Any]) -> list[str]:
    """Markdown: how much the same measurement moves between two runs."""
    s = data["summary"]
    lines = ["## Noise", "",
             "The same file measured twice: `floor` and `floor-again` (onnx.load + onnx.save, first and last "
             "tool of each model), and the original's ORT latency before and after the tools. Spread = "
             "max/min - 1. A difference between tools smaller than this is not a result.", "",
             f"- load+save time: {spreads(s['time_spread'])}",
             *(f"- latency, {name}: {spreads(s[f'latency_{lv}_spread'])} (fastest run: "
               f"{spreads(s[f'latency_{lv}_min_spread'])})"
               for lv, name in (("disabled", "ORT_DISABLE_ALL"), ("enabled", "ORT_ENABLE_ALL"))), "",
             "| model | floor s (again) | spread | latency off ms (again) | spread | latency on ms (again) | "
             "spread |", "|---" * 7 + "|"]
    for model, e in data["models"].items():
        cells = [f"{twice(e['floor_seconds'], '.3f')} | {pct(e['time_spread'])}"]
        cells += [f"{twice(e[f'latency_{lv}_ms'], '.3g')} | {pct(e[f'latency_{lv}_spread'])}"
                  for lv in ("disabled", "enabled")]
        lines.append(f"| {model} | {' | '.join(cells)} |")
    return lines + [""]


def spreads(summary: dict[str, float | None]) -> str:
    """'median spread 1.2%, max 3.4%'."""
    return f"median spread {pct(summary['median'])}, max {pct(summary['max'])}"


def twice(values: list[float | None], spec: str) -> str:
    """'1.23 (1.25)' for a measurement and its repetition."""
    a, b = (("-" if v is None else format(v, spec)) for v in values)
    return f"{a} ({b})"


def target(name: str, goal: str, value: str, met: bool | None, detail: str = "") -> dict[str, Any]:
    """One line of the targets table."""
    return {"target": name, "goal": goal, "value": value, "met": met, "detail": detail}


def node_targets(rows: dict[str, dict[str, dict[str, Any]]], contexts: dict[str, dict[str, Any]]) -> list:
    """graphopt's portable node count against the best peer, model by model."""
    at_most, fewer, behind = 0, 0, []
    for model, tools in rows.items():
        r, ctx = tools.get(GRAPHOPT), contexts[model]
        portable = r is not None and r["status"] == "ok" and r["within_tolerance"] and r["checker_ok"] \
            and not r["domains_added"]
        peer = ctx["best_peer_nodes"]
        if portable and (peer is None or r["nodes"] <= peer):
            at_most += 1
            fewer += peer is not None and r["nodes"] < peer
        else:
            ours = r["nodes"] if r and r["status"] == "ok" else "failed"
            behind.append(f"{model} {ours} vs {peer} ({ctx['best_peer']})")
    n = len(rows)
    return [target("portable nodes <= best peer, every model", f"{n}/{n}", f"{at_most}/{n}", at_most == n,
                   "behind: " + ", ".join(behind) if behind else ""),
            target("strictly fewer nodes than the best peer", f">= {SEVERAL} models", str(fewer),
                   fewer >= SEVERAL)]


def geomean_of(rows: dict[str, dict[str, dict[str, Any]]], tool: str, key: str) -> float | None:
    """Geometric mean of one row field of one tool over the models it succeeded on."""
    return geomean([t[tool][key] for t in rows.values() if tool in t and t[tool]["status"] == "ok"])


def time_targets(rows: dict[str, dict[str, dict[str, Any]]], infos: dict[str, dict[str, Any]]) -> list:
    """Optimize time against the load+save floor, without and with per-pass checks."""
    nocheck = geomean_of(rows, GRAPHOPT, "time_per_floor")
    checked = geomean_of(rows, CHECKED, "time_per_floor")
    big = {m: rows[m].get(GRAPHOPT, {}).get("time_per_floor") for m in rows
           if infos.get(m, {}).get("size_bytes", 0) > BIG_BYTES}
    worst = max((v for v in big.values() if v is not None), default=None)
    return [target("time without checks / floor (geomean)", "<= 1.5", fmt2(nocheck),
                   None if nocheck is None else nocheck <= 1.5),
            target(f"time without checks / floor, models over {BIG_BYTES // 10**6} MB (worst)", "<= 1.0",
                   fmt2(worst), None if worst is None else worst <= 1.0,
                   ", ".join(f"{m} {fmt2(v)}" for m, v in big.items())),
            target("time with per-pass checks / floor (geomean)", "<= 3", fmt2(checked),
                   None if checked is None else checked <= 3.0)]


def rss_target(rows: dict[str, dict[str, dict[str, Any]]], infos: dict[str, dict[str, Any]]) -> list:
    """Peak RSS over file size on the largest model."""
    sized = [(info.get("size_bytes", 0), m) for m, info in infos.items() if m in rows]
    if not sized:
        return []
    size, model = max(sized)
    r, c = rows[model].get(GRAPHOPT, {}), rows[model].get(CHECKED, {})
    value = r.get("rss_per_file")
    detail = (f"{model}, {size / 1e6:.0f} MB: peak {mib(r.get('peak_rss_bytes'))} MiB "
              f"(growth {mib(r.get('rss_growth_bytes'))} MiB); with checks {fmt2(c.get('rss_per_file'))}x")
    return [target("peak RSS / file size, largest model, no checks", "<= 1.5", fmt2(value),
                   None if value is None else value <= 1.5, detail)]


def scale_target(scale: dict[str, Any]) -> list:
    """Time growth from the smallest to the largest synthetic chain."""
    growth = scale.get("ratios", {}).get(GRAPHOPT)
    if growth is None:
        return [target("time growth 10k -> 100k nodes", f"<= {SCALE_RATIO_GOAL:g}x", "-", None, "not run")]
    return [target(f"time growth {scale['label']} nodes", f"<= {SCALE_RATIO_GOAL:g}x", f"{growth:.1f}x",
                   growth <= SCALE_RATIO_GOAL, f"floor grows {fmt2(scale['ratios'].get('floor'))}x, nodes "
                   f"{fmt2(scale.get('node_ratio'))}x")]


def targets(rows: dict[str, dict[str, dict[str, Any]]], infos: dict[str, dict[str, Any]],
            contexts: dict[str, dict[str, Any]], scale: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the benchmark issue with where graphopt stands (goals to track, not assertions)."""
    return [*node_targets(rows, contexts), *time_targets(rows, infos), *rss_target(rows, infos),
            *scale_target(scale)]


def targets_section(items: list[dict[str, Any]]) -> list[str]:
    """Markdown table of the targets."""
    lines = ["## Targets", "",
             "Goals tracked, not assertions: graphopt = `graphopt-nocheck` unless stated.", "",
             "| target | goal | now | status | detail |", "|---|---|---|---|---|"]
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    lines += [f"| {t['target']} | {t['goal']} | {t['value']} | {verdict[t['met']]} | {t['detail']} |"
              for t in items]
    return lines + [""]


def scale_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Synthetic chains: per size and tool, the best time; growth from the smallest to the largest size."""
    sizes = sorted({r["size"] for r in records})
    runs = {(r["size"], r["tool"]): r for r in records}
    out: dict[str, Any] = {"runs": records, "sizes": sizes, "ratios": {}}
    if len(sizes) < 2:
        return out
    small, large = sizes[0], sizes[-1]
    out["label"] = f"{small // 1000}k -> {large // 1000}k"
    for tool in dict.fromkeys(r["tool"] for r in records):
        a, b = runs.get((small, tool), {}), runs.get((large, tool), {})
        if a.get("status") == "ok" and b.get("status") == "ok":
            out["ratios"][tool] = b["seconds"] / a["seconds"]
    nodes = [runs.get((s, "floor"), {}).get("input_nodes") for s in (small, large)]
    out["node_ratio"] = nodes[1] / nodes[0] if all(nodes) else None
    return out


def scale_section(scale: dict[str, Any]) -> list[str]:
    """Markdown table of the synthetic chains."""
    if not scale["runs"]:
        return []
    lines = ["## Synthetic scale", "",
             "Residual chains of MatMul+Add+Relu blocks with a skip Add, a Shape->Gather->Unsqueeze->Concat->"
             "Reshape sub-graph and an Identity and a Dropout per block (bench/scale.py, [2, 8] tensors). "
             "Best of 2 fresh-process runs (1 for a run over 10 s).", "",
             "| model | nodes | size MB | tool | time s (runs) | time/floor | peak RSS MiB | nodes after | "
             "numeric |", "|---" * 9 + "|"]
    floors = {r["size"]: r.get("seconds") for r in scale["runs"] if r["tool"] == "floor"}
    for r in scale["runs"]:
        if r["status"] != "ok":
            lines.append(f"| {r['model']} | {r['input_nodes']} | | {r['tool']} | **{r['status']}** | | | | |")
            continue
        numeric = {True: "ok", False: "**MISMATCH**", None: "-"}[r.get("within_tolerance")]
        per_floor = r["seconds"] / floors[r["size"]] if floors.get(r["size"]) else None
        each = ", ".join(f"{s:.2f}" for s in r["all_seconds"])
        lines.append(f"| {r['model']} | {r['input_nodes']} | {(r['input_size_bytes'] or 0) / 1e6:.1f} | "
                     f"{r['tool']} | {r['seconds']:.2f} ({each}) | "
                     f"{fmt2(per_floor)} | {r['peak_rss_bytes'] / 2**20:.0f} | {r.get('nodes') or '-'} | "
                     f"{numeric} |")
    if scale["ratios"]:
        lines += ["", f"Time growth {scale['label']} nodes (x{fmt2(scale.get('node_ratio'))} nodes): "
                  + ", ".join(f"{tool} {v:.1f}x" for tool, v in scale["ratios"].items())
                  + f" (linear: about {fmt2(scale.get('node_ratio'))}x; goal for graphopt <= "
                    f"{SCALE_RATIO_GOAL:g}x)."]
    return lines + [""]


def fmt2(value: float | None) -> str:
    """Two decimals or a dash."""
    return "-" if value is None else f"{value:.2f}"


def mib(value: float | None) -> str:
    """Bytes as whole MiB, or a dash."""
    return "-" if value is None else f"{value / 2**20:.0f}"

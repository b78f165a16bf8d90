"""The hostile-input sweep: thousands of broken models through ``python -m graphopt optimize``, one
subprocess each (own session, timeout, address-space limit), so hangs and crashes are caught too.

Cases come from tests/hostile (hostile_corpus.corpus, test_fuzz_external.external_cases and
test_fuzz_mutants.mutant, with more seeds than the test suite) and are judged by the test suite's own rules
(fuzz_kit.run_problems for every run, judge_output for an exit 0, in a second subprocess). The report
(bench/results/hostile.md, rows in hostile.jsonl) tabulates exit codes by case family and lists every
non-clean case with a command that reproduces it; those cases are kept under results/hostile-cases/NAME.

Usage: .venv/bin/python bench/hostile.py [--truncations 120] [--flips 200] [--mutants 250] [--only ext-]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests" / "hostile"
sys.path.insert(0, str(TESTS))
import hostile_corpus as hc  # noqa: E402
from external_corpus import external_cases  # noqa: E402
from fuzz_kit import run_problems  # noqa: E402
from test_fuzz_mutants import mutant  # noqa: E402

MEMORY_LIMIT = 8 << 30  # address space per run: a runaway allocation fails instead of swamping the host
VERIFY = r"""
import json, sys
from pathlib import Path
import numpy as np, onnxruntime as ort
sys.path.insert(0, sys.argv[3])
from fuzz_kit import checker_error, judge_output
from graphopt.cli import main

TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
         "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(bool)": np.bool_,
         "tensor(string)": np.str_, "tensor(float16)": np.float16}
def ort_runs(path):
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        shapes = {i.name: [d if isinstance(d, int) and d >= 0 else 1 for d in i.shape] for i in inputs}
        if any(np.prod(s, dtype=object) > 10**7 for s in shapes.values()):
            return "inputs too large to feed"
        feeds = {i.name: np.ones(shapes[i.name], TYPES[i.type]) for i in inputs}
        session.run(None, feeds)
        return True
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
src, out = Path(sys.argv[1]), sys.argv[2]
facts = {"input_checker": checker_error(src), "ort_runs_input": ort_runs(str(src))}
if out != "-":
    facts["output_problems"] = judge_output(src, Path(out), main)
print("FACTS " + json.dumps(facts))
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run(argv: list[str], timeout: float, cwd: Path) -> dict[str, Any]:
    """Run a command in its own session; exit code, output and time, or rc 'timeout' (session killed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=True,
                            errors="replace", start_new_session=True, preexec_fn=_limit)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        rc: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        rc = "timeout"
    return {"rc": rc, "stdout": stdout, "stderr": stderr, "seconds": time.perf_counter() - start}


def _parses(data: bytes) -> bool:
    import onnx

    try:
        onnx.ModelProto().ParseFromString(data)
        return True
    except Exception:
        return False


def judge(case: hc.Case, timeout: float) -> dict[str, Any]:
    """Run one case; its exit code, last stderr line, what is wrong (empty: clean) and facts on the input."""
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        root = Path(tmp)
        model = hc.place(case, root)
        (root / "out").mkdir()
        out = root / "out" / "out.onnx"
        before = hc.snapshot(root)
        res = run([sys.executable, "-m", "graphopt", "optimize", str(model), "-o", str(out)], timeout, root)
        rc = res["rc"]
        problems = ["hang (timeout)"] if rc == "timeout" else run_problems(rc, res["stdout"], res["stderr"],
                                                                             root, before)
        facts: dict[str, Any] = {}
        if rc != "timeout" and rc >= 0 and _parses(case.data) and not case.fifos and case.in_process:
            verify = run([sys.executable, "-c", VERIFY, str(model), str(out) if rc == 0 and not problems
                          else "-", str(TESTS)], timeout, root)
            line = next((ln for ln in verify["stdout"].splitlines() if ln.startswith("FACTS ")), None)
            facts = json.loads(line[6:]) if line else {
                "verify_failed": f"{verify['rc']}: {verify['stderr'][-300:]}"}
            problems += facts.get("output_problems", [])
    stderr = res["stderr"].strip().splitlines()
    return {"name": case.name, "family": case.family, "rc": rc, "seconds": round(res["seconds"], 3),
            "problems": problems, "facts": facts, "stderr": stderr[-1][:400] if stderr else ""}


def sweep(cases: list[hc.Case], jobs: int, timeout: float) -> list[dict[str, Any]]:
    rows, start = [], time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        for i, row in enumerate(pool.map(lambda c: judge(c, timeout), cases), 1):
            rows.append(row)
            if row["problems"]:
                print(f"  NOT CLEAN {row['name']}: {'; '.join(row['problems'])[:300]}", flush=True)
            if i % 250 == 0 or i == len(cases):
                print(f"{i}/{len(cases)} cases, {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def refused_valid(row: dict[str, Any]) -> bool:
    """Refused although onnx.checker accepts the input and onnxruntime runs it."""
    facts = row["facts"]
    return row["rc"] not in (0, "timeout") and facts.get("input_checker", "?") is None and (
        facts.get("ort_runs_input") is True)


def report(rows: list[dict[str, Any]], command: str, seconds: float, jobs: int, timeout: float) -> str:
    codes = sorted({str(r["rc"]) for r in rows},
                   key=lambda c: (c == "timeout", int(c.replace("timeout", "0"))))
    by_family: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_family[r["family"]][str(r["rc"])] += 1
        by_family[r["family"]]["not clean"] += bool(r["problems"])
    bad = [r for r in rows if r["problems"]]
    lines = [f"# Hostile-input sweep: {len(rows)} cases, {len(bad)} not clean", "",
             f"`{command}`: {seconds:.0f} s, {jobs} jobs, timeout {timeout:g} s per run, address space "
             f"limit {MEMORY_LIMIT >> 30} GiB per run.", "", "## Outcomes by family (columns: exit code)", "",
             "| family | cases | " + " | ".join(codes) + " | not clean |", "|---" * (len(codes) + 3) + "|"]
    for family, count in sorted(by_family.items()):
        total = sum(v for k, v in count.items() if k != "not clean")
        lines.append(f"| {family} | {total} | " + " | ".join(str(count.get(c, 0)) for c in codes)
                     + f" | {count['not clean']} |")
    total = Counter(str(r["rc"]) for r in rows)
    lines.append(f"| **all** | {len(rows)} | " + " | ".join(str(total.get(c, 0)) for c in codes)
                 + f" | {len(bad)} |")
    lines += ["", "## Not clean", "", "Reproduce: `python -m graphopt optimize "
              f"bench/results/hostile-cases/NAME/model/{hc.MODEL_NAME} -o /tmp/out.onnx`", ""]
    lines += [f"- `{r['name']}` exit {r['rc']}: {'; '.join(r['problems'])[:500]}" for r in bad] or ["None."]
    lines += ["", "## Refused although onnx.checker accepts the input and onnxruntime runs it", ""]
    refused = [r for r in rows if refused_valid(r)]
    lines += [f"- `{r['name']}` exit {r['rc']}: `{r['stderr'][:300]}`" for r in refused] or ["None."]
    accepted = [r["name"] for r in rows
                if r["rc"] == 0 and r["facts"].get("ort_runs_input") not in (None, True)]
    lines += ["", f"## Exit 0 although onnxruntime refuses the input: {len(accepted)}", "",
              ", ".join(f"`{n}`" for n in accepted[:60]) + (" ..." if len(accepted) > 60 else "")]
    slow = sorted(rows, key=lambda r: -r["seconds"])[:10]
    lines += ["", "## Slowest runs", ""] + [f"- `{r['name']}` {r['seconds']:.1f} s (exit {r['rc']})"
                                            for r in slow]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truncations", type=int, default=120, help="cut points per base model")
    parser.add_argument("--flips", type=int, default=200, help="bit-flip seeds per base model")
    parser.add_argument("--mutants", type=int, default=250, help="random-edit seeds per base model")
    parser.add_argument("--randoms", type=int, default=100, help="random byte strings")
    parser.add_argument("--seed", type=int, default=1000, help="first seed (the test suite uses 0..)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per graphopt run")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--out", default=str(HERE / "results" / "hostile.md"))
    args = parser.parse_args()
    cases = hc.corpus(args.truncations, args.flips, args.randoms, args.seed) + external_cases()
    cases += [mutant(base, args.seed + i) for base in hc.BASES for i in range(args.mutants)]
    cases = [c for c in cases if args.only in c.name]
    start = time.perf_counter()
    rows = sweep(cases, args.jobs, args.timeout)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(rows, " ".join(["bench/hostile.py", *sys.argv[1:]]), time.perf_counter() - start,
                          args.jobs, args.timeout))
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = out.parent / "hostile-cases"
    shutil.rmtree(kept, ignore_errors=True)
    by_name = {c.name: c for c in cases}
    for row in rows:
        if row["problems"] or refused_valid(row):
            hc.place(by_name[row["name"]], kept / row["name"])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

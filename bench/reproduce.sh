#!/usr/bin/env bash
# The whole benchmark in one command: bench virtualenv, corpus, every tool on every model (ORT latency
# included), the synthetic-scale step, then bench/results/report.md and report.json; then the layout
# benchmark (bench/layout.py -> bench/results/layout.md).
#
#   bash bench/reproduce.sh                 # about 12 min on 2 cores once the corpus and venv exist
#   bash bench/reproduce.sh --no-scale      # any further arguments go to bench/run.py
#
# BENCH_VENV (default /work/venvs/bench) is created if missing, then brought up to bench/requirements.txt
# with graphopt installed editable from this checkout. The console output is also kept in
# bench/results/reproduce.log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${BENCH_VENV:-/work/venvs/bench}
python=$(command -v python3.11 || command -v python3)
start=$(date +%s)
mkdir -p "$root/bench/results"
log="$root/bench/results/reproduce.log"

{
    echo "reproduce.sh: $(date -Is), load average $(cut -d' ' -f1-3 /proc/loadavg), venv $venv"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q -r "$root/bench/requirements.txt"
    "$venv/bin/python" -m pip install -q --no-deps -r "$root/bench/requirements-nodeps.txt"
    "$venv/bin/python" -m pip install -q -e "$root"
    echo "reproduce.sh: virtualenv ready after $(( $(date +%s) - start )) s"
    "$venv/bin/python" "$root/bench/corpus.py"
    echo "reproduce.sh: corpus ready after $(( $(date +%s) - start )) s"
    "$venv/bin/python" "$root/bench/run.py" "$@"
    "$venv/bin/python" "$root/bench/layout.py"   # Transposes after NHWC conversion -> results/layout.md
    "$venv/bin/python" "$root/bench/opset.py"    # real exports converted to 11..newest -> results/opset.md
    "$venv/bin/python" "$root/bench/opset_backend.py"  # backend node tests converted -> results/opset_backend.md
    "$venv/bin/python" "$root/bench/memory.py"   # memory plans, verified and executed -> results/memory.md
    echo "reproduce.sh: done in $(( $(date +%s) - start )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$log"

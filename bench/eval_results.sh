#!/usr/bin/env bash
# The evaluation results of docs/eval-results.md, on SmolLM2-135M-Instruct:
#   1. screening: which tasks dense attention solves at all — every RULER task and passkey at
#      2048 tokens, 10 samples each (screen.jsonl, screen-report/);
#   2. results: dense and three sparse prefill methods on niah_single_2 and passkey at 2048,
#      4096 and 8192 tokens, 20 samples per task and length (results.jsonl, report/).
# Both are resumable sweeps: re-running skips the samples already in the results files.
# Usage: bench/eval_results.sh [build-dir]
#   env: WORK (default eval-results), THREADS (2), SCREEN_THREADS (1: the screening only needs
#        scores, and one thread leaves a core free)
# Runtime on 2 cores: screening ≈ 15 min, results ≈ 2 h (8192 tokens is two thirds of it).
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/longsparse"
WORK=${WORK:-eval-results}
THREADS=${THREADS:-2}
SCREEN_THREADS=${SCREEN_THREADS:-1}
[[ -x "$BIN" ]] || { echo "eval_results.sh: $BIN not found; build first (make build)" >&2; exit 1; }
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Cooperlake}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$WORK"
scripts/fetch-model smollm2

cat > "$WORK/screen.json" <<'EOF'
{"model": "smollm2",
 "tasks": ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
           "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "passkey"],
 "lengths": [2048], "samples": 10, "seed": 1,
 "methods": [{"prefill": "dense"}]}
EOF
"$BIN" sweep --config "$WORK/screen.json" --out "$WORK/screen.jsonl" -t "$SCREEN_THREADS"

# One sweep per (length, task), shortest length first, so that an interrupted run leaves
# whole (length, task) cells with every method.
for length in 2048 4096 8192; do
  for task in niah_single_2 passkey; do
    cat > "$WORK/results-$length-$task.json" <<EOF
{"model": "smollm2",
 "tasks": ["$task"], "lengths": [$length], "samples": 20, "seed": 1,
 "methods": [{"prefill": "dense"},
             {"prefill": "streaming", "params": {"window": [1024]}},
             {"prefill": "flexprefill"},
             {"prefill": "xattention"}]}
EOF
    "$BIN" sweep --config "$WORK/results-$length-$task.json" --out "$WORK/results.jsonl" -t "$THREADS"
  done
done

"$BIN" report "$WORK/screen.jsonl" --out "$WORK/screen-report" > /dev/null
"$BIN" report "$WORK/results.jsonl" --out "$WORK/report" > /dev/null
echo "reports: $WORK/screen-report/report.md, $WORK/report/report.md" >&2

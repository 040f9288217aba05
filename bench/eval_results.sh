#!/usr/bin/env bash
# The evaluation results of docs/eval-results.md, for one model:
#   1. screening: which tasks dense attention solves at all — every RULER task and passkey at
#      one length, 10 samples each (screen.jsonl, screen-report/);
#   2. results: dense and three sparse prefill methods on the tasks the model solves, at every
#      length, 20 samples per task and length (results.jsonl, report/).
# Both are resumable sweeps: re-running skips the samples already in the results files.
# Usage: bench/eval_results.sh [build-dir]
#   env: MODEL (smollm2 | gemma3), WORK (default eval-results-$MODEL), THREADS (2),
#        SCREEN_THREADS (1 for smollm2, 2 for gemma3), SCREEN_LENGTH, LENGTHS, TASKS (the
#        results' tasks), SKIP_RESULTS=1 (screening only)
#   smollm2 (SmolLM2-135M-Instruct, 8k): screen at 2048; niah_single_2 and passkey at 2048,
#     4096, 8192. On 2 cores: screening ≈ 15 min, results ≈ 2 h (8192 is two thirds of it).
#   gemma3 (Gemma 3 270M base, 32k): screen at 16384; niah_single_1, niah_single_2 and passkey
#     at 16384 and 32768. On 2 cores a 16k sample takes about a minute, a 32k one about
#     two: screening ≈ 2 h, results ≈ 8 h.
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/longsparse"
MODEL=${MODEL:-smollm2}
case "$MODEL" in
  smollm2) : "${SCREEN_LENGTH:=2048}" "${LENGTHS:=2048 4096 8192}" "${TASKS:=niah_single_2 passkey}"
           : "${SCREEN_THREADS:=1}" ;;
  gemma3)  : "${SCREEN_LENGTH:=16384}" "${LENGTHS:=16384 32768}" "${TASKS:=niah_single_1 niah_single_2 passkey}"
           : "${SCREEN_THREADS:=2}" ;;
  *) echo "eval_results.sh: MODEL must be smollm2 or gemma3" >&2; exit 1 ;;
esac
WORK=${WORK:-eval-results-$MODEL}
THREADS=${THREADS:-2}
[[ -x "$BIN" ]] || { echo "eval_results.sh: $BIN not found; build first (make build)" >&2; exit 1; }
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Cooperlake}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
scripts/fetch-model "$MODEL"
mkdir -p "$WORK"

# In two passes of 5 and 10 samples (a sample's text depends only on its task, length, seed and
# index), so that an interrupted screening still covers every task.
for samples in 5 10; do
  cat > "$WORK/screen.json" <<EOF
{"model": "$MODEL",
 "tasks": ["passkey", "niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1",
           "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe"],
 "lengths": [$SCREEN_LENGTH], "samples": $samples, "seed": 1,
 "methods": [{"prefill": "dense"}]}
EOF
  "$BIN" sweep --config "$WORK/screen.json" --out "$WORK/screen.jsonl" -t "$SCREEN_THREADS"
done
"$BIN" report "$WORK/screen.jsonl" --out "$WORK/screen-report" > /dev/null
[[ "${SKIP_RESULTS:-0}" == 1 ]] && { echo "screening: $WORK/screen-report/report.md" >&2; exit 0; }

# One sweep per (length, task), shortest length first, in passes of 10 then 20 samples over every
# task, so that an interrupted run leaves whole (length, task) cells with every method (a sweep
# runs its methods one after the other).
for length in $LENGTHS; do
  for samples in 10 20; do
    for task in $TASKS; do
      cat > "$WORK/results-$length-$task.json" <<EOF
{"model": "$MODEL",
 "tasks": ["$task"], "lengths": [$length], "samples": $samples, "seed": 1,
 "methods": [{"prefill": "dense"},
             {"prefill": "streaming", "params": {"window": [1024]}},
             {"prefill": "flexprefill"},
             {"prefill": "xattention"}]}
EOF
      "$BIN" sweep --config "$WORK/results-$length-$task.json" --out "$WORK/results.jsonl" -t "$THREADS"
    done
  done
done

"$BIN" report "$WORK/results.jsonl" --out "$WORK/report" > /dev/null
echo "reports: $WORK/screen-report/report.md, $WORK/report/report.md" >&2

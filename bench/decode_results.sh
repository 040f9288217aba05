#!/usr/bin/env bash
# Accuracy of the decode selectors (docs/decode-results.md): dense prefill, then every decode
# selector at budgets 512 / 1024 / 2048 / 4096 keys, on the same prefilled cache of each
# sample (`--decode "a;b;..."` continues copies of one prefill), plus sparse prefill + sparse
# decode together. Resumable: re-running skips the samples already in the results file.
# Usage: bench/decode_results.sh [build-dir]
#   env: MODEL (smollm2), WORK (default decode-results-$MODEL), THREADS (2), LENGTH (8192),
#        TASKS ("niah_single_2 passkey"), BUDGETS ("512 1024 2048 4096"), PASSES ("10 20"),
#        PAIR (prefill spec;decode spec of the combined run, default "flexprefill;quest:budget=1024")
#   smollm2 at 8192 on 2 cores: a sample's prefill ≈ 35 s, its 21 decodes ≈ 15 s.
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/longsparse"
MODEL=${MODEL:-smollm2}
WORK=${WORK:-decode-results-$MODEL}
THREADS=${THREADS:-2}
LENGTH=${LENGTH:-8192}
TASKS=${TASKS:-niah_single_2 passkey}
BUDGETS=${BUDGETS:-512 1024 2048 4096}
PASSES=${PASSES:-10 20}
PAIR=${PAIR:-flexprefill;quest:budget=1024}
[[ -x "$BIN" ]] || { echo "decode_results.sh: $BIN not found; build first (make build)" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
scripts/fetch-model "$MODEL"
mkdir -p "$WORK"

decodes="dense"
for b in $BUDGETS; do
  # nsa-select attends densely below 8192 keys (InfLLM-V2's dense_len); at 8k prompts it is
  # lowered so that the selector runs at all.
  decodes+=";quest:budget=$b;tidal:budget=$b;nsa-select:budget=$b,min_context=4096;lserve:budget=$b;streaming:budget=$b"
done
pair_prefill=${PAIR%%;*}
pair_decode=${PAIR#*;}

for samples in $PASSES; do
  for task in $TASKS; do
    cat > "$WORK/decode-$task.json" <<JSON
{"model": "$MODEL",
 "tasks": ["$task"], "lengths": [$LENGTH], "samples": $samples, "seed": 1,
 "methods": [{"prefill": "dense", "decode": "$decodes"},
             {"prefill": "$pair_prefill", "decode": "dense;$pair_decode"}]}
JSON
    "$BIN" sweep --config "$WORK/decode-$task.json" --out "$WORK/results.jsonl" -t "$THREADS"
  done
done

"$BIN" report "$WORK/results.jsonl" --out "$WORK/report" > /dev/null
echo "report: $WORK/report/report.md" >&2

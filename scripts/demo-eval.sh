#!/usr/bin/env bash
# The evaluation demo: small NIAH and passkey sets at 4k tokens, evaluated with dense
# attention and two sparse prefill methods, then the report table.
#   scripts/demo-eval.sh [build-dir] [work-dir]
# Needs the default model (scripts/fetch-model smollm2) and a build with the model engine.
# Re-running resumes: samples already in the results file are skipped.
set -euo pipefail
build="${1:-build}"
work="${2:-demo-eval}"
bin="$build/longsparse"
model="${LONGSPARSE_DEMO_MODEL:-smollm2}"
length="${LONGSPARSE_DEMO_LENGTH:-4096}"
samples="${LONGSPARSE_DEMO_SAMPLES:-4}"
methods=("dense" "flexprefill" "xattention")

mkdir -p "$work"
scripts/fetch-model smollm2
"$bin" gen -m "$model" --task niah_single_2 --len "$length" --samples "$samples" --seed 1 >"$work/niah.jsonl"
"$bin" gen -m "$model" --task passkey --len "$length" --samples "$samples" --seed 1 >"$work/passkey.jsonl"
cat "$work/niah.jsonl" "$work/passkey.jsonl" >"$work/tasks.jsonl"
for method in "${methods[@]}"; do
  echo "== $method" >&2
  "$bin" eval -m "$model" --tasks "$work/tasks.jsonl" --prefill "$method" --out "$work/results.jsonl" >/dev/null
done
"$bin" report "$work/results.jsonl" --out "$work/report"
echo "report: $work/report/report.md (plots beside it)" >&2
# The tables up to the per-task means: scores, density and speed-up per task and method.
sed -n '/^## Scores/,/^## Mean over tasks/{/^## Mean over tasks/q;p}' "$work/report/report.md"

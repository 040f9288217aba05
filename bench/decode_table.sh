#!/usr/bin/env bash
# The decode-attention table of README.md / docs/decode-results.md: one decode step's attention
# (selection + gather kernel) for every selector at several budgets and context lengths, against
# dense decode timed in the same process (`bench decode --compare-dense`), on a synthetic cache
# of SmolLM2's attention shape (9 query heads, 3 KV heads, dim 64, f16 K/V).
# Usage: bench/decode_table.sh [build-dir] > decode-table.jsonl   (a markdown table on stderr)
#   env: LENGTHS ("8192 32768 131072"), BUDGETS ("512 1024 2048 4096"), THREADS (2), REPEAT (8),
#        SELECTORS ("quest tidal nsa-select lserve shadowkv streaming")
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/longsparse"
LENGTHS=${LENGTHS:-8192 32768 131072}
BUDGETS=${BUDGETS:-512 1024 2048 4096}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-8}
SELECTORS=${SELECTORS:-quest tidal nsa-select lserve shadowkv streaming}
[[ -x "$BIN" ]] || { echo "decode_table.sh: $BIN not found; build first (make build)" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

lscpu | sed -n 's/^Model name: *//p' | head -1 | sed 's/^/cpu: /' >&2
echo "| n | selector | budget | keys/head | MB read | dense MB | ms | dense ms | speed-up | recall |" >&2
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|" >&2
for n in $LENGTHS; do
  for sel in $SELECTORS; do
    for b in $BUDGETS; do
      spec="$sel:budget=$b"
      # nsa-select attends densely below min_context (8192 keys): lowered so that 8k runs select.
      [[ $sel == nsa-select ]] && spec+=",min_context=4096"
      line=$("$BIN" bench decode --n "$n" --plan "$spec" --threads "$THREADS" --repeat "$REPEAT" --compare-dense --json)
      echo "$line"
      python3 - "$line" >&2 <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"| {j['n']} | {j['plan'].split(':')[0]} | {j['budget']} | {j['tokens_attended']:.0f} | "
      f"{j['kv_bytes_read'] / 1e6:.2f} | {j['dense_kv_bytes_read'] / 1e6:.2f} | {j['ms']:.3f} | "
      f"{j['dense_ms']:.3f} | {j['speedup']:.1f}× | {j['recall']:.3f} |")
PY
    done
  done
done

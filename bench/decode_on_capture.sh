#!/usr/bin/env bash
# Every decode selector on real attention: the SmolLM2-135M layers that
# bench/methods_on_capture.sh captures (8192 tokens of Pride and Prejudice), the cached keys
# and values as the KV cache and the last QUERIES query rows as decode steps, measured with
# `longsparse bench decode --qkv`: keys attended, K/V bytes read, recall (the dense attention
# mass of the selection) and the output's relative error against dense decode.
# Prints a markdown table on stdout; the raw JSON lines go to $WORK/decode.jsonl.
# Usage: bench/decode_on_capture.sh [build-dir]
#   env: WORK (default /tmp/longsparse-methods, shared with methods_on_capture.sh), LAYERS
#        ("2 15 28"), BUDGETS ("512 1024 2048"), QUERIES (16), THREADS (1), SELECTORS
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/longsparse"
WORK=${WORK:-/tmp/longsparse-methods}
LAYERS=${LAYERS:-"2 15 28"}
BUDGETS=${BUDGETS:-512 1024 2048}
QUERIES=${QUERIES:-16}
THREADS=${THREADS:-1}
SELECTORS=${SELECTORS:-quest tidal nsa-select lserve shadowkv streaming}
[[ -x "$BIN" ]] || { echo "decode_on_capture.sh: $BIN not found; build first" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# The capture (and its text) come from methods_on_capture.sh; with METHODS=dense it only captures.
[[ -s "$WORK/capture/manifest.json" ]] || WORK="$WORK" METHODS=dense LAYERS="$LAYERS" bench/methods_on_capture.sh "$BUILD" > /dev/null

out="$WORK/decode.jsonl"
: > "$out"
echo "| layer | selector | budget | keys/head | MB read (dense) | recall | rel_err |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for layer in $LAYERS; do
  for sel in $SELECTORS; do
    for b in $BUDGETS; do
      spec="$sel:budget=$b"
      [[ $sel == nsa-select ]] && spec+=",min_context=4096"  # dense below 8192 keys otherwise
      line=$("$BIN" bench decode --qkv "$WORK/capture/layer$layer" --plan "$spec" --queries "$QUERIES" \
             --repeat 1 --threads "$THREADS" --json)
      echo "$line" >> "$out"
      python3 - "$line" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"| {j['layer']} | {j['plan'].split(':')[0]} | {j['budget']} | {j['tokens_attended']:.0f} | "
      f"{j['kv_bytes_read'] / 1e6:.2f} ({j['dense_kv_bytes_read'] / 1e6:.2f}) | {j['recall']:.3f} | {j['rel_err']:.3f} |")
PY
    done
  done
done

#!/usr/bin/env bash
# Every prefill method on real attention: SmolLM2-135M layers captured at 8192 tokens of
# natural prose (the start of Pride and Prejudice, public domain, from Debian's
# r-cran-janeaustenr), each method at its default and at two or more other budgets,
# measured with `longsparse bench attention --qkv --check`: density, recall and relative
# error on sampled rows, estimate (plan building) time, sparse attention time and the
# speed-up over the dense kernel timed in the same process (estimate included).
# Prints a markdown table on stdout; the raw JSON lines are kept in $WORK/results.jsonl.
# Usage: bench/methods_on_capture.sh [build-dir]
#   env: WORK (default /tmp/longsparse-methods), CTX (8192), LAYERS ("2 15 28"),
#        THREADS (2), REPEAT (3), ROWS (sampled rows per head, 64), METHODS (names to run),
#        TABLE_ONLY=1 (print the table from an earlier $WORK/results.jsonl)
set -euo pipefail

BUILD=${1:-build}
BIN="$BUILD/longsparse"
WORK=${WORK:-/tmp/longsparse-methods}
CTX=${CTX:-8192}
LAYERS=${LAYERS:-"2 15 28"}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
ROWS=${ROWS:-64}
[[ -x "$BIN" ]] || { echo "methods_on_capture.sh: $BIN not found; build first" >&2; exit 1; }
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Cooperlake}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$WORK"

if [[ -z "${TABLE_ONLY:-}" ]]; then
# (a) ~8k tokens of prose: Pride and Prejudice from the start (about 45k characters).
TEXT="$WORK/prose.txt"
if [[ ! -s "$TEXT" ]]; then
  CACHED="${LONGSPARSE_CACHE:-$HOME/.cache/longsparse}/text/austen.txt"
  if [[ -s "$CACHED" ]] && grep -q '^PRIDE AND PREJUDICE' "$CACHED"; then
    # (head stops reading early: the writer's SIGPIPE is not a failure)
    { sed -n '/^PRIDE AND PREJUDICE/,$p' "$CACHED" || true; } | head -c 45000 > "$TEXT"
  elif [[ -d /usr/lib/R/site-library/janeaustenr ]]; then
    { Rscript --vanilla -e 'library(janeaustenr); writeLines(prideprejudice)' || true; } | head -c 45000 > "$TEXT"
  else
    echo "methods_on_capture.sh: needs r-cran-janeaustenr (scripts/setup-deps)" >&2; exit 1
  fi
fi

# (b) capture the layers (the first CTX tokens of the text).
CAPTURE="$WORK/capture"
LAYER_LIST=$(echo $LAYERS | tr ' ' ',')
if [[ ! -s "$CAPTURE/manifest.json" ]] || ! grep -q "\"tokens\": $CTX" "$CAPTURE/manifest.json"; then
  echo "capturing layers $LAYER_LIST at $CTX tokens ..." >&2
  "$BIN" capture -m smollm2 -f "$TEXT" -c "$CTX" --truncate --layers "$LAYER_LIST" --out "$CAPTURE" -t "$THREADS"
fi
fi

# (c) every method at its default and at two or more other budgets. Budgets that scale with length
# are fractions of CTX: a default meant for 128k contexts (vertical-slash v=1000,s=6096,
# block-sparse topk=100, lambda local=4096) is already (nearly) dense at 4-8k tokens, so for
# those the other two points are sparser ones; threshold methods get one sparser, one denser.
# power's window below 4 blocks changes nothing (distances 1, 2 are powers of two anyway), so
# its sparser points use smaller blocks. Methods whose budgets straddle density 0.25 on the
# sparsest layer get a point just below it: lambda local=7·CTX/64 (its 100 global columns
# add ~0.02; LM-Infinite's low end, global=10, too), vertical-slash with the official slash
# coverage (cover=exact, fewer keys per line) at two sizes, flexprefill gamma=0.94, and
# XAttention with stride 16 (the paper's other stride: half the estimate).
V16=$((CTX / 16)); V8=$((CTX / 8)); V4=$((CTX / 4))
declare -A SPECS=(
  [dense]="dense"
  [streaming]="streaming:window=$V16;streaming:window=$V8;streaming"
  [lambda]="lambda:local=$((CTX * 7 / 64));lambda:global=10,local=$V8;lambda:local=$V8;lambda:local=$V4;lambda"
  [power]="power:block=64;power:block=128;power"
  [vertical-slash]="vertical-slash:v=$((CTX / 64)),s=$((CTX / 32));vertical-slash:v=$((CTX / 32)),s=$((CTX / 16));vertical-slash:v=$((CTX / 32)),s=$((CTX / 16)),cover=exact;vertical-slash:v=$((CTX * 3 / 64)),s=$((CTX * 3 / 32)),cover=exact;vertical-slash"
  [block-sparse]="block-sparse:topk=$((CTX / 512));block-sparse:topk=$((CTX / 256));block-sparse"
  [flexprefill]="flexprefill:gamma=0.8;flexprefill;flexprefill:gamma=0.94;flexprefill:gamma=0.95"
  [xattention]="xattention:tau=0.8;xattention;xattention:tau=0.95;xattention:stride=16,tau=0.9;xattention:stride=16,tau=0.95"
  [anchor]="anchor:theta=8;anchor;anchor:theta=14"
  [block-gate]="block-gate:threshold=0.005;block-gate;block-gate:threshold=0.0005"
)
METHODS=${METHODS:-"dense streaming lambda power vertical-slash block-sparse flexprefill xattention anchor block-gate"}
registered=$("$BIN" methods --json)
PLANS=""
for m in $METHODS; do
  [[ -n "${SPECS[$m]:-}" ]] || { echo "methods_on_capture.sh: no budgets chosen for '$m'" >&2; exit 1; }
  grep -q "\"$m\"" <<< "$registered" || { echo "methods_on_capture.sh: '$m' is not registered" >&2; exit 1; }
  PLANS="${PLANS:+$PLANS;}${SPECS[$m]}"
done

status=0
RESULTS="$WORK/results.jsonl"
if [[ -z "${TABLE_ONLY:-}" ]]; then
: > "$RESULTS"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for layer in $LAYERS; do
  echo "layer $layer: $(tr ';' '\n' <<< "$PLANS" | wc -l) plans ..." >&2
  # One process per layer: the dense kernel is timed in the same process as every plan.
  # A failing spec is reported in its JSON line ("error") and the exit status; keep going.
  "$BIN" bench attention --qkv "$CAPTURE/layer$layer" --plan "$PLANS" --check --json \
    --threads "$THREADS" --repeat "$REPEAT" --quality "$ROWS" >> "$RESULTS" || status=1
done
fi

# (d) the table.
python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| method | spec | layer | density | recall | rel_err | estimate ms | attention ms | dense ms | speed-up vs dense | estimate / attention |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    name = r["plan"].split(":")[0]
    if "error" in r:
        print(f"| {name} | `{r['plan']}` | {r['layer']} | failed: {r['error']} | | | | | | | |")
        continue
    print(f"| {name} | `{r['plan']}` | {r['layer']} | {r['density']:.3f} | {r['recall']:.4f} | {r['rel_err']:.3g} | "
          f"{r['estimate_ms']:.1f} | {r['attn_ms']:.1f} | {r['dense_ms']:.1f} | {r['speedup']:.2f}x | "
          f"{100 * r['estimate_fraction']:.0f}% |")
print()
precisions = sorted({r.get("estimate_precision", "fp32") for r in rows if "error" not in r})
print(f"tokens {rows[0]['tokens']}, threads {rows[0]['threads']}, median of {rows[0]['repeat']}, estimate scores in "
      f"{' and '.join(precisions)}; speed-up = dense ms / (estimate ms + attention ms); recall and rel_err on sampled "
      "query rows of every head.")
goal = {}
for r in rows:
    if "error" in r:
        continue
    ok = r["recall"] >= 0.95 and r["density"] <= 0.25 and r["speedup"] >= 3 and r["estimate_fraction"] <= 0.15
    goal.setdefault(r["plan"].split(":")[0], []).append((r["layer"], r["plan"], ok))
print()
print("Sparsest point with recall >= 0.95, per method and layer (density, speed-up, estimate / attention):")
best = {}
for r in rows:
    if "error" in r or r["recall"] < 0.95 or r["density"] >= 0.999:
        continue
    key = (r["plan"].split(":")[0], r["layer"])
    if key not in best or r["density"] < best[key]["density"]:
        best[key] = r
for name in dict.fromkeys(r["plan"].split(":")[0] for r in rows):
    if name == "dense":
        continue
    parts = []
    for layer in dict.fromkeys(r["layer"] for r in rows):
        b = best.get((name, layer))
        parts.append(f"layer {layer}: " + (f"`{b['plan']}` {b['density']:.3f}, {b['speedup']:.2f}x, {100 * b['estimate_fraction']:.0f}%"
                                           if b else "none below density 1"))
    print(f"- {name}: " + "; ".join(parts))
print()
print("Goal (recall >= 0.95 at density <= 0.25, >= 3x with the estimate, estimate <= 15% of attention), per layer:")
for name, entries in goal.items():
    met = [f"`{spec}` on layer {l}" for l, spec, ok in entries if ok]
    print(f"- {name}: " + ("met by " + "; ".join(met) if met else "not met"))
PY
exit $status

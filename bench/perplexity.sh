#!/usr/bin/env bash
# Perplexity of longsparse against llama.cpp's llama-perplexity on the same text, model and
# contexts, one after the other, printed as a table with the relative difference; then, with
# SPARSE=1, the perplexity of every sparse prefill method (its default spec) against dense at
# one context (docs/perplexity.md).
#
# llama.cpp is a peer built outside this repository (docs/peers.md); this script only runs its
# llama-perplexity, given by path. Our side is `longsparse perplexity --json`.
#
# usage: LLAMA_PERPLEXITY=/path/to/llama-perplexity bench/perplexity.sh [TEXT_FILE]
# TEXT_FILE defaults to the first TEXT_BYTES bytes of the Jane Austen novels that the task
# generators convert once from the Debian package r-cran-janeaustenr into
# ~/.cache/longsparse/text/austen.txt (src/eval/text_sources.h).
# environment (defaults in brackets):
#   LLAMA_PERPLEXITY  llama-perplexity binary [none: peer side skipped]
#   LONGSPARSE        our CLI [build/longsparse]
#   MODEL             GGUF file [~/.cache/longsparse/models/SmolLM2-135M-Instruct.Q4_1.gguf]
#   THREADS [2]  CONTEXTS ["512 2048 8192"; "" skips the comparison]  CHUNKS ["512:16 2048:6 8192:3"] (chunks per context)
#   TEXT_BYTES [400000]  OUT (raw outputs) [a fresh temporary folder]
#   PEER_ARGS         extra flags for llama-perplexity [none]
#   SPARSE [0]        1: also the sparse-method table
#   SPARSE_CTX [8192] SPARSE_CHUNKS [3]  METHODS [every prefill method of `longsparse methods`, dense first]
#   SPARSE_CHUNKS_OF  per-method chunk counts overriding SPARSE_CHUNKS, e.g. "anchor:2 power:2" [none]
# llama-perplexity needs at least 2 × ctx tokens in the file; we need one chunk.
set -euo pipefail

LONGSPARSE=${LONGSPARSE:-build/longsparse}
MODEL=${MODEL:-$HOME/.cache/longsparse/models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
CONTEXTS=${CONTEXTS-"512 2048 8192"}  # set but empty: no comparison table
CHUNKS=${CHUNKS:-"512:16 2048:6 8192:3"}
TEXT_BYTES=${TEXT_BYTES:-400000}
PEER_ARGS=${PEER_ARGS:-}
SPARSE=${SPARSE:-0}
SPARSE_CTX=${SPARSE_CTX:-8192}
SPARSE_CHUNKS=${SPARSE_CHUNKS:-3}
SPARSE_CHUNKS_OF=${SPARSE_CHUNKS_OF:-}
OUT=${OUT:-$(mktemp -d -t perplexity.XXXXXX)}
mkdir -p "$OUT"

die() { echo "perplexity.sh: $*" >&2; exit 1; }
[ -x "$LONGSPARSE" ] || die "$LONGSPARSE not found (build first, or set LONGSPARSE)"
[ -f "$MODEL" ] || die "model not found: $MODEL (run scripts/fetch-model smollm2)"
command -v python3 >/dev/null || die "python3 is needed to read the JSON outputs"

if [ $# -ge 1 ]; then
  TEXT=$1
  [ -f "$TEXT" ] || die "text file not found: $TEXT"
else
  austen=${LONGSPARSE_CACHE:-$HOME/.cache/longsparse}/text/austen.txt
  if [ ! -f "$austen" ]; then
    # Any task generator that needs the essay haystack converts the novels once.
    "$LONGSPARSE" gen -m approx --task niah_single_2 --len 512 --samples 1 > /dev/null ||
      die "could not convert the Jane Austen novels (install r-cran-janeaustenr: scripts/setup-deps), or give a text file"
  fi
  TEXT="$OUT/austen_head.txt"
  head -c "$TEXT_BYTES" "$austen" > "$TEXT"
fi

have_peer=0
if [ -n "${LLAMA_PERPLEXITY:-}" ] && [ -x "$LLAMA_PERPLEXITY" ]; then
  have_peer=1
else
  echo "perplexity.sh: llama.cpp side skipped (set LLAMA_PERPLEXITY to a llama-perplexity binary)" >&2
fi

chunks_for() {  # chunks_for CTX: the CHUNKS entry for CTX, or 4
  local item
  for item in $CHUNKS; do [ "${item%%:*}" = "$1" ] && { echo "${item#*:}"; return; }; done
  echo 4
}
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d[sys.argv[2]]; print("nan" if v is None else v)' "$@"; }
now() { date +%s.%N; }

echo "# model: $MODEL  text: $TEXT ($(wc -c < "$TEXT") bytes)  threads: $THREADS  raw outputs: $OUT"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$CONTEXTS" ] || { echo; echo "| ctx | chunks | tokens scored | longsparse PPL | llama-perplexity PPL | relative difference | longsparse s | llama.cpp s |"
echo "|---:|---:|---:|---|---|---:|---:|---:|"; }
for ctx in $CONTEXTS; do
  chunks=$(chunks_for "$ctx")
  ours="$OUT/ours_c$ctx.json"
  t0=$(now)
  "$LONGSPARSE" perplexity -m "$MODEL" -f "$TEXT" -c "$ctx" --chunks "$chunks" -t "$THREADS" --json > "$ours" 2> "$OUT/ours_c$ctx.err" ||
    die "longsparse perplexity -c $ctx failed: $(tail -3 "$OUT/ours_c$ctx.err")"
  our_s=$(python3 -c "print(f'{$(now) - $t0:.1f}')")
  our_ppl=$(json_field "$ours" ppl) our_err=$(json_field "$ours" ppl_stderr) scored=$(json_field "$ours" tokens_scored)
  peer_ppl=nan peer_err=nan peer_s="" rel=""
  if [ $have_peer -eq 1 ]; then
    peer="$OUT/llama_c$ctx.txt"
    t0=$(now)
    # shellcheck disable=SC2086
    "$LLAMA_PERPLEXITY" -m "$MODEL" -f "$TEXT" -c "$ctx" --chunks "$chunks" -t "$THREADS" $PEER_ARGS > "$peer" 2>&1 ||
      echo "perplexity.sh: llama-perplexity -c $ctx failed (see $peer)" >&2
    peer_s=$(python3 -c "print(f'{$(now) - $t0:.1f}')")
    line=$(grep -o 'Final estimate: PPL = [0-9.]* +/- [0-9.]*' "$peer" || true)
    if [ -n "$line" ]; then
      peer_ppl=$(awk '{print $5}' <<< "$line") peer_err=$(awk '{print $7}' <<< "$line")
      rel=$(python3 -c "print(f'{($our_ppl - $peer_ppl) / $peer_ppl * 100:+.2f}%')")
    fi
  fi
  printf '| %s | %s | %s | %.4f ± %.4f | %s | %s | %s | %s |\n' "$ctx" "$chunks" "$scored" "$our_ppl" "$our_err" \
    "$([ "$peer_ppl" = nan ] && echo "–" || echo "$peer_ppl ± $peer_err")" "${rel:-–}" "$our_s" "${peer_s:-–}"
done

[ "$SPARSE" = 1 ] || exit 0
if [ -z "${METHODS:-}" ]; then
  METHODS=$("$LONGSPARSE" methods --json | python3 -c '
import json, sys
names = [m["name"] for m in json.load(sys.stdin)["methods"] if m["phase"] == "prefill"]
print(" ".join(["dense"] + [n for n in names if n != "dense"]))')
fi
echo
echo "# sparse prefill at ctx $SPARSE_CTX, each method's default spec, $SPARSE_CHUNKS chunks unless SPARSE_CHUNKS_OF says otherwise"
echo
echo "| method (spec as run) | chunks | PPL | vs dense (same chunks) | mean plan density | s per chunk |"
echo "|---|---:|---|---:|---:|---:|"
dense_json=""
for method in $METHODS; do
  chunks=$SPARSE_CHUNKS
  for item in $SPARSE_CHUNKS_OF; do [ "${item%%:*}" = "$method" ] && chunks=${item#*:}; done
  out="$OUT/sparse_$method.json"
  prefill=()
  [ "$method" = dense ] || prefill=(--prefill "$method")
  if ! "$LONGSPARSE" perplexity -m "$MODEL" -f "$TEXT" -c "$SPARSE_CTX" --chunks "$chunks" -t "$THREADS" "${prefill[@]}" \
      --json > "$out" 2> "$OUT/sparse_$method.err"; then
    echo "| $method | $chunks | failed: $(tail -1 "$OUT/sparse_$method.err") | | | |"
    continue
  fi
  # Against dense over the same chunks (dense's running PPL after as many chunks).
  python3 - "$out" "$dense_json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
dense = json.load(open(sys.argv[2]))["running_ppl"] if sys.argv[2] else []
ref = dense[min(d["chunks"], len(dense)) - 1] if dense else None
vs = f"{(d['ppl'] - ref) / ref * 100:+.2f}%" if ref and d["prefill_method"] != "dense" else "–"
# "default SPEC; dense layers []; profile: 0 layers x 0 heads" (run's label) -> SPEC
label = d["prefill_method"]
if label.startswith("default ") and label.endswith("; dense layers []; profile: 0 layers x 0 heads"):
    label = label[len("default "):].split(";")[0]
print(f"| `{label}` | {d['chunks']} | {d['ppl']:.4f} ± {d['ppl_stderr']:.4f} | {vs} | "
      f"{d['prefill_mean_density']:.3f} | {d['seconds'] / d['chunks']:.1f} |")
EOF
  if [ "$method" = dense ]; then dense_json=$out; fi
done

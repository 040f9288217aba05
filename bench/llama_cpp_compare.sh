#!/usr/bin/env bash
# Prefill and decode throughput of longsparse against llama.cpp on the same model and shapes,
# measured one after the other in this script, printed as a ratio table.
#
# llama.cpp is a peer built outside this repository (see docs/peers.md); this script only runs
# its llama-bench, given by path. Our side is `longsparse run ... --json`, whose JSON object
# carries prompt_tokens, prefill_ms, prefill_tok_s, decode_tokens, decode_ms, decode_tok_s.
# Either side is skipped with a note when it is not available.
#
# usage: LLAMA_BENCH=/path/to/llama-bench bench/llama_cpp_compare.sh [MODEL.gguf]
# environment (defaults in brackets):
#   LLAMA_BENCH  llama-bench binary [none: peer side skipped]
#   LONGSPARSE   our CLI [build/longsparse]
#   THREADS [2]  REPS [3]  PP_SIZES ["512 2048 8192"]  TG_DEPTHS ["512 8192"]  TG_N [64]
#   OUT          folder for raw outputs [a fresh temporary folder]
#   RUN_ARGS     extra flags for our side, e.g. "--prefill xattention" or "-ub 2048" [none]
#   BUSY [0]     busy-looping processes kept running beside both sides (a shared machine)
#   RSS_TOKENS   also measure the peak RSS of one prefill of this many tokens on each side
#                (llama-bench -p N -n 0 -r 1 at its default -ub 512; ours `run -ub RSS_UBATCH`),
#                as the kernel reports it for the finished process (getrusage) [none]
#   RSS_UBATCH [512]  our --ubatch for the RSS run (0: the whole prompt in one batch)
# Both sides run in the environment as it comes: no variable is set for either (longsparse
# sets what it needs itself: docs/model.md).
# Gemma 3 at long context (the README table):
#   PP_SIZES="4096 16384 32768" TG_DEPTHS="4096 32768" TG_N=16 REPS=1 RSS_TOKENS=32768 \
#     LLAMA_BENCH=... bench/llama_cpp_compare.sh ~/.cache/longsparse/models/gemma-3-270m-Q4_K_M.gguf
# Shapes: "pp N" is a prefill of N prompt tokens from an empty cache (llama-bench -p N -n 0);
# "tg N @ d D" is decoding N tokens after D tokens of context (llama-bench -n N -d D; our side:
# a D-token prompt then -n N; our decode time includes sampling, llama-bench's does not).
# Our side decodes greedily (--temp 0).
# Ratios are longsparse / llama.cpp: above 1 means we are faster.
set -euo pipefail

MODEL=${1:-${MODEL:-$HOME/.cache/longsparse/models/SmolLM2-135M-Instruct.Q4_1.gguf}}
LONGSPARSE=${LONGSPARSE:-build/longsparse}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
PP_SIZES=${PP_SIZES:-"512 2048 8192"}
TG_DEPTHS=${TG_DEPTHS:-"512 8192"}
TG_N=${TG_N:-64}
RUN_ARGS=${RUN_ARGS:-}
OUT=${OUT:-$(mktemp -d -t llama_cpp_compare.XXXXXX)}
mkdir -p "$OUT"

[ -f "$MODEL" ] || { echo "llama_cpp_compare: model not found: $MODEL (run scripts/fetch-model smollm2)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "llama_cpp_compare: python3 is needed to read the JSON outputs" >&2; exit 1; }

have_peer=0
if [ -n "${LLAMA_BENCH:-}" ] && [ -x "$LLAMA_BENCH" ]; then
  have_peer=1
else
  echo "llama_cpp_compare: llama.cpp side skipped (set LLAMA_BENCH to an llama-bench binary)" >&2
fi
have_ours=0
run_help=""
[ -x "$LONGSPARSE" ] && run_help=$("$LONGSPARSE" run --help 2>/dev/null || true)
if grep -q -- "--json" <<< "$run_help"; then
  have_ours=1
else
  echo "llama_cpp_compare: longsparse side skipped ($LONGSPARSE has no 'run --json' subcommand)" >&2
fi
if [ $have_peer -eq 0 ] && [ $have_ours -eq 0 ]; then
  echo "llama_cpp_compare: nothing to run" >&2
  exit 1
fi
echo "# model: $MODEL  threads: $THREADS  reps: $REPS  raw outputs: $OUT"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
BUSY=${BUSY:-0}
busy_pids=()
stop_busy() { [ ${#busy_pids[@]} -eq 0 ] || kill "${busy_pids[@]}" 2>/dev/null || true; }
trap stop_busy EXIT
for _ in $(seq "$BUSY"); do
  sh -c 'while :; do :; done' &
  busy_pids+=($!)
done
[ "$BUSY" -eq 0 ] || echo "# $BUSY competing busy process(es) running beside both sides"

# --- llama.cpp: llama-bench, flash attention on, one JSON object per line --------------------
peer_jsonl="$OUT/llama_bench.jsonl"
: > "$peer_jsonl"
if [ $have_peer -eq 1 ]; then
  pp_list=$(echo $PP_SIZES | tr ' ' ',')
  d_list=$(echo $TG_DEPTHS | tr ' ' ',')
  "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -fa 1 -r "$REPS" -p "$pp_list" -n 0 -o jsonl >> "$peer_jsonl" 2> "$OUT/llama_bench.pp.err"
  "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -fa 1 -r "$REPS" -p 0 -n "$TG_N" -d "$d_list" -o jsonl >> "$peer_jsonl" 2> "$OUT/llama_bench.tg.err"
fi

# --- longsparse: `run --json` on prompts of about the same token counts ----------------------
# The prompt is a repeated plain-English paragraph; its length in tokens is read back from
# run's prompt_tokens, so the table shows what was actually measured.
make_prompt() {  # make_prompt TOKENS FILE
  python3 - "$1" "$2" <<'PY'
import sys
target, path = int(sys.argv[1]), sys.argv[2]
# 40 short sentences, cycled.
words = ["grass", "river", "stone", "cloud", "field", "house", "bridge", "forest"]
colours = ["green", "blue", "grey", "white", "golden", "dark", "red", "pale"]
sentences = [f"The {w} is {c}." for w in words for c in colours[:5]]
out, i = [], 0
while len(" ".join(out)) < target * 5:
    out.append(sentences[i % len(sentences)]); i += 1
text = " ".join(out)
# SmolLM2 gives about 4.0 characters per token on this text; aim 1-2% short so that
# prompt + generated tokens stays within the 8192-token context at the largest shape.
open(path, "w").write(text[: int(target * 3.95)].rsplit(" ", 1)[0])
PY
}
ours_jsonl="$OUT/longsparse.jsonl"
: > "$ours_jsonl"
run_ours() {  # run_ours SHAPE PROMPT_TOKENS N_GEN
  local shape=$1 tokens=$2 n=$3 file="$OUT/prompt_$2.txt"
  [ -f "$file" ] || make_prompt "$tokens" "$file"
  for _ in $(seq "$REPS"); do
    local line
    if ! line=$("$LONGSPARSE" run -m "$MODEL" -f "$file" -n "$n" -t "$THREADS" --temp 0 --json $RUN_ARGS 2>> "$OUT/longsparse.err" \
                | python3 -c 'import json,sys
txt=sys.stdin.read()
try: obj=json.loads(txt)
except ValueError: obj=json.loads([l for l in txt.splitlines() if l.startswith("{")][-1])
print(json.dumps(obj))'); then
      echo "llama_cpp_compare: longsparse run failed for $shape (see $OUT/longsparse.err)" >&2
      return 0
    fi
    echo "{\"shape\": \"$shape\", \"run\": $line}" >> "$ours_jsonl"
  done
}
if [ $have_ours -eq 1 ]; then
  for p in $PP_SIZES; do run_ours "pp $p" "$p" 1; done
  echo "# longsparse kernels: $(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["run"].get("kernels"))' "$ours_jsonl")"
  for d in $TG_DEPTHS; do run_ours "tg $TG_N @ d $d" "$d" "$TG_N"; done
fi

# --- peak RSS of one long prefill on each side --------------------------------------------------
# getrusage(RUSAGE_CHILDREN).ru_maxrss of the finished command, in MB (10^6 bytes, as run --json
# peak_rss_bytes / 1e6): the largest resident set any of
# its processes reached (our CLI may re-exec itself: the same process).
peak_rss_mb() {  # peak_rss_mb COMMAND...
  python3 -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6:.0f}" if rc == 0 else "-")' "$@"
}
rss_rows=""
if [ -n "${RSS_TOKENS:-}" ]; then
  RSS_UBATCH=${RSS_UBATCH:-512}
  peer_rss="-"
  [ $have_peer -eq 1 ] && peer_rss=$(peak_rss_mb "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -fa 1 -r 1 -p "$RSS_TOKENS" -n 0)
  ours_rss="-"
  if [ $have_ours -eq 1 ]; then
    file="$OUT/prompt_$RSS_TOKENS.txt"
    [ -f "$file" ] || make_prompt "$RSS_TOKENS" "$file"
    ours_rss=$(peak_rss_mb "$LONGSPARSE" run -m "$MODEL" -f "$file" -n 1 -t "$THREADS" --temp 0 -ub "$RSS_UBATCH" $RUN_ARGS)
  fi
  rss_rows="$RSS_TOKENS $RSS_UBATCH $peer_rss $ours_rss"
fi

# --- table -------------------------------------------------------------------------------------
python3 - "$peer_jsonl" "$ours_jsonl" "$PP_SIZES" "$TG_DEPTHS" "$TG_N" "$rss_rows" <<'PY'
import json, statistics, sys
peer_path, ours_path, pp_sizes, tg_depths, tg_n, rss_rows = sys.argv[1:7]
peer = {}
for line in open(peer_path):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r["n_gen"] == 0:
        peer[f"pp {r['n_prompt']}"] = (r["avg_ts"], r["stddev_ts"])
    else:
        peer[f"tg {r['n_gen']} @ d {r['n_depth']}"] = (r["avg_ts"], r["stddev_ts"])
ours = {}
for line in open(ours_path):
    r = json.loads(line)
    run = r["run"]
    rate = run["prefill_tok_s"] if r["shape"].startswith("pp") else run["decode_tok_s"]
    tokens = run["prompt_tokens"] if r["shape"].startswith("pp") else run.get("decode_tokens")
    ours.setdefault(r["shape"], []).append((rate, tokens, run["prompt_tokens"]))
def rate(x):
    return f"{x:.1f}" if x >= 10 else f"{x:.3g}"
shapes = [f"pp {p}" for p in pp_sizes.split()] + [f"tg {tg_n} @ d {d}" for d in tg_depths.split()]
print(f"| shape | llama.cpp tok/s | longsparse tok/s | longsparse tokens measured (prompt) | ratio |")
print(f"|---|---|---|---|---|")
for s in shapes:
    p = peer.get(s)
    o = ours.get(s)
    ps = f"{rate(p[0])} ± {rate(p[1])}" if p else "-"
    orate = statistics.median(x[0] for x in o) if o else None
    os_ = rate(orate) if o else "-"
    ot = f"{o[0][1]} ({o[0][2]})" if o else "-"
    ratio = f"{orate / p[0]:.2f}" if (p and o and p[0] > 0) else "-"
    print(f"| {s} | {ps} | {os_} | {ot} | {ratio} |")
if rss_rows:
    n, ub, peer_mb, ours_mb = rss_rows.split()
    ratio = f"{float(ours_mb) / float(peer_mb):.2f}" if "-" not in (peer_mb, ours_mb) else "-"
    print()
    print("| peak RSS | llama.cpp MB | longsparse MB | longsparse / llama.cpp |")
    print("|---|---|---|---|")
    print(f"| prefill of {n} tokens (ours -ub {ub}, llama.cpp -ub 512) | {peer_mb} | {ours_mb} | {ratio} |")
PY

#!/usr/bin/env bash
# Attention kernel figures as ratios measured within one process each:
#   - dense flash kernel vs an OpenBLAS sgemm (roofline) on the SmolLM2-135M shape
#     (n=8192, 9 heads, 3 KV heads, d=64) and the Gemma 3 270M shape (4 heads, 1 KV head, d=256);
#   - the plan executor at random-block densities 0.10 and 0.02 vs the dense kernel;
#   - ggml's CPU flash attention on the same shapes, when a peer binary is available
#     (GGML_FA_BENCH, default /tmp/peers/bin/ggml_fa_bench, built from the shared
#     ggml_fa_bench.c outside this repository).
# Usage: bench/attention.sh [build-dir]   (env: N, THREADS, REPEAT)
set -euo pipefail

BUILD=${1:-build}
N=${N:-8192}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
BIN="$BUILD/longsparse"
PEER=${GGML_FA_BENCH:-/tmp/peers/bin/ggml_fa_bench}
[[ -x "$BIN" ]] || { echo "attention.sh: $BIN not found; build first (make build)" >&2; exit 1; }

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Cooperlake}
# On a shared, oversubscribed machine, OpenMP threads that spin at barriers while their
# partner is descheduled cost more than the work itself; sleeping waits keep the timings sane.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   (figures are noisy on a shared machine; compare ratios)" >&2
run() {  # name, extra flags...
  local name=$1; shift
  echo "running $name ..." >&2
  "$BIN" bench attention --n "$N" --threads "$THREADS" --repeat "$REPEAT" --json "$@" > "$OUT/$name.json"
}
run smollm2_dense --heads 9 --kv-heads 3 --dim 64 --roofline --compare-dense
run gemma3_dense --heads 4 --kv-heads 1 --dim 256 --roofline --compare-dense
run smollm2_rb010 --heads 9 --kv-heads 3 --dim 64 --plan random-blocks:density=0.10,seed=1 --compare-dense
run smollm2_rb002 --heads 9 --kv-heads 3 --dim 64 --plan random-blocks:density=0.02,seed=1 --compare-dense

if [[ -x "$PEER" ]]; then
  for kv in f16 f32; do
    echo "running ggml peer ($kv K/V) ..." >&2
    "$PEER" "$N" 9 3 64 "$THREADS" "$kv" > "$OUT/ggml_smollm2_$kv.json"
    "$PEER" "$N" 4 1 256 "$THREADS" "$kv" > "$OUT/ggml_gemma3_$kv.json"
  done
else
  echo "ggml peer: $PEER not found; skipping the peer comparison" >&2
fi

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None
rows = []
for shape in ("smollm2", "gemma3"):
    r = load(f"{shape}_dense")
    rows.append((f"{shape} dense kernel / sgemm (wall)", f"{r['dense_gflops']:.1f} / {r['sgemm_gflops']:.1f} GFLOP/s",
                 f"{r['dense_fraction_of_sgemm']:.2f}", ">= 0.60"))
    rows.append((f"{shape} dense kernel / sgemm (per CPU-s)",
                 f"{r['dense_gflops_per_cpu_s']:.1f} / {r['sgemm_gflops_per_cpu_s']:.1f} GFLOP/s",
                 f"{r['dense_cpu_fraction_of_sgemm']:.2f}", ">= 0.60"))
    for kv in ("f16", "f32"):
        g = load(f"ggml_{shape}_{kv}")
        if g:
            rows.append((f"{shape} ggml ({kv} K/V) / dense kernel time", f"{g['ms']:.0f} / {r['dense_ms']:.0f} ms",
                         f"{g['ms'] / r['dense_ms']:.2f}", ">= 2.00"))
for name, target in (("rb010", "<= 0.15"), ("rb002", "<= 0.04")):
    r = load(f"smollm2_{name}")
    rows.append((f"smollm2 executor density {r['density']:.3f} / dense (wall)", f"{r['ms']:.1f} / {r['dense_ms']:.1f} ms",
                 f"{r['ms'] / r['dense_ms']:.3f}", target))
    rows.append((f"smollm2 executor density {r['density']:.3f} / dense (CPU)",
                 f"{r['cpu_ms']:.1f} / {r['dense_cpu_ms']:.1f} ms", f"{r['cpu_ms'] / r['dense_cpu_ms']:.3f}", target))
r = load("smollm2_dense")
print(f"kernels {r['simd']}, OpenBLAS core {r['blas_core']}, n={r['n']}, {r['threads']} threads, median of {r['repeat']}")
print("ggml ran in its own process (wall-clock only); every other ratio is within one process")
width = max(len(x[0]) for x in rows)
print(f"{'comparison':<{width}}  {'measured':>26}  {'ratio':>6}  target")
for name, measured, ratio, target in rows:
    print(f"{name:<{width}}  {measured:>26}  {ratio:>6}  {target}")
PY

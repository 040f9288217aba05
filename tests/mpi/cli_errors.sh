#!/usr/bin/env bash
# The CLI's context parallelism under mpirun: a rank that fails during its set-up makes every
# rank fail with that rank's error and exit non-zero (no hang); ranks given different prompts
# fail together; a bad mode is an error. Usage: cli_errors.sh LONGSPARSE MPIEXEC
set -uo pipefail
bin=$1 mpiexec=$2
mpirun=("$mpiexec" --oversubscribe --allow-run-as-root)
status=0
fail() { echo "FAIL: $*"; status=1; }
run_args=(run -m smollm2 -n 2 --temp 0 -t 1 --context-parallel ring)

# Rank 1 cannot open its model: both ranks report rank 1's error.
out=$(timeout 120 "${mpirun[@]}" -np 1 "$bin" "${run_args[@]}" -p "hello there" : \
      -np 1 "$bin" run -m /nonexistent/model.gguf -n 2 --temp 0 -t 1 --context-parallel ring -p "hello there" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a failing rank: exit $rc"
[ "$(grep -c 'error: rank 1: .*nonexistent' <<<"$out")" -eq 2 ] || fail "a failing rank: not reported by both ranks: $out"

# Different prompts on the two ranks.
out=$(timeout 120 "${mpirun[@]}" -np 1 "$bin" "${run_args[@]}" -p "one prompt" : \
      -np 1 "$bin" "${run_args[@]}" -p "another prompt" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "different prompts: exit $rc"
[ "$(grep -c 'the ranks disagree' <<<"$out")" -eq 2 ] || fail "different prompts: not reported by both ranks: $out"

# An unknown mode, with and without mpirun.
out=$("$bin" run -m smollm2 -p hi --context-parallel tree 2>&1) && fail "unknown mode accepted"
grep -q "valid: ring" <<<"$out" || fail "unknown mode: $out"
# More ranks than tokens.
out=$(timeout 120 "${mpirun[@]}" -np 3 "$bin" "${run_args[@]}" -p "hi" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "too short a prompt: exit $rc"
grep -q "cannot be split over 3 ranks" <<<"$out" || fail "too short a prompt: $out"
exit $status

#!/usr/bin/env bash
# The data-aware evidence table (issue #7): perplexity and KL divergence of RTN, GPTQ and AWQ at
# w4g128 and w3g128 (every block linear; embeddings and output kept) and of llama-quantize's
# presets, on the sample model's eval split, calibrated on its calib split; with the time each took.
#   tools/calib_report.sh [MODEL] > report.txt      (needs `make sample-data` for build/kjv)
set -euo pipefail
M=${1:-sample_models/kjv-small.gguf}
EVAL=build/kjv/eval.txt CALIB=build/kjv/calib.txt Q=./quantscope
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
row() { # name, recipe file
    local t0 t1 out
    t0=$(date +%s.%N)
    out=$($Q ppl "$M" --text "$EVAL" --ctx 256 --recipe "$2" --calib "$CALIB" --kld-against "$M" 2>/dev/null)
    t1=$(date +%s.%N)
    printf '%-22s %10s %10s %12s %10s %8.1f\n' "$1" \
        "$(grep 'Mean PPL(Q) ' <<<"$out" | awk '{print $4}')" "$(grep 'Mean PPL(base)' <<<"$out" | awk '{print $4}')" \
        "$(grep 'Mean    KLD' <<<"$out" | awk '{print $3}')" "$(grep 'Same top p' <<<"$out" | awk '{print $4}')" \
        "$(echo "$t1 - $t0" | bc)"
}
printf '%-22s %10s %10s %12s %10s %8s\n' config "PPL(Q)" "PPL(base)" "mean KLD" "same top" "seconds"
for bits in 4 3; do
    for m in "rtn:bits=$bits,group=128,asym=true" "gptq:bits=$bits,group=128,asym=true" "awq:bits=$bits,group=128"; do
        n="${m%%:*} w${bits}g128"
        $Q recipe "$M" --set "blk\\..*=$m" -o "$T/r.json" >/dev/null 2>&1
        row "$n" "$T/r.json"
    done
done
for p in Q4_K_M Q3_K_M Q2_K; do
    $Q recipe "$M" --preset "$p" -o "$T/r.json" >/dev/null 2>&1
    row "$p" "$T/r.json"
done

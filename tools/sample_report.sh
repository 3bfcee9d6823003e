#!/bin/sh
# Prints the measured sections of sample_models/README.md: loss curves, eval perplexity and
# continuations of "And God said". Run after `make sample-models` (needs build/kjv/eval.txt).
set -e
Q=./quantscope
EVAL=build/kjv/eval.txt
for m in kjv-tiny kjv-small; do
  echo "### $m: training loss (nats/token; eval = 32 windows of eval.txt)"
  echo
  echo "| step | tokens | train loss | eval loss | minutes |"
  echo "|---:|---:|---:|---:|---:|"
  awk -F, 'function row() { printf "| %d | %.2fM | %.3f | %.3f | %.1f |\n", $1, $4 / 1e6, $2, $3, $5 / 60 }
    NR > 1 { last = $0; shown = ($1 % 200 == 0 || $1 == 100); if (shown) row() }
    END { if (!shown) { $0 = last; row() } }' sample_models/$m.loss.csv
  echo
done
echo "### Perplexity on eval.txt (llama-perplexity's method, ctx 256)"
echo
echo "| model | PPL |"
echo "|---|---:|"
for m in kjv-tiny kjv-small; do
  p=$($Q ppl sample_models/$m.gguf --text $EVAL --ctx 256 2>/dev/null | sed -n 's/^Final estimate: PPL = //p')
  echo "| $m | $p |"
done
echo
echo "### \"And God said\" — greedy (48 tokens)"
echo
for m in kjv-tiny kjv-small; do
  printf '* %s: ' $m
  $Q generate sample_models/$m.gguf -p "And God said" -n 48 --temp 0 2>/dev/null | tr '\n' ' '
  echo
done
$Q export sample_models/kjv-small.gguf --preset Q4_K_M -o build/sample/kjv-small-Q4_K_M.gguf >/dev/null 2>&1
printf '* kjv-small, Q4_K_M: '
$Q generate build/sample/kjv-small-Q4_K_M.gguf -p "And God said" -n 48 --temp 0 2>/dev/null | tr '\n' ' '
echo
echo
echo "### \"And God said\" — sampled from kjv-small (temperature 0.8, top-k 40, top-p 0.95)"
echo
for s in 1 2 3; do
  printf '* seed %d: ' $s
  $Q generate sample_models/kjv-small.gguf -p "And God said" -n 48 --temp 0.8 --seed $s 2>/dev/null | tr '\n' ' '
  echo
done

#!/usr/bin/env bash
# Side-by-side timing of reward.Score against the official Python metric
# functions on the same 1,500 conformance pairs. Runs the two alternately
# RUNS times and prints the median of each and the median per-run ratio
# (alternating keeps the ratio fair on a noisy machine).
#
#   UPSTREAM=/path/to/copies bash reward/testdata/bench_vs_python.sh
#
# UPSTREAM must hold squad_evaluate_v11.py, asearcher_evaluate.py and
# asearcher_rewards.py (see make_conformance.py for where they come from).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
: "${UPSTREAM:?set UPSTREAM to the folder with the upstream scripts}"
go test -c -o /tmp/reward.bench ./reward
go_ns=(); py_ns=(); ratios=()
for _ in $(seq "$RUNS"); do
  g=$(cd reward && /tmp/reward.bench -test.run '^$' -test.bench '^BenchmarkScoreConformance$' -test.benchtime 2s | awk '/ns\/pair/ {for (i=1;i<=NF;i++) if ($(i+1)=="ns/pair") print $i}')
  p=$(cd reward/testdata && python3 bench_python.py --cases conformance.jsonl \
        --squad-v11 "$UPSTREAM/squad_evaluate_v11.py" --asearcher-eval "$UPSTREAM/asearcher_evaluate.py" \
        --asearcher-rewards "$UPSTREAM/asearcher_rewards.py" | awk '{print $2}')
  r=$(awk -v p="$p" -v g="$g" 'BEGIN {printf "%.1f", p/g}')
  go_ns+=("$g"); py_ns+=("$p"); ratios+=("$r")
  echo "run: go ${g} ns/pair, python ${p} ns/pair, python/go ${r}x"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
gm=$(median "${go_ns[@]}"); pm=$(median "${py_ns[@]}")
echo "median of $RUNS runs: go ${gm} ns/pair, python ${pm} ns/pair, python/go $(median "${ratios[@]}")x (median of the per-run ratios)"

#!/usr/bin/env python3
"""Time the official Python metric functions on the conformance inputs.

Prints one line: "python_ns_per_pair <n>". Used by bench_vs_python.sh to put
a ratio beside BenchmarkScoreConformance, which computes the same six metrics
in Go (reward.Score) over the same (prediction, golds) pairs. Arguments are
the upstream script paths, as for make_conformance.py.
"""

import argparse
import json
import time

from make_conformance import load, stub_modules


def main():
    ap = argparse.ArgumentParser()
    for flag in ["squad-v11", "asearcher-eval", "asearcher-rewards"]:
        ap.add_argument("--" + flag, required=True)
    ap.add_argument("--cases", default="reward/testdata/conformance.jsonl")
    ap.add_argument("--min-seconds", type=float, default=2.0)
    args = ap.parse_args()
    stub_modules()
    squad = load("squad_v11", args.squad_v11)
    ev = load("asearcher_eval", args.asearcher_eval)
    rw = load("asearcher_rewards", args.asearcher_rewards)

    pairs = []
    for line in open(args.cases, encoding="utf-8"):
        rec = json.loads(line)
        if "p" in rec:
            pairs.append((rec["p"], rec["g"]))

    def score(p, golds):
        # The six metrics of reward.Score: EM, SubEM, SQuAD F1, evaluate.py
        # set F1, rewards.py set F1, CEM; each maxed over the golds.
        return (
            squad.metric_max_over_ground_truths(squad.exact_match_score, p, golds),
            ev.subem_check(p, golds),
            squad.metric_max_over_ground_truths(squad.f1_score, p, golds),
            max(ev.f1_score(p, g) for g in golds),
            max(rw.f1_score(p, g) for g in golds),
            max(ev.cover_exact_match_score_1(p, g) for g in golds),
        )

    n = 0
    start = time.perf_counter()
    while True:
        for p, golds in pairs:
            score(p, golds)
        n += len(pairs)
        elapsed = time.perf_counter() - start
        if elapsed >= args.min_seconds:
            break
    print("python_ns_per_pair %.0f" % (elapsed * 1e9 / n))


if __name__ == "__main__":
    main()

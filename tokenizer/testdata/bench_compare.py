#!/usr/bin/env python3
"""Side-by-side encode speed: this package against Hugging Face `tokenizers`
on the same strings, the real Qwen3 tokenizer.json and the same machine.

Run from the repository root (venv as in gen_fixtures.py):
    /tmp/venv-tokenizer/bin/python tokenizer/testdata/bench_compare.py [--runs 5]

Each round runs, one after the other: HF `encode` in a Python loop (one
thread), HF `encode_batch` (Rayon, 1 thread and all cores), HF load, then the
Go benchmarks (BenchmarkEncode: one goroutine; BenchmarkEncodeParallel: all
cores; BenchmarkLoadQwen). Rounds alternate so that load from other processes
hits both sides alike. Reported: medians over rounds of MB/s (wall clock) and
MB per CPU-second (robust when the machine is shared), and Go/HF ratios.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
REPO = os.path.dirname(PKG)
CORPUS = os.path.join(REPO, "dataset", "data", "flashrag-wiki18-sample", "corpus_sample1000.jsonl")


def hf_child(threads):
    """Runs in a subprocess so RAYON_NUM_THREADS takes effect."""
    import zstandard
    from tokenizers import Tokenizer

    with open(os.path.join(HERE, "qwen3", "tokenizer.json.zst"), "rb") as f:
        data = zstandard.ZstdDecompressor().decompress(f.read(), max_output_size=1 << 30).decode()
    c0, w0 = time.process_time(), time.perf_counter()
    tok = Tokenizer.from_str(data)
    load = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0}
    with open(CORPUS, encoding="utf-8") as f:
        docs = [json.loads(line)["contents"] for line in f]
    size = sum(len(d.encode()) for d in docs)
    for d in docs:  # warm the BPE cache, as the Go benchmark's first iterations do
        tok.encode(d)
    out = {"load": load}
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(3):
        for d in docs:
            tok.encode(d)
    out["encode_loop"] = {"mbs": 3 * size / (time.perf_counter() - w0) / 1e6,
                          "mb_cpu": 3 * size / (time.process_time() - c0) / 1e6}
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(3):
        tok.encode_batch(docs)
    out["encode_batch"] = {"mbs": 3 * size / (time.perf_counter() - w0) / 1e6,
                           "mb_cpu": 3 * size / (time.process_time() - c0) / 1e6}
    out["threads"] = threads
    print(json.dumps(out))


def run_hf(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    res = subprocess.run([sys.executable, __file__, "--hf-child", str(threads)], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


BENCH_LINE = re.compile(r"^(Benchmark\w+)-\d+\s+\d+\s+(\d+) ns/op\s+([\d.]+) MB/s\s+([\d.]+) (MB/cpu-s|cpu-s/op)")


def run_go(binary):
    res = subprocess.run([binary, "-test.run", "^$", "-test.bench", "^(BenchmarkEncode|BenchmarkEncodeParallel|BenchmarkLoadQwen)$",
                          "-test.benchtime", "5x"], cwd=PKG, check=True, capture_output=True, text=True)
    out = {}
    for line in res.stdout.splitlines():
        m = BENCH_LINE.match(line)
        if m:
            out[m.group(1)] = {"ns": int(m.group(2)), "mbs": float(m.group(3)), "cpu": float(m.group(4))}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hf-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hf_child is not None:
        hf_child(args.hf_child)
        return

    cores = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "tokenizer.test")
        subprocess.run(["go", "test", "-c", "-o", binary, "./tokenizer"], cwd=REPO, check=True)
        rows = {k: {"wall": [], "cpu": []} for k in
                ["hf_loop", "hf_batch1", "hf_batchN", "go_1", "go_N", "hf_load", "go_load"]}
        for r in range(args.runs):
            h1, hn, g = run_hf(1), run_hf(cores), run_go(binary)
            rows["hf_loop"]["wall"].append(h1["encode_loop"]["mbs"])
            rows["hf_loop"]["cpu"].append(h1["encode_loop"]["mb_cpu"])
            rows["hf_batch1"]["wall"].append(h1["encode_batch"]["mbs"])
            rows["hf_batch1"]["cpu"].append(h1["encode_batch"]["mb_cpu"])
            rows["hf_batchN"]["wall"].append(hn["encode_batch"]["mbs"])
            rows["hf_batchN"]["cpu"].append(hn["encode_batch"]["mb_cpu"])
            rows["hf_load"]["wall"].append(h1["load"]["wall_s"])
            rows["hf_load"]["cpu"].append(h1["load"]["cpu_s"])
            rows["go_1"]["wall"].append(g["BenchmarkEncode"]["mbs"])
            rows["go_1"]["cpu"].append(g["BenchmarkEncode"]["cpu"])
            rows["go_N"]["wall"].append(g["BenchmarkEncodeParallel"]["mbs"])
            rows["go_N"]["cpu"].append(g["BenchmarkEncodeParallel"]["cpu"])
            rows["go_load"]["wall"].append(g["BenchmarkLoadQwen"]["ns"] / 1e9)
            rows["go_load"]["cpu"].append(g["BenchmarkLoadQwen"]["cpu"])
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr)

    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in rows.items()}
    print(f"corpus: {CORPUS} ({args.runs} rounds, {cores} cores, medians)")
    print()
    print("| encode (Qwen3 vocab) | MB/s wall | MB per CPU-s |")
    print("|---|---|---|")
    names = {"hf_loop": "HF tokenizers `encode` loop, 1 thread", "hf_batch1": "HF `encode_batch`, 1 Rayon thread",
             "hf_batchN": f"HF `encode_batch`, {cores} Rayon threads", "go_1": "Go `Encode`, 1 goroutine",
             "go_N": f"Go `Encode`, {cores} goroutines (RunParallel)"}
    for k, name in names.items():
        print(f"| {name} | {med[k]['wall']:.2f} | {med[k]['cpu']:.2f} |")
    print()
    print("| ratio | wall | CPU |")
    print("|---|---|---|")
    for label, a, b in [("Go 1 goroutine / HF encode loop", "go_1", "hf_loop"),
                        ("Go 1 goroutine / HF encode_batch 1 thread", "go_1", "hf_batch1"),
                        (f"Go {cores} goroutines / HF encode_batch {cores} threads", "go_N", "hf_batchN")]:
        print(f"| {label} | {med[a]['wall'] / med[b]['wall']:.1f}× | {med[a]['cpu'] / med[b]['cpu']:.1f}× |")
    print()
    print("| load Qwen3 tokenizer.json (11.4 MB, in memory) | wall s | CPU s |")
    print("|---|---|---|")
    print(f"| HF `Tokenizer.from_str` | {med['hf_load']['wall']:.3f} | {med['hf_load']['cpu']:.3f} |")
    print(f"| Go `FromJSON` | {med['go_load']['wall']:.3f} | {med['go_load']['cpu']:.3f} |")


if __name__ == "__main__":
    main()

"""Greedy decoding speed of llama.cpp (through llama-cpp-python) on the
SmolLM2-135M-Instruct GGUF, batch 1, for docs/benchmarks.md (issue 17 §4).

llama.cpp runs the GGUF's own Q4_1/Q8_0 weights; asearcher's engine runs the
imported float32 weights, so the comparison is of whole systems as a user
would run them, not of the same arithmetic.

usage: python decode.py GGUF [--threads 2] [--prompt 16] [--new 32] [--rounds 3]
"""
import argparse
import statistics
import time

from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    llm = Llama(model_path=a.gguf, n_threads=a.threads, n_threads_batch=a.threads,
                n_ctx=a.prompt + a.new + 8, n_batch=a.prompt, verbose=False)
    # A fixed prompt of exactly a.prompt tokens, as the engine bench uses.
    ids = llm.tokenize(b"The capital of France is a city with a long history of art, science and")
    ids = (ids * (a.prompt // len(ids) + 1))[: a.prompt]
    rates = []
    for r in range(a.rounds):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        n = 0
        for _ in range(a.new):
            tok = llm.sample(top_k=1, temp=0.0)
            llm.eval([tok])
            n += 1
        t2 = time.perf_counter()
        rates.append(n / (t2 - t1))
        print(f"round {r + 1}: prompt {a.prompt} tokens in {t1 - t0:.3f} s, decode {n / (t2 - t1):.1f} tok/s")
    print(f"median decode tokens/s, batch 1, {a.threads} threads: {statistics.median(rates):.1f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The PyTorch + PEFT side of the LoRA training-step benchmark
(scripts/bench_lora_step.sh runs engine's TestLoRAStepBench, which calls
this once per round between its own measurements).

Loads a model directory in transformers (float32, CPU, eager), wraps it
with peft.get_peft_model(LoraConfig(r, lora_alpha, the seven projections)),
and times forward + backward + AdamW (over the adapter parameters only) on
the same batch shape as the engine: one warm-up step, then --steps steps.
Prints one JSON object with the median step time and tokens/s.
"""
import argparse
import json
import statistics
import time

import peft
import torch
import transformers

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--seqs", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
    model = peft.get_peft_model(base, peft.LoraConfig(r=a.rank, lora_alpha=a.alpha, target_modules=TARGETS,
                                                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    vocab = base.config.vocab_size
    ids = torch.randint(0, vocab, (a.seqs, a.seq_len))
    targets = torch.randint(0, vocab, (a.seqs, a.seq_len))

    def step():
        t = time.perf_counter()
        logits = model(input_ids=ids, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), reduction="sum")
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    step()
    times = [step() for _ in range(a.steps)]
    st = statistics.median(times)
    print(json.dumps({"torch": torch.__version__, "peft": peft.__version__, "threads": torch.get_num_threads(),
                      "trainable_params": sum(p.numel() for p in trainable), "step_seconds": st,
                      "tokens_per_sec": a.seqs * a.seq_len / st}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The PyTorch side of `asearcher bench engine`: the same model config in
transformers on the CPU (float32, eager mode, default attention), the same
batch shapes, the same thread count. Prints one JSON object of medians.

The Go command runs this between its own measurements, round by round, so
both see the same machine load.
"""
import argparse
import json
import statistics
import time

import torch
import transformers

PRESETS = {  # mirror engine.Preset
    "tiny": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16),
    "small": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                  num_key_value_heads=2, head_dim=64),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--model", default="", help="a model directory to load instead of the random preset")
    ap.add_argument("--seqs", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model:
        model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
        cfg = model.config
        a.vocab = cfg.vocab_size
    else:
        cfg = transformers.Qwen3Config(vocab_size=a.vocab, max_position_embeddings=max(8192, a.seq_len + 1),
                                       rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                                       attention_bias=False, hidden_act="silu", eos_token_id=None,
                                       bos_token_id=None, pad_token_id=0, **PRESETS[a.preset])
        model = transformers.Qwen3ForCausalLM(cfg).float()
    out = {"torch_version": torch.__version__, "threads": torch.get_num_threads()}

    n = 1024
    x, y = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(x, y)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    out["peak_gflops"] = best

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    ids = torch.randint(0, a.vocab, (a.seqs, a.seq_len))
    targets = torch.randint(0, a.vocab, (a.seqs, a.seq_len))

    def step():
        t = time.perf_counter()
        logits = model(input_ids=ids, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1), reduction="sum")
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    step()
    out["train_tokens_per_sec"] = a.seqs * a.seq_len / statistics.median([step() for _ in range(3)])

    model.eval()
    for batch in (1, 32):
        prompt = torch.randint(0, a.vocab, (batch, a.prompt))

        def gen():
            t = time.perf_counter()
            with torch.no_grad():
                r = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                                   temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=a.new_tokens,
                                   min_new_tokens=a.new_tokens, pad_token_id=0)
            assert r.shape[1] == a.prompt + a.new_tokens
            return time.perf_counter() - t

        gen()
        out[f"sample{batch}_tokens_per_sec"] = batch * a.new_tokens / gen()
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    out["kv_bytes_per_token"] = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * hd * 4
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixtures for the engine's fidelity tests, from Hugging Face
transformers and torch autograd (float32, CPU).

    python engine/testdata/make_fixtures.py generate [KIND...]  # writes testdata/fidelity/{qwen2,qwen3,llama}
    python engine/testdata/make_fixtures.py check-engine  # loads the engine-written checkpoints
                                                          # (testdata/fidelity/engine_ckpt_*, from
                                                          # ENGINE_WRITE_FIXTURES=1 go test ./engine)
                                                          # in transformers, writes its logits next to them

For each tiny random config the generator writes the model directory
(config.json, model.safetensors) and expected.safetensors / expected.json:
logits for three fixed sequences, and for each Tinker loss (cross_entropy,
importance_sampling, ppo) the summed loss, per-token logprobs and the
gradient of every parameter after one backward pass over all of them.
Sequences run one by one, unpadded, as the engine packs them.

Needs: pip install torch transformers safetensors (CPU torch; see
docs/engine.md for installing it without a GPU).
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file, load_file
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fidelity")
VOCAB = 97
# The third sequence is longer than the engine's 64-query attention block,
# so block boundaries and the causal mask across them are checked too.
SEQS = [[3, 17, 42, 5, 96, 0, 11, 23], [60, 2, 2, 88, 14, 33, 71, 9, 45, 1, 27, 64, 8],
        [(i * 37 + 11) % VOCAB for i in range(150)]]


def tiny_config(kind):
    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-6, hidden_act="silu", bos_token_id=None, eos_token_id=VOCAB - 1)
    if kind == "qwen2":
        return transformers.Qwen2Config(**common, rope_theta=10000.0, tie_word_embeddings=False,
                                        use_sliding_window=False)
    if kind == "llama":
        # SmolLM2's shape of Llama: tied embeddings, no biases, head_dim
        # implied by hidden/heads, a large RoPE base.
        return transformers.LlamaConfig(**common, rope_theta=100000.0, tie_word_embeddings=True,
                                        attention_bias=False, mlp_bias=False)
    return transformers.Qwen3Config(**common, head_dim=8, rope_theta=1000000.0, tie_word_embeddings=True,
                                    attention_bias=False)


def build(kind, seed):
    torch.manual_seed(seed)
    cfg = tiny_config(kind)
    cls = {"qwen2": transformers.Qwen2ForCausalLM, "qwen3": transformers.Qwen3ForCausalLM,
           "llama": transformers.LlamaForCausalLM}[kind]
    model = cls._from_config(cfg, attn_implementation="eager", torch_dtype=torch.float32)
    # Larger than the 0.02 default so logits and gradients are far above
    # float32 noise; norms and biases random around their defaults.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model.float().eval()


def token_logprobs(model, seq):
    ids = torch.tensor([seq[:-1]])
    logits = model(input_ids=ids, use_cache=False).logits[0]
    lp = torch.log_softmax(logits, dim=-1)
    return logits, lp.gather(1, torch.tensor(seq[1:])[:, None])[:, 0]


def loss_terms(kind, logp, data, i):
    if kind == "cross_entropy":
        return -(torch.tensor(data["weights"][i]) * logp)
    ratio = torch.exp(logp - torch.tensor(data["logprobs"][i]))
    adv = torch.tensor(data["advantages"][i])
    if kind == "importance_sampling":
        return -(ratio * adv)
    lo, hi = data["clip_low"], data["clip_high"]
    return -torch.minimum(ratio * adv, torch.clamp(ratio, lo, hi) * adv)


def generate(kinds=()):
    for kind, seed in (("qwen2", 1), ("qwen3", 2), ("llama", 3)):
        if kinds and kind not in kinds:
            continue
        model = build(kind, seed)
        d = os.path.join(OUT, kind)
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        expected = {}
        g = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            base = []
            for i, seq in enumerate(SEQS):
                logits, lp = token_logprobs(model, seq)
                expected[f"logits.{i}"] = logits.contiguous()
                base.append(lp)
        n = [len(s) - 1 for s in SEQS]
        data = {
            "sequences": SEQS,
            "weights": [(torch.rand(k, generator=g) > 0.3).float().tolist() for k in n],
            # Sampler logprobs near the model's own, so ppo ratios fall both
            # inside and outside [clip_low, clip_high].
            "logprobs": [(base[i] + 0.4 * torch.randn(k, generator=g)).tolist() for i, k in enumerate(n)],
            "advantages": [torch.randn(k, generator=g).tolist() for k in n],
            "clip_low": 0.8, "clip_high": 1.2, "losses": {},
        }
        for loss in ("cross_entropy", "importance_sampling", "ppo"):
            model.zero_grad()
            total = 0
            lps = []
            for i, seq in enumerate(SEQS):
                _, lp = token_logprobs(model, seq)
                lps.append(lp.detach().tolist())
                total = total + loss_terms(loss, lp, data, i).sum()
            total.backward()
            data["losses"][loss] = {"loss": total.item(), "logprobs": lps}
            for name, p in model.named_parameters():
                expected[f"{loss}.grad.{name}"] = p.grad.detach().clone().contiguous()
        save_file(expected, os.path.join(d, "expected.safetensors"))
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        print(kind, "ok:", sum(p.numel() for p in model.parameters()), "parameters")


def check_engine():
    for kind in ("qwen2", "qwen3"):
        check_engine_dir(os.path.join(OUT, "engine_ckpt_" + kind))


def check_engine_dir(d):
    model = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager",
                                                              torch_dtype=torch.float32).eval()
    engine = load_file(os.path.join(d, "engine_logits.safetensors"))
    out, worst = {}, 0.0
    with torch.no_grad():
        for i, seq in enumerate(SEQS):
            logits, _ = token_logprobs(model, seq)
            out[f"logits.{i}"] = logits.contiguous()
            worst = max(worst, (logits - engine[f"logits.{i}"]).abs().max().item())
    save_file(out, os.path.join(d, "hf_logits.safetensors"))
    print(f"transformers {transformers.__version__} loaded {os.path.basename(d)}; max |Δlogit| vs engine = {worst:.3g}")
    if worst > 1e-4:
        sys.exit("logits differ by more than 1e-4")


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd = sys.argv[1] if len(sys.argv) > 1 else "generate"
    if cmd == "generate":
        generate(sys.argv[2:])
    else:
        {"check-engine": check_engine}[cmd]()

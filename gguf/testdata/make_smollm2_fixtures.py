#!/usr/bin/env python3
"""Golden fixtures for the SmolLM2-135M-Instruct fidelity tests (gguf/smollm2_test.go),
from Hugging Face transformers loading the same GGUF file (float32, CPU).

    asearcher model import --gguf $GGUF --out $DIR
    python gguf/testdata/make_smollm2_fixtures.py $GGUF $DIR    # writes gguf/testdata/smollm2.json

It also checks the import itself: every tensor of $DIR/model.safetensors must
equal what transformers' GGUF loader dequantizes (and un-permutes) from the
file, $DIR must load in transformers and give the GGUF's logits, and the tokenizer.json written by the import must give the ids of the
tokenizer transformers builds from the GGUF metadata (differences are
listed in the fixture, not hidden).

For each prompt the fixture keeps, per position, the top-20 logits and the
log-sum-exp over the vocabulary (small, yet a wrong logit anywhere moves
the log-sum-exp), and a 32-token greedy continuation with each step's
margin between the best and second-best logit.

Needs: pip install torch transformers safetensors gguf accelerate (CPU is
enough; see docs/engine.md).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
TOPK = 20
NEW_TOKENS = 32

TEXTS = [
    "The capital of France is",
    "In 2024, 3.14159 people wrote 1,000,000 lines of code: x = [i**2 for i in range(10)]",
    "  Leading spaces,\ttabs\nand newlines\n\n  — «unicode» naïve café 日本語 🙂 don't WE'LL",
    "<|im_start|>user\nHi!<|im_end|>\n<|endoftext|>",
]

CHATS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}], "add_generation_prompt": True},
    {"messages": [{"role": "system", "content": "You answer in one word."},
                  {"role": "user", "content": "Name a colour."},
                  {"role": "assistant", "content": "Blue."},
                  {"role": "user", "content": "Another one, 2 please."}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}],
     "add_generation_prompt": False},
]

# Prompts whose logits and greedy continuations are checked: two raw texts
# and the first two chats rendered through the template.
LOGIT_TEXTS = [0, 1]
GREEDY = ["text:0", "chat:0", "chat:1"]


def main(gguf_path, model_dir):
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    gdir, gname = os.path.split(os.path.abspath(gguf_path))
    model = transformers.AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32).eval()
    tok_gguf = transformers.AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)

    # 1. The import's tensors against transformers' GGUF loader.
    ours = load_file(os.path.join(model_dir, "model.safetensors"))
    theirs = model.state_dict()
    worst = 0.0
    for name, t in ours.items():
        if name not in theirs:
            sys.exit(f"import wrote {name}, which transformers' model lacks")
        worst = max(worst, (t.float() - theirs[name].float()).abs().max().item())
    missing = [n for n in theirs if n not in ours and not (n == "lm_head.weight" and model.config.tie_word_embeddings)]
    if missing:
        sys.exit(f"import lacks {missing}")
    print(f"import vs transformers' GGUF loader: {len(ours)} tensors, max |Δ| = {worst:.3g}")
    if worst != 0.0:
        sys.exit("the imported weights differ from transformers' dequantization")
    # The imported directory loads in transformers on its own and gives the
    # GGUF's logits.
    imported = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    probe = torch.tensor([tok(TEXTS[1], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        d = (imported(input_ids=probe).logits - model(input_ids=probe).logits).abs().max().item()
    print(f"imported directory in transformers vs the GGUF: max |Δlogit| = {d:.3g}")
    if d > 1e-5:
        sys.exit("the imported directory's logits differ from the GGUF's in transformers")
    del imported

    # 2. Tokenizer ids, ours (the imported tokenizer.json) and transformers' GGUF one.
    token_cases = []
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        gids = tok_gguf(text, add_special_tokens=False)["input_ids"]
        token_cases.append({"text": text, "ids": ids, "gguf_tokenizer_ids": gids})
        if ids != gids:
            print("note: transformers' GGUF tokenizer differs on", repr(text))
    chat_cases = []
    for c in CHATS:
        text = tok.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])
        gtext = tok_gguf.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])
        if text != gtext:
            sys.exit("the imported chat template renders differently from the GGUF's")
        chat_cases.append(dict(c, text=text, ids=tok(text, add_special_tokens=False)["input_ids"]))

    def prompt_ids(ref):
        kind, i = ref.split(":")
        return (token_cases if kind == "text" else chat_cases)[int(i)]["ids"]

    # 3. Logits: per position top-k and log-sum-exp.
    logit_cases = []
    with torch.no_grad():
        for i in LOGIT_TEXTS:
            ids = token_cases[i]["ids"]
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
            top = torch.topk(logits, TOPK, dim=-1)
            logit_cases.append({"ids": ids, "top_ids": top.indices.tolist(), "top_logits": top.values.tolist(),
                                "logsumexp": torch.logsumexp(logits, dim=-1).tolist()})
        # 4. Greedy continuations, with each step's top-2 margin.
        greedy = []
        for ref in GREEDY:
            ids = prompt_ids(ref)
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=NEW_TOKENS, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=2)
            new = out.sequences[0, len(ids):].tolist()
            margins = []
            for s in out.scores:
                t2 = torch.topk(s[0], 2).values
                margins.append((t2[0] - t2[1]).item())
            greedy.append({"prompt": ref, "ids": ids, "continuation": new, "margins": margins,
                           "text": tok.decode(new)})
            print(ref, repr(tok.decode(new)), f"min margin {min(margins):.3g}")
    fixture = {"transformers": transformers.__version__, "torch": torch.__version__,
               "gguf": gname, "tokens": token_cases, "chats": chat_cases, "logits": logit_cases,
               "greedy": greedy}
    with open(os.path.join(HERE, "smollm2.json"), "w") as f:
        json.dump(fixture, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

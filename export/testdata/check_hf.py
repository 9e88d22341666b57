#!/usr/bin/env python3
"""Loads the committed export (export/testdata/hf) in Hugging Face
transformers and records what it computes, for export_test.go to compare
with the engine:

    python export/testdata/check_hf.py   # writes export/testdata/hf_check/

logits.safetensors holds logits.N (float32, [len, vocab]) for each sequence
in SEQS, run one by one, unpadded; tokens.json holds the tokenizer's ids for
each string in STRINGS (AutoTokenizer, no special tokens added). SEQS and
STRINGS must equal checkSeqs and checkStrings in export_test.go.

Needs: pip install torch transformers safetensors (CPU torch).
"""
import json
import os

import torch
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "hf")
OUT = os.path.join(HERE, "hf_check")
SEQS = [[5, 17, 42, 9, 100, 3, 77], [260, 12, 12, 201, 8, 64, 33, 150, 2, 90, 11]]
STRINGS = ["Favok lives in Mipa.", "<search> Favok </search>\n<answer> Mipa </answer>"]


def main():
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(SRC, dtype=torch.float32)
    model.eval()
    tensors = {}
    with torch.no_grad():
        for i, seq in enumerate(SEQS):
            out = model(input_ids=torch.tensor([seq]))
            tensors["logits.%d" % i] = out.logits[0].float().contiguous()
    tok = transformers.AutoTokenizer.from_pretrained(SRC)
    ids = [tok.encode(s, add_special_tokens=False) for s in STRINGS]
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "logits.safetensors"))
    with open(os.path.join(OUT, "tokens.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "strings": STRINGS, "ids": ids}, f, indent=1)
        f.write("\n")
    print("wrote", OUT, "with transformers", transformers.__version__)


if __name__ == "__main__":
    main()

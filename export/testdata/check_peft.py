#!/usr/bin/env python3
"""Loads the committed export of a Tinker sampler archive in PEFT and in
Hugging Face transformers and records what they compute, for
archive_test.go to compare with the engine:

    ~/.cache/asearcher/venv-gguf/bin/python export/testdata/check_peft.py
    # writes export/testdata/peft_check/

- archive_out/adapter (PEFT adapter dir written by `asearcher export`) is
  loaded with PeftModel.from_pretrained on the base model hf/ — with the
  target_modules the export wrote, not a list given here — and its logits
  are stored as peft.N; modules.json lists every module PEFT wrapped with a
  LoRA layer (all seven projections of each layer are expected).
- archive_out/merged (the merged HF dir) is loaded with
  AutoModelForCausalLM and its logits are stored as merged.N.

SEQS must equal checkSeqs in export_test.go. Needs torch, transformers,
safetensors and peft (pip install peft into the venv).
"""
import json
import os

import peft
import torch
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "hf")
ADAPTER = os.path.join(HERE, "archive_out", "adapter")
MERGED = os.path.join(HERE, "archive_out", "merged")
OUT = os.path.join(HERE, "peft_check")
SEQS = [[5, 17, 42, 9, 100, 3, 77], [260, 12, 12, 201, 8, 64, 33, 150, 2, 90, 11]]


def logits(model, seq):
    with torch.no_grad():
        return model(input_ids=torch.tensor([seq])).logits[0].float().contiguous()


def main():
    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, ADAPTER)
    model.eval()
    wrapped = sorted(name for name, mod in model.named_modules()
                     if isinstance(mod, peft.tuners.lora.LoraLayer))
    tensors = {}
    for i, seq in enumerate(SEQS):
        tensors["peft.%d" % i] = logits(model, seq)
    merged = transformers.AutoModelForCausalLM.from_pretrained(MERGED, dtype=torch.float32)
    merged.eval()
    for i, seq in enumerate(SEQS):
        tensors["merged.%d" % i] = logits(merged, seq)
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "logits.safetensors"))
    with open(os.path.join(OUT, "modules.json"), "w") as f:
        json.dump({"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
                   "lora_modules": wrapped}, f, indent=1)
        f.write("\n")
    print("wrote", OUT, "with peft", peft.__version__, "and", len(wrapped), "LoRA modules")


if __name__ == "__main__":
    main()

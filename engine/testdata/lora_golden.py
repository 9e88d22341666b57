#!/usr/bin/env python3
"""Golden LoRA fixtures from Hugging Face PEFT for engine/lora_fidelity_test.go.

    ENGINE_WRITE_FIXTURES=1 go test -run TestLoRAFidelity ./engine   # engine writes the adapters
    python engine/testdata/lora_golden.py                            # PEFT reads them, writes logits

For each KIND in qwen2, qwen3, llama: loads the tiny base model
testdata/fidelity/KIND with transformers and the engine-written adapter
testdata/fidelity/lora_KIND/adapter with peft.PeftModel.from_pretrained,
checks that every tensor in the adapter file was loaded and that the
seven target modules of every layer are wrapped, and writes
testdata/fidelity/lora_KIND/expected.safetensors:

    peft.N    logits of sequence N (all but its last token) through the adapter
    base.N    the same with the adapter disabled
    merged.N  the same after merge_and_unload()
    ce.loss   the summed cross-entropy of every next token of every sequence
    grad.KEY  its gradient for each adapter tensor (KEY as in the adapter file)

and modules.json (the module names PEFT wrapped). float32, CPU, eager
attention. Needs: pip install torch transformers peft safetensors.
"""
import json
import os

import torch
import transformers
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FID = os.path.join(HERE, "fidelity")


def main():
    for kind in ["qwen2", "qwen3", "llama"]:
        base_dir = os.path.join(FID, kind)
        out_dir = os.path.join(FID, "lora_" + kind)
        adapter_dir = os.path.join(out_dir, "adapter")
        with open(os.path.join(base_dir, "expected.json")) as f:
            seqs = json.load(f)["sequences"]
        base = transformers.AutoModelForCausalLM.from_pretrained(
            base_dir, dtype=torch.float32, attn_implementation="eager")
        model = PeftModel.from_pretrained(base, adapter_dir)
        model.eval()
        wrapped = sorted(n for n, m in model.named_modules() if isinstance(m, LoraLayer))
        layers = base.config.num_hidden_layers
        if len(wrapped) != 7 * layers:
            raise SystemExit(f"{kind}: PEFT wrapped {len(wrapped)} modules, want {7 * layers}: {wrapped}")
        # Every tensor of the file must have reached a module.
        state = model.state_dict()
        for key, value in load_file(os.path.join(adapter_dir, "adapter_model.safetensors")).items():
            live = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
            if live not in state or not torch.equal(state[live], value):
                raise SystemExit(f"{kind}: adapter tensor {key} was not loaded")
        out = {}
        with torch.no_grad():
            for i, s in enumerate(seqs):
                ids = torch.tensor([s[:-1]])
                out[f"peft.{i}"] = model(input_ids=ids).logits[0].contiguous()
                with model.disable_adapter():
                    out[f"base.{i}"] = model(input_ids=ids).logits[0].contiguous()
        # One cross-entropy backward pass (every token weighted 1, summed
        # over all sequences, as the engine's cross_entropy loss) gives the
        # adapter gradients.
        model.zero_grad()
        loss = 0
        for s in seqs:
            logp = torch.log_softmax(model(input_ids=torch.tensor([s[:-1]])).logits[0], dim=-1)
            loss = loss - logp.gather(1, torch.tensor(s[1:]).unsqueeze(1)).sum()
        loss.backward()
        out["ce.loss"] = loss.detach().reshape(1)
        for name, p in model.named_parameters():
            if p.grad is not None and "lora_" in name:
                out["grad." + name.replace(".default", "")] = p.grad.contiguous()
        with torch.no_grad():
            merged = model.merge_and_unload()
            for i, s in enumerate(seqs):
                out[f"merged.{i}"] = merged(input_ids=torch.tensor([s[:-1]])).logits[0].contiguous()
        save_file(out, os.path.join(out_dir, "expected.safetensors"))
        with open(os.path.join(out_dir, "modules.json"), "w") as f:
            json.dump({"modules": wrapped, "peft": __import__("peft").__version__,
                       "transformers": transformers.__version__, "torch": torch.__version__}, f, indent=1)
            f.write("\n")
        print(kind, "ok:", len(wrapped), "modules wrapped")


if __name__ == "__main__":
    main()

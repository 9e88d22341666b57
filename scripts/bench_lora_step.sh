#!/usr/bin/env bash
# LoRA training step on a real model, the engine against PyTorch + PEFT,
# side by side (issue 17 §4): runs engine's TestLoRAStepBench, which
# alternates the two per round and prints medians and the per-round ratio.
#
#   scripts/bench_lora_step.sh [MODEL_DIR] [PYTHON]
#
# MODEL_DIR defaults to SmolLM2-135M imported by scripts/fetch_smollm2.sh
# (~/.cache/asearcher/models/smollm2-135m); PYTHON to the venv with torch,
# transformers and peft (~/.cache/asearcher/venv-gguf/bin/python).
# ASEARCHER_BENCH_LORA_SHAPE=SEQS,SEQ_LEN,RANK,ROUNDS [1,128,32,3]. Run it
# niced on a shared machine; record `uptime` before and after.
set -eu
cd "$(dirname "$0")/.."
model=${1:-${ASEARCHER_MODEL_CACHE:-$HOME/.cache/asearcher/models}/smollm2-135m}
py=${2:-$HOME/.cache/asearcher/venv-gguf/bin/python}
[ -f "$model/config.json" ] || { echo "bench_lora_step: no model at $model (run scripts/fetch_smollm2.sh)"; exit 1; }
"$py" -c "import torch, transformers, peft" || { echo "bench_lora_step: $py lacks torch, transformers or peft"; exit 1; }
uptime
ASEARCHER_BENCH_LORA_MODEL=$model ASEARCHER_BENCH_LORA_PYTHON=$py \
	go test -count=1 -timeout 60m -run '^TestLoRAStepBench$' -v ./engine/
uptime

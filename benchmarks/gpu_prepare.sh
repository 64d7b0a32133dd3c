#!/usr/bin/env bash
# Prepare, on a machine with the package registries, what benchmarks/gpu_check.py needs on the GPU
# machine, which reaches none: small wheels in .whl/ and compact models in .gpu/ (both git-ignored).
# The device tool carries the working tree plus these, 64 MiB at most: tiny.en goes as a transformers
# checkpoint in fp16 (~38 MB); CTranslate2 (43 MB) and PyAV (35 MB) for faster-whisper do not fit, so
# that check reports them missing. Usage: bash benchmarks/gpu_prepare.sh [PYTHON_VERSION (default 3.12)]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-3.12}"
rm -rf .whl .gpu && mkdir -p .whl .gpu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .whl soundfile soxr num2words rapidfuzz jellyfish jiwer
python3 - <<'PY'
import json
import shutil
from pathlib import Path

from speech_intent.asr import convert_ctranslate2_whisper
from speech_intent.models import bundled_encoder_path, bundled_whisper_path

out = Path(".gpu")
convert_ctranslate2_whisper(bundled_whisper_path(), out / "whisper-tiny.en", dtype="float16")
tokenizer = out / "minilm-tokenizer"
tokenizer.mkdir()
for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    if (bundled_encoder_path() / name).is_file():
        shutil.copy2(bundled_encoder_path() / name, tokenizer / name)
coffee = Path("..") / "shared" / "data" / "coffee"
if (coffee / "grammar.yaml").is_file():  # a few recordings for the grammar check (git-ignored, never committed)
    (out / "coffee" / "dev").mkdir(parents=True)
    shutil.copy2(coffee / "grammar.yaml", out / "coffee" / "grammar.yaml")
    for wav in sorted((coffee / "dev").glob("*.wav"))[:16]:
        shutil.copy2(wav, out / "coffee" / "dev" / wav.name)
PY
du -sh .whl .gpu
git ls-files -z | du -ch --files0-from=- | tail -1

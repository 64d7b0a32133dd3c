#!/usr/bin/env bash
# Prepare, on a machine with the package registries, what the GPU check (tools/gpu_check) needs on the GPU
# machine, which reaches none: small wheels in .whl/ and compact models in .gpu/ (both git-ignored).
# The device tool carries the working tree plus these, 64 MiB at most: tiny.en goes as a transformers
# checkpoint whose 2-D weights are packed as int8 rows (40 MB with its gzipped tokenizer; 79 MB in fp16,
# over the limit alone), unpacked to fp16 there by the check (its CPU references use the same weights). CTranslate2 (43 MB)
# and PyAV (35 MB) for faster-whisper do not fit, so that check reports them missing (the faster-whisper
# wheel itself, installed without them, gives the streams their Silero VAD model). 32 coffee grammar
# sentences spoken by espeak-ng (.gpu/tts: 16 kHz PCM16 in FLAC, lossless, and a manifest, 4 MB) are the ASR
# fine-tuning check's training clips: the GPU machine has no espeak-ng.
# Usage: bash tools/gpu_check/prepare.sh [PYTHON_VERSION (default 3.12)]
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${1:-3.12}"
rm -rf .whl .gpu && mkdir -p .whl .gpu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .whl soundfile soxr num2words rapidfuzz jellyfish jiwer \
  faster-whisper==1.2.1
python3 - <<'PY'
import csv
import shutil
from pathlib import Path

import soundfile as sf

from speech_intent.asr import convert_ctranslate2_whisper
from speech_intent.asr_training import collect_examples
from speech_intent.synthesis.tts import EspeakSynthesizer
from speech_intent.bundled import bundled_encoder_path, bundled_whisper_path
from tools.gpu_check.weights import pack_int8

out = Path(".gpu")
convert_ctranslate2_whisper(bundled_whisper_path(), out / "whisper-tiny.en", dtype="float16")
pack_int8(out / "whisper-tiny.en")
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
if (coffee / "grammar.yaml").is_file() and shutil.which("espeak-ng"):  # training clips: grammar sentences only
    tts, synth, rows = out / "tts", EspeakSynthesizer(), []
    tts.mkdir()
    for i, example in enumerate(collect_examples([coffee / "grammar.yaml"], max_examples=32, seed=0)):
        sf.write(tts / f"{i:02d}.flac", synth.synthesize(example.speak, voice=example.voice), 16000, subtype="PCM_16")
        rows.append({"audio": f"{i:02d}.flac", "text": example.text})
    with (tts / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["audio", "text"])
        writer.writeheader()
        writer.writerows(rows)
else:
    print("note: no coffee grammar or no espeak-ng: no .gpu/tts, so the asr-finetune check will skip")
PY
du -sh .gpu/* .whl && du -sh .gpu
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(( tracked + $(du -sb .whl | cut -f1) + $(du -sb .gpu | cut -f1) ))
echo "carried with the tracked files: $(( carried / 1048576 )) MiB of the 64 MiB limit"
if (( carried > 64 * 1048576 )); then echo "error: over the carry limit" >&2; exit 1; fi

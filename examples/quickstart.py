"""Quickstart: the embedded default pipeline on the sample commands in assets/audio.

    python examples/quickstart.py [AUDIO_DIR]

Prints transcript, intent and confidence per file, then accuracy against the
manifest (when there is one) and the wall time / real-time factor.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from speech_intent import SpeechIntentPipeline

audio_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "assets" / "audio"
files = sorted(str(p) for p in audio_dir.glob("*.wav"))
if not files:
    sys.exit(f"no .wav files in {audio_dir}")

start = time.perf_counter()
pipe = SpeechIntentPipeline.default()  # offline; fine-tunes the demo intent model on first use
loaded = time.perf_counter()
results = pipe(files, batch_size=8)
done = time.perf_counter()

for r in results:
    name = Path(r.path).name
    if r.error:
        print(f"{name:28s} ERROR {r.error}")
        continue
    slots = " ".join(f"{k}={v}" for k, v in r.slots.items())
    print(f"{name:28s} {r.intent or '(out of scope)':22s} {r.confidence:5.2f}  {r.transcript!r} {slots}")

audio_seconds = sum(r.duration or 0 for r in results)
print(f"\n{len(results)} files, {audio_seconds:.1f} s of audio: load {loaded - start:.1f} s, "
      f"inference {done - loaded:.1f} s, {audio_seconds / (done - loaded):.1f}x real time")

manifest = audio_dir / "manifest.csv"
if manifest.is_file():
    import jiwer

    from speech_intent import TextNormalizer

    rows = {row["file"]: row for row in csv.DictReader(manifest.open())}
    by_name = {Path(r.path).name: r for r in results}
    scored = [(rows[n], by_name[n]) for n in rows if n in by_name]
    correct = sum(row["intent"] == r.intent for row, r in scored)
    norm = TextNormalizer()
    wer = jiwer.wer([norm(row["text"]) for row, _ in scored], [norm(r.transcript or "") for _, r in scored])
    print(f"intent accuracy {correct}/{len(scored)} = {correct / len(scored):.1%}, transcript WER {wer:.1%}")

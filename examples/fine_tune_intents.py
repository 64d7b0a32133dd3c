"""Fine-tune an intent model on your own CSV, then predict audio with it.

    python examples/fine_tune_intents.py [intents.csv] [AUDIO_DIR]

The CSV has a header with ``text`` and ``intent`` columns. Without arguments this
uses a CSV made from the demo domain (so it runs as written) and assets/audio.
The CLI equivalent: ``speech-intent train --data intents.csv --output my-intents``
then ``speech-intent predict AUDIO_DIR --intent my-intents``.
"""
from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

from speech_intent import FasterWhisperASR, SpeechIntentPipeline, TrainingOptions, fine_tune
from speech_intent.data import load_examples

repo = Path(__file__).resolve().parents[1]
work = Path(tempfile.mkdtemp(prefix="speech-intent-example-"))

if len(sys.argv) > 1:
    csv_path = Path(sys.argv[1])
else:  # write a CSV from the demo domain so the example runs as written
    csv_path = work / "intents.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        for ex in load_examples(repo / "assets" / "demo_domain.yaml"):
            writer.writerow([ex.text, ex.intent])
audio_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else repo / "assets" / "audio"

examples = load_examples(csv_path)
print(f"training on {len(examples)} examples from {csv_path}")
intent = fine_tune(examples, work / "my-intents", options=TrainingOptions(epochs=6, seed=0))
print(f"saved to {work / 'my-intents'}; intents: {', '.join(intent.labels)}")

pipe = SpeechIntentPipeline(FasterWhisperASR.from_pretrained(None), intent)
for r in pipe(sorted(str(p) for p in audio_dir.glob("*.wav"))):
    print(f"{Path(r.path).name:28s} {r.intent!s:22s} {r.confidence or 0:.2f}  {r.transcript!r}")
pipe.save_pretrained(work / "pipeline")
print(f"whole pipeline saved to {work / 'pipeline'} (load it with SpeechIntentPipeline.from_pretrained)")

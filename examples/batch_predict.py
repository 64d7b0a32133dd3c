"""Batch prediction: every audio file under a folder -> one JSONL line each.

    python examples/batch_predict.py AUDIO_DIR results.jsonl

Streams the inputs (bounded memory), writes each result as soon as its batch
finishes, and resumes where it stopped when run again with the same output.
The CLI equivalent is ``speech-intent predict AUDIO_DIR -o results.jsonl``.
"""
from __future__ import annotations

import sys

from speech_intent import SpeechIntentPipeline
from speech_intent.batch.inputs import expand_inputs
from speech_intent.batch.writer import ResultWriter

if len(sys.argv) != 3:
    sys.exit(__doc__)
folder, output = sys.argv[1], sys.argv[2]

files = expand_inputs([folder])  # recursive, audio extensions only
writer = ResultWriter(output)  # appends; knows which files are already done
todo = writer.pending(files)  # not done yet (failed rows are replaced, so each file ends up once)
print(f"{len(files)} files, {len(files) - len(todo)} already in {output}")

pipe = SpeechIntentPipeline.default()
failed = 0
for result in pipe.stream(todo, batch_size=8, progress=True, total=len(todo)):
    writer.write(result)
    failed += result.error is not None
writer.close()
print(f"done: {len(todo) - failed}, skipped: {len(files) - len(todo)}, failed: {failed} -> {output}")

"""Supervised fine-tuning of the Whisper ASR stage on (audio, transcript) pairs.

- :mod:`.material`: recordings from audio manifests with a text column, sentences of any training data
  (synthesised).
- :mod:`.heldout`: the evaluation data never trained on (recordings by path and content, transcripts).
- :mod:`.rehearsal`: a seeded sample of other training data's sentences, mixed in against forgetting.
- :mod:`.text`: tokenised (BIO) text written naturally, targets written the way Whisper writes.
- :mod:`.clips`: clips, speed perturbation, training noise, batches for the trainer.
- :mod:`.trainer`: :func:`fine_tune_asr` (transformers ``Seq2SeqTrainer``; frozen encoder or LoRA;
  early stopping by dev WER; bf16 on CUDA).
- :mod:`.export`: the saved :class:`~speech_intent.asr.WhisperASR` directory, its CTranslate2 copy for
  :class:`~speech_intent.asr.FasterWhisperASR`, and :class:`ASRTrainingResult`.

```python
from speech_intent import fine_tune_asr
result = fine_tune_asr(["grammar.yaml", "recordings.csv"], "asr-coffee", dev=["dev.csv"],
                       exclude=["eval/labels.json", "noise/kitchen.wav"],
                       rehearsal=["snips/train"])   # 200 other-domain sentences against forgetting
# (without rehearsal=, 200 of the library's own general-English sentences; rehearsal_examples=0: none)
asr = load_asr("asr-coffee/ctranslate2")      # or load_asr("asr-coffee") on transformers
```
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .export import CTRANSLATE2_DIR, TRAINING_FILE, ASRTrainingResult, export_ctranslate2
    from .heldout import EvaluationData
    from .material import ASRExample, collect_examples, is_transcript_manifest, read_transcript_manifest
    from .options import ASRTrainingOptions, LoraOptions
    from .rehearsal import RehearsalSample, bundled_rehearsal_path, sample_rehearsal
    from .text import detokenize, format_sentence
    from .trainer import fine_tune_asr

__all__ = [
    "ASRExample", "ASRTrainingOptions", "ASRTrainingResult", "CTRANSLATE2_DIR", "EvaluationData", "LoraOptions",
    "RehearsalSample", "TRAINING_FILE", "bundled_rehearsal_path", "collect_examples", "detokenize", "export_ctranslate2", "fine_tune_asr",
    "format_sentence", "is_transcript_manifest", "read_transcript_manifest", "sample_rehearsal",
]

_EXPORTS = {
    **dict.fromkeys(["ASRExample", "collect_examples", "is_transcript_manifest", "read_transcript_manifest"],
                    ".material"),
    "EvaluationData": ".heldout",
    **dict.fromkeys(["RehearsalSample", "bundled_rehearsal_path", "sample_rehearsal"], ".rehearsal"),
    **dict.fromkeys(["detokenize", "format_sentence"], ".text"),
    **dict.fromkeys(["CTRANSLATE2_DIR", "TRAINING_FILE", "ASRTrainingResult", "export_ctranslate2"], ".export"),
    **dict.fromkeys(["ASRTrainingOptions", "LoraOptions"], ".options"),
    "fine_tune_asr": ".trainer",
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())

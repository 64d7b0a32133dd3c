"""speech-intent: recorded speech to structured voice-assistant commands.

Data flow: :mod:`~speech_intent.audio` -> :mod:`~speech_intent.asr` ->
:mod:`~speech_intent.normalize` -> :mod:`~speech_intent.nlu` ->
:mod:`~speech_intent.pipeline` -> :mod:`~speech_intent.cli`.

The public names are imported on first use (importing the package loads no model library).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from .errors import AudioError, ModelLoadError, SpeechIntentError

if TYPE_CHECKING:
    from .asr import FasterWhisperASR, Wav2Vec2ASR, WhisperASR, convert_ctranslate2_whisper, load_asr
    from .asr_training import ASRTrainingOptions, fine_tune_asr
    from .audio import load_audio
    from .nlu import IntentClassifier, TrainingOptions, fine_tune
    from .normalize import TextNormalizer
    from .pipeline import SpeechIntentPipeline
    from .results import IntentPrediction, PipelineResult, Transcript

__version__ = "0.1.0"

__all__ = [
    "SpeechIntentPipeline", "WhisperASR", "Wav2Vec2ASR", "FasterWhisperASR", "IntentClassifier",
    "TextNormalizer", "TrainingOptions", "fine_tune", "ASRTrainingOptions", "fine_tune_asr", "load_asr", "load_audio",
    "convert_ctranslate2_whisper",
    "Transcript", "IntentPrediction", "PipelineResult", "AudioError", "ModelLoadError", "SpeechIntentError",
]

_EXPORTS = {
    **dict.fromkeys(["FasterWhisperASR", "Wav2Vec2ASR", "WhisperASR", "convert_ctranslate2_whisper", "load_asr"],
                    ".asr"),
    **dict.fromkeys(["ASRTrainingOptions", "fine_tune_asr"], ".asr_training"),
    "load_audio": ".audio",
    **dict.fromkeys(["IntentClassifier", "TrainingOptions", "fine_tune"], ".nlu"),
    "TextNormalizer": ".normalize",
    "SpeechIntentPipeline": ".pipeline",
    **dict.fromkeys(["IntentPrediction", "PipelineResult", "Transcript"], ".results"),
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())

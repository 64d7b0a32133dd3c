"""Emotion from the voice: a head over the Whisper encoder's hidden states.

:class:`EmotionRecognizer` runs a frozen Whisper encoder (the bundled tiny.en by default in
``speech-intent train-emotion``) on each clip, mixes its hidden states with learned softmax layer weights,
pools them over the clip's real frames with attentive statistics pooling and classifies the result
(:mod:`.head`). ``recognise(audios)`` gives one :class:`~speech_intent.results.LabelScores` per clip
(``None`` for an empty or silent one). :func:`fit_emotion` trains one from a labels CSV with a
speaker-independent dev split (:func:`speaker_split`).

No emotion model ships with the library. RAVDESS (CC BY-NC-SA 4.0) is used for the recipes, tests and
benchmarks only: a model trained on it is for non-commercial use and is never a default.

Public names import their module on first use (no torch import for the package or its options).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .fit import EmotionTrainingResult, LabelledClip, fit_emotion, read_emotion_labels
    from .head import EmotionHead
    from .options import EmotionTrainingOptions, HeadConfig
    from .recognizer import EmotionRecognizer
    from .training import HeadTraining, emotion_scores, speaker_split, train_head

_EXPORTS = {
    "EmotionRecognizer": ".recognizer", "EmotionHead": ".head", "HeadConfig": ".options",
    "EmotionTrainingOptions": ".options", "HeadTraining": ".training", "emotion_scores": ".training",
    "speaker_split": ".training", "train_head": ".training", "EmotionTrainingResult": ".fit",
    "LabelledClip": ".fit", "fit_emotion": ".fit", "read_emotion_labels": ".fit",
}
__all__ = ["EmotionHead", "EmotionRecognizer", "EmotionTrainingOptions", "EmotionTrainingResult", "HeadConfig",
           "HeadTraining", "LabelledClip", "emotion_scores", "fit_emotion", "read_emotion_labels", "speaker_split",
           "train_head"]
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())

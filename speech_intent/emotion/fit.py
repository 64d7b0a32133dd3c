"""Train an :class:`~.recognizer.EmotionRecognizer` from a labels CSV: read, split by speaker, cache, train.

A labels file is any audio manifest (:func:`~speech_intent.data.manifest.read_audio_manifest`: CSV/TSV/
JSONL) with an audio column (``path``, ``audio`` or ``file``), an emotion column and a speaker column
(names configurable: RAVDESS's ``labels.csv`` has ``actor``). A recording that cannot be read is
skipped and reported; the others train.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..audio import SAMPLE_RATE, load_audio, resample
from ..data.manifest import read_audio_manifest
from ..device import DeviceLike
from ..errors import AudioError, ConfigError
from .options import DEFAULT_CONTEXT_MARGIN, EmotionTrainingOptions
from .recognizer import EmotionRecognizer
from .training import HeadTraining, speaker_split, train_head

logger = logging.getLogger(__name__)

__all__ = ["EmotionTrainingResult", "LabelledClip", "fit_emotion", "read_emotion_labels"]


@dataclass(frozen=True)
class LabelledClip:
    """One row of a labels file: the recording, its emotion and its speaker (and its other columns)."""

    path: Path
    emotion: str
    speaker: str
    columns: Dict[str, Any] = field(default_factory=dict)


@dataclass
class EmotionTrainingResult:
    """What :func:`fit_emotion` did: clip and speaker counts, the dev speakers, the head's training,
    the labels, skipped recordings and the seconds it took."""

    train_clips: int
    dev_clips: int
    train_speakers: int
    dev_speakers: List[str]
    labels: List[str]
    training: HeadTraining
    skipped: List[str]
    seconds: float

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def read_emotion_labels(path: Union[str, Path], *, emotion_column: str = "emotion",
                        speaker_column: str = "speaker") -> List[LabelledClip]:
    """The rows of a labels file (:class:`~speech_intent.errors.ManifestError` naming the line for a bad
    one: no audio column, a missing recording, an empty emotion or speaker)."""
    def parse(record) -> LabelledClip:
        emotion = str(record.fields.get(emotion_column) or "").strip()
        speaker = str(record.fields.get(speaker_column) or "").strip()
        if not emotion:
            raise ValueError(f"empty {emotion_column!r} column")
        if not speaker:
            raise ValueError(f"empty {speaker_column!r} column")
        return LabelledClip(record.audio, emotion, speaker, dict(record.fields))

    return read_audio_manifest(path, parse, required=(emotion_column, speaker_column))


def load_clips(clips: Sequence[LabelledClip]) -> Tuple[List[np.ndarray], List[int], List[str]]:
    """``(audios, indices of the clips read, problems)``: 16 kHz mono of each readable recording."""
    audios, kept, skipped = [], [], []
    for index, clip in enumerate(clips):
        try:
            audios.append(load_audio(clip.path))
            kept.append(index)
        except AudioError as error:
            skipped.append(str(error))
    return audios, kept, skipped


def fit_emotion(clips: Sequence[LabelledClip], encoder: Union[str, Path], *,
                options: EmotionTrainingOptions = EmotionTrainingOptions(),
                context_margin: Optional[float] = DEFAULT_CONTEXT_MARGIN, threshold: float = 0.0,
                device: DeviceLike = None) -> Tuple[EmotionRecognizer, EmotionTrainingResult]:
    """Train a recogniser on ``clips`` over the encoder of the Whisper checkpoint ``encoder``: the
    encoder's states computed once per clip, ``options.dev_fraction`` of the speakers held out for
    choosing the epoch (:func:`~.training.speaker_split`), the head trained on the rest."""
    started = time.perf_counter()
    audios, kept, skipped = load_clips(clips)
    clips = [clips[i] for i in kept]
    labels = sorted({clip.emotion for clip in clips})
    if len(labels) < 2:
        raise ConfigError(f"emotion training needs at least 2 emotions among the readable clips, got {labels}")
    recognizer = EmotionRecognizer.build(encoder, labels, options.head, seed=options.seed, threshold=threshold,
                                         context_margin=context_margin, device=device)
    logger.info("computing encoder states of %d clips", len(audios))
    states = recognizer.features(audios)
    targets = [labels.index(clip.emotion) for clip in clips]
    train, dev = speaker_split([clip.speaker for clip in clips], options.dev_fraction, options.seed)
    train_states, train_targets = [states[i] for i in train], [targets[i] for i in train]
    for speed in options.speeds:  # speed-perturbed copies of the training speakers' clips
        logger.info("computing encoder states of %d clips at speed %.2f", len(train), speed)
        train_states += recognizer.features([resample(audios[i], SAMPLE_RATE, int(round(SAMPLE_RATE / speed)))
                                             for i in train])
        train_targets += [targets[i] for i in train]
    training = train_head(recognizer.head, train_states, train_targets, options=options,
                          dev_states=[states[i] for i in dev], dev_targets=[targets[i] for i in dev],
                          device=recognizer.device)
    result = EmotionTrainingResult(
        train_clips=len(train), dev_clips=len(dev), train_speakers=len({clips[i].speaker for i in train}),
        dev_speakers=sorted({clips[i].speaker for i in dev}), labels=labels, training=training, skipped=skipped,
        seconds=time.perf_counter() - started)
    return recognizer, result

"""The pipeline's optional affect stages: sentiment from the words, emotion from the voice.

:class:`AffectStages` holds what :class:`~speech_intent.SpeechIntentPipeline` was given as ``sentiment=``
(a text stage: ``predict(texts)`` giving objects with ``sentiment`` and ``emotion``
:class:`~speech_intent.results.LabelScores`, as :class:`~speech_intent.sentiment.SentimentClassifier` does)
and ``emotion=`` (an acoustic stage: ``recognise(audios)`` on 16 kHz float32 mono arrays giving one
``LabelScores`` or ``None`` each, as :class:`~speech_intent.emotion.EmotionRecognizer` does), and

- :meth:`AffectStages.annotate` fills each result's ``sentiment`` and ``text_emotion`` (from the transcript)
  and ``emotion`` (from the audio), batched, after the intent stage; an empty transcript gets no sentiment;
- :meth:`AffectStages.mark` gives every row of a run the same ``to_dict()`` keys (``affect``): a silent
  input, a failed one or a row for a whole file has them with ``None``;
- :meth:`AffectStages.save_pretrained` / :func:`load_affect` keep the stages in the pipeline directory
  (``sentiment/``, ``emotion/`` and their entries in ``pipeline.json``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .device import DeviceLike
from .errors import ConfigError, ModelLoadError
from .results import PipelineResult

#: ``pipeline.json`` entry -> the stage type it records.
SENTIMENT_TYPE = "sentiment-classifier"
EMOTION_TYPE = "emotion-recognizer"


@dataclass
class AffectStages:
    """The optional text (``sentiment``) and acoustic (``emotion``) stages of a pipeline; either may be ``None``."""

    sentiment: Any = None
    emotion: Any = None

    def __post_init__(self) -> None:
        if self.sentiment is not None and not callable(getattr(self.sentiment, "predict", None)):
            raise ConfigError(f"sentiment= needs a text stage with predict(texts) (a SentimentClassifier), "
                              f"not {type(self.sentiment).__name__}")
        if self.emotion is not None and not callable(getattr(self.emotion, "recognise", None)):
            raise ConfigError(f"emotion= needs an acoustic stage with recognise(audios) (an EmotionRecognizer), "
                              f"not {type(self.emotion).__name__}")

    @property
    def keys(self) -> Tuple[str, ...]:
        """The result fields these stages fill: ``sentiment`` and ``text_emotion`` (a text stage with an
        emotion head), ``emotion`` (an acoustic stage)."""
        keys: List[str] = []
        if self.sentiment is not None:
            keys.append("sentiment")
            if "emotion" in (getattr(self.sentiment, "labels", None) or {"emotion": None}):
                keys.append("text_emotion")
        if self.emotion is not None:
            keys.append("emotion")
        return tuple(keys)

    def annotate(self, results: Sequence[PipelineResult], texts: Sequence[str],
                 arrays: Sequence[np.ndarray]) -> None:
        """Fill ``results`` in place: the text stage on ``texts``, the acoustic stage on ``arrays`` (16 kHz)."""
        if self.sentiment is not None:
            for result, answer in zip(results, self.sentiment.predict([text or "" for text in texts])):
                result.sentiment, result.text_emotion = answer.sentiment, answer.emotion
        if self.emotion is not None:
            for result, found in zip(results, self.emotion.recognise(list(arrays))):
                result.emotion = found

    def mark(self, results: Iterable[PipelineResult]) -> Iterator[PipelineResult]:
        """Each result with ``affect`` set to :attr:`keys` (its ``to_dict()`` then has their keys)."""
        keys = self.keys
        for result in results:
            result.affect = keys
            yield result

    def save_pretrained(self, directory: Union[str, Path]) -> Dict[str, Any]:
        """Write each stage into ``directory`` (``sentiment/``, ``emotion/``); the ``pipeline.json`` entries."""
        config: Dict[str, Any] = {}
        for key, kind in (("sentiment", SENTIMENT_TYPE), ("emotion", EMOTION_TYPE)):
            stage = getattr(self, key)
            if stage is not None:
                stage.save_pretrained(Path(directory) / key)
                config[key] = {"type": kind, "path": key}
        return config


def load_affect(directory: Union[str, Path], config: Mapping[str, Any], *, device: DeviceLike = None,
                sentiment_options: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The ``sentiment`` / ``emotion`` stages a pipeline directory's ``config`` names (keyword arguments of the
    pipeline; none when it names neither)."""
    stages: Dict[str, Any] = {}
    for key in ("sentiment", "emotion"):
        entry = config.get(key)
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path", key), str):
            raise ModelLoadError(directory, f"pipeline.json: {key} must be an object with a 'path'")
        path = Path(directory) / entry.get("path", key)
        if key == "sentiment":
            from .sentiment import SentimentClassifier

            stages[key] = SentimentClassifier.from_pretrained(path, device=device, **(sentiment_options or {}))
        else:
            stages[key] = load_emotion(path, device=device)
    return stages


def load_emotion(path: Union[str, Path], *, device: DeviceLike = None) -> Any:
    """The acoustic emotion stage saved at ``path`` (:class:`~speech_intent.emotion.EmotionRecognizer`)."""
    from . import emotion

    recognizer = getattr(emotion, "EmotionRecognizer", None)
    if recognizer is None:
        raise ModelLoadError(path, "this installation has no acoustic emotion stage (speech_intent.emotion)")
    return recognizer.from_pretrained(path) if device is None else recognizer.from_pretrained(path, device=device)

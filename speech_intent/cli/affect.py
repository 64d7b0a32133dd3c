"""The ``--sentiment`` / ``--emotion`` flags of ``predict`` and ``serve``: the pipeline's optional affect stages.

``--sentiment default`` is the offline default text stage (trained on first use and cached,
:meth:`~speech_intent.sentiment.SentimentClassifier.default`); ``--sentiment DIR`` a stage saved by
``speech-intent train-sentiment``; ``--emotion DIR`` an acoustic emotion stage (``speech-intent train-emotion``).
Either replaces the stage of that name a ``--pipeline`` directory has.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, List

from ..validation import check_model_path

DEFAULT = "default"
#: The CSV columns of each affect stage (``to_dict()`` keys of :class:`~speech_intent.results.PipelineResult`).
SENTIMENT_FIELDS = ["sentiment", "sentiment_score", "text_emotion", "text_emotion_score"]
EMOTION_FIELDS = ["emotion", "emotion_score"]


def add_affect_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("affect stages (sentiment from the words, emotion from the voice)")
    group.add_argument("--sentiment", nargs="?", const=DEFAULT, default=None, metavar="PATH|default",
                       help="add the text sentiment / emotion stage: a trained stage's folder, or 'default' (also "
                            "the flag alone) for the built-in English one; rows gain sentiment, sentiment_score, "
                            "text_emotion, text_emotion_score")
    group.add_argument("--emotion", default=None, metavar="PATH",
                       help="add the acoustic emotion stage saved in PATH; rows gain emotion, emotion_score")


def check_affect_args(args: argparse.Namespace) -> None:
    """A ``--sentiment`` / ``--emotion`` path that does not exist is a ModelLoadError before any model loads."""
    for value in (getattr(args, "sentiment", None), getattr(args, "emotion", None)):
        if value and value != DEFAULT:
            check_model_path(value)


def affect_fields(args: argparse.Namespace) -> List[str]:
    """The CSV columns of the affect stages a run has: named by ``--sentiment`` / ``--emotion`` or saved in the
    ``--pipeline`` directory (``text_emotion`` columns stay empty for a sentiment model without an emotion head)."""
    saved = {}
    if getattr(args, "pipeline", None):
        try:
            saved = json.loads((Path(args.pipeline) / "pipeline.json").read_text())
        except (OSError, ValueError):  # the pipeline's own loading says what is wrong with it
            saved = {}
    has = {key: getattr(args, key, None) is not None or (isinstance(saved, dict) and saved.get(key) is not None)
           for key in ("sentiment", "emotion")}
    return (SENTIMENT_FIELDS if has["sentiment"] else []) + (EMOTION_FIELDS if has["emotion"] else [])


def with_affect(args: argparse.Namespace, pipeline: Any) -> Any:
    """``pipeline`` with the stages ``--sentiment`` / ``--emotion`` name (the others it has are kept)."""
    from ..affect import AffectStages, load_emotion

    sentiment_arg, emotion_arg = getattr(args, "sentiment", None), getattr(args, "emotion", None)
    if sentiment_arg is None and emotion_arg is None:
        return pipeline
    device = getattr(args, "device", None)
    sentiment, emotion = pipeline.affect.sentiment, pipeline.affect.emotion
    if sentiment_arg is not None:
        from ..sentiment import SentimentClassifier

        sentiment = (SentimentClassifier.default(device=device, progress=not getattr(args, "quiet", False))
                     if sentiment_arg == DEFAULT else SentimentClassifier.from_pretrained(sentiment_arg, device=device))
    if emotion_arg is not None:
        emotion = load_emotion(emotion_arg, device=device)
    pipeline.affect = AffectStages(sentiment, emotion)
    return pipeline


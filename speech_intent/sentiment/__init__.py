"""Sentiment and emotion of the words: a fine-tuned text classifier over the transcript.

- :class:`SentimentClassifier`: texts -> :class:`Sentiment` (a sentiment and an emotion
  :class:`~speech_intent.results.LabelScores` each); ``SentimentClassifier.default()`` is the offline default.
- :func:`train_sentiment` / :class:`SentimentTrainingOptions`: fine-tuning with the transformers ``Trainer``.
- :func:`read_sentiment_data`: TSV / CSV / JSON Lines / GoEmotions training data.

Names import their module on first use (no torch import for ``import speech_intent.sentiment``).
"""
from .._lazy import lazy_attributes

_EXPORTS = {
    "Sentiment": ".classifier",
    "SentimentClassifier": ".classifier",
    "train_sentiment": ".classifier",
    "SentimentExample": ".data",
    "read_goemotions": ".data",
    "read_sentiment_data": ".data",
    "SentimentTrainingOptions": ".training",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())

"""Intent stages: text in, :class:`~speech_intent.results.IntentPrediction` out."""
from .classifier import IntentClassifier
from .training import TrainingConfig, fine_tune

__all__ = ["IntentClassifier", "TrainingConfig", "fine_tune"]

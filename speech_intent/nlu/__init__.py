"""Intent stages: text in, :class:`~speech_intent.results.IntentPrediction` out (with slots for joint models)."""
from ..slots import NormalizedExample, normalize_example, tags_to_slots, word_tags
from .classifier import OOS_LABEL, IntentClassifier
from .joint import JointIntentSlotConfig, JointIntentSlotModel
from .metrics import NLUMetrics, nlu_metrics
from .onnx import RUNTIMES, export_onnx
from .threshold import ThresholdChoice, choose_threshold
from .training import TrainingConfig, fine_tune

__all__ = [
    "IntentClassifier", "OOS_LABEL", "JointIntentSlotConfig", "JointIntentSlotModel", "TrainingConfig", "fine_tune",
    "NLUMetrics", "nlu_metrics", "NormalizedExample", "normalize_example", "word_tags", "tags_to_slots",
    "ThresholdChoice", "choose_threshold", "RUNTIMES", "export_onnx",
]

"""Intent stages: text in, :class:`~speech_intent.results.IntentPrediction` out (with slots for joint models).

The public names are imported on first use (``RUNTIMES`` without torch).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from ..slots import NormalizedExample, normalize_example, tags_to_slots, word_tags
    from .classifier import OOS_LABEL, IntentClassifier
    from .joint import JointIntentSlotConfig, JointIntentSlotModel
    from .metrics import NLUMetrics, nlu_metrics
    from .onnx import export_onnx
    from .runtimes import RUNTIMES
    from .threshold import ThresholdChoice, choose_threshold
    from .training import TrainingOptions, fine_tune

__all__ = [
    "IntentClassifier", "OOS_LABEL", "JointIntentSlotConfig", "JointIntentSlotModel", "TrainingOptions", "fine_tune",
    "NLUMetrics", "nlu_metrics", "NormalizedExample", "normalize_example", "word_tags", "tags_to_slots",
    "ThresholdChoice", "choose_threshold", "RUNTIMES", "export_onnx",
]

_EXPORTS = {
    **dict.fromkeys(["NormalizedExample", "normalize_example", "tags_to_slots", "word_tags"], "..slots"),
    **dict.fromkeys(["OOS_LABEL", "IntentClassifier"], ".classifier"),
    **dict.fromkeys(["JointIntentSlotConfig", "JointIntentSlotModel"], ".joint"),
    **dict.fromkeys(["NLUMetrics", "nlu_metrics"], ".metrics"),
    "export_onnx": ".onnx",
    "RUNTIMES": ".runtimes",
    **dict.fromkeys(["ThresholdChoice", "choose_threshold"], ".threshold"),
    **dict.fromkeys(["TrainingOptions", "fine_tune"], ".training"),
}

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())

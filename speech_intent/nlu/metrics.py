"""Intent accuracy, slot F1 and sentence accuracy.

Used for model selection during training (dev set, each epoch) and by the
SNIPS benchmark. Slot precision / recall / F1 come from
:func:`speech_intent.slots.slot_scores` (the library's one definition of slot
F1). Sentence accuracy counts an utterance right only when its intent and
every word's slot tag are right.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..slots import slot_scores
from .subwords import IGNORE_INDEX


@dataclass
class NLUMetrics:
    """Scores over ``examples`` utterances (slot scores are ``None`` for intent-only models)."""

    examples: int
    intent_accuracy: float
    slot_precision: Optional[float] = None
    slot_recall: Optional[float] = None
    slot_f1: Optional[float] = None
    sentence_accuracy: Optional[float] = None

    @property
    def score(self) -> float:
        """Model-selection score: mean of intent accuracy and slot F1 (intent accuracy alone without slots)."""
        if self.slot_f1 is None:
            return self.intent_accuracy
        return (self.intent_accuracy + self.slot_f1) / 2

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "score": self.score}


def nlu_metrics(
    gold_intents: Sequence[Any],
    pred_intents: Sequence[Any],
    gold_tags: Optional[Sequence[Sequence[str]]] = None,
    pred_tags: Optional[Sequence[Sequence[str]]] = None,
) -> NLUMetrics:
    """Score predictions; tag lists are word-level BIO, one list per utterance (same lengths).

    Without any slot entity in gold or predicted tags, slot precision, recall and F1 are 1.0.
    """
    if len(gold_intents) != len(pred_intents):
        raise ValueError(f"{len(gold_intents)} gold intents but {len(pred_intents)} predictions")
    n = len(gold_intents)
    intent_ok = [g == p for g, p in zip(gold_intents, pred_intents)]
    metrics = NLUMetrics(examples=n, intent_accuracy=sum(intent_ok) / n if n else 0.0)
    if gold_tags is None or pred_tags is None:
        return metrics
    gold = [list(t) for t in gold_tags]
    pred = [list(t) for t in pred_tags]
    metrics.slot_precision, metrics.slot_recall, metrics.slot_f1 = slot_scores(gold, pred)
    sentence_ok = [ok and g == p for ok, g, p in zip(intent_ok, gold, pred)]
    metrics.sentence_accuracy = sum(sentence_ok) / n if n else 0.0
    return metrics


def trainer_metrics(slot_labels: Optional[Sequence[str]] = None) -> Callable[[Any], Dict[str, float]]:
    """A ``compute_metrics`` for the ``Trainer``: intent / joint predictions -> :class:`NLUMetrics` dict.

    Slot tags are read at the positions whose label is not ``-100`` (each word's first sub-word):
    the argmax of the slot logits, or a CRF model's Viterbi tags (its ``slot_tags`` output).
    """

    def compute(eval_prediction: Any) -> Dict[str, float]:
        predictions, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        if slot_labels is None:
            logits = predictions[0] if isinstance(predictions, (tuple, list)) else predictions
            labels = label_ids[0] if isinstance(label_ids, (tuple, list)) else label_ids
            return _as_floats(nlu_metrics(list(labels), list(np.argmax(logits, axis=-1))))
        intent_logits, slot_logits = predictions[0], predictions[1]
        labels, token_labels = label_ids[0], label_ids[1]
        # a CRF model's third output holds its Viterbi tags
        slot_pred = predictions[2] if len(predictions) > 2 else np.argmax(slot_logits, axis=-1)
        gold_tags: List[List[str]] = []
        pred_tags: List[List[str]] = []
        for gold_row, pred_row in zip(token_labels, slot_pred):
            keep = gold_row != IGNORE_INDEX
            gold_tags.append([slot_labels[int(i)] for i in gold_row[keep]])
            pred_tags.append([slot_labels[int(i)] for i in pred_row[keep]])
        return _as_floats(nlu_metrics(list(labels), list(np.argmax(intent_logits, axis=-1)), gold_tags, pred_tags))

    return compute


def _as_floats(metrics: NLUMetrics) -> Dict[str, float]:
    return {k: float(v) for k, v in metrics.to_dict().items() if v is not None and k != "examples"}

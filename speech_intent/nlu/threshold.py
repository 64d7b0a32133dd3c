"""Choosing the out-of-scope confidence threshold on dev data.

- Dev data with out-of-scope examples (gold ``intent=None``): the threshold with
  the best dev accuracy, ``None`` counted as a label (ties: the lowest threshold,
  which keeps the most in-scope answers).
- Dev data without any: the largest threshold that still accepts at least
  ``target_recall`` (default 99%) of the dev utterances the model classifies
  correctly, i.e. at most 1% of right answers are turned into "out of scope".
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class ThresholdChoice:
    """The chosen threshold and what it does on the dev data.

    Attributes:
        threshold: confidence under which predictions become ``intent=None`` (``None``: no threshold).
        method: ``"best-accuracy"`` (dev has out-of-scope examples) or ``"in-scope-recall"``.
        dev_examples: dev utterances used.
        accuracy: dev accuracy at the threshold (``None`` counted as a label).
        in_scope_recall: share of correctly classified in-scope dev utterances still accepted.
    """

    threshold: Optional[float]
    method: str
    dev_examples: int
    accuracy: float
    in_scope_recall: float

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _accuracy_at(threshold: float, conf: np.ndarray, pred: Sequence[Any], gold: Sequence[Any]) -> float:
    labels = [p if c >= threshold else None for p, c in zip(pred, conf)]
    return float(np.mean([p == g for p, g in zip(labels, gold)])) if len(gold) else 0.0


def choose_threshold(
    confidences: Sequence[float],
    predicted: Sequence[Optional[str]],
    gold: Sequence[Optional[str]],
    *,
    target_recall: float = 0.99,
) -> ThresholdChoice:
    """Pick a threshold from dev predictions (``predicted``: top label, ``None`` for the out-of-scope class)."""
    if not len(confidences) == len(predicted) == len(gold):
        raise ConfigError("confidences, predicted and gold must have the same length")
    conf = np.asarray(confidences, dtype=np.float64)
    n = len(conf)
    correct_in = np.array([g is not None and p == g for p, g in zip(predicted, gold)], dtype=bool)
    if n == 0:
        return ThresholdChoice(None, "none", 0, 0.0, 0.0)
    if any(g is None for g in gold):
        # accuracy(t) over the sorted confidences with prefix sums: items below t are rejected
        order = np.argsort(conf, kind="stable")
        c = conf[order]
        gold_oos = np.array([g is None for g in gold], dtype=bool)[order]
        pred_none = np.array([p is None for p in predicted], dtype=bool)[order]
        right_if_kept = (correct_in[order] | (gold_oos & pred_none)).astype(np.int64)
        rejected_right = np.concatenate([[0], np.cumsum(gold_oos.astype(np.int64))])  # first k rejected
        kept_right = np.concatenate([np.cumsum(right_if_kept[::-1])[::-1], [0]])  # items k.. kept
        firsts = [k for k in range(n) if k == 0 or c[k] != c[k - 1]]
        scores = [(rejected_right[k] + kept_right[k], -k) for k in firsts]
        _, neg_k = max(scores)
        threshold = float(c[-neg_k])
        method = "best-accuracy"
    else:
        kept = np.sort(conf[correct_in])
        if len(kept) == 0:
            return ThresholdChoice(None, "in-scope-recall", n, 0.0, 0.0)
        allowed = int(math.floor((1.0 - target_recall) * len(kept) + 1e-9))  # right answers we may reject
        threshold = float(kept[min(allowed, len(kept) - 1)])
        method = "in-scope-recall"
    recall = float(np.mean(conf[correct_in] >= threshold)) if correct_in.any() else 0.0
    choice = ThresholdChoice(threshold, method, n, _accuracy_at(threshold, conf, predicted, gold), recall)
    logger.info("out-of-scope threshold %.4f (%s): dev accuracy %.4f, in-scope recall %.4f",
                threshold, method, choice.accuracy, recall)
    return choice

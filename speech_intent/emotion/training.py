"""Training the emotion head on cached encoder states, with a speaker-independent dev split.

The encoder is frozen, so each clip's hidden states are computed once (:meth:`EmotionRecognizer.features`)
and the small head trains for many epochs on them in memory: AdamW, a cosine schedule, class-weighted
cross-entropy (unbalanced emotion sets), the epoch with the best dev UAR (balanced accuracy) kept. A plain
loop rather than transformers' ``Trainer``: there is no model forward to wrap, only the head over tensors.

The dev split is by speaker (:func:`speaker_split`): no speaker has clips on both sides, so the dev
score estimates how the model does on voices it never heard.
"""
from __future__ import annotations

import copy
import logging
import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import ConfigError
from .head import EmotionHead, pad_states
from .options import EmotionTrainingOptions

logger = logging.getLogger(__name__)

__all__ = ["HeadTraining", "emotion_scores", "speaker_split", "train_head"]


@dataclass
class HeadTraining:
    """What training did: the epoch kept, its dev UAR / WA (``None`` without dev clips), per-epoch history."""

    best_epoch: int
    dev_uar: Optional[float]
    dev_wa: Optional[float]
    history: List[Dict[str, float]]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def speaker_split(speakers: Sequence[str], dev_fraction: float, seed: int = 0) -> Tuple[List[int], List[int]]:
    """``(train, dev)`` clip indices with every speaker's clips on one side only: ``dev_fraction`` of the
    distinct speakers (at least one, when the fraction is above 0) drawn with ``seed``.

    Raises :class:`ConfigError` when a dev split is asked of fewer than 2 speakers."""
    names = sorted({str(s) for s in speakers})
    if dev_fraction <= 0:
        return list(range(len(speakers))), []
    if len(names) < 2:
        raise ConfigError(f"a speaker-independent dev split needs at least 2 speakers, got {len(names)}")
    count = min(len(names) - 1, max(1, round(dev_fraction * len(names))))
    dev = set(random.Random(seed).sample(names, count))
    train = [i for i, s in enumerate(speakers) if str(s) not in dev]
    return train, [i for i, s in enumerate(speakers) if str(s) in dev]


def emotion_scores(truth: Sequence[int], predicted: Sequence[int]) -> Tuple[float, float]:
    """``(UAR, WA)``: balanced accuracy (the mean recall of the classes present) and accuracy."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    return float(balanced_accuracy_score(truth, predicted)), float(accuracy_score(truth, predicted))


def _predict(head: EmotionHead, states: Sequence[torch.Tensor], device: torch.device) -> np.ndarray:
    """Class indices of :meth:`EmotionHead.prepare`'d states."""
    head.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(states), 64):
            batch, mask = pad_states(states[start : start + 64])
            out.append(head(batch.to(device), mask.to(device)).argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def train_head(head: EmotionHead, states: Sequence[torch.Tensor], targets: Sequence[int], *,
               options: EmotionTrainingOptions = EmotionTrainingOptions(),
               dev_states: Sequence[torch.Tensor] = (), dev_targets: Sequence[int] = (),
               device: Optional[torch.device] = None) -> HeadTraining:
    """Train ``head`` in place on per-clip hidden states and class indices; with dev clips, the
    parameters of the epoch with the best dev UAR are the ones left in ``head``."""
    if not states:
        raise ConfigError("no training clips")
    device = device or torch.device("cpu")
    with torch.no_grad():  # the fixed part of the head, once (half precision halves the memory)
        states = [clip.half() for clip in head.prepare(states)]
        dev_states = [clip.half() for clip in head.prepare(dev_states)]
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    head.to(device)
    labels = torch.as_tensor(list(targets), dtype=torch.long)
    num_labels = head.classifier[-1].out_features
    weight = None
    if options.class_weights:
        counts = torch.bincount(labels, minlength=num_labels).float()
        weight = torch.where(counts > 0, counts.sum() / (num_labels * counts.clamp_min(1)), torch.zeros(()))
        weight = weight.to(device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.AdamW(head.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    steps_per_epoch = math.ceil(len(states) / options.batch_size)
    total = steps_per_epoch * options.epochs
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))))
    history: List[Dict[str, float]] = []
    best: Tuple[float, int, Optional[float], Optional[dict]] = (-1.0, options.epochs, None, None)
    for epoch in range(1, options.epochs + 1):
        head.train()
        order, running = rng.permutation(len(states)), 0.0
        for start in range(0, len(order), options.batch_size):
            chosen = order[start : start + options.batch_size]
            batch, mask = pad_states([states[i] for i in chosen])
            loss = loss_fn(head(batch.to(device), mask.to(device)), labels[chosen].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += float(loss.detach()) * len(chosen)
        row = {"epoch": epoch, "loss": running / len(states)}
        if dev_states:
            uar, wa = emotion_scores(list(dev_targets), _predict(head, dev_states, device))
            row.update(dev_uar=uar, dev_wa=wa)
            if uar > best[0]:
                best = (uar, epoch, wa, copy.deepcopy(head.state_dict()))
            elif options.patience and epoch - best[1] >= options.patience:
                history.append(row)
                break
        history.append(row)
        logger.info("emotion head epoch %d: %s", epoch, row)
    head.eval()
    if best[3] is None:
        return HeadTraining(best_epoch=len(history), dev_uar=None, dev_wa=None, history=history)
    head.load_state_dict(best[3])
    return HeadTraining(best_epoch=best[1], dev_uar=best[0], dev_wa=best[2], history=history)

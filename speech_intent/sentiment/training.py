"""Fine-tuning the sentiment / emotion model with the transformers ``Trainer``.

Starts from the bundled all-MiniLM-L6-v2 encoder by default (any BERT-style checkpoint works). The heads
follow the data (:func:`~speech_intent.sentiment.data.label_sets`): a sentiment head when any example has
sentiment labels, an emotion head when any has emotion labels, each multi-label (sigmoid, BCE) when any
example has several labels for it, else single-label (softmax). With ``dev_examples``: macro-F1 per head every
epoch (multi-label heads: a label is predicted at ``decision_threshold``), early stopping, and the best epoch
(the mean of the heads' macro-F1) is kept. bf16 (or fp16) on CUDA; deterministic for a fixed seed on CPU.
"""
from __future__ import annotations

import logging
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..bundled import bundled_encoder_path
from ..device import DeviceLike, resolve_device
from ..errors import ConfigError, check_int
from ..quiet import quiet_transformers
from ..training_args import dev_checkpoints, mixed_precision, training_arguments
from .data import SentimentExample, label_sets
from .model import HEADS, SentimentModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentimentTrainingOptions:
    """Hyper-parameters of :func:`train_sentiment`.

    Attributes:
        epochs: maximum number of epochs (fewer with early stopping).
        learning_rate / batch_size / weight_decay / warmup_ratio / lr_scheduler: optimiser settings.
        max_length: tokenizer truncation length.
        seed: seeds the new heads, dropout and data order.
        early_stopping: stop after this many epochs without a better dev score (0: never; needs dev data).
        classifier_dropout: dropout before the heads.
        train_limit: train on the first this many examples only (``None``: all).
        decision_threshold: a multi-label head predicts every label at least this probable (dev F1).
        balance: multi-label heads: each label's positive rows weigh ``(negatives / positives) ** balance`` in the
            binary cross-entropy (at most 20), so rare labels are not all predicted absent (0: no weighting).
        threshold: the saved stage's confidence threshold: an answer whose best score is under it reads
            ``"uncertain"``.
    """

    epochs: float = 3.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_scheduler: str = "linear"
    max_length: int = 64
    seed: int = 0
    early_stopping: int = 2
    classifier_dropout: float = 0.1
    train_limit: Optional[int] = None
    decision_threshold: float = 0.3
    threshold: float = 0.5
    balance: float = 0.5

    def check(self) -> None:
        """ConfigError for settings no training can use."""
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, not {self.epochs}")
        check_int("batch_size", self.batch_size)
        check_int("max_length", self.max_length, minimum=8)
        if self.train_limit is not None:
            check_int("train_limit", self.train_limit)
        for name in ("decision_threshold", "threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], not {getattr(self, name)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")


class _Encoded(torch.utils.data.Dataset):
    """Tokenised texts with a multi-hot target and a labelled flag per head."""

    def __init__(self, tokenizer: Any, examples: Sequence[SentimentExample], labels: Dict[str, List[str]],
                 max_length: int) -> None:
        self.encodings = dict(tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length))
        self.targets: Dict[str, np.ndarray] = {}
        for head, names in labels.items():
            index = {name: i for i, name in enumerate(names)}
            target = np.zeros((len(examples), len(names)), dtype=np.float32)
            for row, ex in enumerate(examples):
                for label in getattr(ex, head):
                    if label in index:
                        target[row, index[label]] = 1.0
            self.targets[head] = target

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, i: int) -> Dict[str, Any]:
        item: Dict[str, Any] = {k: v[i] for k, v in self.encodings.items()}
        for head, target in self.targets.items():
            item[f"{head}_targets"] = target[i]
            item[f"{head}_mask"] = float(target[i].any())
        return item


class _Collator:
    """Pads the token fields with the tokenizer and stacks the targets and masks."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        extra = [k for k in features[0] if k.startswith(HEADS)]
        batch = self.tokenizer.pad([{k: v for k, v in f.items() if k not in extra} for f in features],
                                   padding=True, return_tensors="pt")
        for key in extra:
            batch[key] = torch.tensor(np.stack([np.asarray(f[key], dtype=np.float32) for f in features]))
        return batch


def head_predictions(probabilities: np.ndarray, multi_label: bool, threshold: float) -> np.ndarray:
    """0/1 predictions ``(rows, labels)``: every label at ``threshold`` or more (multi-label; the best one when
    none is), or the best label only (single-label)."""
    chosen = np.zeros_like(probabilities, dtype=np.int64)
    chosen[np.arange(len(probabilities)), probabilities.argmax(-1)] = 1
    if multi_label:
        chosen = np.maximum(chosen * (probabilities.max(-1, keepdims=True) < threshold),
                            (probabilities >= threshold).astype(np.int64))
    return chosen


def _pos_weight(targets: np.ndarray, balance: float) -> List[float]:
    """``(negatives / positives) ** balance`` per label of a multi-hot matrix (labelled rows), in [1, 20]."""
    rows = targets[targets.any(-1)]
    positives = rows.sum(0)
    ratio = (len(rows) - positives) / np.maximum(positives, 1.0)
    return [float(w) for w in np.clip(ratio ** balance, 1.0, 20.0)]


def _metrics(heads: Sequence[str], multi: Dict[str, bool], threshold: float):
    """``compute_metrics`` for the ``Trainer``: macro-F1 per head and their mean as ``score``."""
    from sklearn.metrics import f1_score

    def compute(prediction) -> Dict[str, float]:
        logits = prediction.predictions if isinstance(prediction.predictions, tuple) else (prediction.predictions,)
        gold = prediction.label_ids if isinstance(prediction.label_ids, tuple) else (prediction.label_ids,)
        scores = {}
        for head, head_logits, head_gold in zip(heads, logits, gold):
            keep = head_gold.sum(-1) > 0
            tensor = torch.from_numpy(np.asarray(head_logits, dtype=np.float32))
            probs = (torch.sigmoid(tensor) if multi[head] else torch.softmax(tensor, -1)).numpy()
            predicted = head_predictions(probs[keep], multi[head], threshold)
            scores[f"{head}_macro_f1"] = float(f1_score(head_gold[keep].astype(np.int64), predicted,
                                                        average="macro", zero_division=0))
        scores["score"] = float(np.mean([scores[f"{head}_macro_f1"] for head in heads]))
        return scores

    return compute


def _progress_bar():
    """One bar over the training steps on stderr (the ``Trainer``'s own prints its logs on stdout)."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class Bar(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kwargs) -> None:
            self.bar = tqdm(total=state.max_steps, desc="sentiment", dynamic_ncols=True, file=sys.stderr)

        def on_step_end(self, args, state, control, **kwargs) -> None:
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            if self.bar is not None and logs and isinstance(logs.get("eval_score"), float):
                self.bar.set_postfix(dev=f"{logs['eval_score']:.4g}", refresh=True)

        def on_train_end(self, args, state, control, **kwargs) -> None:
            self.bar.close()

    return Bar()


def fit_sentiment(
    examples: Sequence[SentimentExample],
    *,
    base: Union[str, Path, None] = None,
    options: Optional[SentimentTrainingOptions] = None,
    dev_examples: Optional[Sequence[SentimentExample]] = None,
    device: DeviceLike = None,
    progress: bool = True,
) -> Tuple[SentimentModel, Any, Dict[str, Any]]:
    """Train a sentiment / emotion model: the trained model (float32, on the training device), its tokenizer
    and what training recorded (dev scores, settings, per-epoch history).

    Args:
        examples: the training rows (:mod:`~speech_intent.sentiment.data` reads them from files).
        base: encoder checkpoint to start from (default: the bundled MiniLM).
        options: :class:`SentimentTrainingOptions`.
        dev_examples: held-out rows for per-epoch macro-F1, early stopping and the best epoch.
        device: where to train (``None`` = CUDA when available).
        progress: show one progress bar on stderr.

    """
    from transformers import AutoTokenizer, EarlyStoppingCallback, PrinterCallback, Trainer, set_seed

    options = options or SentimentTrainingOptions()
    options.check()
    resolved = resolve_device(device)
    base = str(base or bundled_encoder_path())
    train = [ex for ex in examples if ex.text and (ex.sentiment or ex.emotion)][: options.train_limit]
    if not train:
        raise ConfigError("no training example with a text and a sentiment or emotion label")
    found = label_sets(train)
    heads = [head for head in HEADS if found[head][0]]
    labels = {head: found[head][0] for head in heads}
    multi = {head: found[head][1] for head in heads}
    dev = [ex for ex in dev_examples or [] if ex.text and any(set(getattr(ex, h)) & set(labels[h]) for h in heads)]
    set_seed(options.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    with quiet_transformers():
        model = SentimentModel.from_encoder(
            base, sentiment_labels=labels.get("sentiment", ()), emotion_labels=labels.get("emotion", ()),
            sentiment_multi_label=multi.get("sentiment", False), emotion_multi_label=multi.get("emotion", False),
            classifier_dropout=options.classifier_dropout)
    train_set = _Encoded(tokenizer, train, labels, options.max_length)
    model.config.sentiment_pos_weight, model.config.emotion_pos_weight = (
        _pos_weight(train_set.targets[head], options.balance) if multi.get(head) and options.balance else None
        for head in HEADS)
    dev_set = _Encoded(tokenizer, dev, labels, options.max_length) if dev else None
    logger.info("fine-tuning %s on %d texts (%s), device %s", base, len(train),
                ", ".join(f"{h}: {len(labels[h])} labels{' multi-label' if multi[h] else ''}" for h in heads), resolved)
    steps = math.ceil(len(train_set) / options.batch_size) * options.epochs
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        args = training_arguments(
            scratch, seed=options.seed, device=resolved, progress=False, num_train_epochs=options.epochs,
            per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=max(options.batch_size, 64),
            learning_rate=options.learning_rate, weight_decay=options.weight_decay,
            warmup_steps=int(options.warmup_ratio * steps), lr_scheduler_type=options.lr_scheduler,
            logging_strategy="epoch", label_names=[f"{head}_targets" for head in heads],
            **mixed_precision(resolved), **dev_checkpoints(dev_set is not None, "score", greater_is_better=True),
        )
        stopping = [EarlyStoppingCallback(options.early_stopping)] if dev_set and options.early_stopping else []
        trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
                          data_collator=_Collator(tokenizer), callbacks=stopping,
                          compute_metrics=_metrics(heads, multi, options.decision_threshold) if dev_set else None)
        trainer.remove_callback(PrinterCallback)
        if progress:
            trainer.add_callback(_progress_bar())
        with quiet_transformers():
            trainer.train()
        state = trainer.state
    info: Dict[str, Any] = {
        "base": base, "train_examples": len(train), "dev_examples": len(dev),
        "epochs_run": round(float(state.epoch or 0), 3), "best_dev_score": state.best_metric,
        "seconds": round(time.perf_counter() - started, 1), "device": str(resolved), "config": asdict(options),
        "history": [{k: v for k, v in entry.items() if not k.endswith(("_runtime", "_per_second"))}
                    for entry in state.log_history if "epoch" in entry],
    }
    return trainer.model.float(), tokenizer, info

"""Fine-tuning an intent classifier with the transformers ``Trainer``.

Starts from the bundled all-MiniLM-L6-v2 encoder by default (any BERT-style
checkpoint works); texts go through the same :class:`TextNormalizer` that
inference uses, and the result is saved as a ready-to-use intent stage.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ..device import DeviceLike, resolve_device
from ..normalize import TextNormalizer
from .classifier import IntentClassifier

logger = logging.getLogger(__name__)

TextIntent = Tuple[str, str]


@dataclass
class TrainingConfig:
    """Hyper-parameters of :func:`fine_tune` (defaults suit small assistant domains)."""

    epochs: float = 8.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 64
    seed: int = 0


class _EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, encodings: dict, labels: List[int]) -> None:
        self.encodings = encodings
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


def _pairs(examples: Iterable) -> List[TextIntent]:
    pairs = []
    for ex in examples:
        text, intent = (ex.text, ex.intent) if hasattr(ex, "text") else (ex[0], ex[1])
        if intent is None:
            raise ValueError(f"example {text!r} has no intent label")
        pairs.append((str(text), str(intent)))
    if not pairs:
        raise ValueError("no training examples")
    return pairs


def fine_tune(
    examples: Sequence,
    output_dir: Union[str, Path],
    *,
    base: Union[str, Path, None] = None,
    config: Optional[TrainingConfig] = None,
    normalizer: Optional[TextNormalizer] = None,
    device: DeviceLike = None,
    progress: bool = True,
) -> IntentClassifier:
    """Train an intent classifier from ``(text, intent)`` pairs (or ``Example`` objects).

    Args:
        examples: training data.
        output_dir: where the trained stage is saved (safetensors + tokenizer + settings).
        base: encoder checkpoint to start from (default: the bundled MiniLM).
        config: hyper-parameters (:class:`TrainingConfig`).
        normalizer: applied to training texts and saved for inference (default: ``TextNormalizer()``).
        device: where to train (``None`` = CUDA when available).
        progress: show the Trainer's progress bar.

    Returns:
        The trained :class:`IntentClassifier`, loaded from ``output_dir``.
    """
    from transformers import (
        AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
        TrainingArguments, set_seed,
    )

    from ..models import bundled_encoder_path

    config = config or TrainingConfig()
    normalizer = normalizer if normalizer is not None else TextNormalizer()
    resolved = resolve_device(device)
    base = str(base or bundled_encoder_path())
    pairs = _pairs(examples)
    labels = sorted({intent for _, intent in pairs})
    label2id = {label: i for i, label in enumerate(labels)}
    set_seed(config.seed)

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
        use_safetensors=True, ignore_mismatched_sizes=True,  # a new head when the base had other labels
    )
    texts = [normalizer(text) for text, _ in pairs]
    encodings = tokenizer(texts, truncation=True, max_length=config.max_length)
    dataset = _EncodedDataset(dict(encodings), [label2id[intent] for _, intent in pairs])
    logger.info("fine-tuning %s on %d examples, %d intents, device %s", base, len(pairs), len(labels), resolved)

    steps = math.ceil(len(dataset) / config.batch_size) * config.epochs
    warmup_steps = int(config.warmup_ratio * steps)
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=warmup_steps,
            lr_scheduler_type="linear",
            seed=config.seed,
            data_seed=config.seed,
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            use_cpu=resolved.type == "cpu",
            bf16=resolved.type == "cuda" and torch.cuda.is_bf16_supported(),
            disable_tqdm=not progress,
            dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()

    classifier = IntentClassifier(
        trainer.model.float(), tokenizer, device="cpu", normalizer=normalizer, max_length=config.max_length
    )
    classifier.save_pretrained(output_dir)
    return IntentClassifier.from_pretrained(output_dir, device=resolved)

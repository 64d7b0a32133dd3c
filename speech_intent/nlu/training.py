"""Fine-tuning an intent (or joint intent + slot) model with the transformers ``Trainer``.

Starts from the bundled all-MiniLM-L6-v2 encoder by default (any BERT-style
checkpoint works); texts go through the same :class:`TextNormalizer` that
inference uses, and the result is saved as a ready-to-use intent stage.

- When any training example has slots, a :class:`~speech_intent.nlu.joint.JointIntentSlotModel`
  is trained (intent + BIO slot heads); otherwise a plain sequence classifier.
- Examples with ``intent=None`` train an explicit out-of-scope class ``__oos__``,
  predicted back as ``intent=None``.
- With ``dev_examples``: evaluation every epoch, early stopping, the best epoch
  is kept (score: intent accuracy, averaged with slot F1 for joint models), and
  the out-of-scope threshold is chosen on dev (:mod:`~speech_intent.nlu.threshold`)
  and saved with the stage.
- bf16 (or fp16) on CUDA; deterministic for a fixed seed on CPU.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..device import DeviceLike, resolve_device
from ..errors import ConfigError
from ..models import bundled_encoder_path
from ..normalize import TextNormalizer
from ..slots import NormalizedExample
from .canonical import SlotCanonicalizer, infer_closed_values
from .classifier import OOS_LABEL, IntentClassifier
from .dataset import JointCollator, encode, prepare_examples
from .joint import JointIntentSlotModel, slot_label_list
from .metrics import trainer_metrics
from .threshold import choose_threshold

logger = logging.getLogger(__name__)


@dataclass
class TrainingConfig:
    """Hyper-parameters of :func:`fine_tune` (defaults suit small assistant domains).

    Attributes:
        epochs: maximum number of epochs (fewer with early stopping).
        learning_rate / batch_size / weight_decay / warmup_ratio: optimiser settings (linear decay).
        max_length: tokenizer truncation length.
        seed: seeds weights of the new heads, dropout and data order.
        early_stopping: stop after this many epochs without a better dev score (0: never; needs dev data).
        oos_recall: with dev data, choose the threshold that keeps this share of right in-scope
            answers (``None``: no threshold); see :mod:`~speech_intent.nlu.threshold`.
        classifier_dropout: dropout before the joint model's heads.
        head_learning_rate: peak learning rate of the new (randomly initialised) heads
            (``None``: ``learning_rate``, one rate for everything).
    """

    epochs: float = 8.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 64
    seed: int = 0
    early_stopping: int = 3
    oos_recall: Optional[float] = 0.99
    classifier_dropout: float = 0.1
    head_learning_rate: Optional[float] = None


def _build_model(base: str, intents: List[str], slot_labels: Optional[List[str]], config: TrainingConfig):
    """A joint model (when ``slot_labels`` is given) or a sequence classifier, with new heads on ``base``."""
    if slot_labels is not None:
        return JointIntentSlotModel.from_encoder(base, intents, slot_labels,
                                                 classifier_dropout=config.classifier_dropout)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(intents), id2label=dict(enumerate(intents)),
        label2id={label: i for i, label in enumerate(intents)},
        use_safetensors=True, ignore_mismatched_sizes=True,  # a new head when the base had other labels
    )


def _head_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW with the encoder at ``learning_rate`` and the heads at ``head_learning_rate``.

    No weight decay on biases and norm weights, as in the ``Trainer``'s own optimiser.
    """
    encoder = "encoder." if isinstance(model, JointIntentSlotModel) else f"{model.base_model_prefix}."
    groups: Dict[Tuple[bool, bool], List[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            no_decay = param.ndim < 2 or "norm" in name.lower()
            groups.setdefault((name.startswith(encoder), no_decay), []).append(param)
    return torch.optim.AdamW([
        {"params": params, "lr": config.learning_rate if is_encoder else config.head_learning_rate,
         "weight_decay": 0.0 if no_decay else config.weight_decay}
        for (is_encoder, no_decay), params in groups.items()
    ], lr=config.learning_rate)


def _training_args(scratch: str, config: TrainingConfig, steps: float, device: torch.device, *, has_dev: bool,
                   joint: bool, progress: bool):
    """``TrainingArguments``: per-epoch eval/save + best-epoch reload with dev data, mixed precision on CUDA."""
    from transformers import TrainingArguments

    cuda = device.type == "cuda"
    bf16 = cuda and torch.cuda.is_bf16_supported()
    per_epoch = {"eval_strategy": "epoch", "save_strategy": "epoch", "load_best_model_at_end": True,
                 "metric_for_best_model": "score", "greater_is_better": True, "save_total_limit": 1,
                 "save_only_model": True} if has_dev else {"save_strategy": "no"}
    return TrainingArguments(
        output_dir=scratch,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(config.batch_size, 64),
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup_ratio * steps),
        lr_scheduler_type="linear",
        seed=config.seed,
        data_seed=config.seed,
        logging_strategy="epoch" if has_dev and progress else "no",
        report_to=[],
        use_cpu=device.type == "cpu",
        bf16=bf16,
        fp16=cuda and not bf16,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        label_names=["labels", "slot_labels"] if joint else ["labels"],
        **per_epoch,
    )


def fine_tune(
    examples: Sequence[Any],
    output_dir: Union[str, Path],
    *,
    base: Union[str, Path, None] = None,
    config: Optional[TrainingConfig] = None,
    normalizer: Optional[TextNormalizer] = None,
    device: DeviceLike = None,
    progress: bool = True,
    dev_examples: Optional[Sequence[Any]] = None,
    joint: Optional[bool] = None,
    closed_values: Optional[Dict[str, List[str]]] = None,
) -> IntentClassifier:
    """Train an intent (or joint intent + slot) model and save it as an intent stage.

    Args:
        examples: ``Example`` objects (text, intent, slot spans) or ``(text, intent)`` pairs.
        output_dir: where the trained stage is saved (safetensors + tokenizer + settings).
        base: encoder checkpoint to start from (default: the bundled MiniLM).
        config: hyper-parameters (:class:`TrainingConfig`).
        normalizer: applied to training texts and saved for inference (default: ``TextNormalizer()``).
        device: where to train (``None`` = CUDA when available).
        progress: show the Trainer's progress bar (and per-epoch dev scores).
        dev_examples: held-out examples for early stopping, best-epoch selection and the
            out-of-scope threshold.
        joint: force (``True``) or forbid (``False``) the joint slot model; ``None``: joint when
            any training example has slots.
        closed_values: slot name -> canonical values for the slot canonicaliser (joint models);
            ``None``: inferred from the training examples. Pass the lists of the clean data when
            training on ASR transcripts too (:mod:`~speech_intent.augment`), or misrecognised
            values would become canonical.

    Returns:
        The trained :class:`IntentClassifier`, loaded from ``output_dir``; its ``training``
        attribute holds the dev scores and threshold choice.
    """
    from transformers import AutoTokenizer, DataCollatorWithPadding, EarlyStoppingCallback, Trainer, set_seed

    config = config or TrainingConfig()
    normalizer = normalizer if normalizer is not None else TextNormalizer()
    resolved = resolve_device(device)
    base = str(base or bundled_encoder_path())
    train = prepare_examples(examples, normalizer)
    if not train:
        raise ConfigError("no training examples")
    if all(ex.intent == OOS_LABEL for ex in train):
        raise ConfigError("every training example is out of scope (intent None); at least one intent is needed")
    joint = any(ex.slots for ex in train) if joint is None else joint
    intents = sorted({ex.intent for ex in train})
    label2id = {label: i for i, label in enumerate(intents)}
    slot_labels = slot_label_list([s.name for ex in train for s in ex.slots]) if joint else None
    dev = _usable_dev(prepare_examples(dev_examples or [], normalizer), label2id)
    set_seed(config.seed)

    tokenizer = AutoTokenizer.from_pretrained(base)
    if joint and not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"joint slot training needs a fast tokenizer; {base} has none")
    model = _build_model(base, intents, slot_labels, config)
    train_set = encode(tokenizer, train, label2id, slot_labels=slot_labels, max_length=config.max_length)
    dev_set = encode(tokenizer, dev, label2id, slot_labels=slot_labels, max_length=config.max_length) if dev else None
    logger.info("fine-tuning %s (%s) on %d examples, %d intents%s, device %s", base, "joint" if joint else "intent",
                len(train), len(intents), f", {len(slot_labels)} slot tags" if slot_labels else "", resolved)

    steps = math.ceil(len(train_set) / config.batch_size) * config.epochs
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        args = _training_args(scratch, config, steps, resolved, has_dev=dev_set is not None, joint=joint,
                              progress=progress)
        stop_early = dev_set is not None and config.early_stopping > 0
        callbacks = [EarlyStoppingCallback(config.early_stopping)] if stop_early else []
        trainer = Trainer(
            model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
            data_collator=JointCollator(tokenizer) if joint else DataCollatorWithPadding(tokenizer),
            compute_metrics=trainer_metrics(slot_labels) if dev_set is not None else None, callbacks=callbacks,
            optimizers=(_head_optimizer(model, config) if config.head_learning_rate else None, None),
        )
        trainer.train()
        state = trainer.state
    info: Dict[str, Any] = {
        "base": base, "joint": joint, "train_examples": len(train), "dev_examples": len(dev),
        "epochs_run": round(float(state.epoch or 0), 3), "best_dev_score": state.best_metric,
        "seconds": round(time.perf_counter() - started, 1), "device": str(resolved), "config": asdict(config),
    }
    if not joint:
        closed: Dict[str, List[str]] = {}
    elif closed_values is not None:
        closed = {name: sorted({normalizer(v) for v in vals} - {""}) for name, vals in closed_values.items()}
    else:
        closed = infer_closed_values(train)
    classifier = IntentClassifier(trainer.model.float(), tokenizer, device="cpu", normalizer=normalizer,
                                  max_length=config.max_length, training=info,
                                  canonicalizer=SlotCanonicalizer(closed) if closed else None)
    if dev_examples and config.oos_recall is not None:
        choice = _dev_threshold(classifier, dev_examples, config.oos_recall)
        classifier.threshold = choice.threshold
        info["threshold"] = choice.to_dict()
    classifier.save_pretrained(output_dir)
    return IntentClassifier.from_pretrained(output_dir, device=resolved)


def _usable_dev(dev: List[NormalizedExample], label2id: Dict[str, int]) -> List[NormalizedExample]:
    """Dev examples the Trainer can score (intent known to the model); the rest only inform the threshold."""
    usable = [ex for ex in dev if ex.intent in label2id]
    if len(usable) < len(dev):
        logger.info("%d dev examples have intents unknown to the model; used only for the threshold",
                    len(dev) - len(usable))
    return usable


def _dev_threshold(classifier: IntentClassifier, dev_examples: Sequence[Any], target_recall: float):
    """Out-of-scope threshold from the trained model's dev predictions (raw dev texts, as at inference)."""
    texts = [ex.text if hasattr(ex, "text") else ex[0] for ex in dev_examples]
    gold = [ex.intent if hasattr(ex, "intent") else ex[1] for ex in dev_examples]
    predictions = classifier(texts, top_k=1)
    predicted = [p.intent for p in predictions]  # threshold is still None here; __oos__ -> None
    return choose_threshold([p.confidence for p in predictions], predicted, gold, target_recall=target_recall)

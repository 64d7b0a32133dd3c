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
- Options: a CRF slot decoder (``slot_decoder="crf"``), the learning-rate schedule
  (``lr_scheduler``, ``warmup_ratio``), layer-wise learning-rate decay (``layer_lr_decay``)
  and a separate rate for the new heads (``head_learning_rate``).
- ``training["history"]`` of the result holds the train loss and dev scores of every epoch.
- ``privacy=PrivacyOptions(epsilon=...)``: differentially private fine-tuning (DP-SGD with Opacus, its own
  loop in :mod:`~speech_intent.nlu.private_training`); the achieved (ε, δ), clipping norm, noise multiplier
  and steps go into ``privacy.json`` beside the model and ``training["privacy"]``.
- bf16 (or fp16) on CUDA; deterministic for a fixed seed on CPU.
"""
from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..bundled import bundled_encoder_path
from ..device import DeviceLike, resolve_device
from ..errors import ConfigError
from ..normalize import TextNormalizer
from ..privacy.dp import PrivacyOptions
from ..quiet import quiet_transformers
from ..slots import NormalizedExample
from ..training_args import dev_checkpoints, mixed_precision, training_arguments
from .canonical import SlotCanonicalizer, infer_closed_values
from .classifier import OOS_LABEL, IntentClassifier
from .dataset import JointCollator, encode, prepare_examples
from .joint import SLOT_DECODERS, JointIntentSlotModel, slot_label_list
from .metrics import trainer_metrics
from .threshold import choose_threshold

logger = logging.getLogger(__name__)


@dataclass
class TrainingOptions:
    """Hyper-parameters of :func:`fine_tune` (defaults suit small assistant domains).

    Attributes:
        epochs: maximum number of epochs (fewer with early stopping).
        learning_rate / batch_size / weight_decay: optimiser settings.
        warmup_ratio: share of the (maximum) training steps with a linear warm-up.
        lr_scheduler: the ``Trainer``'s schedule after warm-up (``"linear"`` decay to 0 at ``epochs``,
            ``"cosine"``, ``"constant_with_warmup"``, ...).
        max_length: tokenizer truncation length.
        seed: seeds weights of the new heads, dropout and data order.
        early_stopping: stop after this many epochs without a better dev score (0: never; needs dev data).
        oos_recall: with dev data, choose the threshold that keeps this share of right in-scope
            answers (``None``: no threshold); see :mod:`~speech_intent.nlu.threshold`.
        classifier_dropout: dropout before the joint model's heads.
        head_learning_rate: peak learning rate of the new (randomly initialised) heads and the CRF
            (``None``: ``learning_rate``, one rate for everything).
        layer_lr_decay: layer-wise learning-rate decay: encoder layer ``i`` of ``n`` trains at
            ``learning_rate * layer_lr_decay ** (n - i)``, the embeddings at ``** (n + 1)``
            (1.0: one rate for the whole encoder).
        slot_decoder: joint models: ``"softmax"`` (each word's tag on its own) or ``"crf"``
            (a CRF layer: transitions learned, Viterbi decoding).
        bio_constrained: CRF decoding allows ``I-x`` only after ``B-x`` / ``I-x``.
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
    layer_lr_decay: float = 1.0
    lr_scheduler: str = "linear"
    slot_decoder: str = "softmax"
    bio_constrained: bool = True


def _check_options(options: TrainingOptions) -> None:
    """ConfigError for settings no training can use."""
    from transformers import SchedulerType

    if options.slot_decoder not in SLOT_DECODERS:
        raise ConfigError(f"slot_decoder must be one of {SLOT_DECODERS}, not {options.slot_decoder!r}")
    if not 0.0 < options.layer_lr_decay <= 1.0:
        raise ConfigError(f"layer_lr_decay must be in (0, 1], not {options.layer_lr_decay}")
    if not 0.0 <= options.warmup_ratio < 1.0:
        raise ConfigError(f"warmup_ratio must be in [0, 1), not {options.warmup_ratio}")
    names = [t.value for t in SchedulerType]
    if options.lr_scheduler not in names:
        raise ConfigError(f"lr_scheduler must be one of {names}, not {options.lr_scheduler!r}")


def _build_model(base: str, intents: List[str], slot_labels: Optional[List[str]], options: TrainingOptions):
    """A joint model (when ``slot_labels`` is given) or a sequence classifier, with new heads on ``base``."""
    if slot_labels is not None:
        return JointIntentSlotModel.from_encoder(base, intents, slot_labels,
                                                 classifier_dropout=options.classifier_dropout,
                                                 slot_decoder=options.slot_decoder,
                                                 bio_constrained=options.bio_constrained)
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(intents), id2label=dict(enumerate(intents)),
        label2id={label: i for i, label in enumerate(intents)},
        use_safetensors=True, ignore_mismatched_sizes=True,  # a new head when the base had other labels
    )


def _layer_depth(name: str, prefix: str, num_layers: int) -> int:
    """Depth of an encoder parameter: 0 embeddings, ``i + 1`` layer ``i``, ``num_layers + 1`` anything above."""
    if "embeddings" in name:
        return 0
    found = re.search(r"\.layers?\.(\d+)\.", name[len(prefix) - 1:])
    return int(found.group(1)) + 1 if found else num_layers + 1


def _optimizer(model: torch.nn.Module, options: TrainingOptions) -> torch.optim.Optimizer:
    """AdamW with the heads at ``head_learning_rate`` and the encoder at ``learning_rate`` times layer decay.

    No weight decay on biases, norm weights and CRF transitions, as in the ``Trainer``'s own
    optimiser for biases and norms.
    """
    encoder = "encoder." if isinstance(model, JointIntentSlotModel) else f"{model.base_model_prefix}."
    base_config = model.config.encoder if isinstance(model, JointIntentSlotModel) else model.config
    num_layers = int(getattr(base_config, "num_hidden_layers", 0) or 0)
    head_lr = options.head_learning_rate or options.learning_rate
    groups: Dict[Tuple[float, bool], List[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or "norm" in name.lower() or name.startswith("crf.")
        if name.startswith(encoder):
            depth = _layer_depth(name, encoder, num_layers)
            lr = options.learning_rate * options.layer_lr_decay ** (num_layers + 1 - depth)
        else:
            lr = head_lr
        groups.setdefault((lr, no_decay), []).append(param)
    return torch.optim.AdamW([
        {"params": params, "lr": lr, "weight_decay": 0.0 if no_decay else options.weight_decay}
        for (lr, no_decay), params in groups.items()
    ], lr=options.learning_rate)


def _training_args(scratch: str, options: TrainingOptions, steps: float, device: torch.device, *, has_dev: bool,
                   joint: bool):
    """``TrainingArguments``: per-epoch eval/save + best-epoch reload with dev data, mixed precision on CUDA,
    per-epoch logs. The Trainer's bars and printed logs are off: :func:`fine_tune` shows its own one bar."""
    return training_arguments(
        scratch, seed=options.seed, device=device, progress=False,
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=max(options.batch_size, 64),
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_steps=int(options.warmup_ratio * steps),
        lr_scheduler_type=options.lr_scheduler,
        logging_strategy="epoch",  # the per-epoch history
        label_names=["labels", "slot_labels"] if joint else ["labels"],
        **mixed_precision(device),
        **dev_checkpoints(has_dev, "score", greater_is_better=True),
    )


def _training_examples(examples: Sequence[Any], normalizer: TextNormalizer, joint: Optional[bool],
                       options: TrainingOptions) -> Tuple[List[NormalizedExample], bool]:
    """The normalised training examples and whether the model is joint (``None``: when any example has slots);
    ConfigError for no examples, only out-of-scope ones, or a CRF decoder without slots."""
    train = prepare_examples(examples, normalizer)
    if not train:
        raise ConfigError("no training examples")
    if all(ex.intent == OOS_LABEL for ex in train):
        raise ConfigError("every training example is out of scope (intent None); at least one intent is needed")
    joint = any(ex.slots for ex in train) if joint is None else joint
    if options.slot_decoder != "softmax" and not joint:
        raise ConfigError(f"slot_decoder={options.slot_decoder!r} needs a joint model, but no training example "
                          "has slots (or joint=False)")
    return train, joint


def _trainer(model: torch.nn.Module, tokenizer: Any, train_set: Any, dev_set: Any, scratch: str,
             options: TrainingOptions, device: torch.device, *, slot_labels: Optional[List[str]], progress: bool,
             callbacks: Sequence[Any]):
    """The ``Trainer``: early stopping and dev scores with dev data, the custom optimiser when an option needs
    it (:func:`_optimizer`), per-epoch logs to the history and (with ``progress``) one bar."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback, Trainer

    from .progress import TrainingBar

    joint = slot_labels is not None
    steps = math.ceil(len(train_set) / options.batch_size) * options.epochs
    args = _training_args(scratch, options, steps, device, has_dev=dev_set is not None, joint=joint)
    stop_early = dev_set is not None and options.early_stopping > 0
    stopping = [EarlyStoppingCallback(options.early_stopping)] if stop_early else []
    custom_optimizer = (options.head_learning_rate or options.layer_lr_decay != 1.0
                        or options.slot_decoder != "softmax")
    trainer = Trainer(
        model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
        data_collator=JointCollator(tokenizer) if joint else DataCollatorWithPadding(tokenizer),
        compute_metrics=trainer_metrics(slot_labels) if dev_set is not None else None,
        callbacks=stopping + list(callbacks),
        optimizers=(_optimizer(model, options) if custom_optimizer else None, None),
    )
    trainer.remove_callback(PrinterCallback)  # per-epoch logs go to the history (and the bar's postfix)
    if progress:
        trainer.add_callback(TrainingBar())
    return trainer


def _closed_values(train: Sequence[NormalizedExample], joint: bool, given: Optional[Dict[str, List[str]]],
                   normalizer: TextNormalizer) -> Dict[str, List[str]]:
    """Slot name -> canonical values for the canonicaliser: none for an intent model, ``given`` (normalised)
    when given, else inferred from the training examples."""
    if not joint:
        return {}
    if given is not None:
        return {name: sorted({normalizer(v) for v in vals} - {""}) for name, vals in given.items()}
    return infer_closed_values(train)


def fine_tune(
    examples: Sequence[Any],
    output_dir: Union[str, Path],
    *,
    base: Union[str, Path, None] = None,
    options: Optional[TrainingOptions] = None,
    normalizer: Optional[TextNormalizer] = None,
    device: DeviceLike = None,
    progress: bool = True,
    dev_examples: Optional[Sequence[Any]] = None,
    joint: Optional[bool] = None,
    closed_values: Optional[Dict[str, List[str]]] = None,
    callbacks: Sequence[Any] = (),
    privacy: Optional[PrivacyOptions] = None,
) -> IntentClassifier:
    """Train an intent (or joint intent + slot) model and save it as an intent stage.

    Args:
        examples: ``Example`` objects (text, intent, slot spans) or ``(text, intent)`` pairs.
        output_dir: where the trained stage is saved (safetensors + tokenizer + settings).
        base: encoder checkpoint to start from (default: the bundled MiniLM).
        options: hyper-parameters (:class:`TrainingOptions`).
        normalizer: applied to training texts and saved for inference (default: ``TextNormalizer()``).
        device: where to train (``None`` = CUDA when available).
        progress: show one progress bar on stderr, the last epoch's loss and dev score beside it.
        dev_examples: held-out examples for early stopping, best-epoch selection and the
            out-of-scope threshold.
        joint: force (``True``) or forbid (``False``) the joint slot model; ``None``: joint when
            any training example has slots.
        closed_values: slot name -> canonical values for the slot canonicaliser (joint models);
            ``None``: inferred from the training examples. Pass the lists of the clean data when
            training on ASR transcripts too (:mod:`~speech_intent.speech_in_the_loop`), or misrecognised
            values would become canonical.
        callbacks: more ``TrainerCallback`` objects for the ``Trainer`` (e.g. per-epoch test scores).
        privacy: train with differential privacy (:class:`~speech_intent.privacy.dp.PrivacyOptions`: target ε,
            δ, clipping norm); ``None``: the ordinary ``Trainer`` path. See
            :mod:`~speech_intent.nlu.private_training` for what differs (frozen embeddings, whole epochs,
            no early stopping).

    Returns:
        The trained :class:`IntentClassifier`, loaded from ``output_dir``; its ``training``
        attribute holds the dev scores and threshold choice.
    """
    from transformers import AutoTokenizer, set_seed

    options = options or TrainingOptions()
    _check_options(options)
    if privacy is not None and not isinstance(privacy, PrivacyOptions):
        raise ConfigError(f"privacy must be PrivacyOptions or None, not {type(privacy).__name__}")
    if privacy is not None and callbacks:
        raise ConfigError("callbacks are Trainer callbacks; private training runs its own loop and takes none")
    normalizer = normalizer if normalizer is not None else TextNormalizer()
    resolved = resolve_device(device)
    base = str(base or bundled_encoder_path())
    train, joint = _training_examples(examples, normalizer, joint, options)
    intents = sorted({ex.intent for ex in train})
    label2id = {label: i for i, label in enumerate(intents)}
    slot_labels = slot_label_list([s.name for ex in train for s in ex.slots]) if joint else None
    dev = _usable_dev(prepare_examples(dev_examples or [], normalizer), label2id)
    set_seed(options.seed)

    tokenizer = AutoTokenizer.from_pretrained(base)
    if joint and not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"joint slot training needs a fast tokenizer; {base} has none")
    with quiet_transformers():  # the base's load report: the pooler it drops, the heads fine-tuning adds
        model = _build_model(base, intents, slot_labels, options)
    train_set = encode(tokenizer, train, label2id, slot_labels=slot_labels, max_length=options.max_length)
    dev_set = encode(tokenizer, dev, label2id, slot_labels=slot_labels, max_length=options.max_length) if dev else None
    logger.info("fine-tuning %s (%s) on %d examples, %d intents%s, device %s", base, "joint" if joint else "intent",
                len(train), len(intents), f", {len(slot_labels)} slot tags" if slot_labels else "", resolved)

    started = time.perf_counter()
    private = None
    if privacy is not None:
        from .private_training import train_privately

        private = train_privately(model, tokenizer, train_set, dev_set, options, privacy, resolved,
                                  slot_labels=slot_labels, progress=progress)
        trained, epochs_run, best, history = private.model, private.epochs_run, private.dev_score, private.history
    else:
        with tempfile.TemporaryDirectory() as scratch:
            trainer = _trainer(model, tokenizer, train_set, dev_set, scratch, options, resolved,
                               slot_labels=slot_labels, progress=progress, callbacks=callbacks)
            with quiet_transformers():  # the checkpoints' "Writing model shards" bars, the best epoch's load report
                trainer.train()
            state = trainer.state
        trained, epochs_run, best = trainer.model, round(float(state.epoch or 0), 3), state.best_metric
        history = epoch_history(state.log_history)
    info: Dict[str, Any] = {
        "base": base, "joint": joint, "train_examples": len(train), "dev_examples": len(dev),
        "epochs_run": epochs_run, "best_dev_score": best,
        "seconds": round(time.perf_counter() - started, 1), "device": str(resolved), "config": asdict(options),
        "history": history,
    }
    if private is not None:
        info["privacy"] = private.record.to_dict()
    closed = _closed_values(train, joint, closed_values, normalizer)
    classifier = IntentClassifier(trained.float(), tokenizer, device="cpu", normalizer=normalizer,
                                  max_length=options.max_length, training=info,
                                  canonicalizer=SlotCanonicalizer(closed) if closed else None)
    if dev_examples and options.oos_recall is not None:
        choice = _dev_threshold(classifier, dev_examples, options.oos_recall)
        classifier.threshold = choice.threshold
        info["threshold"] = choice.to_dict()
    classifier.save_pretrained(output_dir)
    if private is not None:
        private.record.save(output_dir)
    return IntentClassifier.from_pretrained(output_dir, device=resolved)


def epoch_history(log_history: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per-epoch rows from the ``Trainer``'s ``log_history``: ``epoch``, ``train_loss``, ``learning_rate``
    (the first parameter group's, at the epoch's end) and ``dev_*`` scores (with dev data)."""
    rows: Dict[float, Dict[str, Any]] = {}
    for entry in log_history:
        if "epoch" not in entry or "train_runtime" in entry:  # the run's summary, not an epoch
            continue
        row = rows.setdefault(round(float(entry["epoch"]), 3), {"epoch": round(float(entry["epoch"]), 3)})
        if "loss" in entry:
            row["train_loss"] = float(entry["loss"])
        if "learning_rate" in entry:
            row["learning_rate"] = float(entry["learning_rate"])
        for key, value in entry.items():
            if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second")):
                row["dev_" + key[len("eval_"):]] = float(value)
    return [rows[epoch] for epoch in sorted(rows)]


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

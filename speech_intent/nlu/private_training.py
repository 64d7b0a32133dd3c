"""The differentially private path of :func:`~speech_intent.nlu.training.fine_tune`: DP-SGD in its own loop.

The ``Trainer`` does not drive Opacus (its own sampler, gradient accumulation and clipping would
break Poisson sampling and per-example clipping), so private training runs here:
:func:`~speech_intent.privacy.dp.make_private` wraps the model, an AdamW optimiser and a Poisson
sampling loader; the loop steps once per logical batch (physical batches through Opacus'
``BatchMemoryManager``) with the ``Trainer``'s learning-rate schedule (``lr_scheduler``, ``warmup_ratio``).

What differs from the non-private path, and why:

- **Frozen**: the encoder's embeddings (with ``freeze_embeddings``; see
  :class:`~speech_intent.privacy.dp.PrivacyOptions`) and a CRF's transitions (Opacus computes
  per-example gradients through module forward hooks; the CRF is used through its own methods, so
  its transitions stay at zero: the CRF then scores as independent per-word softmax tagging and still
  decodes with the BIO constraint). Everything else (attention, feed-forward, norms, heads) trains.
- **Per-example loss**: intent cross-entropy plus the mean slot loss over *that example's* tagged words,
  averaged over the batch (the non-private loss averages slot tokens over the whole batch, which would
  make one example's gradient depend on the others' lengths).
- **Epochs**: a whole number (``round(epochs)``, at least 1): the noise is calibrated for them.
- **No early stopping or best-epoch reload**: the last model is kept; with dev data each epoch's dev
  scores are still recorded in ``history``. Dropout stays on in training.
"""
from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch

from ..errors import ConfigError
from ..privacy.dp import PrivacyOptions, PrivacyRecord, freeze_parameters, make_private
from .dataset import JointCollator
from .joint import JointIntentSlotModel
from .metrics import nlu_metrics
from .subwords import IGNORE_INDEX

logger = logging.getLogger(__name__)


@dataclass
class PrivateResult:
    """The trained model (plain, Opacus released), its privacy record and per-epoch history."""

    model: torch.nn.Module
    record: PrivacyRecord
    epochs_run: int
    history: List[Dict[str, Any]] = field(default_factory=list)
    dev_score: Optional[float] = None


def frozen_prefixes(model: torch.nn.Module, privacy: PrivacyOptions) -> List[str]:
    """Parameter-name prefixes a private run does not train: the embeddings (``freeze_embeddings``), the
    encoder layers below the top ``trainable_layers``, the CRF."""
    prefixes = []
    encoder = "encoder." if isinstance(model, JointIntentSlotModel) else f"{model.base_model_prefix}."
    if privacy.freeze_embeddings:
        prefixes.append(encoder + "embeddings.")
    if privacy.trainable_layers is not None:
        layers: Dict[int, str] = {}
        for name, _ in model.named_parameters():
            found = re.match(r"(.*?\.layers?\.)(\d+)\.", name[len(encoder):]) if name.startswith(encoder) else None
            if found:
                layers[int(found.group(2))] = f"{encoder}{found.group(1)}{found.group(2)}."
        keep = sorted(layers)[len(layers) - privacy.trainable_layers:] if privacy.trainable_layers else []
        prefixes += [layers[i] for i in sorted(layers) if i not in keep]
    if isinstance(model, JointIntentSlotModel) and model.crf is not None:
        prefixes.append("crf.")
    return prefixes


def per_example_loss(model: torch.nn.Module, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``(batch,)`` losses: intent cross-entropy (+ the mean slot loss over each example's tagged words)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "slot_labels")}
    output = model(**inputs)
    joint = hasattr(output, "intent_logits")
    logits = output.intent_logits if joint else output.logits
    loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"].view(-1), reduction="none")
    slot_labels = batch.get("slot_labels")
    if not joint or slot_labels is None:
        return loss
    core = model._module if hasattr(model, "_module") else model
    mask = slot_labels != IGNORE_INDEX
    words = mask.sum(dim=1).clamp(min=1)
    if core.crf is not None:
        return loss - core.crf.log_likelihood(output.slot_logits, slot_labels, mask) / words
    token_loss = torch.nn.functional.cross_entropy(output.slot_logits.float().transpose(1, 2), slot_labels,
                                                   ignore_index=IGNORE_INDEX, reduction="none")
    return loss + token_loss.sum(dim=1) / words


@torch.no_grad()
def dev_scores(model: torch.nn.Module, dev_set: Any, collator: Any, slot_labels: Optional[List[str]],
               device: torch.device, batch_size: int = 64) -> Dict[str, float]:
    """Intent accuracy (and slot P/R/F1, sentence accuracy, ``score``) of ``model`` on an encoded dev set."""
    was_training = model.training
    model.eval()
    gold, pred, gold_tags, pred_tags = [], [], [], []
    for start in range(0, len(dev_set), batch_size):
        batch = collator([dev_set[i] for i in range(start, min(start + batch_size, len(dev_set)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "slot_labels")}
        output = model(**inputs)
        logits = output.intent_logits if slot_labels is not None else output.logits
        gold += batch["labels"].tolist()
        pred += logits.argmax(dim=-1).tolist()
        if slot_labels is not None:
            mask = batch["slot_labels"] != IGNORE_INDEX
            tags = model.decode_slots(output.slot_logits, mask)
            for g, p, m in zip(batch["slot_labels"], tags, mask):
                gold_tags.append([slot_labels[int(i)] for i in g[m]])
                pred_tags.append([slot_labels[int(i)] for i in p[m]])
    model.train(was_training)
    metrics = nlu_metrics(gold, pred, gold_tags or None, pred_tags or None)
    return {k: float(v) for k, v in metrics.to_dict().items() if v is not None and k != "examples"}


def train_privately(model: torch.nn.Module, tokenizer: Any, train_set: Any, dev_set: Any, options: Any,
                    privacy: PrivacyOptions, device: torch.device, *, slot_labels: Optional[List[str]],
                    progress: bool = False) -> PrivateResult:
    """DP-SGD fine-tuning of ``model`` on the encoded ``train_set`` (``options``: a ``TrainingOptions``).

    The noise is calibrated so that ``round(options.epochs)`` epochs at Poisson sampling rate
    ``batch_size / len(train_set)`` spend at most ``privacy.epsilon`` (at ``privacy.delta_for(N)``);
    the record holds the accountant's ε for the steps taken.
    """
    from transformers import DataCollatorWithPadding, get_scheduler

    epochs = max(1, round(float(options.epochs)))
    if options.batch_size > len(train_set):
        raise ConfigError(f"batch_size {options.batch_size} is larger than the {len(train_set)} training examples; "
                          "private training samples batches of that expected size from them")
    model.to(device).train()
    prefixes = frozen_prefixes(model, privacy)
    freeze_parameters(model, prefixes)
    collator = JointCollator(tokenizer) if slot_labels is not None else DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(options.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=options.batch_size, shuffle=True,
                                         collate_fn=collator, generator=generator)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=options.weight_decay)
    run = make_private(model, optimizer, loader, privacy, epochs=epochs, seed=options.seed)
    steps = epochs * len(run.loader)
    schedule = get_scheduler(options.lr_scheduler, run.optimizer, num_warmup_steps=int(options.warmup_ratio * steps),
                             num_training_steps=steps)
    logger.info("private fine-tuning: %d epochs, %d steps, expected batch %d, noise multiplier %.3f, C=%g, "
                "target ε=%g, δ=%.3g; frozen %s", epochs, steps, options.batch_size, run.optimizer.noise_multiplier,
                privacy.max_grad_norm, privacy.epsilon, run.delta, prefixes)
    bar = _bar(steps, progress)
    history: List[Dict[str, Any]] = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        with run.physical_batches() as batches, warnings.catch_warnings():
            # Opacus' backward hooks on the first trained layer, whose input (frozen embeddings) needs no gradient
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                run.optimizer.zero_grad(set_to_none=True)
                losses = per_example_loss(run.module, batch)
                # the mean of this physical batch (Opacus' loss_reduction="mean"; 0 for an empty Poisson batch)
                (losses.sum() / max(len(losses), 1)).backward()
                run.optimizer.step()
                total, count = total + float(losses.detach().sum()), count + len(losses)
                if not run.optimizer._is_last_step_skipped:  # a whole logical batch: one DP-SGD step
                    schedule.step()
                    if bar is not None:
                        bar.update(1)
        row: Dict[str, Any] = {"epoch": float(epoch), "train_loss": total / max(count, 1),
                               "learning_rate": float(run.optimizer.param_groups[0]["lr"]),
                               "epsilon": run.epsilon(),
                               "seconds": round(time.perf_counter() - started, 1)}
        if dev_set is not None:
            row.update({f"dev_{k}": v for k, v in dev_scores(run.module._module, dev_set, collator, slot_labels,
                                                             device).items()})
        history.append(row)
        if bar is not None:
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", eps=f"{row['epsilon']:.2f}")
    if bar is not None:
        bar.close()
    record = run.record(prefixes)
    trained = run.release().eval()
    return PrivateResult(model=trained, record=record, epochs_run=epochs, history=history,
                         dev_score=history[-1].get("dev_score") if history else None)


def _bar(steps: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="private fine-tuning", unit="step", leave=False)


__all__ = ["PrivateResult", "dev_scores", "frozen_prefixes", "per_example_loss", "train_privately"]

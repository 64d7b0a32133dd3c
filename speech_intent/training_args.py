"""The transformers ``TrainingArguments`` both trainers build (:func:`~speech_intent.nlu.fine_tune` and
:func:`~speech_intent.asr_training.fine_tune_asr`).

:func:`training_arguments` sets what they share: the scratch output folder, the seed of weights and
data order, no reporting integrations, the CPU flag, the progress bar, data loading in the calling
process; :func:`dev_checkpoints` the evaluation / checkpoint / best-model settings with dev data;
:func:`mixed_precision` the ``bf16`` / ``fp16`` flags for a device. Each trainer adds its own
(epochs, rates, batch sizes, logging, generation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from .errors import ConfigError

__all__ = ["dev_checkpoints", "mixed_precision", "training_arguments"]


def mixed_precision(device: torch.device, dtype: str = "auto") -> Dict[str, bool]:
    """``bf16`` / ``fp16`` arguments for training in ``dtype`` on ``device``.

    ``"auto"``: bf16 on CUDA where supported, else fp16 on CUDA, full precision elsewhere;
    ``"bfloat16"`` / ``"float16"`` / ``"float32"`` as named. float16 off CUDA raises
    :class:`~speech_intent.errors.ConfigError`.
    """
    cuda = device.type == "cuda"
    if dtype == "auto":
        bf16 = cuda and torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": cuda and not bf16}
    if dtype == "float16" and not cuda:
        raise ConfigError("float16 mixed precision needs CUDA; use dtype='bfloat16' or 'float32' on CPU")
    return {"bf16": dtype == "bfloat16", "fp16": dtype == "float16"}


def dev_checkpoints(has_dev: bool, metric: str, *, greater_is_better: bool,
                    every_steps: Optional[int] = None) -> Dict[str, Any]:
    """Evaluation and checkpoints: with dev data, evaluate and save every epoch (every ``every_steps``
    steps when given), keep one checkpoint (weights only) and reload the best by ``metric`` at the
    end; without, neither evaluate nor save."""
    if not has_dev:
        return {"eval_strategy": "no", "save_strategy": "no"}
    strategy = "steps" if every_steps else "epoch"
    settings: Dict[str, Any] = {
        "eval_strategy": strategy, "save_strategy": strategy, "load_best_model_at_end": True,
        "metric_for_best_model": metric, "greater_is_better": greater_is_better, "save_total_limit": 1,
        "save_only_model": True,
    }
    if every_steps:
        settings.update(eval_steps=every_steps, save_steps=every_steps)
    return settings


def training_arguments(output_dir: Union[str, Path], *, seed: int, device: torch.device, progress: bool,
                       seq2seq: bool = False, **settings: Any):
    """``TrainingArguments`` (``Seq2SeqTrainingArguments`` with ``seq2seq``) for a run in ``output_dir``:
    ``seed`` for weights and data order, no reporting integrations, ``use_cpu`` on a CPU ``device``, the
    progress bar only with ``progress``, batches loaded in the training process; ``settings`` are the
    trainer's own arguments."""
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    kind = Seq2SeqTrainingArguments if seq2seq else TrainingArguments
    return kind(
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        report_to=[],
        use_cpu=device.type == "cpu",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        **settings,
    )

"""LoRA fine-tuning of the response generator (``peft`` + the ``transformers`` Trainer).

Each :class:`~speech_intent.responses.acts.ResponseExample` becomes ``prompt + response + eos`` with the loss
on the response tokens only; examples longer than ``max_length`` tokens are dropped (counted in the log).
:func:`train_responses` returns an :class:`~speech_intent.responses.generator.LMResponseGenerator`
with the trained adapter, saved to ``output_dir`` (adapter, or merged weights with ``merge``; safetensors).
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..device import DeviceLike, resolve_device
from ..errors import ConfigError, PathLike
from ..training_args import mixed_precision, training_arguments
from .acts import InputFormat, ResponseExample, linearize
from .generator import CONFIG_NAME, DecodingOptions, LMResponseGenerator
from .options import ResponseTrainingOptions

logger = logging.getLogger(__name__)

__all__ = ["ResponseTrainingOptions", "TrainingReport", "train_responses", "tokenize_examples"]


@dataclass
class TrainingReport:
    """What a training run did: examples used / dropped as too long, steps, final loss, seconds."""

    examples: int
    dropped_too_long: int
    steps: int
    train_loss: Optional[float]
    seconds: float
    options: Dict[str, Any]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class _GeneratorConfigCallback:
    """Writes the generator settings into each checkpoint, so ``from_pretrained`` loads it (a TrainerCallback)."""

    def __new__(cls, config: Dict[str, Any]):
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")

        return Callback()


class _TimeLimitCallback:
    """Stops training after ``minutes`` (checked after each step; a TrainerCallback)."""

    def __new__(cls, minutes: float):
        from transformers import TrainerCallback

        deadline = time.monotonic() + 60.0 * minutes

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if time.monotonic() > deadline:
                    logger.warning("stopping at step %d: the %.1f-minute time limit", state.global_step, minutes)
                    control.should_training_stop = True

        return Callback()


def tokenize_examples(tokenizer: Any, examples: Sequence[ResponseExample], fmt: InputFormat,
                      max_length: int) -> Tuple[List[Dict[str, List[int]]], int]:
    """``input_ids`` / ``labels`` (prompt tokens masked with -100) per example; and how many were too long."""
    prompts = tokenizer([linearize(e.input, fmt) for e in examples], add_special_tokens=False)["input_ids"]
    targets = tokenizer([fmt.target(e.response) for e in examples], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    rows, dropped = [], 0
    for prompt, target in zip(prompts, targets):
        ids = prompt + target + [eos]
        if len(ids) > max_length or not target:
            dropped += 1
            continue
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [-100] * len(prompt) + target + [eos]})
    return rows, dropped


def train_responses(examples: Sequence[ResponseExample], output_dir: PathLike, *,
                    options: ResponseTrainingOptions = ResponseTrainingOptions(), model: Any = None,
                    tokenizer: Any = None, device: DeviceLike = None, merge: bool = False,
                    progress: bool = True) -> Tuple[LMResponseGenerator, TrainingReport]:
    """LoRA-fine-tune ``model`` / ``tokenizer`` (default: ``options.base_model``) on ``examples``; save to
    ``output_dir`` and return the generator and a :class:`TrainingReport`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer

    from .generator import resolve_base

    if not examples:
        raise ConfigError("no training examples for the response generator")
    device = resolve_device(device)
    started = time.perf_counter()
    examples = list(examples)
    if options.train_limit is not None and options.train_limit < len(examples):
        examples = random.Random(options.seed).sample(examples, options.train_limit)
    torch.manual_seed(options.seed)
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(resolve_base(options.base_model))
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(resolve_base(options.base_model))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    rows, dropped = tokenize_examples(tokenizer, examples, options.input_format, options.max_length)
    if not rows:
        raise ConfigError(f"every training example is longer than max_length={options.max_length} tokens")
    if dropped:
        logger.warning("dropped %d of %d examples longer than %d tokens", dropped, len(examples), options.max_length)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in options.lora_targets if t in present]
    if not targets:
        raise ConfigError(f"none of the LoRA target modules {options.lora_targets} is in the model")
    lora = LoraConfig(r=options.lora_rank, lora_alpha=options.lora_alpha or 2 * options.lora_rank,
                      lora_dropout=options.lora_dropout, target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    scratch = Path(tempfile.mkdtemp(prefix="train-responses-"))
    config = LMResponseGenerator.config_for(options.base_model, options.input_format, DecodingOptions())
    saving: Dict[str, Any] = {"save_strategy": "no"}
    callbacks = []
    if options.save_steps:  # usable checkpoints while training runs: OUTPUT/checkpoints/checkpoint-N
        saving = {"save_strategy": "steps", "save_steps": options.save_steps, "save_total_limit": 2,
                  "save_only_model": True}
        callbacks.append(_GeneratorConfigCallback(config))
    if options.max_minutes:
        callbacks.append(_TimeLimitCallback(options.max_minutes))
    try:
        args = training_arguments(
            Path(output_dir) / "checkpoints" if options.save_steps else scratch, seed=options.seed, device=device, progress=progress,
            per_device_train_batch_size=options.batch_size, gradient_accumulation_steps=options.gradient_accumulation,
            learning_rate=options.learning_rate, num_train_epochs=options.epochs,
            max_steps=options.max_steps if options.max_steps else -1, warmup_steps=options.warmup_ratio,
            weight_decay=options.weight_decay, lr_scheduler_type="linear", logging_steps=options.logging_steps,
            eval_strategy="no", **saving, remove_unused_columns=False, train_sampling_strategy="group_by_length",
            **mixed_precision(device, options.dtype))
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator,
                          processing_class=tokenizer, callbacks=callbacks)
        result = trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    model = trainer.model.to(torch.float32)
    generator = LMResponseGenerator(model, tokenizer, input_format=options.input_format, decoding=DecodingOptions(),
                                    base_model=options.base_model, device=device)
    generator.save_pretrained(output_dir, merged=merge)
    report = TrainingReport(len(rows), dropped, int(result.global_step), float(result.training_loss),
                            time.perf_counter() - started, options.to_dict())
    (Path(output_dir) / "training_report.json").write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return generator, report

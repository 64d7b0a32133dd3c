"""Whisper fine-tuning with transformers' ``Seq2SeqTrainer``: :func:`fine_tune_asr`.

Starts from the bundled tiny.en (its transformers twin, converted once) or any Whisper checkpoint
(a transformers directory or hub name, or a CTranslate2 directory, converted first). Trains on
recordings with transcripts and/or synthesised speech (:mod:`.material`), augmented afresh each epoch
(:mod:`.clips`: speed, training noise; SpecAugment inside the model). Options: frozen encoder,
LoRA adapters (``peft``), early stopping and best-checkpoint selection by dev WER (greedy
decoding, :class:`~speech_intent.normalize.TextNormalizer` on both sides), bf16 on CUDA.
The result is saved by :mod:`.export` as a :class:`~speech_intent.asr.WhisperASR` directory plus a
CTranslate2 copy for :class:`~speech_intent.asr.FasterWhisperASR`.

Evaluation data never reaches training: the ``exclude`` paths (evaluation manifests, folders,
noise files) and the dev set are matched against every training recording and transcript
(:class:`~.heldout.EvaluationData`); a noise file among them is refused, and so is a rehearsal source
that overlaps them (rehearsal: a seeded sample of other training data's sentences mixed in against
forgetting, :func:`~.rehearsal.sample_rehearsal`).
"""
from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..audio import SAMPLE_RATE, load_audio
from ..device import DeviceLike, resolve_device
from ..errors import AudioError, ConfigError
from ..normalize import TextNormalizer
from ..synthesis.noise import training_noise
from ..synthesis.tts import EspeakSynthesizer, Synthesizer
from ..training_args import dev_checkpoints, mixed_precision, training_arguments
from .base_model import decoder_prefix, load_base, prepare_for_training
from .clips import ClipAugmenter, ClipSource, TokenizedDataset, WhisperCollator
from .export import ASRTrainingResult, export_model
from .heldout import EvaluationData
from .material import ASRExample, collect_examples
from .options import ASRTrainingOptions
from .rehearsal import RehearsalSample, bundled_rehearsal_path, sample_rehearsal

logger = logging.getLogger(__name__)

__all__ = ["fine_tune_asr"]

PathLike = Union[str, Path]


def _usable(examples: Sequence[ASRExample], guard: EvaluationData, what: str) -> Tuple[List[ASRExample], int,
                                                                                         List[str]]:
    """Examples without evaluation data and unreadable recordings: (kept, excluded count, problems)."""
    kept, excluded, problems = [], 0, []
    for example in examples:
        if guard and guard.contains(example):
            excluded += 1
            continue
        if isinstance(example.audio, Path):
            try:
                load_audio(example.audio, max_duration=30.0, name=example.source)
            except AudioError as error:
                problems.append(str(error))
                continue
        kept.append(example)
    if excluded:
        logger.warning("%d %s examples are evaluation data (recording or transcript) and are not used", excluded, what)
    for problem in problems:
        logger.warning("skipped %s example: %s", what, problem)
    return kept, excluded, problems


def _tokenize(examples: Sequence[ASRExample], tokenizer: Any, limit: int) -> Tuple[List[ASRExample], List[List[int]],
                                                                                    List[str]]:
    """Target token ids (``" " + text``, as Whisper writes a transcript), without examples over ``limit``."""
    kept, targets, problems = [], [], []
    for example in examples:
        ids = tokenizer(" " + example.text.strip(), add_special_tokens=False).input_ids
        if len(ids) > limit:
            problems.append(f"{example.source or example.text[:40]!r}: transcript of {len(ids)} tokens, over "
                            f"max_target_tokens={limit}")
            continue
        kept.append(example)
        targets.append(list(ids))
    return kept, targets, problems


def _wer_metric(tokenizer: Any, normalizer: TextNormalizer):
    """``compute_metrics`` for the trainer: corpus WER of greedy transcripts (normalised) against the targets."""
    import jiwer

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def compute(prediction) -> dict:
        predictions = np.where(prediction.predictions == -100, pad, prediction.predictions)
        labels = np.where(prediction.label_ids == -100, pad, prediction.label_ids)
        hyps = [normalizer(t) for t in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        refs = [normalizer(t) for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
        if not pairs:
            return {"wer": 0.0}
        return {"wer": float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))}

    return compute


def _noise(noise: Union[PathLike, np.ndarray, None], guard: EvaluationData, synthesizer: Optional[Synthesizer],
           seed: int) -> np.ndarray:
    """The training noise: given samples or file (never an evaluation file), else :func:`training_noise`."""
    if noise is None:
        return training_noise(synthesizer, seconds=120.0, sampling_rate=SAMPLE_RATE, seed=seed)
    if isinstance(noise, (str, Path)):
        if guard.contains_file(noise):
            raise ConfigError(f"{noise} is evaluation data (excluded); training noise must not be the evaluation "
                              "noise")
        return load_audio(noise, max_duration=None)
    return np.asarray(noise, dtype=np.float32)


def _rehearsal_record(sample: Any, examples: Sequence[ASRExample]) -> Optional[dict]:
    """The training record of a rehearsal sample: its summary, ``sentences`` = those trained on."""
    if sample is None:
        return None
    drawn = set(sample.examples)  # ASRExamples compare by identity
    return {**sample.to_dict(), "sentences": sum(ex in drawn for ex in examples)}


def _training_args(scratch: Path, options: ASRTrainingOptions, total_steps: int, device: torch.device, *,
                   has_dev: bool, progress: bool):
    """``Seq2SeqTrainingArguments``: evaluation, checkpoints and best-model reload by dev WER when there is
    dev data (every epoch or ``eval_steps``), greedy generation for the WER, mixed precision per ``dtype``."""
    return training_arguments(
        scratch, seed=options.seed, device=device, progress=progress, seq2seq=True,
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_steps=int(options.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        logging_strategy="steps",
        logging_steps=options.logging_steps,
        predict_with_generate=True,
        generation_max_length=options.generation_max_length,
        generation_num_beams=1,
        remove_unused_columns=False,  # the collator needs the items' index and data set
        label_names=["labels"],
        **dev_checkpoints(has_dev, "wer", greater_is_better=False, every_steps=options.eval_steps),
        **mixed_precision(device, options.dtype),
    )


@dataclass
class _Material:
    """What one run trains and evaluates on, after the held-out guard (see :func:`_material`)."""

    examples: List[ASRExample]
    dev: List[ASRExample]
    guard: EvaluationData
    excluded: int = 0
    problems: List[str] = field(default_factory=list)
    dev_problems: List[str] = field(default_factory=list)
    rehearsal: Optional[RehearsalSample] = None

    @property
    def synthesised(self) -> bool:
        """True when a training or dev clip needs a text-to-speech voice."""
        return any(ex.synthesised for ex in [*self.examples, *self.dev])


def _material(train: Iterable[Any], dev: Optional[Iterable[Any]], exclude: Iterable[PathLike],
              rehearsal: Union[PathLike, Iterable[PathLike], None], max_examples: Optional[int],
              options: ASRTrainingOptions) -> _Material:
    """Dev clips, the rehearsal sample and the training clips, with evaluation data (``exclude`` and the
    dev set) and unreadable recordings left out; ConfigError when no training clip is left."""
    guard = EvaluationData.from_paths(exclude)
    dev_items = collect_examples(dev, seed=options.seed + 1, text_format=options.text_format) if dev else []
    dev_items, _, dev_problems = _usable(dev_items, guard, "dev")
    guard.add_examples(dev_items)
    if rehearsal is None:
        rehearsal = bundled_rehearsal_path()
    rehearsal = [rehearsal] if isinstance(rehearsal, (str, Path)) else list(rehearsal)
    sample = None
    if rehearsal and options.rehearsal_examples:  # before the training data: a refused source fails fast
        sample = sample_rehearsal(rehearsal, options.rehearsal_examples, seed=options.seed, evaluation=guard,
                                  text_format=options.text_format)
        logger.info("rehearsal: %d sentences of %s", len(sample.examples), sample.sources)
    examples = collect_examples(train, max_examples=max_examples, seed=options.seed, text_format=options.text_format)
    examples, excluded, problems = _usable(examples, guard, "training")
    if not examples:
        raise ConfigError("no training examples left" + (f" ({excluded} were evaluation data)" if excluded else ""))
    if sample is not None:
        examples = examples + list(sample.examples)
    return _Material(examples, dev_items, guard, excluded, problems, dev_problems, sample)


def _targets(material: _Material, model: Any, processor: Any, options: ASRTrainingOptions, prompt: Optional[str],
             language: Optional[str]) -> Tuple[List[int], List[int], List[List[int]], List[List[int]]]:
    """``(prefix, prompt_ids, targets, dev_targets)``: the decoder prefix and prompt, and the target token ids
    of the clips; clips over ``max_target_tokens`` are dropped from ``material`` (and noted in its problems).
    ConfigError when no training clip fits, or a transcript does not fit the decoder with the prompt."""
    tokenizer = processor.tokenizer
    prefix = decoder_prefix(tokenizer, model, language)
    material.examples, targets, too_long = _tokenize(material.examples, tokenizer, options.max_target_tokens)
    material.dev, dev_targets, dev_too_long = _tokenize(material.dev, tokenizer, options.max_target_tokens)
    material.problems += too_long
    material.dev_problems += dev_too_long
    if not material.examples:
        raise ConfigError("no training example has a transcript within max_target_tokens")
    prompt_ids = list(processor.get_prompt_ids(prompt)) if prompt else []
    room = int(model.config.max_target_positions) - len(prefix) - len(prompt_ids) - 1
    if max(len(t) for t in targets) > room:
        raise ConfigError(f"a transcript does not fit the decoder's {model.config.max_target_positions} "
                          "positions with the prompt; shorten the prompt or max_target_tokens")
    return prefix, prompt_ids, targets, dev_targets


def _collator(processor: Any, source: ClipSource, generation_config: Any, prefix: List[int], prompt_ids: List[int],
              noise: Optional[np.ndarray], options: ASRTrainingOptions) -> WhisperCollator:
    """Batches for the trainer: clips augmented per ``options`` (training), dev clips at ``dev_snr``."""
    eos = int(generation_config.eos_token_id)
    pad = int(generation_config.pad_token_id if generation_config.pad_token_id is not None else eos)
    return WhisperCollator(
        processor, source, prefix=prefix, eos_token_id=eos, pad_token_id=pad,
        augmenter=ClipAugmenter(speed_range=options.speed_range, noise=noise,
                                noise_probability=options.noise_probability, snr_range=options.snr_range),
        prompt_ids=prompt_ids, prompt_probability=options.prompt_probability, dev_noise=noise,
        dev_snr=options.dev_snr, seed=options.seed)


def _trainer(model: Any, processor: Any, train_set: TokenizedDataset, dev_set: Optional[TokenizedDataset],
             collator: WhisperCollator, options: ASRTrainingOptions, device: torch.device, scratch: Path,
             progress: bool):
    """The ``Seq2SeqTrainer``: dev WER (greedy, normalised) and early stopping when there is dev data."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Seq2SeqTrainer

    has_dev = dev_set is not None
    steps_per_epoch = -(-len(train_set) // (options.batch_size * options.gradient_accumulation))
    total_steps = max(1, int(np.ceil(steps_per_epoch * options.epochs)))
    args = _training_args(scratch / "checkpoints", options, total_steps, device, has_dev=has_dev, progress=progress)
    callbacks = [EarlyStoppingCallback(options.early_stopping)] if has_dev and options.early_stopping else []
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
                             data_collator=collator, processing_class=processor.feature_extractor,
                             compute_metrics=_wer_metric(processor.tokenizer, TextNormalizer()) if has_dev else None,
                             callbacks=callbacks)
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer


def _result(trainer: Any, material: _Material, output_dir: Path, base_name: str, dev_before: Optional[float],
            device: torch.device, options: ASRTrainingOptions, prompt: Optional[str]) -> ASRTrainingResult:
    """The run's :class:`ASRTrainingResult` from the trainer's state and log history (``seconds`` set on export)."""
    history, state, examples = trainer.state.log_history, trainer.state, material.examples
    return ASRTrainingResult(
        output_dir=output_dir, ctranslate2_dir=None, base=base_name,
        train_examples=len(examples), synthesised_examples=sum(ex.synthesised for ex in examples),
        dev_examples=len(material.dev), excluded_examples=material.excluded,
        skipped=material.problems + material.dev_problems,
        train_loss=[(int(h["step"]), float(h["loss"])) for h in history if "loss" in h],
        dev_wer=[(int(h["step"]), float(h["eval_wer"])) for h in history if "eval_wer" in h],
        dev_wer_before=dev_before, best_step=getattr(state, "best_global_step", None),
        best_dev_wer=state.best_metric, steps=int(state.global_step),
        epochs_run=round(float(state.epoch or 0), 3), seconds=0.0, device=str(device),
        options=options, prompt=prompt, rehearsal=_rehearsal_record(material.rehearsal, examples),
    )


def fine_tune_asr(
    train: Iterable[Any],
    output_dir: PathLike,
    *,
    base: Optional[PathLike] = None,
    options: Optional[ASRTrainingOptions] = None,
    dev: Optional[Iterable[Any]] = None,
    prompt: Optional[str] = None,
    exclude: Iterable[PathLike] = (),
    noise: Union[PathLike, np.ndarray, None] = None,
    synthesizer: Optional[Synthesizer] = None,
    max_examples: Optional[int] = None,
    rehearsal: Union[PathLike, Iterable[PathLike], None] = None,
    language: Optional[str] = None,
    device: DeviceLike = None,
    progress: bool = True,
) -> ASRTrainingResult:
    """Fine-tune Whisper on (audio, transcript) pairs and save it as an ASR stage.

    Args:
        train: training material, any mix of audio manifests with a text column, training-data
            files (grammar, Rasa, CSV, JSONL, BIO: their sentences are synthesised; a BIO folder's
            tokenised text written naturally by :func:`~.text.detokenize`), ``Example``\\ s,
            sentences and :class:`~.material.ASRExample`\\ s (see :func:`~.material.collect_examples`).
        output_dir: where the fine-tuned :class:`~speech_intent.asr.WhisperASR` is saved (and its
            CTranslate2 copy in ``output_dir/ctranslate2``, ``training.json`` with the result).
        base: checkpoint to start from (default: the bundled tiny.en).
        options: :class:`ASRTrainingOptions` (default: the benchmarked recipe).
        dev: the same kinds of material, for early stopping and best-checkpoint selection by WER.
            Never trained on.
        prompt: decoder prompt used for a share of the training clips (``options.prompt_probability``),
            e.g. the domain prompt the pipeline gives (``SpeechIntentPipeline.prompt_text``).
        exclude: evaluation manifests, folders and files (recordings, noise) never to train on.
        noise: training noise (file or 16 kHz samples; default: babble + pink + brown noise made by
            :func:`~speech_intent.synthesis.noise.training_noise`). An excluded file is refused.
        synthesizer: text-to-speech for sentences (default: espeak-ng voices).
        max_examples: sentences taken from each training-data file (a grammar is sampled).
        rehearsal: other domains' training data (files or folders of any format ``train`` reads as
            sentences: grammar, Rasa, CSV, JSONL, BIO) of which ``options.rehearsal_examples``
            sentences (a sample seeded by ``options.seed``) are synthesised and trained on with
            ``train``, so that the model does not forget other speech
            (:func:`~.rehearsal.sample_rehearsal`). ``None``: the library's general-English sentences
            (:func:`~.rehearsal.bundled_rehearsal_path`); ``[]`` or ``options.rehearsal_examples=0``: no
            rehearsal. Sentences equal to an ``exclude`` or ``dev`` transcript are never drawn; a
            source overlapping an ``exclude`` path raises :class:`~speech_intent.errors.ConfigError`.
            Recorded in ``training.json`` (``rehearsal``).
        language: language of a multilingual checkpoint's transcripts (default English).
        device: where to train (``None``: CUDA when available).
        progress: show the trainer's progress bar.
    """
    from transformers import set_seed

    options = options or ASRTrainingOptions()
    resolved = resolve_device(device)
    mixed_precision(resolved, options.dtype)  # a dtype the device cannot train in fails before any work
    output_dir = Path(output_dir)
    started = time.perf_counter()
    set_seed(options.seed)

    material = _material(train, dev, exclude, rehearsal, max_examples, options)
    if synthesizer is None and material.synthesised:
        synthesizer = EspeakSynthesizer()
    needs_noise = options.noise_probability > 0 or (material.dev and options.dev_snr is not None)
    noise_samples = _noise(noise, material.guard, synthesizer, options.seed) if needs_noise else None

    with tempfile.TemporaryDirectory(prefix="asr-training-") as scratch:
        model, processor, base_name = load_base(base, Path(scratch))
        prefix, prompt_ids, targets, dev_targets = _targets(material, model, processor, options, prompt, language)
        original_config = copy.deepcopy(model.config)
        generation_config = copy.deepcopy(model.generation_config)
        model = prepare_for_training(model, options)
        examples, dev_items = material.examples, material.dev
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("fine-tuning %s on %d clips (%d synthesised), %d dev clips, %d trainable parameters, device %s",
                    base_name, len(examples), sum(ex.synthesised for ex in examples), len(dev_items), trainable,
                    resolved)

        train_set = TokenizedDataset(examples, targets, training=True)
        dev_set = TokenizedDataset(dev_items, dev_targets, training=False) if dev_items else None
        source = ClipSource(synthesizer, cache_dir=Path(scratch) / "clips")
        source.prepare(examples + dev_items)
        collator = _collator(processor, source, generation_config, prefix, prompt_ids, noise_samples, options)
        trainer = _trainer(model, processor, train_set, dev_set, collator, options, resolved, Path(scratch), progress)
        dev_before = trainer.evaluate()["eval_wer"] if dev_set is not None else None
        trainer.train()
        result = _result(trainer, material, output_dir, base_name, dev_before, resolved, options, prompt)
        export_model(trainer.model, processor, output_dir, result, config=original_config,
                     generation_config=generation_config, started=started)
    return result

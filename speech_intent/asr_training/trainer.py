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
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..asr import detect_backend
from ..asr.convert import bundled_whisper_transformers_path, convert_ctranslate2_whisper
from ..audio import SAMPLE_RATE, load_audio
from ..device import DeviceLike, resolve_device
from ..errors import AudioError, ConfigError, ModelLoadError
from ..normalize import TextNormalizer
from ..synthesis.noise import training_noise
from ..synthesis.tts import EspeakSynthesizer, Synthesizer
from .clips import ClipAugmenter, ClipSource, TokenizedDataset, WhisperCollator
from .export import ASRTrainingResult, export_model
from .heldout import EvaluationData
from .material import ASRExample, collect_examples
from .options import ASRTrainingOptions
from .rehearsal import bundled_rehearsal_path, sample_rehearsal

logger = logging.getLogger(__name__)

__all__ = ["fine_tune_asr", "load_base"]

PathLike = Union[str, Path]


def load_base(base: Optional[PathLike], scratch: Path) -> Tuple[Any, Any, str]:
    """``(model, processor, name)`` of the checkpoint to start from (safetensors only).

    ``None``: the bundled tiny.en (transformers twin). A CTranslate2 directory is converted into
    ``scratch`` first.
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    if base is None:
        path: Union[str, Path] = bundled_whisper_transformers_path()
    elif Path(base).is_dir() and (Path(base) / "model.bin").is_file():
        path = convert_ctranslate2_whisper(base, scratch / "base")
    else:
        path = base
        if Path(base).is_dir() and detect_backend(base) != "whisper":
            raise ModelLoadError(base, "not a Whisper checkpoint (ASR fine-tuning trains Whisper models)")
    try:
        processor = WhisperProcessor.from_pretrained(str(path))
        # float32 master weights whatever the checkpoint's dtype (a half-precision checkpoint would
        # otherwise train in half precision; bf16 on CUDA is the Trainer's mixed precision, not the weights')
        model = WhisperForConditionalGeneration.from_pretrained(str(path), use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ModelLoadError(base, f"cannot load a Whisper checkpoint with safetensors weights: {error}") from error
    return model, processor, str(base) if base is not None else f"bundled tiny.en ({path})"


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


def _prefix(tokenizer: Any, model: Any, language: Optional[str]) -> List[int]:
    """Decoder prefix: ``<|startoftranscript|>`` [language, task] ``<|notimestamps|>``."""
    if getattr(model.generation_config, "is_multilingual", False):
        tokenizer.set_prefix_tokens(language=language or "english", task="transcribe", predict_timestamps=False)
    else:
        tokenizer.set_prefix_tokens(predict_timestamps=False)
    return list(tokenizer.prefix_tokens)


def _precision(options: ASRTrainingOptions, device: torch.device) -> dict:
    """``bf16`` / ``fp16`` TrainingArguments for ``options.dtype`` on ``device``."""
    cuda = device.type == "cuda"
    if options.dtype == "auto":
        bf16 = cuda and torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": cuda and not bf16}
    if options.dtype == "float16" and not cuda:
        raise ConfigError("float16 mixed precision needs CUDA; use dtype='bfloat16' or 'float32' on CPU")
    return {"bf16": options.dtype == "bfloat16", "fp16": options.dtype == "float16"}


def _apply_lora(model: Any, options: ASRTrainingOptions) -> Any:
    """``model`` wrapped with LoRA adapters on the named linear layers (decoder only with a frozen encoder)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ConfigError("LoRA needs peft: pip install 'speech-intent[train]' (or pip install peft)") from error
    lora = options.lora
    targets = [name for name, module in model.named_modules()
               if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in lora.target_modules
               and (not options.freeze_encoder or ".decoder." in f".{name}")]
    if not targets:
        raise ConfigError(f"no linear layer named {list(lora.target_modules)} to adapt with LoRA")
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
                        bias="none")
    return get_peft_model(model, config)


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
    from transformers import Seq2SeqTrainingArguments

    strategy = ("steps" if options.eval_steps else "epoch") if has_dev else "no"
    return Seq2SeqTrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_steps=int(options.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        seed=options.seed,
        data_seed=options.seed,
        logging_strategy="steps",
        logging_steps=options.logging_steps,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=options.eval_steps,
        save_steps=options.eval_steps,
        load_best_model_at_end=has_dev,
        metric_for_best_model="wer" if has_dev else None,
        greater_is_better=False if has_dev else None,
        save_total_limit=1,
        save_only_model=True,
        predict_with_generate=True,
        generation_max_length=options.generation_max_length,
        generation_num_beams=1,
        remove_unused_columns=False,  # the collator needs the items' index and data set
        label_names=["labels"],
        report_to=[],
        use_cpu=device.type == "cpu",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        **_precision(options, device),
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
    from transformers import EarlyStoppingCallback, PrinterCallback, Seq2SeqTrainer, set_seed

    options = options or ASRTrainingOptions()
    resolved = resolve_device(device)
    _precision(options, resolved)  # a dtype the device cannot train in fails before any work
    output_dir = Path(output_dir)
    started = time.perf_counter()
    set_seed(options.seed)

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
    if synthesizer is None and any(ex.synthesised for ex in list(examples) + list(dev_items)):
        synthesizer = EspeakSynthesizer()
    needs_noise = options.noise_probability > 0 or (dev_items and options.dev_snr is not None)
    noise_samples = _noise(noise, guard, synthesizer, options.seed) if needs_noise else None

    with tempfile.TemporaryDirectory(prefix="asr-training-") as scratch:
        model, processor, base_name = load_base(base, Path(scratch))
        tokenizer = processor.tokenizer
        prefix = _prefix(tokenizer, model, language)
        examples, targets, too_long = _tokenize(examples, tokenizer, options.max_target_tokens)
        dev_items, dev_targets, dev_too_long = _tokenize(dev_items, tokenizer, options.max_target_tokens)
        problems += too_long
        if not examples:
            raise ConfigError("no training example has a transcript within max_target_tokens")
        prompt_ids = list(processor.get_prompt_ids(prompt)) if prompt else []
        room = int(model.config.max_target_positions) - len(prefix) - len(prompt_ids) - 1
        if max(len(t) for t in targets) > room:
            raise ConfigError(f"a transcript does not fit the decoder's {model.config.max_target_positions} "
                              "positions with the prompt; shorten the prompt or max_target_tokens")

        original_config = copy.deepcopy(model.config)
        generation_config = copy.deepcopy(model.generation_config)
        model.config.use_cache = False
        model.config.apply_spec_augment = options.specaugment
        model.config.mask_time_prob, model.config.mask_feature_prob = options.mask_time_prob, options.mask_feature_prob
        if options.freeze_encoder:
            model.freeze_encoder()
        if options.lora is not None:
            model = _apply_lora(model, options)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("fine-tuning %s on %d clips (%d synthesised), %d dev clips, %d trainable parameters, device %s",
                    base_name, len(examples), sum(ex.synthesised for ex in examples), len(dev_items), trainable,
                    resolved)

        train_set = TokenizedDataset(examples, targets, training=True)
        dev_set = TokenizedDataset(dev_items, dev_targets, training=False) if dev_items else None
        eos = int(generation_config.eos_token_id)
        pad = int(generation_config.pad_token_id if generation_config.pad_token_id is not None else eos)
        source = ClipSource(synthesizer, cache_dir=Path(scratch) / "clips")
        source.prepare(examples + dev_items)
        collator = WhisperCollator(
            processor, source, prefix=prefix, eos_token_id=eos, pad_token_id=pad,
            augmenter=ClipAugmenter(speed_range=options.speed_range, noise=noise_samples,
                                    noise_probability=options.noise_probability, snr_range=options.snr_range),
            prompt_ids=prompt_ids, prompt_probability=options.prompt_probability, dev_noise=noise_samples,
            dev_snr=options.dev_snr, seed=options.seed)

        has_dev = dev_set is not None
        steps_per_epoch = -(-len(train_set) // (options.batch_size * options.gradient_accumulation))
        total_steps = max(1, int(np.ceil(steps_per_epoch * options.epochs)))
        args = _training_args(Path(scratch) / "checkpoints", options, total_steps, resolved, has_dev=has_dev,
                              progress=progress)
        callbacks = [EarlyStoppingCallback(options.early_stopping)] if has_dev and options.early_stopping else []
        trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=dev_set,
                                 data_collator=collator, processing_class=processor.feature_extractor,
                                 compute_metrics=_wer_metric(tokenizer, TextNormalizer()) if has_dev else None,
                                 callbacks=callbacks)
        if not progress:
            trainer.remove_callback(PrinterCallback)
        dev_before = trainer.evaluate()["eval_wer"] if has_dev else None
        trainer.train()
        history = trainer.state.log_history
        result = ASRTrainingResult(
            output_dir=output_dir, ctranslate2_dir=None, base=base_name,
            train_examples=len(examples), synthesised_examples=sum(ex.synthesised for ex in examples),
            dev_examples=len(dev_items), excluded_examples=excluded, skipped=problems + dev_problems + dev_too_long,
            train_loss=[(int(h["step"]), float(h["loss"])) for h in history if "loss" in h],
            dev_wer=[(int(h["step"]), float(h["eval_wer"])) for h in history if "eval_wer" in h],
            dev_wer_before=dev_before, best_step=getattr(trainer.state, "best_global_step", None),
            best_dev_wer=trainer.state.best_metric, steps=int(trainer.state.global_step),
            epochs_run=round(float(trainer.state.epoch or 0), 3), seconds=0.0, device=str(resolved),
            options=options, prompt=prompt, rehearsal=_rehearsal_record(sample, examples),
        )
        export_model(trainer.model, processor, output_dir, result, config=original_config,
                     generation_config=generation_config, started=started)
    return result


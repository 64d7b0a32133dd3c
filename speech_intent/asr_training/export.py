"""Saving a fine-tuned Whisper: LoRA merged, a :class:`~speech_intent.asr.WhisperASR` directory, a
CTranslate2 copy, and the training record.

Layout of the output directory::

    OUT/                    WhisperASR (transformers): config, generation config, model.safetensors,
                            tokenizer and feature-extractor files; training.json (ASRTrainingResult)
    OUT/ctranslate2/        the same weights for FasterWhisperASR (model.bin, config.json,
                            tokenizer.json, vocabulary, preprocessor_config.json)

``load_asr(OUT)`` gives the transformers stage (grammar decoding, GPU), ``load_asr(OUT / "ctranslate2")``
the fast CPU stage (int8 by default). The CTranslate2 copy is made by CTranslate2's own converter
(``ctranslate2.converters.TransformersConverter``), which works offline on a local directory.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..asr.whisper import WhisperASR
from ..errors import ModelLoadError
from .options import ASRTrainingOptions

logger = logging.getLogger(__name__)

__all__ = ["ASRTrainingResult", "CTRANSLATE2_DIR", "TRAINING_FILE", "export_ctranslate2", "export_model"]

CTRANSLATE2_DIR = "ctranslate2"
TRAINING_FILE = "training.json"
PathLike = Union[str, Path]
#: Training-time settings put back to the base checkpoint's values before saving.
_TRAINING_CONFIG = ("use_cache", "apply_spec_augment", "mask_time_prob", "mask_feature_prob", "bos_token_id",
                    "eos_token_id", "pad_token_id", "decoder_start_token_id")


@dataclass
class ASRTrainingResult:
    """What :func:`~speech_intent.asr_training.fine_tune_asr` did.

    Attributes:
        output_dir / ctranslate2_dir: the saved stages (``ctranslate2_dir`` is ``None`` without export).
        base: the checkpoint it started from.
        train_examples / synthesised_examples / dev_examples: clips used (synthesised: of the training
            clips; both count the rehearsal sentences).
        excluded_examples: training examples dropped as evaluation data.
        skipped: unusable inputs (unreadable recordings, transcripts over the token limit), one line each.
        train_loss: ``(step, loss)`` every ``logging_steps``.
        dev_wer: ``(step, WER)`` at each evaluation; ``dev_wer_before``: the base model's.
        best_step / best_dev_wer: the evaluation whose weights were kept (``None`` without dev data).
        steps / epochs_run / seconds / device: how long it ran, and where.
        options / prompt: the settings.
        rehearsal: with rehearsal data, what was mixed in: ``sentences`` (trained on; a sampled
            sentence over ``max_target_tokens`` is in ``skipped`` instead), ``requested``,
            ``sources`` (path -> sentences sampled from it), ``available``,
            ``dropped_as_evaluation`` and ``intents`` (see :class:`~.rehearsal.RehearsalSample`);
            ``None`` without.
    """

    output_dir: Path
    ctranslate2_dir: Optional[Path]
    base: str
    train_examples: int
    synthesised_examples: int
    dev_examples: int
    excluded_examples: int
    skipped: List[str]
    train_loss: List[Tuple[int, float]]
    dev_wer: List[Tuple[int, float]]
    dev_wer_before: Optional[float]
    best_step: Optional[int]
    best_dev_wer: Optional[float]
    steps: int
    epochs_run: float
    seconds: float
    device: str
    options: ASRTrainingOptions = field(default_factory=ASRTrainingOptions)
    prompt: Optional[str] = None
    rehearsal: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready (paths as strings, pairs as lists)."""
        return {
            "output_dir": str(self.output_dir),
            "ctranslate2_dir": str(self.ctranslate2_dir) if self.ctranslate2_dir else None,
            "base": self.base, "train_examples": self.train_examples,
            "synthesised_examples": self.synthesised_examples, "dev_examples": self.dev_examples,
            "excluded_examples": self.excluded_examples, "skipped": list(self.skipped),
            "train_loss": [list(p) for p in self.train_loss], "dev_wer": [list(p) for p in self.dev_wer],
            "dev_wer_before": self.dev_wer_before, "best_step": self.best_step, "best_dev_wer": self.best_dev_wer,
            "steps": self.steps, "epochs_run": self.epochs_run, "seconds": self.seconds, "device": self.device,
            "options": self.options.to_dict(), "prompt": self.prompt,
            "rehearsal": dict(self.rehearsal) if self.rehearsal is not None else None,
        }


def export_ctranslate2(model_dir: PathLike, out: PathLike, *, quantization: str = "int8") -> Path:
    """Convert a transformers Whisper directory into a CTranslate2 one that FasterWhisperASR loads.

    The tokenizer (``tokenizer.json``, which faster-whisper reads) and feature-extractor settings are
    copied along. Raises :class:`~speech_intent.errors.ModelLoadError` when the conversion fails.
    """
    from ctranslate2.converters import TransformersConverter

    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / "tokenizer.json").is_file():
        raise ModelLoadError(model_dir, "no tokenizer.json (faster-whisper needs the fast tokenizer's file)")
    files = [name for name in ("tokenizer.json", "preprocessor_config.json") if (model_dir / name).is_file()]
    try:
        TransformersConverter(str(model_dir), copy_files=files).convert(str(out), quantization=quantization,
                                                                         force=True)
    except Exception as error:  # the converter raises many kinds; name the directory
        raise ModelLoadError(model_dir, f"CTranslate2 export failed: {error}") from error
    return out


def export_model(model: Any, processor: Any, output_dir: PathLike, result: ASRTrainingResult, *, config: Any,
                 generation_config: Any, started: float) -> ASRTrainingResult:
    """Merge LoRA adapters, put back the base's inference settings, save the stage, its CTranslate2 copy
    (``result.options.ctranslate2``) and ``training.json``; fills ``result``'s paths and time."""
    if hasattr(model, "merge_and_unload"):  # a peft model
        model = model.merge_and_unload()
    model = model.float().cpu().eval()
    for key in _TRAINING_CONFIG:
        setattr(model.config, key, getattr(config, key))
    model.generation_config = generation_config
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    WhisperASR(model, processor, device="cpu", dtype="float32").save_pretrained(output_dir)
    processor.feature_extractor.save_pretrained(output_dir)  # preprocessor_config.json, read by faster-whisper
    if result.options.ctranslate2:
        result.ctranslate2_dir = export_ctranslate2(output_dir, output_dir / CTRANSLATE2_DIR,
                                                    quantization=result.options.ctranslate2_quantization)
    result.seconds = round(time.perf_counter() - started, 1)
    (output_dir / TRAINING_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    logger.info("saved the fine-tuned ASR to %s%s in %.0f s", output_dir,
                f" (+ CTranslate2 in {result.ctranslate2_dir})" if result.ctranslate2_dir else "", result.seconds)
    return result

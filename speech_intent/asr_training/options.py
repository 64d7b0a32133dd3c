"""Options of :func:`~speech_intent.asr_training.fine_tune_asr`: frozen dataclasses, checked on creation.

The defaults are the recipe ``benchmarks/asr_finetune.py`` measures: full fine-tuning at a small
learning rate for a few epochs, every training clip augmented afresh each epoch (speed
perturbation, training noise at a random SNR, SpecAugment), half of the clips decoded after the
domain prompt when one is given (so that the model keeps working with and without it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from ..errors import ConfigError, check_int

__all__ = ["ASRTrainingOptions", "LoraOptions", "DEFAULT_LORA_MODULES"]

#: Linear layers of a Whisper encoder/decoder layer that LoRA adapts by default.
DEFAULT_LORA_MODULES: Tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _pair(name: str, value: Any, *, low: float, high: float) -> Tuple[float, float]:
    """``value`` as a ``(a, b)`` range with ``low <= a <= b <= high``."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a pair (low, high), got {value!r}") from None
    if math.isnan(a) or math.isnan(b) or not low <= a <= b <= high:
        raise ConfigError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class LoraOptions:
    """LoRA adapters (``peft``) instead of training the Whisper weights themselves.

    Attributes:
        rank / alpha / dropout: LoRA's r, lora_alpha and lora_dropout.
        target_modules: names of the linear layers to adapt (in the decoder only when the
            encoder is frozen). The adapters are merged into the weights before saving.
    """

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: Tuple[str, ...] = DEFAULT_LORA_MODULES

    def __post_init__(self) -> None:
        check_int("LoRA rank", self.rank)
        if not self.alpha > 0:
            raise ConfigError(f"LoRA alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        modules = tuple(self.target_modules)
        if not modules or not all(isinstance(m, str) and m for m in modules):
            raise ConfigError(f"LoRA target_modules must be non-empty layer names, got {self.target_modules!r}")
        object.__setattr__(self, "target_modules", modules)


@dataclass(frozen=True)
class ASRTrainingOptions:
    """Hyper-parameters of Whisper fine-tuning.

    Attributes:
        epochs: maximum number of passes over the training clips (fewer with early stopping).
        learning_rate / warmup_ratio / weight_decay: AdamW with linear decay after the warm-up.
        batch_size / gradient_accumulation: clips per step = their product.
        freeze_encoder: train the decoder only (the acoustic model is kept; about 2.5x faster on CPU).
        lora: train LoRA adapters (:class:`LoraOptions`, needs ``peft``) instead of the weights.
        noise_probability: share of training clips mixed with training noise ...
        snr_range: ... at an SNR drawn uniformly from this range (dB, the peak-frame-energy SNR of
            :func:`~speech_intent.synthesis.noise.mix_at_snr`).
        speed_range: speed perturbation factors (uniform; ``(1, 1)`` = off); pitch changes with speed.
        specaugment / mask_time_prob / mask_feature_prob: SpecAugment on the log-Mel input
            (transformers' Whisper implementation: time and frequency masks of 10 frames / bins).
        prompt_probability: with a ``prompt`` given to :func:`fine_tune_asr`, the share of training
            clips decoded after it (``<|startofprev|>`` prompt, as the pipeline's domain prompt is given).
        text_format: ``"sentence"`` writes synthesised targets the way Whisper writes (first letter
            upper case, a final full stop); ``"verbatim"`` keeps the data's text. Recording
            transcripts are always verbatim.
        rehearsal_examples: how many sentences of the ``rehearsal`` data given to
            :func:`fine_tune_asr` (default: the library's general-English sentences) are mixed
            into training against forgetting (a sample seeded by ``seed``; evaluation and dev
            transcripts are never drawn); 0 = no rehearsal. The default is the benchmarked mix:
            200 next to 400-600 one-domain sentences.
        early_stopping: with dev data, stop after this many evaluations without a lower dev WER
            (0: never); the best evaluation's weights are kept either way.
        eval_steps: evaluate on dev every this many steps (``None``: every epoch).
        dev_snr: mix training noise into the dev clips at this SNR (``None``: clean dev).
        max_target_tokens: longest target in tokens (prompt excluded); longer examples are skipped.
        generation_max_length: tokens generated per dev clip for the WER.
        logging_steps: record the training loss every this many steps.
        seed: data order, augmentation, voices and new weights.
        dtype: ``"auto"`` = bf16 mixed precision on CUDA (fp16 where bf16 is unsupported),
            float32 on CPU; or ``"float32"`` / ``"bfloat16"`` / ``"float16"``.
        ctranslate2: also export a CTranslate2 copy (``ctranslate2/`` in the output directory) for
            :class:`~speech_intent.asr.FasterWhisperASR` ...
        ctranslate2_quantization: ... with its weights stored in this type (int8 = the CPU default).
    """

    epochs: float = 2.0
    learning_rate: float = 1e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    batch_size: int = 8
    gradient_accumulation: int = 1
    freeze_encoder: bool = False
    lora: Optional[LoraOptions] = None
    noise_probability: float = 0.8
    snr_range: Tuple[float, float] = (0.0, 25.0)
    speed_range: Tuple[float, float] = (0.9, 1.1)
    specaugment: bool = True
    mask_time_prob: float = 0.05
    mask_feature_prob: float = 0.05
    prompt_probability: float = 0.5
    text_format: str = "sentence"
    rehearsal_examples: int = 200
    early_stopping: int = 2
    eval_steps: Optional[int] = None
    dev_snr: Optional[float] = None
    max_target_tokens: int = 200
    generation_max_length: int = 128
    logging_steps: int = 10
    seed: int = 0
    dtype: str = "auto"
    ctranslate2: bool = True
    ctranslate2_quantization: str = "int8"

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}")
        for name in ("batch_size", "gradient_accumulation", "max_target_tokens", "generation_max_length",
                     "logging_steps"):
            check_int(name, getattr(self, name))
        check_int("rehearsal_examples", self.rehearsal_examples, minimum=0)
        check_int("early_stopping", self.early_stopping, minimum=0)
        check_int("eval_steps", self.eval_steps, optional=True)
        for name in ("warmup_ratio", "noise_probability", "mask_time_prob", "mask_feature_prob",
                     "prompt_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        object.__setattr__(self, "snr_range", _pair("snr_range", self.snr_range, low=-20.0, high=60.0))
        object.__setattr__(self, "speed_range", _pair("speed_range", self.speed_range, low=0.5, high=2.0))
        if isinstance(self.lora, Mapping):
            object.__setattr__(self, "lora", LoraOptions(**self.lora))
        if self.lora is not None and not isinstance(self.lora, LoraOptions):
            raise ConfigError(f"lora must be LoraOptions, a mapping of its fields or None, got {self.lora!r}")
        if self.text_format not in ("sentence", "verbatim"):
            raise ConfigError(f"text_format must be 'sentence' or 'verbatim', got {self.text_format!r}")
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.ctranslate2_quantization not in ("int8", "int8_float16", "float16", "bfloat16", "float32"):
            raise ConfigError(f"unknown CTranslate2 quantization {self.ctranslate2_quantization!r}")

    def replace(self, **changes: Any) -> "ASRTrainingOptions":
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """Every field by name (JSON-serialisable)."""
        out = asdict(self)
        out["snr_range"], out["speed_range"] = list(self.snr_range), list(self.speed_range)
        if self.lora is not None:
            out["lora"]["target_modules"] = list(self.lora.target_modules)
        return out

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> "ASRTrainingOptions":
        """Options from :meth:`to_dict` output; unknown names raise :class:`ConfigError`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ConfigError(f"unknown ASR training options: {unknown}")
        values = dict(mapping)
        for name in ("snr_range", "speed_range"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

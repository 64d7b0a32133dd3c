"""The Whisper model :func:`~speech_intent.asr_training.fine_tune_asr` trains: the checkpoint it starts from
(:func:`load_base`), the decoder prefix of its targets (:func:`decoder_prefix`), and its training setup
(:func:`prepare_for_training`: SpecAugment, a frozen encoder, LoRA adapters through ``peft``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import torch

from ..asr import detect_backend
from ..asr.convert import bundled_whisper_transformers_path, convert_ctranslate2_whisper
from ..errors import ConfigError, ModelLoadError
from .options import ASRTrainingOptions

__all__ = ["decoder_prefix", "load_base", "prepare_for_training"]

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


def decoder_prefix(tokenizer: Any, model: Any, language: Optional[str]) -> List[int]:
    """Decoder prefix: ``<|startoftranscript|>`` [language, task] ``<|notimestamps|>``."""
    if getattr(model.generation_config, "is_multilingual", False):
        tokenizer.set_prefix_tokens(language=language or "english", task="transcribe", predict_timestamps=False)
    else:
        tokenizer.set_prefix_tokens(predict_timestamps=False)
    return list(tokenizer.prefix_tokens)


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


def prepare_for_training(model: Any, options: ASRTrainingOptions) -> Any:
    """``model`` set up for training: no decoder cache, SpecAugment per ``options``, the encoder frozen
    and LoRA adapters added when asked."""
    model.config.use_cache = False
    model.config.apply_spec_augment = options.specaugment
    model.config.mask_time_prob, model.config.mask_feature_prob = options.mask_time_prob, options.mask_feature_prob
    if options.freeze_encoder:
        model.freeze_encoder()
    if options.lora is not None:
        model = _apply_lora(model, options)
    return model

"""Whisper through Hugging Face transformers (`WhisperForConditionalGeneration`).

Batched ``generate`` on log-Mel features; fp16/bf16 on CUDA; language and task
options for multilingual checkpoints; optional decoder prompt (domain bias).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import torch

from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ModelLoadError
from ..results import Transcript
from .base import BaseASR, mean_logprob_confidence

logger = logging.getLogger(__name__)


class WhisperASR(BaseASR):
    """Whisper ASR stage on transformers.

    Args:
        model: a loaded ``WhisperForConditionalGeneration``.
        processor: the matching ``WhisperProcessor``.
        device / dtype: where and in which precision to run (explicit; ``None`` = auto).
        language / task: passed to ``generate`` for multilingual models.
        num_beams: beam size (1 = greedy).
        prompt: optional text given to the decoder as previous context (biases spelling).
    """

    backend = "whisper"

    def __init__(
        self,
        model,
        processor,
        *,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        language: Optional[str] = None,
        task: str = "transcribe",
        num_beams: int = 1,
        max_new_tokens: int = 128,
        prompt: Optional[str] = None,
        batch_size: int = 8,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.sampling_rate = int(processor.feature_extractor.sampling_rate)
        self.language = language
        self.task = task
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self.prompt = prompt
        self.default_batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls, name_or_path: Union[str, Path], *, device: DeviceLike = None, dtype: DTypeLike = None, **kwargs
    ) -> "WhisperASR":
        """Load a transformers Whisper checkpoint (hub name or local dir), safetensors only."""
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        try:
            processor = WhisperProcessor.from_pretrained(str(name_or_path))
            model = WhisperForConditionalGeneration.from_pretrained(str(name_or_path), use_safetensors=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(name_or_path, f"cannot load a Whisper checkpoint with safetensors weights: {error}") from error
        return cls(model, processor, device=device, dtype=dtype, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        self.model.save_pretrained(str(save_directory), safe_serialization=True)
        self.processor.save_pretrained(str(save_directory))

    def _generate_kwargs(self) -> dict:
        kwargs: dict = {"num_beams": self.num_beams, "max_new_tokens": self.max_new_tokens}
        if getattr(self.model.generation_config, "is_multilingual", False):
            kwargs["task"] = self.task
            if self.language:
                kwargs["language"] = self.language
        if self.prompt:
            kwargs["prompt_ids"] = torch.as_tensor(
                self.processor.get_prompt_ids(self.prompt), device=self.device
            )
        return kwargs

    @torch.inference_mode()
    def _transcribe_batch(self, batch: List[np.ndarray]) -> List[Transcript]:
        features = self.processor.feature_extractor(
            batch, sampling_rate=self.sampling_rate, return_tensors="pt", return_attention_mask=True
        )
        input_features = features.input_features.to(self.device, dtype=self.dtype, non_blocking=True)
        attention_mask = features.attention_mask.to(self.device, non_blocking=True)
        out = self.model.generate(
            input_features,
            attention_mask=attention_mask,
            return_dict_in_generate=True,
            output_scores=True,
            **self._generate_kwargs(),
        )
        sequences = out.sequences
        texts = self.processor.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        if self.prompt:  # transformers keeps the prompt in the decoded text for some versions
            texts = [t.replace(self.prompt, "", 1) if t.strip().startswith(self.prompt.strip()) else t for t in texts]
        scores = self._token_logprobs(out)
        return [Transcript(text=t.strip(), confidence=float(c)) for t, c in zip(texts, scores)]

    def _token_logprobs(self, out) -> np.ndarray:
        """exp(mean log-prob) of the generated tokens (special and padding tokens excluded)."""
        if not getattr(out, "scores", None):
            return np.ones(len(out.sequences))
        steps = len(out.scores)
        beam_indices = getattr(out, "beam_indices", None)
        transition = self.model.compute_transition_scores(
            out.sequences, out.scores, beam_indices=beam_indices, normalize_logits=True
        )
        generated = out.sequences[:, -steps:]
        special = set(self.processor.tokenizer.all_special_ids)
        mask = torch.tensor(
            [[int(tok) not in special for tok in row] for row in generated.tolist()], dtype=torch.bool
        )
        logprobs = transition.float().cpu().numpy()
        mask_np = mask.numpy() & np.isfinite(logprobs)
        return mean_logprob_confidence(logprobs, mask_np)

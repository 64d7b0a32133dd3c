"""wav2vec2-style CTC models through transformers (``AutoModelForCTC``).

Batched forward with attention masks (when the feature extractor asks for
them), greedy CTC decoding through the processor's tokenizer.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Mapping, Union

import numpy as np
import torch

from ..device import DeviceLike, DTypeLike, resolve_device, resolve_dtype
from ..errors import ModelLoadError
from ..results import Transcript
from .base import BaseASR, mean_logprob_confidence
from .options import Wav2Vec2Options, merge_options

logger = logging.getLogger(__name__)


class Wav2Vec2ASR(BaseASR):
    """CTC ASR stage (wav2vec2, HuBERT, ...) with greedy decoding.

    Args:
        model: a loaded CTC model (``AutoModelForCTC``).
        processor: the matching processor (feature extractor + CTC tokenizer).
        device / dtype: explicit placement and precision (``None`` = auto).
        options: a :class:`~speech_intent.asr.options.Wav2Vec2Options` (or its ``to_dict()``);
            keyword arguments ``batch_size=`` / ``lowercase=`` override single fields.

    CTC decoding takes no prompt (``accepts_prompt = False``).
    """

    backend = "wav2vec2"
    options_class = Wav2Vec2Options
    accepts_prompt = False

    def __init__(
        self,
        model,
        processor,
        *,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        options: Union[Wav2Vec2Options, Mapping[str, Any], None] = None,
        **overrides: Any,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.sampling_rate = int(processor.feature_extractor.sampling_rate)
        self.options = merge_options(Wav2Vec2Options, options, overrides)

    @classmethod
    def from_pretrained(
        cls, name_or_path: Union[str, Path], *, device: DeviceLike = None, dtype: DTypeLike = None, **kwargs
    ) -> "Wav2Vec2ASR":
        """Load a CTC checkpoint (hub name or local dir), safetensors only."""
        from transformers import AutoModelForCTC, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(str(name_or_path))
            model = AutoModelForCTC.from_pretrained(str(name_or_path), use_safetensors=True)
        except (OSError, ValueError) as error:
            raise ModelLoadError(name_or_path, f"cannot load a CTC checkpoint with safetensors weights: {error}") from error
        return cls(model, processor, device=device, dtype=dtype, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        self.model.save_pretrained(str(save_directory), safe_serialization=True)
        self.processor.save_pretrained(str(save_directory))

    @torch.inference_mode()
    def _transcribe_batch(self, batch: List[np.ndarray]) -> List[Transcript]:  # type: ignore[override]
        extractor = self.processor.feature_extractor
        use_mask = bool(getattr(extractor, "return_attention_mask", True))
        inputs = extractor(
            batch, sampling_rate=self.sampling_rate, padding=True, return_attention_mask=use_mask, return_tensors="pt"
        )
        values = inputs.input_values.to(self.device, dtype=self.dtype, non_blocking=True)
        mask = inputs.get("attention_mask") if use_mask else None
        if mask is not None:
            mask = mask.to(self.device, non_blocking=True)
        logits = self.model(values, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        best, ids = logprobs.max(dim=-1)
        # frames beyond each input's true length are padding: exclude them from decoding
        frame_lengths = self._frame_lengths([len(x) for x in batch], ids.shape[1])
        valid = torch.arange(ids.shape[1])[None, :] < torch.tensor(frame_lengths)[:, None]
        pad_id = self.processor.tokenizer.pad_token_id
        ids_cpu = ids.cpu()
        ids_cpu[~valid] = pad_id
        texts = self.processor.tokenizer.batch_decode(ids_cpu)
        emitted = (valid & (ids_cpu != pad_id)).numpy()
        conf = mean_logprob_confidence(best.cpu().numpy(), emitted)
        return [
            Transcript(text=(t.lower() if self.options.lowercase else t).strip(), confidence=float(c))
            for t, c in zip(texts, conf)
        ]

    def _frame_lengths(self, sample_lengths: List[int], max_frames: int) -> List[int]:
        lengths = self.model._get_feat_extract_output_lengths(torch.tensor(sample_lengths))
        return [min(int(n), max_frames) for n in lengths]

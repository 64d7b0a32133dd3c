"""Whisper through faster-whisper (CTranslate2): the fast CPU backend.

Files are batched through CTranslate2's ``Whisper.generate`` (one encoder and
decoder call per batch), with faster-whisper's feature extractor and tokenizer.
int8 on CPU, float16 on CUDA by default.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from ..errors import ModelLoadError
from ..results import Transcript
from .base import BaseASR

logger = logging.getLogger(__name__)

#: Whisper's "no speech" rule: both conditions mean the window held no speech.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0


class FasterWhisperASR(BaseASR):
    """Whisper ASR stage on faster-whisper / CTranslate2.

    Args:
        model: a ``faster_whisper.WhisperModel``.
        model_path: the directory it was loaded from (for ``save_pretrained``).
        beam_size: 1 = greedy.
        language / task: for multilingual models (``None`` language = English).
        initial_prompt: text given to the decoder as previous context (domain bias).
    """

    backend = "faster-whisper"

    def __init__(
        self,
        model,
        *,
        model_path: Optional[Union[str, Path]] = None,
        beam_size: int = 1,
        language: Optional[str] = None,
        task: str = "transcribe",
        initial_prompt: Optional[str] = None,
        max_new_tokens: int = 128,
        batch_size: int = 8,
    ) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.model = model
        self.model_path = Path(model_path) if model_path else None
        self.beam_size = beam_size
        self.max_new_tokens = max_new_tokens
        self.initial_prompt = initial_prompt
        self.language = language
        self.task = task
        self.default_batch_size = batch_size
        self.sampling_rate = int(model.feature_extractor.sampling_rate)
        multilingual = bool(model.model.is_multilingual)
        self.tokenizer = Tokenizer(
            model.hf_tokenizer, multilingual, task=task if multilingual else None,
            language=(language or "en") if multilingual else None,
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, Path, None] = None,
        *,
        device: Optional[str] = None,
        compute_type: Optional[str] = None,
        dtype: Optional[str] = None,
        cpu_threads: int = 0,
        **kwargs,
    ) -> "FasterWhisperASR":
        """Load a CTranslate2 Whisper model: a local dir, a size name (``"small"``) or hub id.

        ``None`` loads the bundled tiny.en. ``compute_type`` (or ``dtype``) defaults to
        int8 on CPU and float16 on CUDA.
        """
        from faster_whisper import WhisperModel

        from ..device import resolve_device
        from ..models import bundled_whisper_path

        resolved = resolve_device(device)
        compute_type = compute_type or dtype or ("float16" if resolved.type == "cuda" else "int8")
        path = str(name_or_path) if name_or_path is not None else str(bundled_whisper_path())
        try:
            model = WhisperModel(path, device=resolved.type, device_index=resolved.index or 0,
                                 compute_type=str(compute_type), cpu_threads=cpu_threads)
        except Exception as error:
            raise ModelLoadError(path, f"cannot load a CTranslate2 Whisper model: {error}") from error
        local = Path(path) if Path(path).is_dir() else None
        return cls(model, model_path=local, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Copy the CTranslate2 model files (model.bin, config, tokenizer, vocabulary)."""
        if self.model_path is None:
            raise ModelLoadError(None, "this model was loaded by name, not from a directory; nothing to copy")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        for item in self.model_path.iterdir():
            if item.is_file():
                shutil.copy2(item, out / item.name)

    def _prompt(self) -> List[int]:
        previous = self.tokenizer.encode(" " + self.initial_prompt.strip()) if self.initial_prompt else []
        return self.model.get_prompt(self.tokenizer, previous, without_timestamps=True)

    def _features(self, batch: List[np.ndarray]) -> np.ndarray:
        extractor = self.model.feature_extractor
        frames = extractor.nb_max_frames
        feats = np.zeros((len(batch), extractor.mel_filters.shape[0], frames), dtype=np.float32)
        for i, audio in enumerate(batch):
            mel = extractor(audio)[:, :frames]
            feats[i, :, : mel.shape[1]] = mel
        return feats

    def _transcribe_batch(self, batch: List[np.ndarray]) -> List[Transcript]:
        import ctranslate2

        features = ctranslate2.StorageView.from_array(self._features(batch))
        prompt = self._prompt()
        results = self.model.model.generate(
            features,
            [list(prompt) for _ in batch],
            beam_size=self.beam_size,
            max_length=min(len(prompt) + self.max_new_tokens, self.model.max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        out = []
        for result in results:
            tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
            text = self.tokenizer.decode(tokens).strip()
            # scores are length-normalised cumulative log-probs
            avg_logprob = float(result.scores[0])
            if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD:
                text, avg_logprob = "", float("-inf")
            out.append(Transcript(text=text, confidence=float(np.exp(avg_logprob)) if text else 0.0))
        return out

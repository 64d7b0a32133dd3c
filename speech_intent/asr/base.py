"""The protocol every ASR stage follows, and the batching they share.

A stage takes a batch of audio (paths, bytes or arrays) and returns one
:class:`~speech_intent.results.Transcript` per input, in input order.
Inputs are length-sorted into batches so padding is minimal.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, List, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from ..audio import DEFAULT_MAX_DURATION, SAMPLE_RATE, AudioInput, load_audio, source_name
from ..results import Transcript

logger = logging.getLogger(__name__)


@runtime_checkable
class ASRStage(Protocol):
    """What the pipeline needs from an ASR stage."""

    backend: str
    sampling_rate: int

    def transcribe(self, audio: Sequence[np.ndarray], *, batch_size: Optional[int] = None) -> List[Transcript]:
        """Transcribe decoded mono float32 arrays at ``sampling_rate``."""
        ...

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write everything needed to load the stage again."""
        ...


class BaseASR(ABC):
    """Shared behaviour: input decoding, length-sorted batching, order restoring."""

    backend: ClassVar[str] = "base"
    sampling_rate: int = SAMPLE_RATE
    default_batch_size: int = 8
    max_duration: Optional[float] = DEFAULT_MAX_DURATION

    def __call__(self, inputs: Sequence[AudioInput], *, batch_size: Optional[int] = None) -> List[Transcript]:
        """Decode ``inputs`` (paths, bytes, arrays) and transcribe them.

        Raises:
            AudioError: for the first input that cannot be decoded (the pipeline
                instead reports such inputs per file and goes on).
        """
        if isinstance(inputs, (str, Path, bytes, np.ndarray)):
            inputs = [inputs]  # type: ignore[list-item]
        arrays = [
            load_audio(x, sampling_rate=self.sampling_rate, max_duration=self.max_duration, name=source_name(x, i))
            for i, x in enumerate(inputs)
        ]
        return self.transcribe(arrays, batch_size=batch_size)

    def transcribe(self, audio: Sequence[np.ndarray], *, batch_size: Optional[int] = None) -> List[Transcript]:
        """Transcribe decoded arrays in length-sorted batches; results keep input order."""
        batch_size = batch_size or self.default_batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = sorted(range(len(audio)), key=lambda i: -len(audio[i]))
        results: List[Optional[Transcript]] = [None] * len(audio)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = [np.asarray(audio[i], dtype=np.float32) for i in idx]
            for i, transcript in zip(idx, self._transcribe_batch(batch)):
                transcript.duration = len(audio[i]) / self.sampling_rate
                results[i] = transcript
        return results  # type: ignore[return-value]

    @abstractmethod
    def _transcribe_batch(self, batch: List[np.ndarray]) -> List[Transcript]:
        """Run the model once on a batch of arrays."""

    @abstractmethod
    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write the model so that ``from_pretrained(save_directory)`` restores it."""


def mean_logprob_confidence(logprobs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row exp(mean log-probability) over ``mask``ed positions; 0 where nothing was emitted."""
    counts = mask.sum(axis=1)
    sums = np.where(mask, logprobs, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.exp(np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf))
    return conf.astype(np.float64)


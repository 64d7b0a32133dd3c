"""The protocol every ASR stage follows, and the batching they share.

A stage takes a batch of audio (paths, bytes or arrays) and returns one
:class:`~speech_intent.results.Transcript` per input, in input order.
Inputs are length-sorted into batches so padding is minimal.
"""
from __future__ import annotations

import logging
import math
import os
import zlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, List, Optional, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from ..audio import DEFAULT_MAX_DURATION, SAMPLE_RATE, AudioInput, load_audio, source_name
from ..results import Transcript

logger = logging.getLogger(__name__)

#: Whisper's encoder window: 30 s of 10 ms log-Mel frames.
WHISPER_FRAMES = 3000
#: Log-Mel hop (samples at 16 kHz) and frames per second.
WHISPER_HOP = 160
FRAMES_PER_SECOND = 100
#: CPU encoder slicing: clips x frames^2 per encoder call. The encoder's attention matrices
#: grow with frames^2; keeping them cache-sized was fastest on 2 cores (30 s: 1 clip per call,
#: 15 s: 2, 10 s: 4). Results are identical; only the decoder needs the whole batch at once.
ENCODER_BUDGET = 4.5e6
#: Whisper's own hallucination test: text that gzip-compresses better than this is a repetition loop.
COMPRESSION_RATIO_THRESHOLD = 2.4


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


def context_frames(
    num_samples: Sequence[int],
    margin: Optional[float],
    *,
    min_context: float = 0.0,
    full: int = WHISPER_FRAMES,
    hop: int = WHISPER_HOP,
    multiple: int = 100,
) -> int:
    """Encoder frames for a batch of Whisper inputs (shorter-context mode).

    ``margin=None`` gives the model's full window ``full`` (30 s for Whisper: what it
    was trained on). Otherwise: the longest clip plus ``margin`` seconds of padding,
    at least ``min_context`` seconds, rounded up to ``multiple`` frames (fewer
    distinct shapes) and capped at ``full``. Always even (the encoder's second
    convolution has stride 2).
    """
    if margin is None:
        return full
    longest = max((n for n in num_samples), default=0) / hop
    frames = max(longest + margin * FRAMES_PER_SECOND, min_context * FRAMES_PER_SECOND, 2)
    frames = int(math.ceil(frames / multiple) * multiple)
    frames += frames % 2
    return min(frames, full)


def encoder_step(frames: int, budget: float = ENCODER_BUDGET) -> int:
    """Clips per encoder call for inputs of ``frames`` frames under ``budget`` (at least 1)."""
    return max(1, int(min(budget / max(frames, 1) ** 2, 1e9)))


def compression_ratio(text: str) -> float:
    """UTF-8 length over zlib-compressed length (Whisper's repetition / hallucination signal)."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def available_cpus() -> int:
    """CPU cores this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)

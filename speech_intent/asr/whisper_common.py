"""Helpers shared by the two Whisper backends (transformers and CTranslate2).

Shorter encoder context (:func:`context_frames`), CPU encoder slicing (:func:`encoder_step`),
Whisper's repetition test (:func:`compression_ratio`), the usable CPU count, and the error
for a grammar given to a backend without grammar decoding.
"""
from __future__ import annotations

import math
import zlib
from typing import Optional, Sequence

from ..device import available_cpus  # noqa: F401  (re-exported; it lives in speech_intent.device)
from ..errors import ConfigError

#: Whisper's encoder window: 30 s of 10 ms log-Mel frames.
WHISPER_FRAMES = 3000
#: Log-Mel hop (samples at 16 kHz) and frames per second.
WHISPER_HOP = 160
FRAMES_PER_SECOND = 100
#: CPU encoder slicing: clips x frames^2 per encoder call. The encoder's attention matrices
#: grow with frames^2; this budget keeps them cache-sized (30 s: 1 clip per call, 15 s: 2,
#: 10 s: 4). Results are identical; only the decoder needs the whole batch at once.
ENCODER_BUDGET = 4.5e6
#: Whisper's own hallucination test: text that gzip-compresses better than this is a repetition loop.
COMPRESSION_RATIO_THRESHOLD = 2.4


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


def grammar_unsupported(backend: str) -> ConfigError:
    """The error for a grammar given to a backend that cannot decode with one."""
    return ConfigError(f"grammar-constrained decoding needs the transformers Whisper backend, not {backend!r} "
                       "(convert a CTranslate2 model with `speech-intent convert`)")

"""Helpers shared by the two Whisper backends (transformers and CTranslate2).

Shorter encoder context (:func:`context_frames`) and its safety net (:func:`needs_full_window`),
CPU encoder slicing (:func:`encoder_step`), Whisper's repetition test (:func:`compression_ratio`),
the usable CPU count, and the error for a grammar given to a backend without grammar decoding.
"""
from __future__ import annotations

import math
import zlib
from typing import Optional, Sequence

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
#: Whisper's own fallback rule: a mean token log-probability below this means an unreliable decoding.
LOGPROB_THRESHOLD = -1.0
#: Default shorter encoder context: the longest clip of a batch plus this many seconds (at least
#: ``min_context``), with :func:`needs_full_window` as the safety net. ``benchmarks/throughput.py``
#: and ``benchmarks/coffee.py`` measure it against the 30 s window.
DEFAULT_CONTEXT_MARGIN = 2.0


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


def needs_full_window(text: str, confidence: float, tokens: int, max_new_tokens: int,
                      in_grammar: Optional[bool] = None) -> bool:
    """True when a shorter-context decoding looks unreliable and the clip should be decoded again on
    the full 30 s window (what Whisper was trained on): no text at all, the token limit reached, a
    repetition loop (compression ratio above :data:`COMPRESSION_RATIO_THRESHOLD`) or, in free
    decoding, a mean token log-probability below :data:`LOGPROB_THRESHOLD` (``confidence`` is its
    exponential). With a grammar (``in_grammar`` not ``None``) the constrained log-probability is
    low whenever the speaker's casing or wording is unusual, so the test there is a decoding that
    did not end in a sentence of the grammar instead."""
    if not text or tokens >= max_new_tokens or compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD:
        return True
    if in_grammar is not None:
        return not in_grammar
    return confidence < math.exp(LOGPROB_THRESHOLD)


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

"""Seeded noise mixing at a target SNR, the way the Picovoice speech-to-intent benchmark does it.

- A random noise segment exactly as long as the clip is taken (a noise shorter than the
  clip is looped first).
- The SNR is defined on *peak frame energies*: the signal is cut into non-overlapping
  2048-sample frames, each frame's energy is its sum of squares, and the noise is scaled so
  ``10 * log10(max_speech_frame_energy / max_noise_frame_energy) == snr``.
- The mix is rescaled so its peak absolute sample is 0.5 (half full scale).

The noise segment depends only on ``(seed, clip index)``, so the conditions of an SNR sweep
differ only in the noise level (a paired comparison); the result is deterministic given
``(seed, clip index, snr)``.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)

FRAME_LENGTH = 2048
PEAK_LEVEL = 0.5


def max_frame_energy(samples: np.ndarray, frame_length: int = FRAME_LENGTH) -> float:
    """Largest sum of squares over non-overlapping ``frame_length``-sample frames.

    A trailing partial frame is ignored; a signal shorter than one frame counts as one frame.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        return 0.0
    frames = x.size // frame_length
    if frames == 0:
        return float(np.sum(x * x))
    blocks = x[: frames * frame_length].reshape(frames, frame_length)
    return float(np.max(np.sum(blocks * blocks, axis=1)))


def peak_snr_db(speech: np.ndarray, noise: np.ndarray, frame_length: int = FRAME_LENGTH) -> float:
    """``10 * log10(max speech frame energy / max noise frame energy)`` (the benchmark's SNR)."""
    speech_energy = max_frame_energy(speech, frame_length)
    noise_energy = max_frame_energy(noise, frame_length)
    if noise_energy == 0.0:
        return float("inf")
    if speech_energy == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(speech_energy / noise_energy))


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF])


def noise_segment(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample segment of ``noise`` (looped when the noise is not longer)."""
    noise = np.asarray(noise, dtype=np.float32).ravel()
    if noise.size == 0:
        raise ValueError("noise signal is empty")
    if noise.size <= length:
        noise = np.tile(noise, length // noise.size + 2)
    start = int(rng.integers(0, noise.size - length + 1))
    return noise[start : start + length]


def scale_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float,
                frame_length: int = FRAME_LENGTH) -> np.ndarray:
    """``noise`` scaled so that :func:`peak_snr_db` ``(speech, scaled) == snr_db``.

    Silent noise is returned unchanged (nothing can reach the target; a warning is logged).
    """
    speech_energy = max_frame_energy(speech, frame_length)
    noise_energy = max_frame_energy(noise, frame_length)
    if noise_energy == 0.0:
        logger.warning("noise segment is silent; mixing it in has no effect")
        return np.asarray(noise, dtype=np.float32)
    gain = np.sqrt(speech_energy / (noise_energy * 10.0 ** (snr_db / 10.0)))
    return (np.asarray(noise, dtype=np.float64) * gain).astype(np.float32)


def mix_at_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    *,
    seed: int = 0,
    index: int = 0,
    peak: Optional[float] = PEAK_LEVEL,
    frame_length: int = FRAME_LENGTH,
) -> np.ndarray:
    """Mix a random segment of ``noise`` into ``speech`` at ``snr_db`` (peak-frame-energy SNR).

    Args:
        speech: mono float samples of the clip.
        noise: mono float samples of the noise, same sampling rate.
        snr_db: target SNR in dB (see the module docstring for the definition).
        seed / index: pick the noise segment (the run's seed and the clip's index).
        peak: rescale the mix so its largest absolute sample equals this (``None``: no rescaling).
    Returns:
        float32 samples, the same length as ``speech``.
    """
    speech = np.asarray(speech, dtype=np.float32).ravel()
    if speech.size == 0:
        return speech.copy()
    segment = noise_segment(noise, speech.size, _rng(seed, index))
    mixed = speech.astype(np.float64) + scale_noise(speech, segment, snr_db, frame_length)
    if peak is not None:
        top = float(np.max(np.abs(mixed)))
        if top > 0.0:
            mixed *= peak / top
    return mixed.astype(np.float32)

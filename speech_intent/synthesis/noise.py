"""Noise for speech-in-the-loop: mixing at a target SNR (training and evaluation), and training noise.

**Mixing** (:func:`mix_at_snr`), the way the Picovoice speech-to-intent benchmark does it:

- A random noise segment exactly as long as the clip is taken (a noise shorter than the
  clip is looped first).
- The SNR is defined on *peak frame energies*: the signal is cut into non-overlapping
  2048-sample frames, each frame's energy is its sum of squares, and the noise is scaled so
  ``10 * log10(max_speech_frame_energy / max_noise_frame_energy) == snr``.
- The mix is rescaled so its peak absolute sample is 0.5 (half full scale).

The noise segment depends only on ``(seed, clip index)``, so the conditions of an SNR sweep
differ only in the noise level (a paired comparison); the result is deterministic given
``(seed, clip index, snr)``.

**Training noise** (:func:`training_noise`), made here so it is never the evaluation noise: babble
(several synthetic talkers reading unrelated sentences at once) summed with pink (1/f) and brown
(1/f^2) noise, each under its own slowly varying random level, so that random segments of it (as
:func:`mix_at_snr` takes them) differ in character: mostly babble, mostly hiss, mostly rumble, or a mix.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["BABBLE_SENTENCES", "FRAME_LENGTH", "PEAK_LEVEL", "babble", "colored_noise", "max_frame_energy",
           "mix_at_snr", "noise_segment", "peak_snr_db", "scale_noise", "training_noise"]

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
        raise ConfigError("noise signal is empty")
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


#: Everyday sentences for the babble talkers (deliberately not about any assistant domain).
BABBLE_SENTENCES: tuple[str, ...] = (
    "did you see the game last night, it went to extra time",
    "the train was late again so I walked the last two stops",
    "my sister is moving to a new apartment next month",
    "we should book the tickets before the prices go up",
    "I think the meeting got moved to Thursday afternoon",
    "the kids have a school play on Friday evening",
    "have you tried the new bakery around the corner",
    "it rained all weekend and the garden is a mess",
    "he finally fixed the bike and rode it to work",
    "they are painting the hallway a pale shade of green",
    "I can never remember where I parked the car",
    "the library is closed on Sundays during the summer",
    "she told me the story about the lost passport twice",
    "we watched a documentary about whales and the deep ocean",
    "the printer on the third floor is out of paper",
    "can you believe how expensive the concert tickets were",
)


def colored_noise(length: int, exponent: float, rng: np.random.Generator, *, low_cut: float = 1.25e-3) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS.

    The spectrum is flat below ``low_cut`` (a fraction of the sampling rate; default 20 Hz at
    16 kHz), so brown noise is an audible rumble rather than an inaudible drift.
    """
    if length <= 0:
        return np.zeros(0, np.float32)
    spectrum = rng.standard_normal(length // 2 + 1) + 1j * rng.standard_normal(length // 2 + 1)
    freqs = np.maximum(np.fft.rfftfreq(length), low_cut)
    signal = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), length)
    signal -= signal.mean()
    rms = float(np.sqrt(np.mean(signal ** 2))) or 1.0
    return (signal / rms).astype(np.float32)


def babble(synthesizer, length: int, *, talkers: int = 4, seed: int = 0,
           sentences: Sequence[str] = BABBLE_SENTENCES) -> np.ndarray:
    """``talkers`` synthetic voices, each reading shuffled ``sentences`` back to back, summed (unit RMS).

    ``synthesizer`` follows :class:`~speech_intent.synthesis.tts.Synthesizer`; its output is used
    at its own sampling rate (``length`` is in those samples).
    """
    if length <= 0:
        raise ConfigError(f"babble length must be positive, got {length}")
    rng = np.random.default_rng([seed, 1])
    cache: dict[tuple[str, int], np.ndarray] = {}
    mix = np.zeros(length, np.float64)
    for talker in range(talkers):
        voice = int(rng.integers(0, synthesizer.num_voices))
        parts, total = [], 0
        while total < length:
            for i in rng.permutation(len(sentences)):
                key = (sentences[i], voice)
                if key not in cache:
                    cache[key] = np.asarray(synthesizer.synthesize(sentences[i], voice=voice), np.float32)
                parts.append(cache[key])
                total += len(cache[key])
                if total >= length:
                    break
            if total == 0:  # a whole pass gave no audio: it never would
                raise ConfigError(f"the synthesizer returned no audio for voice {voice}")
        track = np.roll(np.concatenate(parts)[:length], int(rng.integers(0, length)))
        rms = float(np.sqrt(np.mean(track.astype(np.float64) ** 2))) or 1.0
        mix += track / rms
    rms = float(np.sqrt(np.mean(mix ** 2))) or 1.0
    logger.debug("babble: %d talkers, %d samples", talkers, length)
    return (mix / rms).astype(np.float32)


def _envelope(length: int, rng: np.random.Generator, knots_per_second: float, rate: int) -> np.ndarray:
    """A smooth random gain in [0.1, 1] (linear interpolation between random knots)."""
    knots = max(2, int(length / rate * knots_per_second) + 1)
    return np.interp(np.arange(length), np.linspace(0, length - 1, knots), rng.uniform(0.1, 1.0, knots))


def training_noise(synthesizer: Optional[object] = None, *, seconds: float = 120.0, sampling_rate: int = 16000,
                   talkers: int = 4, seed: int = 0) -> np.ndarray:
    """Babble (when a synthesizer is given) + pink + brown noise, float32 at ``sampling_rate``, peak 0.5.

    Deterministic for a given ``seed`` (and synthesizer). The synthesizer must produce audio at
    ``sampling_rate``.
    """
    if synthesizer is not None and int(getattr(synthesizer, "sampling_rate")) != sampling_rate:
        raise ConfigError(f"synthesizer gives {synthesizer.sampling_rate} Hz audio, not {sampling_rate} Hz")
    length = int(seconds * sampling_rate)
    rng = np.random.default_rng([seed, 0])
    cut = 20.0 / sampling_rate
    layers = [colored_noise(length, 1.0, rng, low_cut=cut), colored_noise(length, 2.0, rng, low_cut=cut)]
    if synthesizer is not None:
        layers.append(babble(synthesizer, length, talkers=talkers, seed=seed))
    mix = sum(layer * _envelope(length, rng, 0.25, sampling_rate) for layer in layers)
    top = float(np.max(np.abs(mix))) or 1.0
    return (0.5 * mix / top).astype(np.float32)

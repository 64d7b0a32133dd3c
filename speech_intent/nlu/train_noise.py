"""Training noise for speech-in-the-loop training, made here so it is never the evaluation noise.

:func:`training_noise` sums babble (several synthetic talkers reading unrelated sentences at
once) with pink (1/f) and brown (1/f^2) noise, each under its own slowly varying random
level, so that random segments of it (as :func:`~speech_intent.evaluate.noise.mix_at_snr`
takes them) differ in character: mostly babble, mostly hiss, mostly rumble, or a mix.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["BABBLE_SENTENCES", "babble", "colored_noise", "training_noise"]

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

    ``synthesizer`` follows :class:`~speech_intent.nlu.augment.Synthesizer`; its output is used
    at its own sampling rate (``length`` is in those samples).
    """
    if length <= 0:
        raise ValueError(f"babble length must be positive, got {length}")
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
                raise ValueError(f"the synthesizer returned no audio for voice {voice}")
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
        raise ValueError(f"synthesizer gives {synthesizer.sampling_rate} Hz audio, not {sampling_rate} Hz")
    length = int(seconds * sampling_rate)
    rng = np.random.default_rng([seed, 0])
    cut = 20.0 / sampling_rate
    layers = [colored_noise(length, 1.0, rng, low_cut=cut), colored_noise(length, 2.0, rng, low_cut=cut)]
    if synthesizer is not None:
        layers.append(babble(synthesizer, length, talkers=talkers, seed=seed))
    mix = sum(layer * _envelope(length, rng, 0.25, sampling_rate) for layer in layers)
    top = float(np.max(np.abs(mix))) or 1.0
    return (0.5 * mix / top).astype(np.float32)

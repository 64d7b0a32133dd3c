"""Text-to-speech for speech-in-the-loop training: espeak-ng (system program) or hibari-tts (optional).

Both give mono float32 audio at ``sampling_rate``, trimmed of edge silence, peak-normalised and
padded, in one of ``num_voices`` voices (a voice number is taken modulo ``num_voices``).
"""
from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from typing import Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from ..audio import SAMPLE_RATE, resample
from ..errors import ConfigError, SynthesizerUnavailable

__all__ = ["ESPEAK_VOICES", "EspeakSynthesizer", "EspeakVoice", "HibariSynthesizer", "Synthesizer",
           "SynthesizerUnavailable", "as_mono"]


@runtime_checkable
class Synthesizer(Protocol):
    """Text-to-speech: mono float32 audio at ``sampling_rate`` in one of ``num_voices`` voices."""

    sampling_rate: int
    num_voices: int

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        """Speak ``text`` with voice number ``voice`` (taken modulo ``num_voices``)."""
        ...


def as_mono(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 at ``target`` Hz (:func:`speech_intent.audio.resample`, soxr)."""
    audio = np.asarray(audio, dtype=np.float32)
    return resample(audio.mean(axis=1, dtype=np.float32) if audio.ndim > 1 else audio, rate, target)


def _finish(audio: np.ndarray, rate: int, target: int, peak: float, pad_s: float) -> np.ndarray:
    """Resampled to ``target``, trimmed of edge silence, peak-normalised and padded with silence."""
    audio = as_mono(audio, rate, target)
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    if top == 0.0:
        return audio
    loud, margin, pad = np.flatnonzero(np.abs(audio) > top * 10 ** (-45 / 20)), int(0.05 * target), int(pad_s * target)
    audio = audio[max(0, loud[0] - margin) : loud[-1] + 1 + margin] * (peak / top)
    return np.pad(audio, (pad, pad)).astype(np.float32)


@dataclass(frozen=True)
class EspeakVoice:
    """An espeak-ng voice (``-v``), speaking rate in words per minute (``-s``), word gap in 10 ms (``-g``)."""

    name: str
    wpm: int = 145
    gap: int = 2


#: English voices and rates that tiny Whisper models still understand (some slowed down a little).
ESPEAK_VOICES: Tuple[EspeakVoice, ...] = (
    EspeakVoice("en-us", 140, 3), EspeakVoice("en-us+f3", 130, 3), EspeakVoice("en-gb", 145, 3),
    EspeakVoice("en-gb-x-rp", 145, 3), EspeakVoice("en+m1", 145, 3), EspeakVoice("en+m3", 130, 3),
    EspeakVoice("en-us", 175, 0), EspeakVoice("en+f2", 160, 1), EspeakVoice("en-gb-scotland", 150, 2),
    EspeakVoice("en-us-nyc", 150, 2), EspeakVoice("en-029", 140, 3), EspeakVoice("en+f4", 150, 2),
)


class EspeakSynthesizer:
    """espeak-ng (the system program, ``espeak-ng --stdout``): deterministic, fast, robotic; needs it on ``PATH``."""

    def __init__(self, voices: Sequence[EspeakVoice] = ESPEAK_VOICES, *, sampling_rate: int = SAMPLE_RATE,
                 executable: str = "espeak-ng", peak: float = 0.7, pad_s: float = 0.1) -> None:
        found = shutil.which(executable)
        if found is None:
            raise SynthesizerUnavailable(f"{executable!r} is not on PATH; install espeak-ng (apt-get install espeak-ng)")
        if not voices:
            raise ConfigError("at least one voice is needed")
        self.executable, self.voices = found, tuple(voices)
        self.sampling_rate, self.num_voices, self.peak, self.pad_s = sampling_rate, len(self.voices), peak, pad_s

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        """Speak ``text``; raises :class:`SynthesizerUnavailable` if espeak-ng fails."""
        import soundfile as sf

        v = self.voices[voice % self.num_voices]
        cmd = [self.executable, "-v", v.name, "-s", str(v.wpm), "-g", str(v.gap), "--stdout", text]
        run = subprocess.run(cmd, capture_output=True, check=False)
        if run.returncode != 0 or not run.stdout:
            raise SynthesizerUnavailable(f"espeak-ng failed for voice {v.name!r}: {run.stderr.decode(errors='replace')}")
        audio, rate = sf.read(io.BytesIO(run.stdout), dtype="float32")
        return _finish(audio, rate, self.sampling_rate, self.peak, self.pad_s)


class HibariSynthesizer:
    """hibari-tts (``pip install hibari-tts``; optional, not a dependency): a neural voice at several speeds."""

    def __init__(self, voices: Sequence[str] = ("heart",), speeds: Sequence[float] = (0.9, 1.0, 1.1), *,
                 sampling_rate: int = SAMPLE_RATE, seed: int = 0, peak: float = 0.7, pad_s: float = 0.1) -> None:
        try:
            from hibari import Hibari
        except ImportError as error:
            raise SynthesizerUnavailable("hibari-tts is not installed (`pip install hibari-tts`)") from error
        self._engines = {name: Hibari(voice=name) for name in voices}
        self._variants = [(name, speed) for name in voices for speed in speeds]
        self.sampling_rate, self.num_voices = sampling_rate, len(self._variants)
        self.seed, self.peak, self.pad_s = seed, peak, pad_s

    def synthesize(self, text: str, *, voice: int = 0) -> np.ndarray:
        """Speak ``text`` (hibari's noise is seeded with ``seed``: deterministic)."""
        name, speed = self._variants[voice % self.num_voices]
        engine = self._engines[name]
        audio = engine(text, speed=speed, seed=self.seed)
        return _finish(np.asarray(audio), int(engine.sample_rate), self.sampling_rate, self.peak, self.pad_s)

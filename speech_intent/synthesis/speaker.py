"""Speech out: the assistant's response spoken, sentence by sentence.

:class:`ResponseSynthesizer` speaks with hibari-tts (its default voice, ``heart``, ships in the wheel) and
falls back to espeak-ng when hibari is not installed. ``synthesize(text) -> (audio, sample_rate)``
speaks a whole text; ``stream(text or sentences)`` yields one :class:`SpeechChunk` per sentence as soon as
that sentence is spoken, so a player starts before the rest of the response is synthesised (or, fed a
sentence iterator from a generator, before the rest is even written).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple, Union

import numpy as np

from ..errors import ConfigError, SynthesizerUnavailable
from .tts import EspeakSynthesizer, EspeakVoice, HibariSynthesizer

__all__ = ["BACKENDS", "ResponseSynthesizer", "SpeakerOptions", "SpeechChunk", "sentences"]

BACKENDS = ("hibari", "espeak")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class SpeakerOptions:
    """Speech-out settings: ``backend`` ("hibari" or "espeak"), its ``voice`` (hibari: ``"heart"`` ships in
    the wheel; espeak-ng: ``"en-us"``...; None: the backend's default), speaking ``speed`` (1.0 normal),
    output ``sample_rate``, ``fallback`` to espeak-ng when hibari is unavailable, peak level."""

    backend: str = "hibari"
    voice: Optional[str] = None
    speed: float = 1.0
    sample_rate: int = 24000
    fallback: bool = True
    peak: float = 0.7
    pad_s: float = 0.05

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0.5 <= self.speed <= 2.0:
            raise ConfigError(f"speed must be from 0.5 to 2.0, got {self.speed}")
        if not 8000 <= self.sample_rate <= 48000:
            raise ConfigError(f"sample_rate must be from 8000 to 48000 Hz, got {self.sample_rate}")


@dataclass
class SpeechChunk:
    """One spoken sentence: its ``text``, ``audio`` (mono float32) at ``sample_rate``, and ``seconds`` it took."""

    text: str
    audio: np.ndarray
    sample_rate: int
    seconds: float

    def to_dict(self) -> Dict[str, Any]:
        return {"text": self.text, "samples": int(self.audio.size), "sample_rate": self.sample_rate,
                "duration_s": self.audio.size / self.sample_rate, "seconds": self.seconds}


def sentences(text: str) -> list:
    """The sentences of ``text`` (split after ``.``, ``!`` or ``?`` and a space)."""
    return [s.strip() for s in _SENTENCE_END.split(str(text).strip()) if s.strip()]


class ResponseSynthesizer:
    """Text to speech for responses (see the module docstring); ``backend`` is the engine actually used."""

    def __init__(self, options: SpeakerOptions = SpeakerOptions()) -> None:
        self.options = options
        self.sample_rate = options.sample_rate
        self.backend, self._engine = self._load(options)

    @staticmethod
    def _load(options: SpeakerOptions) -> Tuple[str, Any]:
        common = {"sampling_rate": options.sample_rate, "peak": options.peak, "pad_s": options.pad_s}
        if options.backend == "hibari":
            try:
                return "hibari", HibariSynthesizer(voices=(options.voice or "heart",), speeds=(options.speed,),
                                                   **common)
            except SynthesizerUnavailable:
                if not options.fallback:
                    raise
        voice = EspeakVoice(options.voice if options.backend == "espeak" and options.voice else "en-us",
                            wpm=int(round(160 * options.speed)), gap=1)
        return "espeak", EspeakSynthesizer([voice], **common)

    def warmup(self) -> "ResponseSynthesizer":
        """Speak one short sentence so the first real one does not pay the engine's start-up."""
        self.synthesize("Hello.")
        return self

    def synthesize(self, text: str) -> Tuple[np.ndarray, int]:
        """``text`` spoken: (mono float32 samples, sample rate); empty text is a ConfigError."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"nothing to say: text is {text!r}")
        text = " ".join(text.split())
        if text.startswith("-"):  # espeak-ng would read it as an option
            text = " " + text
        return self._engine.synthesize(text), self.sample_rate

    def stream(self, texts: Union[str, Iterable[str]]) -> Iterator[SpeechChunk]:
        """One chunk per sentence, spoken as soon as it arrives: ``texts`` is a whole text or an iterator of
        texts (e.g. sentences from a generator), each split into sentences."""
        for text in [texts] if isinstance(texts, str) else texts:
            for sentence in sentences(text):
                started = time.perf_counter()
                audio, rate = self.synthesize(sentence)
                yield SpeechChunk(sentence, audio, rate, time.perf_counter() - started)

    def to_dict(self) -> Dict[str, Any]:
        return {"backend": self.backend, "voice": self.options.voice, "speed": self.options.speed,
                "sample_rate": self.sample_rate}

"""Streaming recognition: PCM chunks in, utterance events out.

:class:`StreamingRecognizer` takes mono audio in chunks of any size (PCM16 bytes or arrays, at any
rate; resampled to 16 kHz on the fly), finds utterances with Silero VAD
(:mod:`speech_intent.vad`) and emits :class:`StreamEvent`\\ s:

- ``speech_start``: an utterance is confirmed (``start`` in seconds of the stream);
- ``partial``: the transcript of the utterance so far, every ``partial_interval`` seconds of speech;
- ``final``: the utterance ended (trailing silence, ``max_utterance`` or the end of the stream): the
  whole pipeline result (transcript, intent, slots, confidence) and timings.

Early endpoint: waiting for the whole trailing silence puts it into every answer's latency. With
``early_endpoint`` the recogniser runs the pipeline as soon as the speaker pauses (the first silent
VAD window) and, once the pause has lasted ``early_endpoint`` seconds with no new speech, ends the
utterance there when that result is a complete, confident command (an intent at ``early_confidence``
or above, a transcript not ending in a comma or another mark of an unfinished sentence; a grammar
pipeline's out-of-grammar result never is). Otherwise the utterance goes on to
the usual trailing silence. Like Picovoice Rhino without ``require_endpoint``, a speaker who pauses
for longer than ``early_endpoint`` after a complete command, then adds to it, gets two utterances.

A stream may hold any number of utterances. Recognition is the pipeline called on the utterance's
audio, so every ASR backend, the domain prompt and grammar decoding work as they do for files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from .audio import SAMPLE_RATE, as_float32
from .errors import AudioError, ConfigError
from .pipeline import SpeechIntentPipeline
from .results import PipelineResult
from .vad import SpeechStart, Utterance, UtteranceSplitter, VADOptions

Chunk = Union[bytes, bytearray, memoryview, np.ndarray]
Recognize = Callable[[np.ndarray], PipelineResult]

#: A transcript ending like this was heard as unfinished (Whisper writes the pause mid-sentence).
_CONTINUED = (",", ";", ":", "-", "...", "\u2026")


@dataclass
class StreamEvent:
    """One streaming event.

    Attributes:
        type: ``"speech_start"``, ``"partial"`` or ``"final"``.
        utterance: the utterance's number in the stream, from 0.
        start: where the utterance starts, in seconds from the start of the stream.
        end: where it ends (``partial``: the audio heard so far; ``None`` for ``speech_start``); a
            ``final``'s audio goes on for up to the VAD's ``pad`` after the speech.
        speech_end: where its last speech window ended (``final``).
        transcript: the recognised text (``partial`` and ``final``).
        result: the pipeline's result for the whole utterance (``final``).
        reason: why the utterance ended (``final``): ``silence``, ``early_endpoint`` (a complete,
            confident command after a short pause), ``max_utterance`` or ``end_of_stream``.
        timings: seconds: ``recognition`` (the pipeline call; for ``early_endpoint``, the call made
            when the pause began), ``endpoint_delay`` (audio between the end of speech and the end of
            the utterance being detected).
    """

    type: str
    utterance: int
    start: float
    end: Optional[float] = None
    transcript: Optional[str] = None
    result: Optional[PipelineResult] = None
    reason: Optional[str] = None
    speech_end: Optional[float] = None
    timings: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"type": self.type, "utterance": self.utterance, "start": round(self.start, 3),
                               "end": None if self.end is None else round(self.end, 3)}
        if self.type == "partial":
            out["transcript"] = self.transcript
        if self.type == "final":
            row = self.result.to_dict() if self.result is not None else {}
            out.update(reason=self.reason, speech_end=None if self.speech_end is None else round(self.speech_end, 3),
                       transcript=self.transcript, intent=row.get("intent"),
                       confidence=row.get("confidence"), slots=row.get("slots") or {}, error=row.get("error"),
                       result=row)
        if self.timings:
            out["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return out


def pcm16_to_float(data: Union[bytes, bytearray, memoryview]) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes -> float32 in [-1, 1) (an even number of bytes)."""
    return np.frombuffer(bytes(data), dtype="<i2").astype(np.float32) / 32768.0


class StreamingRecognizer:
    """Feed audio chunks, get :class:`StreamEvent`\\ s.

    Args:
        pipeline: the :class:`SpeechIntentPipeline` that recognises each utterance (or ``None`` with
            ``recognize``).
        sample_rate: rate of the fed audio (resampled to 16 kHz).
        vad: :class:`~speech_intent.vad.VADOptions` (trailing silence, maximum utterance length, ...).
        partial_interval: seconds of speech between ``partial`` events (``None``: none).
        recognize: how to recognise one utterance's 16 kHz audio (default: ``pipeline.recognise([audio])[0]``);
            a server passes its micro-batcher here.
        early_endpoint: seconds of pause after which a complete, confident command ends the utterance
            without the whole trailing silence (``None``: always wait for ``vad.trailing_silence``).
        early_confidence: the intent confidence an early endpoint needs.

    Not thread-safe: one object per stream (the models behind it can be shared).
    """

    def __init__(self, pipeline: Optional[SpeechIntentPipeline] = None, *, sample_rate: int = SAMPLE_RATE,
                 vad: Optional[VADOptions] = None, partial_interval: Optional[float] = 1.0,
                 recognize: Optional[Recognize] = None, early_endpoint: Optional[float] = None,
                 early_confidence: float = 0.9) -> None:
        if recognize is None:
            if pipeline is None:
                raise ConfigError("StreamingRecognizer needs a pipeline or a recognize function")
            recognize = lambda audio: pipeline.recognise([audio], batch_size=1)[0]  # noqa: E731
        if partial_interval is not None and not 0.1 <= partial_interval <= 60:
            raise ConfigError(f"partial_interval must be between 0.1 and 60 seconds, got {partial_interval!r}")
        self.vad_options = vad or VADOptions()
        if early_endpoint is not None and not 0.0 <= early_endpoint <= self.vad_options.trailing_silence:
            raise ConfigError(f"early_endpoint must be between 0 and the trailing silence "
                              f"({self.vad_options.trailing_silence} s), got {early_endpoint!r}")
        if not 0.0 <= early_confidence <= 1.0:
            raise ConfigError(f"early_confidence must be between 0 and 1, got {early_confidence!r}")
        self.early_endpoint = early_endpoint
        self.early_confidence = early_confidence
        limit = getattr(pipeline, "max_duration", None)
        if limit is not None and self.vad_options.max_utterance > limit:
            raise ConfigError(f"max_utterance ({self.vad_options.max_utterance} s) is over the pipeline's "
                              f"max_duration ({limit} s)")
        self._splitter = UtteranceSplitter(self.vad_options, sample_rate)  # checks sample_rate
        self.sample_rate = sample_rate
        self.partial_interval = partial_interval
        self._recognize = recognize
        self._endpointer = self._splitter.endpointer
        self._samples = self._splitter.samples
        self._odd_byte = b""
        self._utterance = 0
        self._last_partial = 0
        self._guess: Optional[_Guess] = None
        self.closed = False

    @property
    def position(self) -> float:
        """Seconds of (16 kHz) audio taken so far."""
        return self._samples.end / SAMPLE_RATE

    @property
    def in_speech(self) -> bool:
        """Whether a confirmed utterance is in progress."""
        return self._endpointer.confirmed

    def feed(self, chunk: Chunk) -> List[StreamEvent]:
        """Take the next chunk: PCM16 little-endian bytes, or an int16 / float array (mono, ``sample_rate``)."""
        if self.closed:
            raise ConfigError("this stream is closed")
        return self._events(self._splitter.feed(self._decode(chunk)))

    def close(self) -> List[StreamEvent]:
        """End of the stream: the utterance in progress (if any) gets its ``final``."""
        if self.closed:
            return []
        self.closed = True
        return self._events(self._splitter.finish(), partials=False)

    def process(self, chunks: Iterable[Chunk]) -> Iterator[StreamEvent]:
        """Feed every chunk, then close: all the events, as they come."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.close()

    # ------------------------------------------------------------------ internals
    def _decode(self, chunk: Chunk) -> np.ndarray:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            data = self._odd_byte + bytes(chunk)
            self._odd_byte = data[len(data) - len(data) % 2:]
            return pcm16_to_float(data[: len(data) - len(data) % 2])
        if not isinstance(chunk, np.ndarray):
            raise AudioError("<stream>", f"unsupported chunk type {type(chunk).__name__} (bytes or a numpy array)")
        if chunk.ndim != 1:
            raise AudioError("<stream>", f"chunks must be mono (1-D), got shape {chunk.shape}")
        if chunk.dtype != np.int16 and chunk.dtype.kind != "f":
            raise AudioError("<stream>", f"unsupported sample dtype {chunk.dtype} (int16 or float)")
        return np.clip(as_float32(chunk, "<stream>"), -1.0, 1.0)

    def _events(self, found: List[Union[SpeechStart, Utterance]], partials: bool = True) -> List[StreamEvent]:
        events: List[StreamEvent] = []
        for item in found:
            if isinstance(item, SpeechStart):
                self._last_partial = item.position
                events.append(StreamEvent("speech_start", self._utterance, item.start / SAMPLE_RATE))
            else:
                self._guess = None
                events.append(self._final(item))
        if partials and self.early_endpoint is not None:
            events += self._early()
        endpointer = self._endpointer
        if (partials and endpointer.confirmed and not endpointer.in_silence and self.partial_interval is not None
                and endpointer.position - self._last_partial >= self.partial_interval * SAMPLE_RATE):
            events.append(self._partial())
        return events

    def _run(self, audio: np.ndarray):
        began = time.perf_counter()
        result = self._recognize(audio)
        return result, time.perf_counter() - began

    def _partial(self) -> StreamEvent:
        endpointer = self._endpointer
        self._last_partial = endpointer.position
        result, seconds = self._run(self._samples.slice(endpointer.start, endpointer.position))
        return StreamEvent("partial", self._utterance, endpointer.start / SAMPLE_RATE,
                           endpointer.position / SAMPLE_RATE, transcript=result.transcript or "",
                           timings={"recognition": seconds})

    def _early(self) -> List[StreamEvent]:
        """Recognise the utterance when the speaker pauses; end it early if that is a complete command."""
        endpointer = self._endpointer
        if not (endpointer.confirmed and endpointer.in_silence):
            return []
        key = (endpointer.start, endpointer.speech_end)
        guess = self._guess
        if guess is None or guess.key != key:  # a new pause (speech since the last one)
            end = min(endpointer.position, endpointer.speech_end + int(self.vad_options.pad * SAMPLE_RATE))
            result, seconds = self._run(self._samples.slice(endpointer.start, end))
            guess = self._guess = _Guess(key, end, result, seconds)
        if endpointer.silence < self.early_endpoint * SAMPLE_RATE or not self._complete(guess.result):
            return []
        utterance = self._splitter.end_utterance("early_endpoint", guess.end)
        self._guess = None
        return [self._final(utterance, guess)] if utterance is not None else []

    def _complete(self, result: PipelineResult) -> bool:
        text = (result.transcript or "").rstrip()
        return (result.ok and bool(text) and not text.endswith(_CONTINUED) and result.intent is not None
                and (result.confidence or 0.0) >= self.early_confidence)

    def _final(self, utterance: Utterance, guess: Optional["_Guess"] = None) -> StreamEvent:
        segment = utterance.segment
        result, seconds = (guess.result, guess.seconds) if guess is not None else self._run(utterance.audio)
        delay = max(0, utterance.position - segment.speech_end) / SAMPLE_RATE
        event = StreamEvent("final", self._utterance, utterance.start, utterance.end,
                            transcript=result.transcript, result=result, reason=segment.reason,
                            speech_end=segment.speech_end / SAMPLE_RATE,
                            timings={"recognition": seconds, "endpoint_delay": delay})
        self._utterance += 1
        return event


@dataclass
class _Guess:
    """The pipeline's result for an utterance up to a pause (``key``: its start and speech end)."""

    key: Tuple[int, int]
    end: int
    result: PipelineResult
    seconds: float

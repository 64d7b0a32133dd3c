"""Streaming recognition: PCM chunks in, utterance events out.

:class:`StreamingRecognizer` takes mono audio in chunks of any size (PCM16 bytes or arrays, at any
rate; resampled to 16 kHz on the fly), finds utterances with Silero VAD
(:mod:`speech_intent.vad`) and emits :class:`StreamEvent`\\ s:

- ``speech_start``: an utterance is confirmed (``start`` in seconds of the stream);
- ``partial``: the transcript of the utterance so far, every ``partial_interval`` seconds of speech;
- ``final``: the utterance ended (trailing silence, ``max_utterance`` or the end of the stream): the
  whole pipeline result (transcript, intent, slots, confidence) and timings.

A stream may hold any number of utterances. Recognition is the pipeline called on the utterance's
audio, so every ASR backend, the domain prompt and grammar decoding work as they do for files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np

from .audio import MAX_RATE, MIN_RATE, SAMPLE_RATE, as_float32
from .errors import AudioError, ConfigError
from .pipeline import SpeechIntentPipeline
from .results import PipelineResult
from .vad import WINDOW, Endpointer, Segment, SileroVAD, VADOptions

Chunk = Union[bytes, bytearray, memoryview, np.ndarray]
Recognize = Callable[[np.ndarray], PipelineResult]


@dataclass
class StreamEvent:
    """One streaming event.

    Attributes:
        type: ``"speech_start"``, ``"partial"`` or ``"final"``.
        utterance: the utterance's number in the stream, from 0.
        start: where the utterance starts, in seconds from the start of the stream.
        end: where it ends (``partial``: the audio heard so far; ``None`` for ``speech_start``).
        transcript: the recognised text (``partial`` and ``final``).
        result: the pipeline's result for the whole utterance (``final``).
        reason: why the utterance ended (``final``): ``silence``, ``max_utterance`` or ``end_of_stream``.
        timings: seconds: ``recognition`` (the pipeline call), ``endpoint_delay`` (audio between the
            end of speech and the end of the utterance being detected).
    """

    type: str
    utterance: int
    start: float
    end: Optional[float] = None
    transcript: Optional[str] = None
    result: Optional[PipelineResult] = None
    reason: Optional[str] = None
    timings: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"type": self.type, "utterance": self.utterance, "start": round(self.start, 3),
                               "end": None if self.end is None else round(self.end, 3)}
        if self.type == "partial":
            out["transcript"] = self.transcript
        if self.type == "final":
            row = self.result.to_dict() if self.result is not None else {}
            out.update(reason=self.reason, transcript=self.transcript, intent=row.get("intent"),
                       confidence=row.get("confidence"), slots=row.get("slots") or {}, error=row.get("error"),
                       result=row)
        if self.timings:
            out["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return out


class _Samples:
    """A growing 16 kHz sample buffer addressed by absolute sample positions; the front can be dropped."""

    def __init__(self) -> None:
        self._data = np.zeros(16 * WINDOW, dtype=np.float32)
        self._size = 0
        self.offset = 0  # absolute position of _data[0]

    @property
    def end(self) -> int:
        return self.offset + self._size

    def append(self, samples: np.ndarray) -> None:
        need = self._size + len(samples)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size: need] = samples
        self._size = need

    def slice(self, start: int, end: int) -> np.ndarray:
        start, end = max(start, self.offset), min(end, self.end)
        return self._data[start - self.offset: max(start, end) - self.offset].copy()

    def drop_before(self, position: int) -> None:
        cut = min(max(0, position - self.offset), self._size)
        if cut:
            self._data[: self._size - cut] = self._data[cut: self._size]
            self._size -= cut
            self.offset += cut


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
        recognize: how to recognise one utterance's 16 kHz audio (default: ``pipeline([audio])[0]``);
            a server passes its micro-batcher here.

    Not thread-safe: one object per stream (the models behind it can be shared).
    """

    def __init__(self, pipeline: Optional[SpeechIntentPipeline] = None, *, sample_rate: int = SAMPLE_RATE,
                 vad: Optional[VADOptions] = None, partial_interval: Optional[float] = 1.0,
                 recognize: Optional[Recognize] = None) -> None:
        if recognize is None:
            if pipeline is None:
                raise ConfigError("StreamingRecognizer needs a pipeline or a recognize function")
            recognize = lambda audio: pipeline([audio], batch_size=1)[0]  # noqa: E731
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ConfigError(f"sample_rate must be an integer from {MIN_RATE} to {MAX_RATE} Hz, got {sample_rate!r}")
        if partial_interval is not None and not 0.1 <= partial_interval <= 60:
            raise ConfigError(f"partial_interval must be between 0.1 and 60 seconds, got {partial_interval!r}")
        self.vad_options = vad or VADOptions()
        limit = getattr(pipeline, "max_duration", None)
        if limit is not None and self.vad_options.max_utterance > limit:
            raise ConfigError(f"max_utterance ({self.vad_options.max_utterance} s) is over the pipeline's "
                              f"max_duration ({limit} s)")
        self.sample_rate = sample_rate
        self.partial_interval = partial_interval
        self._recognize = recognize
        self._resampler = None
        if sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._vad = SileroVAD()
        self._endpointer = Endpointer(self.vad_options)
        self._samples = _Samples()
        self._odd_byte = b""
        self._utterance = 0
        self._last_partial = 0
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
        samples = self._decode(chunk)
        if self._resampler is not None and samples.size:
            samples = self._resampler.resample_chunk(samples)
        return self._process(samples)

    def close(self) -> List[StreamEvent]:
        """End of the stream: the utterance in progress (if any) gets its ``final``."""
        if self.closed:
            return []
        events: List[StreamEvent] = []
        if self._resampler is not None:
            events += self._process(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self.closed = True
        segment = self._endpointer.finish()
        if segment is not None:
            segment.end = min(self._samples.end, segment.start + int(self.vad_options.max_utterance * SAMPLE_RATE))
            events.append(self._final(segment))
        return events

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

    def _process(self, samples: np.ndarray) -> List[StreamEvent]:
        events: List[StreamEvent] = []
        self._samples.append(samples)
        endpointer = self._endpointer
        for prob in self._vad.probabilities(samples):
            outcome = endpointer.update(float(prob))
            if outcome == "start":
                self._last_partial = endpointer.position
                events.append(StreamEvent("speech_start", self._utterance, endpointer.start / SAMPLE_RATE))
            elif isinstance(outcome, Segment):
                events.append(self._final(outcome))
        if (endpointer.confirmed and not endpointer.in_silence and self.partial_interval is not None
                and endpointer.position - self._last_partial >= self.partial_interval * SAMPLE_RATE):
            events.append(self._partial())
        keep = endpointer.start if endpointer.triggered else endpointer.position - int(self.vad_options.pad * SAMPLE_RATE)
        self._samples.drop_before(keep - WINDOW)
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

    def _final(self, segment: Segment) -> StreamEvent:
        result, seconds = self._run(self._samples.slice(segment.start, segment.end))
        delay = max(0, self._endpointer.position - segment.speech_end) / SAMPLE_RATE
        event = StreamEvent("final", self._utterance, segment.start / SAMPLE_RATE, segment.end / SAMPLE_RATE,
                            transcript=result.transcript, result=result, reason=segment.reason,
                            timings={"recognition": seconds, "endpoint_delay": delay})
        self._utterance += 1
        return event

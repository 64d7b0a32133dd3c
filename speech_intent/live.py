"""Streaming recognition: PCM chunks in, utterance events out.

:class:`StreamingRecognizer` takes mono audio in chunks of any size (PCM16 bytes or arrays, at any
rate; resampled to 16 kHz on the fly), finds utterances with Silero VAD
(:mod:`speech_intent.vad`) and emits :class:`StreamEvent`\\ s:

- ``speech_start``: an utterance is confirmed (``start`` in seconds of the stream);
- ``partial``: the transcript of the utterance so far, every ``partial_interval`` seconds of speech;
- ``final``: the utterance ended (trailing silence, a complete turn after a short pause,
  ``max_utterance`` or the end of the stream): the whole pipeline result (transcript, intent, slots,
  confidence; with affect stages also ``sentiment`` / ``text_emotion`` / ``emotion`` labels) and timings.

Early endpoint: waiting for the whole trailing silence puts it into every answer's latency. With
``early_endpoint`` the recogniser runs the pipeline as soon as the speaker pauses (the first silent
VAD window) and, once the pause has lasted ``early_endpoint`` seconds with no new speech, ends the
utterance there when that result is a complete, confident command (an intent at ``early_confidence``
or above, a transcript not ending in a comma or another mark of an unfinished sentence; a grammar
pipeline's out-of-grammar result never is). Otherwise the utterance goes on to
the usual trailing silence. Like Picovoice Rhino without ``require_endpoint``, a speaker who pauses
for longer than ``early_endpoint`` after a complete command, then adds to it, gets two utterances.

End of turn: with an :class:`~speech_intent.turn.EndOfTurnDetector` (``turn``) the pause's result is
judged by it instead of by the intent confidence: the turn ends after ``early_endpoint`` seconds of
pause (default 0.2 with a detector) when its P(complete) (the transcript, the domain's grammar and
required slots) is at least ``early_confidence`` (default: the detector's own threshold); otherwise
the utterance waits for the whole trailing silence. Reason ``end_of_turn``.

Revisions: with ``revisions=True`` a cut that the next words show was premature is repaired: when
speech resumes within ``vad.trailing_silence`` of an early end, the new speech is recognised joined
to the utterance before it; its ``speech_start``, ``partial`` and ``final`` events carry that
utterance's number and ``revises`` (the number of the ``final`` they replace). Without it (clients
that cannot take back a final), the two halves are two utterances.

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
from .results import LabelScores, PipelineResult
from .turn import COMPLETE, EndOfTurnDetector
from .vad import SpeechStart, Utterance, UtteranceSplitter, VADOptions

Chunk = Union[bytes, bytearray, memoryview, np.ndarray]
Recognize = Callable[[np.ndarray], PipelineResult]

#: A transcript ending like this was heard as unfinished (Whisper writes the pause mid-sentence).
_CONTINUED = (",", ";", ":", "-", "...", "\u2026")
#: Seconds of pause after which an end-of-turn detector's confident answer ends the turn, by default.
DEFAULT_TURN_PAUSE = 0.2
#: The trailing silence the service gives streams with an end-of-turn detector by default: complete
#: turns end after ``DEFAULT_TURN_PAUSE``, so only an unfinished one waits this long (``benchmarks/endpoint.py``).
TURN_TRAILING_SILENCE = 1.5
#: Intent confidence an early endpoint needs without an end-of-turn detector, by default.
DEFAULT_EARLY_CONFIDENCE = 0.9


@dataclass(frozen=True)
class EndpointOptions:
    """When a stream's utterance ends and what it reports on the way (the service's stream settings too).

    Attributes:
        partial_interval: seconds of speech between ``partial`` events (``None``: none).
        early_endpoint: seconds of pause after which a complete turn ends without the whole trailing
            silence (``None``: without an end-of-turn detector, always wait for the trailing silence;
            with one, :data:`DEFAULT_TURN_PAUSE`).
        early_confidence: what "complete" needs: the detector's P(complete) (``None``: its threshold),
            or without a detector the intent confidence (``None``: :data:`DEFAULT_EARLY_CONFIDENCE`).
        revisions: repair premature ends (speech resuming within the trailing silence is joined to the
            utterance before it; the events say which ``final`` they revise).
    """

    partial_interval: Optional[float] = 1.0
    early_endpoint: Optional[float] = None
    early_confidence: Optional[float] = None
    revisions: bool = False

    def __post_init__(self) -> None:
        if self.partial_interval is not None and not 0.1 <= self.partial_interval <= 60:
            raise ConfigError(f"partial_interval must be between 0.1 and 60 seconds, got {self.partial_interval!r}")
        if self.early_endpoint is not None and not 0.0 <= self.early_endpoint <= 60.0:
            raise ConfigError(f"early_endpoint must be between 0 and the trailing silence, got {self.early_endpoint!r}")
        if self.early_confidence is not None and not 0.0 <= self.early_confidence <= 1.0:
            raise ConfigError(f"early_confidence must be between 0 and 1, got {self.early_confidence!r}")


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
            confident command after a short pause), ``end_of_turn`` (the end-of-turn detector's
            complete turn after a short pause), ``max_utterance`` or ``end_of_stream``.
        timings: seconds: ``recognition`` (the pipeline call; for ``early_endpoint`` and
            ``end_of_turn``, the call made when the pause began), ``endpoint_delay`` (audio between the
            end of speech and the end of the utterance being detected).
        revises: the number of the ``final`` this event's utterance replaces (speech resumed within the
            trailing silence after it; only with ``revisions``), else ``None``.
        turn: the end-of-turn detector's answer on the final's transcript (``complete`` /
            ``incomplete``), when one judged it.
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
    revises: Optional[int] = None
    turn: Optional[LabelScores] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"type": self.type, "utterance": self.utterance, "start": round(self.start, 3),
                               "end": None if self.end is None else round(self.end, 3)}
        if self.revises is not None:
            out["revises"] = self.revises
        if self.turn is not None:
            out["turn"] = self.turn.to_dict()
        if self.type == "partial":
            out["transcript"] = self.transcript
        if self.type == "final":
            row = self.result.to_dict() if self.result is not None else {}
            out.update(reason=self.reason, speech_end=None if self.speech_end is None else round(self.speech_end, 3),
                       transcript=self.transcript, intent=row.get("intent"),
                       confidence=row.get("confidence"), slots=row.get("slots") or {}, error=row.get("error"),
                       result=row)
            out.update({key: row[key] for key in self.result.affect} if self.result is not None else {})
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
            without the whole trailing silence (``None``: always wait for ``vad.trailing_silence``;
            with ``turn``: :data:`DEFAULT_TURN_PAUSE`).
        early_confidence: the intent confidence an early endpoint needs (``None``: 0.9), or with
            ``turn`` the detector's P(complete) (``None``: the detector's threshold).
        turn: an :class:`~speech_intent.turn.EndOfTurnDetector` that judges each pause.
        revisions: repair premature ends (see the module notes).
        options: :class:`EndpointOptions` instead of ``partial_interval``, ``early_endpoint``,
            ``early_confidence`` and ``revisions``.

    Not thread-safe: one object per stream (the models behind it can be shared).
    """

    def __init__(self, pipeline: Optional[SpeechIntentPipeline] = None, *, sample_rate: int = SAMPLE_RATE,
                 vad: Optional[VADOptions] = None, partial_interval: Optional[float] = 1.0,
                 recognize: Optional[Recognize] = None, early_endpoint: Optional[float] = None,
                 early_confidence: Optional[float] = None, turn: Optional[EndOfTurnDetector] = None,
                 revisions: bool = False, options: Optional[EndpointOptions] = None) -> None:
        if recognize is None:
            if pipeline is None:
                raise ConfigError("StreamingRecognizer needs a pipeline or a recognize function")
            recognize = lambda audio: pipeline.recognise([audio], batch_size=1)[0]  # noqa: E731
        if options is None:
            options = EndpointOptions(partial_interval=partial_interval, early_endpoint=early_endpoint,
                                      early_confidence=early_confidence, revisions=revisions)
        self.options = options
        self.vad_options = vad or VADOptions()
        self.turn = turn
        early_endpoint = options.early_endpoint
        if early_endpoint is None and turn is not None:
            early_endpoint = min(DEFAULT_TURN_PAUSE, self.vad_options.trailing_silence)
        if early_endpoint is not None and not 0.0 <= early_endpoint <= self.vad_options.trailing_silence:
            raise ConfigError(f"early_endpoint must be between 0 and the trailing silence "
                              f"({self.vad_options.trailing_silence} s), got {early_endpoint!r}")
        self.early_endpoint = early_endpoint
        self.early_confidence = (options.early_confidence if options.early_confidence is not None
                                 else turn.threshold if turn is not None else DEFAULT_EARLY_CONFIDENCE)
        self.revisions = options.revisions
        partial_interval = options.partial_interval
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
        self._held: Optional[_Held] = None  # the last early-ended utterance, while speech may still resume
        self._joined: Optional[_Held] = None  # the utterance the one in progress continues
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
                self._joined = self._resumes(item)
                revises = self._joined.utterance if self._joined is not None else None
                start = self._joined.start if self._joined is not None else item.start
                events.append(StreamEvent("speech_start", self._number, start / SAMPLE_RATE, revises=revises))
            else:
                self._guess = None
                events.append(self._final(item))
        self._expire()
        if partials and self.early_endpoint is not None:
            events += self._early()
        endpointer = self._endpointer
        if (partials and endpointer.confirmed and not endpointer.in_silence and self.partial_interval is not None
                and endpointer.position - self._last_partial >= self.partial_interval * SAMPLE_RATE):
            events.append(self._partial())
        return events

    @property
    def _number(self) -> int:
        """The number of the utterance in progress (the one it continues, when it does)."""
        return self._joined.utterance if self._joined is not None else self._utterance

    def _resumes(self, start: SpeechStart) -> Optional["_Held"]:
        """The early-ended utterance that speech starting now continues, if any (``revisions`` only)."""
        held, self._held = self._held, None
        if held is None or held.end - held.start > self.vad_options.max_utterance * SAMPLE_RATE / 2:
            return None  # (a joined utterance stays within what the pipeline takes)
        onset = start.start + int(self.vad_options.pad * SAMPLE_RATE)
        return held if onset - held.speech_end <= self.vad_options.trailing_silence * SAMPLE_RATE else None

    def _expire(self) -> None:
        held = self._held
        if (held is not None and not self._endpointer.triggered and self._endpointer.position - held.speech_end
                > (self.vad_options.trailing_silence + self.vad_options.pad) * SAMPLE_RATE):
            self._held = None

    def _audio(self, start: int, audio: np.ndarray) -> np.ndarray:
        """``audio`` (from sample ``start``) after the utterance it continues, when it continues one."""
        joined = self._joined
        if joined is None:
            return audio
        if start <= joined.end:
            return np.concatenate([joined.audio, audio[joined.end - start:]])
        gap = self._samples.slice(joined.end, start)  # the pause, as far as the buffer still has it
        silence = np.zeros(start - joined.end - len(gap), dtype=np.float32)
        return np.concatenate([joined.audio, silence, gap, audio])

    def _start(self, start: int) -> int:
        return self._joined.start if self._joined is not None else start

    def _run(self, audio: np.ndarray):
        began = time.perf_counter()
        result = self._recognize(audio)
        return result, time.perf_counter() - began

    def _partial(self) -> StreamEvent:
        endpointer = self._endpointer
        self._last_partial = endpointer.position
        audio = self._audio(endpointer.start, self._samples.slice(endpointer.start, endpointer.position))
        result, seconds = self._run(audio)
        return StreamEvent("partial", self._number, self._start(endpointer.start) / SAMPLE_RATE,
                           endpointer.position / SAMPLE_RATE, transcript=result.transcript or "",
                           timings={"recognition": seconds},
                           revises=self._joined.utterance if self._joined is not None else None)

    def _early(self) -> List[StreamEvent]:
        """Recognise the utterance when the speaker pauses; end it early if that is a complete command."""
        endpointer = self._endpointer
        if not (endpointer.confirmed and endpointer.in_silence):
            return []
        key = (endpointer.start, endpointer.speech_end)
        guess = self._guess
        if guess is None or guess.key != key:  # a new pause (speech since the last one)
            end = min(endpointer.position, endpointer.speech_end + int(self.vad_options.pad * SAMPLE_RATE))
            result, seconds = self._run(self._audio(endpointer.start, self._samples.slice(endpointer.start, end)))
            judged = self.turn.predict_results([result])[0] if self.turn is not None and result.ok else None
            guess = self._guess = _Guess(key, end, result, seconds, judged)
        if endpointer.silence < self.early_endpoint * SAMPLE_RATE or not self._complete(guess):
            return []
        utterance = self._splitter.end_utterance("end_of_turn" if self.turn is not None else "early_endpoint",
                                                 guess.end)
        self._guess = None
        return [self._final(utterance, guess)] if utterance is not None else []

    def _complete(self, guess: "_Guess") -> bool:
        result = guess.result
        text = (result.transcript or "").rstrip()
        if not (result.ok and text):
            return False
        if self.turn is not None:  # the detector reads the words: Whisper ends many a finished clip with a comma
            return guess.turn is not None and guess.turn.scores[COMPLETE] >= self.early_confidence
        return (not text.endswith(_CONTINUED) and result.intent is not None
                and (result.confidence or 0.0) >= self.early_confidence)

    def _final(self, utterance: Utterance, guess: Optional["_Guess"] = None) -> StreamEvent:
        segment = utterance.segment
        if guess is not None:
            result, seconds, judged = guess.result, guess.seconds, guess.turn
        else:
            result, seconds = self._run(self._audio(segment.start, utterance.audio))
            judged = self.turn.predict_results([result])[0] if self.turn is not None and result.ok else None
        joined, self._joined = self._joined, None
        number = joined.utterance if joined is not None else self._utterance
        start = joined.start if joined is not None else segment.start
        delay = max(0, utterance.position - segment.speech_end) / SAMPLE_RATE
        event = StreamEvent("final", number, start / SAMPLE_RATE, utterance.end,
                            transcript=result.transcript, result=result, reason=segment.reason,
                            speech_end=segment.speech_end / SAMPLE_RATE,
                            timings={"recognition": seconds, "endpoint_delay": delay},
                            revises=joined.utterance if joined is not None else None, turn=judged)
        if joined is None:
            self._utterance += 1
        if self.revisions and segment.reason in ("early_endpoint", "end_of_turn"):
            audio = self._audio(segment.start, utterance.audio)
            self._held = _Held(number, start, segment.end, segment.speech_end, audio)
        return event


@dataclass
class _Guess:
    """The pipeline's result for an utterance up to a pause (``key``: its start and speech end), and
    the end-of-turn detector's answer on it."""

    key: Tuple[int, int]
    end: int
    result: PipelineResult
    seconds: float
    turn: Optional[LabelScores] = None


@dataclass
class _Held:
    """An utterance ended early, kept while speech may resume within the trailing silence: its number,
    where its (joined) audio starts and ends and its speech ends, in samples of the stream, and the audio."""

    utterance: int
    start: int
    end: int
    speech_end: int
    audio: np.ndarray

"""Voice activity detection: Silero VAD (the ONNX model faster-whisper ships) and an endpointer.

:class:`SileroVAD` gives the speech probability of each 32 ms window (512 samples at 16 kHz) of a
signal fed in pieces of any size; it keeps the model's recurrent state and the 64-sample context
between calls, so feeding a signal in one piece or in many gives the same probabilities.
The ONNX session is loaded once per process and shared (``run`` is thread-safe); the state is per
object, so use one :class:`SileroVAD` per stream.

:class:`Endpointer` turns those probabilities into utterances: speech starts when a window's
probability reaches ``threshold`` and is confirmed after ``min_speech`` seconds of speech; it ends
after ``trailing_silence`` seconds under ``neg_threshold``, or when it reaches ``max_utterance``
seconds. :class:`UtteranceSplitter` puts them together: mono audio in pieces of any size and rate in,
each utterance's 16 kHz audio out, holding only the utterance in progress (streams, long files);
:func:`split_utterances` runs it over a whole signal.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .audio import MAX_RATE, MIN_RATE, SAMPLE_RATE
from .errors import ConfigError, ModelLoadError, check_int

WINDOW = 512  # samples per Silero window at 16 kHz (32 ms)
_RESET_STRIDE = 32 * WINDOW  # where UtteranceSplitter may reset the VAD state: every 1.024 s of the stream
_CONTEXT = 64  # samples of the previous window the v6 model sees
_STATE = (1, 1, 128)


def silero_model_path() -> str:
    """Path of ``silero_vad_v6.onnx`` inside the installed faster-whisper.

    Found without importing faster-whisper, whose package imports CTranslate2 and PyAV: the VAD needs
    neither (only onnxruntime), nor their import time.
    """
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - faster-whisper is a dependency
        raise ModelLoadError("faster_whisper", "faster-whisper is needed for its Silero VAD model (not installed)")
    return os.path.join(list(spec.submodule_search_locations)[0], "assets", "silero_vad_v6.onnx")


@functools.lru_cache(maxsize=None)
def _session():
    path = silero_model_path()
    if not os.path.isfile(path):
        raise ModelLoadError(path, "the Silero VAD model is missing from this faster-whisper install")
    try:
        import onnxruntime
    except ImportError as error:
        raise ModelLoadError(path, f"onnxruntime is needed to run the Silero VAD model ({error})") from error
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    options.log_severity_level = 4
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=options)


class SileroVAD:
    """Streaming Silero VAD at 16 kHz: ``probabilities(samples)`` -> one probability per complete window.

    Samples left over (less than a window) are kept for the next call.
    """

    def __init__(self) -> None:
        self._session = _session()
        self.reset()

    def reset(self) -> None:
        self.reset_state()
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def reset_state(self) -> None:
        """Forget the recurrent state (the audio context and pending samples are kept)."""
        self._h = np.zeros(_STATE, dtype=np.float32)
        self._c = np.zeros(_STATE, dtype=np.float32)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probabilities of the complete windows in the pending samples plus ``samples``."""
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        count = len(data) // WINDOW
        self._pending = data[count * WINDOW:]
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        windows = data[: count * WINDOW].reshape(count, WINDOW)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -_CONTEXT:]], axis=0)
        self._context = windows[-1, -_CONTEXT:].copy()
        batch = np.ascontiguousarray(np.concatenate([contexts, windows], axis=1))
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(probs, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class VADOptions:
    """When speech starts and ends.

    Attributes:
        threshold: speech probability at which a window counts as speech.
        neg_threshold: probability under which a window counts as silence (``None``: ``threshold - 0.15``).
        min_speech: seconds of speech that confirm an utterance (shorter blips are dropped).
        trailing_silence: seconds of silence that end an utterance.
        max_utterance: longest utterance in seconds; a longer one is cut there.
        pad: seconds of audio kept before the first and after the last speech window.
        idle_reset: seconds without speech after which :class:`UtteranceSplitter` resets the VAD's
            recurrent state (checked every 1.024 s of audio): after long silences Silero's speech
            probabilities drift low and the first word of the next utterance can be cut. ``None``: never.
    """

    threshold: float = 0.5
    neg_threshold: Optional[float] = None
    min_speech: float = 0.15
    trailing_silence: float = 0.6
    max_utterance: float = 15.0
    pad: float = 0.4  # faster-whisper's speech_pad_ms: Whisper misreads first words cut too tightly
    idle_reset: Optional[float] = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold!r}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ConfigError(f"neg_threshold must be in [0, threshold], got {self.neg_threshold!r}")
        for name in ("min_speech", "trailing_silence", "pad"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 60.0:
                raise ConfigError(f"{name} must be between 0 and 60 seconds, got {value!r}")
        if not isinstance(self.max_utterance, (int, float)) or not 0.5 <= self.max_utterance <= 3600.0:
            raise ConfigError(f"max_utterance must be between 0.5 and 3600 seconds, got {self.max_utterance!r}")
        if self.idle_reset is not None and (not isinstance(self.idle_reset, (int, float))
                                            or not 0.0 <= self.idle_reset <= 3600.0):
            raise ConfigError(f"idle_reset must be between 0 and 3600 seconds or None, got {self.idle_reset!r}")

    @property
    def silence_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Segment:
    """One utterance found by the endpointer, in samples of the whole stream (16 kHz).

    ``reason``: why it ended: ``"silence"``, ``"max_utterance"``, ``"end_of_stream"``, or the reason a
    caller gave :meth:`Endpointer.cut` (the stream's ``"early_endpoint"``).
    ``speech_end``: where the last speech window ended (before the trailing silence).
    """

    start: int
    end: int
    speech_end: int
    reason: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Endpointer:
    """Window-by-window utterance state machine over VAD probabilities.

    ``update(prob)`` takes the probability of the next window and returns ``"start"`` when an
    utterance is confirmed, a :class:`Segment` when one ends, or ``None``. Positions are in samples.
    """

    def __init__(self, options: Optional[VADOptions] = None, sampling_rate: int = SAMPLE_RATE) -> None:
        self.options = options or VADOptions()
        rate = sampling_rate
        self._min_speech = int(self.options.min_speech * rate)
        self._silence = int(self.options.trailing_silence * rate)
        self._max = int(self.options.max_utterance * rate)
        self._pad = int(self.options.pad * rate)
        self.position = 0  # samples seen (end of the last window)
        self.reset()

    def reset(self) -> None:
        self.triggered = False  # speech seen, maybe not yet confirmed
        self.confirmed = False
        self.start = 0
        self._speech = 0
        self._last_speech_end = 0
        self._silence_start: Optional[int] = None

    def update(self, prob: float):
        window_start, self.position = self.position, self.position + WINDOW
        options = self.options
        if not self.triggered:
            if prob < options.threshold:
                return None
            self.triggered, self.start = True, max(0, window_start - self._pad)
        if prob >= options.threshold:  # speech
            self._speech += WINDOW
            self._last_speech_end = self.position
            self._silence_start = None
        elif prob < options.silence_threshold:  # silence
            if self._silence_start is None:
                self._silence_start = window_start
        elif self._silence_start is None:  # in between: speech goes on until a silent window
            self._last_speech_end = self.position
        if not self.confirmed and self._speech >= self._min_speech:
            self.confirmed = True
            return "start"
        silent_for = 0 if self._silence_start is None else self.position - self._silence_start
        if not self.confirmed:
            # a blip, or a trigger that never became speech (probabilities between the two thresholds
            # for as long as an utterance may last): forget it, so the samples kept stay bounded
            if silent_for >= max(self._min_speech, 4 * WINDOW) or self.position - self.start >= self._max:
                self.reset()
            return None
        if silent_for >= self._silence:
            return self._end("silence")
        if self.position + WINDOW - self.start > self._max:  # one more window would be over the limit
            return self._end("max_utterance")
        return None

    @property
    def in_silence(self) -> bool:
        """Whether the latest windows were silence (an utterance may be about to end)."""
        return self._silence_start is not None

    @property
    def silence(self) -> int:
        """Samples of silence since the utterance's last speech (0 while speech goes on)."""
        return 0 if self._silence_start is None else self.position - self._silence_start

    @property
    def speech_end(self) -> int:
        """Where the last speech window of the utterance in progress ended."""
        return self._last_speech_end

    def cut(self, reason: str, end: int) -> Optional[Segment]:
        """End the confirmed utterance in progress now (the caller's decision), at sample ``end``."""
        if not self.confirmed:
            return None
        start, speech_end = self.start, self._last_speech_end
        self.reset()
        return Segment(start=start, end=min(end, self.position), speech_end=speech_end, reason=reason)

    def finish(self) -> Optional[Segment]:
        """End of the stream: the utterance in progress, if confirmed."""
        return self._end("end_of_stream") if self.confirmed else None

    def _end(self, reason: str) -> Optional[Segment]:
        confirmed, start, speech_end = self.confirmed, self.start, self._last_speech_end
        self.reset()
        if not confirmed:
            return None
        end = self.position if reason != "silence" else min(self.position, speech_end + self._pad)
        return Segment(start=start, end=end, speech_end=speech_end, reason=reason)


class SampleBuffer:
    """A growing 16 kHz sample buffer addressed by absolute sample positions; the front can be dropped."""

    def __init__(self) -> None:
        self._data = np.zeros(16 * WINDOW, dtype=np.float32)
        self._size = 0
        self.offset = 0  # absolute position of _data[0]

    @property
    def end(self) -> int:
        return self.offset + self._size

    @property
    def capacity(self) -> int:
        """Samples the buffer can hold before it grows (its memory, in float32 samples)."""
        return len(self._data)

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


@dataclass
class SpeechStart:
    """An utterance was confirmed: it starts at sample ``start``; ``position``: samples seen then."""

    start: int
    position: int


@dataclass
class Utterance:
    """An utterance cut out by :class:`UtteranceSplitter`.

    Attributes:
        segment: where it is, in 16 kHz samples of the whole stream, and why it ended.
        position: samples seen when its end was detected.
        audio: its 16 kHz float32 samples.
    """

    segment: Segment
    position: int
    audio: np.ndarray

    @property
    def start(self) -> float:
        """Start in seconds from the start of the stream."""
        return self.segment.start / SAMPLE_RATE

    @property
    def end(self) -> float:
        """End in seconds from the start of the stream."""
        return self.segment.end / SAMPLE_RATE


class UtteranceSplitter:
    """Mono float32 audio in pieces of any size (at ``sample_rate``) -> utterances at 16 kHz.

    ``feed(samples)`` returns the :class:`SpeechStart` and :class:`Utterance` events the piece
    completed, in order; ``finish()`` ends the stream (the utterance in progress, if confirmed).
    Audio is resampled to 16 kHz on the fly (soxr), run through :class:`SileroVAD` and the
    :class:`Endpointer`, and only the samples of the utterance in progress (plus ``pad``) are kept:
    memory is bounded by ``max_utterance``, not by the length of the stream.
    ``vad``, ``endpointer`` and ``samples`` are open to callers that need the utterance so far.
    """

    def __init__(self, options: Optional[VADOptions] = None, sample_rate: int = SAMPLE_RATE) -> None:
        check_int("sample_rate", sample_rate, minimum=MIN_RATE, maximum=MAX_RATE)
        self.options = options or VADOptions()
        self.sample_rate = sample_rate
        self._resampler = None
        if sample_rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self.vad = SileroVAD()
        self.endpointer = Endpointer(self.options)
        self.samples = SampleBuffer()
        self.finished = False
        self._fed = 0  # samples given to the VAD
        self._idle = 0  # windows since the endpointer was last triggered

    def feed(self, samples: np.ndarray) -> List[Union[SpeechStart, Utterance]]:
        """Take the next piece (mono float32 at ``sample_rate``)."""
        if self.finished:
            raise ConfigError("this splitter is finished")
        if self._resampler is not None and samples.size:
            samples = self._resampler.resample_chunk(samples)
        return self._process(samples)

    def finish(self) -> List[Union[SpeechStart, Utterance]]:
        """End of the stream: the rest of the resampler, then the utterance in progress, if confirmed."""
        if self.finished:
            return []
        events: List[Union[SpeechStart, Utterance]] = []
        if self._resampler is not None:
            events += self._process(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self.finished = True
        segment = self.endpointer.finish()
        if segment is not None:
            segment.end = min(self.samples.end, segment.start + int(self.options.max_utterance * SAMPLE_RATE))
            events.append(self._cut(segment))
        return events

    def end_utterance(self, reason: str, end: int) -> Optional[Utterance]:
        """End the confirmed utterance in progress now, at sample ``end`` (``None``: none in progress)."""
        segment = self.endpointer.cut(reason, end)
        if segment is None:
            return None
        utterance = self._cut(segment)
        self.samples.drop_before(self.endpointer.position - int(self.options.pad * SAMPLE_RATE) - WINDOW)
        return utterance

    def _process(self, samples: np.ndarray) -> List[Union[SpeechStart, Utterance]]:
        events: List[Union[SpeechStart, Utterance]] = []
        self.samples.append(samples)
        endpointer = self.endpointer
        idle_reset = self.options.idle_reset
        done = 0
        while done < len(samples):  # in pieces that end on the reset stride: the same events however fed
            take = min(len(samples) - done, _RESET_STRIDE - self._fed % _RESET_STRIDE)
            for prob in self.vad.probabilities(samples[done: done + take]):
                outcome = endpointer.update(float(prob))
                if outcome == "start":
                    events.append(SpeechStart(endpointer.start, endpointer.position))
                elif isinstance(outcome, Segment):
                    events.append(self._cut(outcome))
                self._idle = 0 if endpointer.triggered else self._idle + 1
            done, self._fed = done + take, self._fed + take
            if (idle_reset is not None and self._fed % _RESET_STRIDE == 0
                    and self._idle * WINDOW >= idle_reset * SAMPLE_RATE):
                self.vad.reset_state()
        keep = endpointer.start if endpointer.triggered else endpointer.position - int(self.options.pad * SAMPLE_RATE)
        self.samples.drop_before(keep - WINDOW)
        return events

    def _cut(self, segment: Segment) -> Utterance:
        return Utterance(segment, self.endpointer.position, self.samples.slice(segment.start, segment.end))


def split_utterances(audio: np.ndarray, options: Optional[VADOptions] = None,
                     sampling_rate: int = SAMPLE_RATE) -> List[Tuple[float, float]]:
    """(start, end) seconds of each utterance in a 16 kHz signal."""
    if sampling_rate != SAMPLE_RATE:
        raise ConfigError(f"split_utterances needs {SAMPLE_RATE} Hz audio, got {sampling_rate}")
    splitter = UtteranceSplitter(options)
    piece = 30 * SAMPLE_RATE
    events = [e for i in range(0, len(audio), piece) for e in splitter.feed(audio[i: i + piece])] + splitter.finish()
    return [(e.start, e.end) for e in events if isinstance(e, Utterance)]

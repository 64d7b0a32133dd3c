"""Audio input: files, bytes or arrays in, float32 mono at the model's rate out.

Decoding uses libsndfile (``soundfile``: wav, flac, ogg/vorbis/opus, mp3 with
libsndfile >= 1.1, aiff, au, caf...) with a fallback through ``librosa``/ffmpeg
only for containers libsndfile does not read (m4a, ...); resampling uses soxr
(``librosa.resample(res_type="soxr_hq")``).

Every failure raises :class:`~speech_intent.errors.AudioError` naming the source
and the reason; no other exception escapes :func:`load_audio`. Accepted: 8/16/24/32-bit
integer and 32/64-bit float PCM, u-law/a-law/ADPCM, any rate from 1 kHz to 768 kHz,
any number of channels up to 64 (averaged to mono). Refused: missing, empty, corrupt
or non-audio files, NaN/Inf samples, inputs shorter than ``min_duration`` (0.1 s) or
longer than ``max_duration`` (30 s; checked from the header before decoding, so a
multi-hour file is never read into memory). :class:`BlockReader` reads a long file block by block
instead (:mod:`speech_intent.longform` splits it into utterances).
"""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np

from .errors import AudioError, AudioTooLongError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Longest input accepted by default, in seconds (Whisper's window is 30 s).
DEFAULT_MAX_DURATION = 30.0
#: Shortest input accepted by default, in seconds: no spoken command fits in less,
#: and CTC front ends cannot even run on a few samples.
DEFAULT_MIN_DURATION = 0.1
#: Peak amplitude under which a signal counts as digital silence (see :func:`is_silent`).
SILENCE_PEAK = 1e-4
MIN_RATE, MAX_RATE = 1_000, 768_000
MAX_CHANNELS = 64
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aiff", ".aif")
#: Containers libsndfile reads itself; other suffixes may fall back to ffmpeg.
_SNDFILE_NATIVE = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au",
                   ".snd", ".caf", ".w64", ".rf64", ".voc", ".sd2"}

AudioInput = Union[str, Path, bytes, bytearray, np.ndarray, Tuple[np.ndarray, int]]


def source_name(audio: AudioInput, index: Optional[int] = None) -> str:
    """A printable name for an input: its path, or ``<array #i>`` / ``<bytes #i>``."""
    if isinstance(audio, (str, Path)):
        return str(audio)
    kind = "bytes" if isinstance(audio, (bytes, bytearray)) else "array"
    return f"<{kind}>" if index is None else f"<{kind} #{index}>"


class _Buffer(io.BytesIO):
    """In-memory file for libsndfile: a seek before the start (libsndfile probing corrupt data) clamps to 0
    instead of raising inside a C callback, where the error would only be printed."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:
            return super().seek(0)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if text.startswith("Error opening ") and ("': " in text or ">: " in text):  # libsndfile repeats the source
        text = text.split("': " if "': " in text else ">: ", 1)[1]
    if "does not exist or is not a regular file" in text:  # libsndfile's message for unparseable mp3 data
        text = "unrecognised or corrupt audio data"
    return text[:200]


def _checked_path(audio: Union[str, Path], name: str) -> str:
    """The path of a file that exists, is not a directory and is not empty."""
    path = Path(audio)
    try:
        if not path.exists():
            raise AudioError(name, "file not found")
        if path.is_dir():
            raise AudioError(name, "is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(name, "file is empty (0 bytes)")
    except OSError as error:  # permission denied on a parent, name too long, ...
        raise AudioError(name, f"cannot access file ({_short(error)})") from error
    return str(path)


def _sf_path(data: Union[str, io.BytesIO]) -> Union[bytes, io.BytesIO]:
    """A path as bytes for libsndfile: soundfile encodes a ``str`` strictly, which fails on a file name
    that is not valid UTF-8 (surrogate-escaped by the OS layer)."""
    return os.fsencode(data) if isinstance(data, str) else data


def _too_long(name: str, seconds: float, limit: float) -> AudioTooLongError:
    return AudioTooLongError(name, seconds, limit)


def _check_rate(rate: float, name: str) -> int:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(name, f"unsupported sampling rate {rate} Hz (accepted: {MIN_RATE}-{MAX_RATE} Hz)")
    return int(rate)


def _read_sndfile(data: Union[str, io.BytesIO], name: str, max_duration: Optional[float]) -> Tuple[np.ndarray, int]:
    """Decode with libsndfile, refusing over-long inputs from the header before reading samples."""
    import soundfile as sf

    with sf.SoundFile(_sf_path(data)) as handle:
        rate = _check_rate(handle.samplerate, name)
        if not 1 <= handle.channels <= MAX_CHANNELS:
            raise AudioError(name, f"unsupported channel count {handle.channels} (accepted: 1-{MAX_CHANNELS})")
        limit = -1
        if max_duration is not None:
            limit = int(max_duration * rate) + 1  # never read more than one frame past the limit
            if handle.frames > limit:
                raise _too_long(name, handle.frames / rate, max_duration)
        samples = handle.read(frames=limit, dtype="float32", always_2d=True)
    return samples, rate


def _decode(data: Union[str, io.BytesIO], name: str, max_duration: Optional[float]) -> Tuple[np.ndarray, int]:
    """(frames, channels) float32 samples and their rate, from a path or a bytes buffer."""
    try:
        return _read_sndfile(data, name, max_duration)
    except AudioError:
        raise
    except Exception as sf_error:  # libsndfile raises LibsndfileError, RuntimeError, ValueError...
        if isinstance(data, io.BytesIO) or Path(data).suffix.lower() in _SNDFILE_NATIVE:
            raise AudioError(name, f"cannot decode audio: not a readable audio file ({_short(sf_error)})") from sf_error
        return _decode_ffmpeg(data, name, sf_error)


def _decode_ffmpeg(path: str, name: str, sf_error: Exception) -> Tuple[np.ndarray, int]:
    """Fallback for containers libsndfile does not read (m4a, ...), through librosa/audioread/ffmpeg."""
    import warnings

    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            samples, rate = librosa.load(path, sr=None, mono=False)
    except Exception as error:
        raise AudioError(name, f"cannot decode audio: unsupported format or codec ({_short(sf_error)})") from error
    samples = np.asarray(samples, dtype=np.float32)
    samples = samples[:, None] if samples.ndim == 1 else samples.T
    return samples, _check_rate(rate, name)


def as_float32(samples: np.ndarray, name: str) -> np.ndarray:
    """Integers scaled to [-1, 1]; floats checked for NaN/Inf and cast."""
    kind = samples.dtype.kind
    if kind in "iu":
        info = np.iinfo(samples.dtype)
        scale = (float(info.max) - float(info.min) + 1.0) / 2.0  # 32768 for int16, 128 for uint8
        offset = 0.0 if kind == "i" else (info.max + 1) / 2.0
        return ((samples.astype(np.float64) - offset) / scale).astype(np.float32)
    if kind == "f":
        if not np.isfinite(samples).all():
            raise AudioError(name, "audio contains NaN or Inf samples")
        with np.errstate(over="ignore"):
            out = samples.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise AudioError(name, "sample values too large for float32")
        return out
    raise AudioError(name, f"unsupported sample dtype {samples.dtype} (expected integer or float samples)")


def _to_mono(samples: np.ndarray, name: str, channels_last: bool) -> np.ndarray:
    """Average channels. Decoded audio is (frames, channels); bare arrays may be (channels, frames)."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(name, f"expected a 1-D or 2-D sample array, got shape {samples.shape}")
    if not channels_last and samples.shape[1] > samples.shape[0] and samples.shape[0] <= 8:
        samples = samples.T
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    return samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 signal with soxr (high quality)."""
    if orig_sr == target_sr:
        return samples
    import librosa

    return librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(
        np.float32, copy=False
    )


def _array_input(audio: AudioInput, default_rate: int, name: str) -> Tuple[np.ndarray, float]:
    """Samples and rate of an ``ndarray`` or ``(array, rate)`` input, validated."""
    if isinstance(audio, tuple):
        samples, rate = audio
    else:
        samples, rate = audio, default_rate
    if not isinstance(samples, np.ndarray):
        try:
            samples = np.asarray(samples)
        except Exception as error:  # ragged lists, objects numpy cannot convert
            raise AudioError(name, f"cannot convert samples to an array ({_short(error)})") from error
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not np.isfinite(rate):
        raise AudioError(name, f"invalid sampling rate {rate!r}")
    if samples.dtype.kind not in "iuf":
        raise AudioError(name, f"unsupported sample dtype {samples.dtype} (expected integer or float samples)")
    return samples, float(rate)


def load_audio(
    audio: AudioInput,
    *,
    sampling_rate: int = SAMPLE_RATE,
    input_sampling_rate: Optional[int] = None,
    max_duration: Optional[float] = DEFAULT_MAX_DURATION,
    min_duration: Optional[float] = DEFAULT_MIN_DURATION,
    name: Optional[str] = None,
) -> np.ndarray:
    """Load any supported input as float32 mono samples at ``sampling_rate``.

    Args:
        audio: a path (wav, flac, ogg, mp3, ...), encoded bytes, a sample array
            (assumed to be at ``input_sampling_rate``, default ``sampling_rate``),
            or an ``(array, rate)`` tuple.
        sampling_rate: rate of the returned signal.
        input_sampling_rate: rate of a bare array input.
        max_duration: longest accepted input in seconds (``None``: no limit).
        min_duration: shortest accepted input in seconds (``None``: anything non-empty).
        name: how to name the input in errors (defaults to its path).

    Raises:
        AudioError: the input is missing, unreadable, empty, non-finite, too short or
            too long. No other exception escapes.
    """
    name = name or source_name(audio)
    if isinstance(audio, (str, Path)):
        samples, rate = _decode(_checked_path(audio, name), name, max_duration)
        channels_last = True
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        if len(audio) == 0:
            raise AudioError(name, "empty bytes")
        samples, rate = _decode(_Buffer(bytes(audio)), name, max_duration)
        channels_last = True
    elif isinstance(audio, np.ndarray) or (isinstance(audio, tuple) and len(audio) == 2):
        samples, rate = _array_input(audio, input_sampling_rate or sampling_rate, name)
        rate = _check_rate(rate, name)
        channels_last = False
    else:
        raise AudioError(name, f"unsupported input type {type(audio).__name__}")
    return _finish(samples, rate, name, channels_last, sampling_rate, max_duration, min_duration)


def _finish(samples: np.ndarray, rate: int, name: str, channels_last: bool, sampling_rate: int,
            max_duration: Optional[float], min_duration: Optional[float]) -> np.ndarray:
    """Shape, dtype, value and duration checks, then resampling."""
    if samples.ndim == 2 and not channels_last and min(samples.shape) > MAX_CHANNELS:
        raise AudioError(name, f"expected at most {MAX_CHANNELS} channels, got shape {samples.shape}")
    samples = _to_mono(as_float32(samples, name) if samples.ndim <= 2 else samples, name, channels_last)
    if samples.size == 0:
        raise AudioError(name, "audio has no samples")
    if not np.isfinite(samples).all():
        raise AudioError(name, "audio contains NaN or Inf samples")
    duration = samples.size / rate
    if max_duration is not None and duration > max_duration:
        raise _too_long(name, duration, max_duration)
    if min_duration is not None and duration < min_duration:
        raise AudioError(name, f"audio is too short ({duration * 1000:.0f} ms, under the "
                               f"{min_duration * 1000:.0f} ms minimum)")
    try:
        samples = resample(samples, rate, sampling_rate)
    except Exception as error:  # soxr refusing an extreme ratio, out of memory...
        raise AudioError(name, f"cannot resample from {rate} Hz to {sampling_rate} Hz ({_short(error)})") from error
    if samples.size == 0:
        raise AudioError(name, "audio has no samples after resampling")
    return np.ascontiguousarray(samples, dtype=np.float32)


class BlockReader:
    """A file (path or encoded bytes) read block by block as float32 mono at its own rate.

    Only one block is in memory at a time, whatever the file's length; the header is checked on
    opening (rate, channels). Formats: those libsndfile reads (wav, flac, ogg/vorbis/opus, mp3,
    aiff, ...); other containers raise :class:`~speech_intent.errors.AudioError`, as do corrupt
    data (naming where it stops), NaN/Inf samples and a file without samples.

    Use as a context manager or call :meth:`close`; iterate for the blocks.
    """

    def __init__(self, audio: Union[str, Path, bytes, bytearray], *, block_seconds: float = 10.0,
                 name: Optional[str] = None) -> None:
        import soundfile as sf

        self.name = name or source_name(audio)
        if isinstance(audio, (bytes, bytearray)):
            if len(audio) == 0:
                raise AudioError(self.name, "empty bytes")
            data: Union[str, io.BytesIO] = _Buffer(bytes(audio))
        elif isinstance(audio, (str, Path)):
            data = _checked_path(audio, self.name)
            if Path(data).suffix.lower() not in _SNDFILE_NATIVE:
                raise AudioError(self.name, f"reading {Path(data).suffix or 'this format'} block by block is not "
                                            "supported (use wav, flac, ogg, opus, mp3 or aiff)")
        else:
            raise AudioError(self.name, f"unsupported input type {type(audio).__name__} (a path or bytes)")
        try:
            self._handle = sf.SoundFile(_sf_path(data))
        except Exception as error:
            raise AudioError(self.name, f"cannot decode audio: not a readable audio file ({_short(error)})") from error
        try:
            self.rate = _check_rate(self._handle.samplerate, self.name)
            if not 1 <= self._handle.channels <= MAX_CHANNELS:
                raise AudioError(self.name, f"unsupported channel count {self._handle.channels} "
                                            f"(accepted: 1-{MAX_CHANNELS})")
        except AudioError:
            self._handle.close()
            raise
        self.block_frames = max(1, int(block_seconds * self.rate))
        self.frames = 0  # frames read so far

    @property
    def duration(self) -> float:
        """Seconds read so far (the whole file's length once the blocks are exhausted)."""
        return self.frames / self.rate

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            try:
                block = self._handle.read(self.block_frames, dtype="float32", always_2d=True)
            except Exception as error:  # corrupt data in the middle of a file
                raise AudioError(self.name, f"cannot decode audio after {self.duration:.1f} s "
                                            f"({_short(error)})") from error
            if len(block) == 0:
                break
            self.frames += len(block)
            yield _to_mono(as_float32(block, self.name), self.name, channels_last=True)
        if self.frames == 0:
            raise AudioError(self.name, "audio has no samples")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "BlockReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_silent(samples: np.ndarray, threshold: float = SILENCE_PEAK) -> bool:
    """True when the peak amplitude is under ``threshold``: digital silence, nothing to transcribe."""
    return samples.size == 0 or float(np.max(np.abs(samples))) < threshold


def duration_seconds(samples: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> float:
    """Duration of a mono signal in seconds."""
    return float(len(samples)) / float(sampling_rate)

"""Audio input: files, bytes or arrays in, float32 mono at the model's rate out.

Decoding uses libsndfile (``soundfile``: wav, flac, ogg, mp3 with libsndfile
>= 1.1) with a fallback through ``librosa``/ffmpeg for other containers;
resampling uses soxr (``librosa.resample(res_type="soxr_hq")``).
Every failure raises :class:`~speech_intent.errors.AudioError` naming the source.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from .errors import AudioError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Longest input accepted by default, in seconds (Whisper's window is 30 s).
DEFAULT_MAX_DURATION = 30.0
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".m4a", ".aiff", ".aif")

AudioInput = Union[str, Path, bytes, bytearray, np.ndarray, Tuple[np.ndarray, int]]


def source_name(audio: AudioInput, index: Optional[int] = None) -> str:
    """A printable name for an input: its path, or ``<array #i>`` / ``<bytes #i>``."""
    if isinstance(audio, (str, Path)):
        return str(audio)
    kind = "bytes" if isinstance(audio, (bytes, bytearray)) else "array"
    return f"<{kind}>" if index is None else f"<{kind} #{index}>"


def _decode_file_like(data: Union[str, io.BytesIO], name: str) -> Tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        samples, rate = sf.read(data, dtype="float32", always_2d=True)
        return samples, int(rate)
    except Exception as sf_error:  # libsndfile could not decode: try ffmpeg via librosa
        if isinstance(data, io.BytesIO):
            raise AudioError(name, f"cannot decode audio bytes ({_short(sf_error)})") from sf_error
        try:
            import warnings

            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                samples, rate = librosa.load(data, sr=None, mono=False)
        except Exception as fallback_error:
            raise AudioError(
                name, f"cannot decode audio: not a readable audio file ({_short(sf_error)})"
            ) from fallback_error
        samples = np.asarray(samples, dtype=np.float32)
        samples = samples[:, None] if samples.ndim == 1 else samples.T
        return samples, int(rate)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def _to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(name, f"expected a 1-D or 2-D sample array, got shape {samples.shape}")
    # (frames, channels) is the soundfile layout; accept (channels, frames) for short channel axes.
    if samples.shape[1] > samples.shape[0] and samples.shape[0] <= 8:
        samples = samples.T
    return samples.mean(axis=1)


def _as_float32(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.dtype.kind in "iu":
        info = np.iinfo(samples.dtype)
        scale = float(max(abs(info.min), info.max))
        offset = 0.0 if samples.dtype.kind == "i" else (info.max + 1) / 2.0
        return ((samples.astype(np.float64) - offset) / scale).astype(np.float32)
    if samples.dtype.kind == "f":
        return samples.astype(np.float32, copy=False)
    raise AudioError(name, f"unsupported sample dtype {samples.dtype}")


def resample(samples: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float32 signal with soxr (high quality)."""
    if orig_sr == target_sr:
        return samples
    import librosa

    return librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq").astype(
        np.float32, copy=False
    )


def load_audio(
    audio: AudioInput,
    *,
    sampling_rate: int = SAMPLE_RATE,
    input_sampling_rate: Optional[int] = None,
    max_duration: Optional[float] = DEFAULT_MAX_DURATION,
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
        name: how to name the input in errors (defaults to its path).

    Raises:
        AudioError: the input is missing, unreadable, empty, non-finite or too long.
    """
    name = name or source_name(audio)
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.exists():
            raise AudioError(name, "file not found")
        if path.is_dir():
            raise AudioError(name, "is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioError(name, "file is empty (0 bytes)")
        samples, rate = _decode_file_like(str(path), name)
    elif isinstance(audio, (bytes, bytearray)):
        if len(audio) == 0:
            raise AudioError(name, "empty bytes")
        samples, rate = _decode_file_like(io.BytesIO(bytes(audio)), name)
    elif isinstance(audio, tuple) and len(audio) == 2:
        samples, rate = np.asarray(audio[0]), int(audio[1])
    elif isinstance(audio, np.ndarray):
        samples, rate = audio, int(input_sampling_rate or sampling_rate)
    else:
        raise AudioError(name, f"unsupported input type {type(audio).__name__}")

    if rate <= 0:
        raise AudioError(name, f"invalid sampling rate {rate}")
    samples = _as_float32(_to_mono(samples, name), name)
    if samples.size == 0:
        raise AudioError(name, "audio has no samples")
    if not np.isfinite(samples).all():
        raise AudioError(name, "audio contains NaN or Inf samples")
    duration = samples.size / rate
    if max_duration is not None and duration > max_duration:
        raise AudioError(name, f"audio is {duration:.1f} s long, over the {max_duration:.1f} s limit")
    samples = resample(samples, rate, sampling_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def duration_seconds(samples: np.ndarray, sampling_rate: int = SAMPLE_RATE) -> float:
    """Duration of a mono signal in seconds."""
    return float(len(samples)) / float(sampling_rate)

"""Audio loading: formats, rates, channels, typed errors naming the file, and property tests that
load_audio never fails in an untyped way (a longer run of them: ``benchmarks/fuzz.py``)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from speech_intent.audio import load_audio
from speech_intent.errors import AudioError

from .conftest import _signal
from .strategies import FAST, audio_bytes, sample_arrays, sampling_rates


def _tone(rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = (0.25 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "FLOAT"),
                                            (".flac", "PCM_16"), (".ogg", "VORBIS")])
def test_formats_decode_to_float32_mono_16k(tmp_path, suffix, subtype):
    path = tmp_path / f"tone{suffix}"
    sf.write(path, _tone(16000), 16000, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) < 400  # vorbis may pad a little
    assert 0.2 < np.abs(audio).max() < 0.3


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_resampled_to_16k(tmp_path, rate):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(rate, 2.0), rate)
    audio = load_audio(path)
    assert abs(len(audio) - 32000) <= 2
    # 220 Hz survives resampling: dominant FFT bin
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 220) < 2


def test_multichannel_is_averaged(tmp_path):
    path = tmp_path / "six.wav"
    sf.write(path, _tone(16000, 1.0, channels=6), 16000)
    audio = load_audio(path)
    assert audio.ndim == 1 and len(audio) == 16000


def test_bytes_and_arrays(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(16000), 16000)
    from_bytes = load_audio(path.read_bytes())
    np.testing.assert_allclose(from_bytes, load_audio(path), atol=1e-6)
    int16 = (_tone(16000) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(int16), _tone(16000), atol=1e-3)
    assert len(load_audio((_tone(8000), 8000))) == 16000


@pytest.mark.parametrize("kind,reason", [("corrupt", "cannot decode"), ("empty", "empty"),
                                         ("text", "cannot decode"), ("missing", "not found")])
def test_bad_files_raise_typed_errors_naming_the_file(bad_files, kind, reason):
    with pytest.raises(AudioError) as info:
        load_audio(bad_files[kind])
    assert str(bad_files[kind]) in str(info.value)
    assert reason in info.value.reason


def test_directory_non_finite_empty_and_too_long(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)
    bad = _tone(16000)
    bad[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(bad)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match="limit"):
        load_audio(np.zeros(16000 * 31, dtype=np.float32))
    assert len(load_audio(np.zeros(16000 * 31, dtype=np.float32), max_duration=None)) == 16000 * 31


def _check_loaded(audio) -> None:
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size > 0 and np.isfinite(audio).all()


@FAST
@given(audio_bytes())
def test_load_audio_on_any_bytes_returns_audio_or_raises_audio_error(data):
    try:
        _check_loaded(load_audio(data, name="<fuzz>"))
    except AudioError as error:
        assert error.source == "<fuzz>" and error.reason


@FAST
@given(sample_arrays(), sampling_rates(), st.booleans())
def test_load_audio_on_any_array_returns_audio_or_raises_audio_error(array, rate, as_tuple):
    try:
        audio = load_audio((array, rate) if as_tuple else array,
                           input_sampling_rate=rate if isinstance(rate, int) and rate > 0 else None)
    except AudioError as error:
        assert error.reason
        return
    _check_loaded(audio)


def test_array_inputs_are_scaled_before_downmixing_and_validated():
    from speech_intent.audio import load_audio
    from speech_intent.errors import AudioError

    x = _signal(16000, 0.5)
    stereo16 = (np.stack([x, x], axis=1) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(stereo16), x, atol=1e-3)  # int stereo: scaled, then averaged
    np.testing.assert_allclose(load_audio(stereo16.T.copy()), x, atol=1e-3)  # (channels, frames) layout
    for bad, reason in [((x, float("nan")), "invalid sampling rate"), ((x, 10), "unsupported sampling rate"),
                        (x[:1000], "too short"), (x.astype(np.complex64), "unsupported sample dtype"),
                        (np.array(["a"] * 4000), "unsupported sample dtype"), (x.reshape(2, 5, -1), "1-D or 2-D")]:
        with pytest.raises(AudioError, match=reason):
            load_audio(bad)
    assert len(load_audio(x[:1000], min_duration=None)) == 1000


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.int32])
def test_integer_arrays_signed_or_unsigned_are_scaled_to_full_range(dtype):
    x = _signal(16000, 0.5)
    x = x / np.abs(x).max()  # full scale
    info = np.iinfo(dtype)
    half = (float(info.max) - float(info.min) + 1) / 2  # unsigned PCM: centred on half its range
    centre = 0.0 if info.min < 0 else half
    pcm = np.clip(np.round(x * half + centre), info.min, info.max).astype(dtype)
    np.testing.assert_allclose(load_audio(pcm), x, atol=2.5 / half)


def test_files_whose_names_are_not_utf8_are_read(tmp_path):
    import os

    from speech_intent.audio import BlockReader

    path = tmp_path / os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name: surrogate-escaped by the OS layer
    sf.write(os.fsencode(path), _tone(16000), 16000)
    assert len(load_audio(path)) == 16000
    with BlockReader(str(path)) as reader:
        assert sum(len(block) for block in reader) == 16000

"""Property tests: the normaliser and load_audio never fail in an untyped way.

A longer run of the same properties (>= 10,000 inputs) is ``benchmarks/fuzz.py``.
"""
from __future__ import annotations

import unicodedata

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speech_intent.audio import load_audio
from speech_intent.errors import AudioError
from speech_intent.normalize import TextNormalizer

from .strategies import audio_bytes, sample_arrays, sampling_rates, texts

FAST = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NORMALIZE = TextNormalizer()


def _is_punctuation_or_symbol(char: str) -> bool:
    return char != "'" and unicodedata.category(char)[0] in "PS"


@FAST
@given(texts())
def test_normalizer_never_raises_is_idempotent_and_plain(text):
    once = NORMALIZE(text)
    assert NORMALIZE(once) == once
    assert once == once.lower()
    assert not any(_is_punctuation_or_symbol(c) for c in once), once
    assert once == once.strip() and "  " not in once


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

"""Hypothesis strategies shared by the property tests (``tests/test_audio.py``,
``tests/test_normalize.py``) and ``benchmarks/fuzz.py``, and the settings those tests run with.

Audio bytes come three ways: plain random bytes, real encoded files (wav in several
sample formats, flac, ogg, aiff) with random byte flips / truncation / overwritten
header fields, and synthetic RIFF/WAVE headers with arbitrary format fields.
"""
from __future__ import annotations

import io
import struct
from functools import lru_cache
from typing import List

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

INTERESTING_U32 = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 16000, 44100]


@lru_cache(maxsize=1)
def seed_files() -> List[bytes]:
    """Small valid encoded files (0.2 s at 8 kHz) in every container/sample format we read."""
    t = np.arange(1600) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    seeds = []
    for fmt, subtype, data in [("WAV", "PCM_16", tone), ("WAV", "PCM_U8", tone), ("WAV", "PCM_24", tone),
                               ("WAV", "FLOAT", tone), ("WAV", "ULAW", tone), ("WAV", "IMA_ADPCM", tone),
                               ("WAV", "PCM_16", np.stack([tone, tone], 1)), ("FLAC", "PCM_16", tone),
                               ("OGG", "VORBIS", tone), ("AIFF", "PCM_16", tone)]:
        buffer = io.BytesIO()
        sf.write(buffer, data, 8000, format=fmt, subtype=subtype)
        seeds.append(buffer.getvalue())
    return seeds


@st.composite
def mutated_audio(draw) -> bytes:
    """A real encoded file with a few bytes flipped, a header field overwritten, and/or cut short."""
    data = bytearray(draw(st.sampled_from(seed_files())))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, min(len(data) - 1, draw(st.sampled_from([64, 512, len(data) - 1])))))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        offset = draw(st.integers(0, 60))
        data[offset:offset + 4] = struct.pack("<I", draw(st.sampled_from(INTERESTING_U32)))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    return bytes(data)


@st.composite
def synthetic_wav(draw) -> bytes:
    """A RIFF/WAVE header with arbitrary fmt fields and a random payload."""
    fmt_tag = draw(st.sampled_from([1, 3, 6, 7, 2, 0x11, 0x55, 0xFFFE, 0, 0xFFFF]))
    channels = draw(st.sampled_from([0, 1, 2, 6, 255, 0xFFFF]))
    rate = draw(st.sampled_from([0, 1, 8000, 16000, 48000, 768000, 0x7FFFFFFF, 0xFFFFFFFF]))
    bits = draw(st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 0xFFFF]))
    payload = draw(st.binary(max_size=512))
    data_size = draw(st.sampled_from([len(payload), 0, 0xFFFFFFFF, len(payload) * 2]))
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def audio_bytes() -> st.SearchStrategy[bytes]:
    """Random bytes, mutated real files and synthetic WAV headers."""
    return st.one_of(st.binary(max_size=4096), mutated_audio(), synthetic_wav())


def _dtypes() -> st.SearchStrategy[np.dtype]:
    return st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                     hnp.complex_number_dtypes(), hnp.boolean_dtypes(), hnp.datetime64_dtypes(),
                     st.just(np.dtype(object)), st.just(np.dtype("U3")))


def sample_arrays() -> st.SearchStrategy[np.ndarray]:
    """Arrays of any dtype and shape (0-3 dims), NaN and Inf included for floats."""
    shapes = st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
                       st.tuples(st.integers(0, 4000)), st.tuples(st.integers(1, 8), st.integers(0, 3000)),
                       st.tuples(st.integers(0, 3000), st.integers(1, 8)))
    return _dtypes().flatmap(lambda dtype: shapes.flatmap(
        lambda shape: hnp.arrays(dtype, shape, elements=None if dtype.kind != "O" else st.none())))


def sampling_rates() -> st.SearchStrategy:
    """Valid, extreme and nonsensical sampling rates."""
    return st.one_of(st.sampled_from([8000, 16000, 44100, 48000]), st.integers(-10, 10**7),
                     st.floats(allow_nan=True, allow_infinity=True), st.none(), st.just("16000"))


def texts() -> st.SearchStrategy[str]:
    """Any unicode text, plus text built from the pieces the normaliser rewrites (numbers, units, titles, times)."""
    pieces = st.sampled_from(list("0123456789") * 3 + list(":.,-'%$&+°_ ") + [
        "am", "pm", "A.M.", "st", "St.", "Louis", "nd", "rd", "th", "s", "'s", "oz", "lbs", "min", "Dr.", "mr",
        "\u2019", "\u2013", "ﬁ", "İ", "²", "٣", "ß", "\u0301", "\n", "\t"])
    return st.one_of(st.text(), st.lists(pieces, max_size=30).map("".join))


#: Settings of the property tests in the test suite (``benchmarks/fuzz.py`` runs many more inputs).
FAST = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

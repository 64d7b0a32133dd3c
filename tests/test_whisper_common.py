"""speech_intent.asr.whisper_common: encoder context length, encoder slicing step, compression ratio."""
from __future__ import annotations

from speech_intent.asr.whisper_common import (
    COMPRESSION_RATIO_THRESHOLD,
    WHISPER_FRAMES,
    compression_ratio,
    context_frames,
    encoder_step,
    needs_full_window,
)


def test_context_frames():
    assert context_frames([16000 * 5], None) == WHISPER_FRAMES
    assert context_frames([16000 * 5], 2.0) == 700  # 500 frames of audio + 200 margin
    assert context_frames([16000 * 5 + 1], 2.0) == 800  # rounded up to whole seconds
    assert context_frames([16000 * 2, 16000 * 5], 1.0, min_context=10.0) == 1000  # the floor
    assert context_frames([16000 * 40], 2.0) == WHISPER_FRAMES  # capped at the window
    assert context_frames([], 0.0) == 100
    assert context_frames([4800], 0.0, multiple=1) % 2 == 0


def test_compression_ratio_flags_loops_only():
    assert compression_ratio("Set a timer for ten minutes.") < COMPRESSION_RATIO_THRESHOLD
    assert compression_ratio("Play some jazz. " * 12) > COMPRESSION_RATIO_THRESHOLD
    assert compression_ratio("") == 0.0


def test_encoder_step():
    assert encoder_step(3000) == 1 and encoder_step(1500) == 2 and encoder_step(1000) == 4
    assert encoder_step(3000, float("inf")) >= 10**6


def test_needs_full_window_rules():
    """The short-context safety net: Whisper's own unreliability signals, and for grammar decoding
    an incomplete sentence instead of a low log-probability."""
    good = "a medium latte with oat milk"
    assert not needs_full_window(good, 0.8, 8, 128)
    assert needs_full_window("", 0.0, 0, 128)  # nothing heard
    assert needs_full_window(good, 0.8, 128, 128)  # cut off by the token limit
    assert needs_full_window("the the the the the the the the the the the the the the", 0.9, 14, 128)
    assert needs_full_window(good, 0.30, 8, 128)  # mean log-probability below -1
    assert not needs_full_window(good, 0.38, 8, 128)
    assert not needs_full_window(good, 0.05, 8, 128, in_grammar=True)  # constrained: low scores are normal
    assert needs_full_window(good, 0.9, 8, 128, in_grammar=False)

"""Speed options of the Whisper stages: shorter encoder context, CPU encoder slicing, threads.

The helpers they use (context_frames, encoder_step, ...) are tested in ``test_whisper_common.py``."""
from __future__ import annotations

import numpy as np
import pytest

from speech_intent.asr import FasterWhisperASR, WhisperASR
from speech_intent.asr.whisper_common import WHISPER_FRAMES

from .compare import assert_transcripts_match


def test_short_encoder_matches_transformers_encoder(tiny_whisper_dir):
    """The own encoder pass used for shorter windows equals transformers' encoder on 30 s."""
    import torch

    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu")
    features = torch.randn(2, 80, WHISPER_FRAMES)
    with torch.inference_mode():
        expected = asr.model.get_encoder()(features).last_hidden_state
        torch.testing.assert_close(asr._encode_short(features), expected)
        short = asr._encode_short(features[..., :1000])
    assert short.shape == (2, 500, expected.shape[-1])


def test_whisper_encoder_slicing_and_short_context(tiny_whisper_dir, sine, monkeypatch):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8)
    clips = [sine, sine[:8000], np.zeros(24000, dtype=np.float32)]
    asr.configure(encoder_budget=float("inf"))
    whole = asr.transcribe(clips, batch_size=3)
    asr.configure(encoder_budget=1.0)  # one clip per encoder call
    sliced = asr.transcribe(clips, batch_size=3)
    assert_transcripts_match(sliced, whole, atol=1e-5)  # other encoder batch shapes: see tests/compare.py
    import speech_intent.asr.whisper as whisper_module

    def valid(transcripts) -> bool:
        return len(transcripts) == 3 and all(isinstance(t.text, str) and 0.0 <= t.confidence <= 1.0
                                             for t in transcripts)

    frames: list = []  # the frame count of each input the encoder ran on (the features' last axis)
    hook = asr.model.get_encoder().conv1.register_forward_hook(lambda module, args, out: frames.append(
        args[0].shape[-1]))
    try:
        asr.configure(context_margin=1.0)  # the longest clip (1.5 s) + 1 s, but at least min_context (10 s)
        short = asr.transcribe(clips, batch_size=3)
        assert frames[:3] == [1000, 1000, 1000], frames  # one clip per encoder call, each on the short window
        assert len(frames) <= 6 and all(n == 3000 for n in frames[3:]), frames  # the safety net's redos: 30 s
        assert valid(short)
        monkeypatch.setattr(whisper_module, "needs_full_window", lambda *args, **kwargs: False)
        asr.configure(min_context=0.0)  # 2.5 s, rounded up to whole seconds: 300 frames
        frames.clear()
        kept = asr.transcribe(clips, batch_size=3)  # no safety net: the short window's transcripts are kept
        assert frames == [300, 300, 300] and valid(kept), frames
    finally:
        hook.remove()


def test_short_context_is_the_default_and_unreliable_clips_are_redone_on_30_s(tiny_whisper_dir, sine, monkeypatch):
    """A random model runs into the token limit on every clip: the safety net decodes each again on
    the full window, so the results are the 30 s ones (without it they are not: checked below)."""
    import speech_intent.asr.whisper as whisper_module

    clips = [sine, sine[:8000]]
    short = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=6)
    assert short.options.context_margin == 2.0
    full = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=6, context_margin=None)
    expected = [(t.text, t.confidence) for t in full.transcribe(clips, batch_size=2)]
    assert [(t.text, t.confidence) for t in short.transcribe(clips, batch_size=2)] == expected
    monkeypatch.setattr(whisper_module, "needs_full_window", lambda *args, **kwargs: False)
    assert [(t.text, t.confidence) for t in short.transcribe(clips, batch_size=2)] != expected


@pytest.mark.slow
def test_faster_whisper_slicing_threads_and_short_context(sine):
    from speech_intent.device import available_cpus

    asr = FasterWhisperASR.from_pretrained(None, device="cpu")
    assert asr.num_workers == 1
    clips = [sine, np.zeros(16000, dtype=np.float32), np.tile(sine, 3)]
    asr.configure(encoder_budget=float("inf"))
    whole = asr.transcribe(clips, batch_size=3)
    asr.configure(encoder_budget=1.0)
    sliced = asr.transcribe(clips, batch_size=3)
    assert_transcripts_match(sliced, whole)  # the encoder on slices of the batch: other shapes, same results
    short = FasterWhisperASR.from_pretrained(None, device="cpu", context_margin=2.0).transcribe(clips, batch_size=3)
    assert short[1].text == "" and len(short) == 3
    two = FasterWhisperASR.from_pretrained(None, device="cpu", num_workers=2, cpu_threads=1)
    assert two.num_workers == 2
    assert_transcripts_match(two.transcribe(clips, batch_size=3), whole)  # one thread, not all
    assert available_cpus() >= 1


def test_cached_suppression_equals_transformers_processors(tiny_whisper_dir, sine, monkeypatch):
    """Whisper's token suppression with masks built once gives transformers' own outputs: per step,
    and end to end (greedy and beam search) against generate with its own processors."""
    import torch
    from transformers.generation.logits_process import (
        SuppressTokensAtBeginLogitsProcessor,
        SuppressTokensLogitsProcessor,
    )

    import speech_intent.asr.whisper as whisper_module
    from speech_intent.asr.generation import CachedSuppressAtBegin, CachedSuppressTokens

    tokens, scores = [1, 5, 9, 200], torch.randn(3, 50)
    ours, theirs = CachedSuppressAtBegin(tokens), SuppressTokensAtBeginLogitsProcessor(tokens, 0)
    for length in (2, 3, 4):
        ours.set_begin_index(3)
        theirs.set_begin_index(3)
        ids = torch.zeros(3, length, dtype=torch.long)
        torch.testing.assert_close(ours(ids, scores), theirs(ids, scores))
        torch.testing.assert_close(CachedSuppressTokens(tokens)(ids, scores),
                                   SuppressTokensLogitsProcessor(tokens)(ids, scores))
    assert torch.isinf(CachedSuppressTokens(tokens)(ids, scores)[:, [1, 5, 9]]).all()

    clips = [sine, sine[:9000]]
    for beams in (1, 3):
        asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=12, num_beams=beams,
                                         context_margin=None)
        asr.model.generation_config.suppress_tokens = list(range(0, 50256, 7))  # released models list ~90
        assert asr.model.generation_config.begin_suppress_tokens
        cached = [(t.text, t.confidence) for t in asr.transcribe(clips, batch_size=2)]
        with monkeypatch.context() as patch:
            patch.setattr(whisper_module, "suppressors", lambda config: ([], {}))  # transformers' own
            assert [(t.text, t.confidence) for t in asr.transcribe(clips, batch_size=2)] == cached


def test_faster_whisper_threads_follow_omp_num_threads_as_torch_does(monkeypatch, caplog):
    """A Ray actor of 1 CPU gets OMP_NUM_THREADS=1: CTranslate2 then uses 1 thread, as torch does, not every core."""
    import logging

    from speech_intent.device import available_cpus, thread_budget

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_budget() == 1
    with caplog.at_level(logging.INFO, logger="speech_intent.asr.faster_whisper"):
        FasterWhisperASR.from_pretrained(None, device="cpu")
    assert "1 worker(s) x 1 CPU threads" in caplog.text
    monkeypatch.setenv("OMP_NUM_THREADS", "1000")
    assert thread_budget() == available_cpus()  # never more than the cores it may run on
    for unset in ("", "0", "four"):
        monkeypatch.setenv("OMP_NUM_THREADS", unset)
        assert thread_budget() == available_cpus()

"""ASR stages on tiny random models loaded through the real from_pretrained path."""
from __future__ import annotations

import numpy as np
import pytest

from speech_intent.asr import ASRStage, FasterWhisperASR, Wav2Vec2ASR, WhisperASR, detect_backend, load_asr
from speech_intent.errors import AudioError

from .compare import assert_transcripts_match


def _clips(sine):
    rng = np.random.default_rng(0)
    return [sine, sine[:8000], (0.1 * rng.standard_normal(24000)).astype(np.float32)]


def test_whisper_batched_transcripts_match_one_at_a_time(tiny_whisper_dir, sine):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8)
    assert isinstance(asr, ASRStage) and asr.backend == "whisper"
    clips = _clips(sine)
    batched = asr.transcribe(clips, batch_size=3)
    single = [asr.transcribe([c], batch_size=1)[0] for c in clips]
    assert_transcripts_match(batched, single)  # other batch shapes: near-ties of the random model may flip
    for t, clip in zip(batched, clips):
        assert 0.0 <= t.confidence <= 1.0
        assert t.duration == pytest.approx(len(clip) / 16000)


def test_whisper_generate_does_not_log_the_length_notice(tiny_whisper_dir, sine):
    """The checkpoint's max_length and our max_new_tokens used to log a warning on every batch."""
    import logging

    records: list = []
    handler = logging.Handler()
    handler.emit = records.append
    generation_logger = logging.getLogger("transformers.generation.utils")
    generation_logger.addHandler(handler)
    try:
        WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8).transcribe([sine])
        generation_logger.warning("an unrelated generate warning")  # other warnings still pass
    finally:
        generation_logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert not [m for m in messages if "will take precedence" in m]
    assert messages[-1] == "an unrelated generate warning"


def test_whisper_save_load_round_trip(tiny_whisper_dir, sine, tmp_path):
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=8)
    asr.save_pretrained(tmp_path / "copy")
    again = WhisperASR.from_pretrained(tmp_path / "copy", device="cpu", max_new_tokens=8)
    assert [t.text for t in asr.transcribe(_clips(sine))] == [t.text for t in again.transcribe(_clips(sine))]
    assert detect_backend(tmp_path / "copy") == "whisper"


def test_wav2vec2_padding_does_not_change_results(tiny_wav2vec2_dir, sine):
    asr = Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu")
    clips = _clips(sine)
    batched = asr.transcribe(clips, batch_size=3)  # padded to the longest clip, masked
    single = [asr.transcribe([c], batch_size=1)[0] for c in clips]
    assert_transcripts_match(batched, single, atol=1e-4)
    assert all(t.text == t.text.lower() for t in batched)
    assert detect_backend(tiny_wav2vec2_dir) == "wav2vec2"


def test_wav2vec2_logits_ignore_padding(tiny_wav2vec2_dir, sine):
    """The attention mask really is used: padded frames leave real frames' logits unchanged."""
    import torch

    asr = Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu")
    fe = asr.processor.feature_extractor
    short = fe([sine[:8000]], sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
    padded = fe([sine[:8000], sine], sampling_rate=16000, padding=True, return_tensors="pt",
                return_attention_mask=True)
    with torch.no_grad():
        a = asr.model(short.input_values, attention_mask=short.attention_mask).logits[0]
        b = asr.model(padded.input_values, attention_mask=padded.attention_mask).logits[0, : a.shape[0]]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_stage_call_decodes_paths_and_raises_on_bad_input(tiny_wav2vec2_dir, sine, tmp_path, bad_files):
    import soundfile as sf

    asr = load_asr(tiny_wav2vec2_dir, device="cpu")
    path = tmp_path / "a.wav"
    sf.write(path, sine, 16000)
    assert len(asr([str(path), sine])) == 2
    with pytest.raises(AudioError, match="empty"):
        asr([str(bad_files["empty"])])


@pytest.mark.slow
def test_faster_whisper_bundled_batch(sine):
    asr = FasterWhisperASR.from_pretrained(None, device="cpu")
    silence = np.zeros(16000, dtype=np.float32)
    out = asr.transcribe([sine, silence], batch_size=2)
    assert len(out) == 2 and out[1].text == "" and out[1].confidence == 0.0
    assert detect_backend("tiny.en") == "faster-whisper"


def test_num_workers_lets_batches_run_at_once_from_several_threads(tiny_whisper_pipeline_dir):
    """A server's model workers call the stage from as many threads: faster-whisper gets that many
    CTranslate2 workers and gives each thread the transcripts it gives one caller; the torch backends
    take concurrent calls as they are (the option is accepted, not passed on)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from speech_intent import SpeechIntentPipeline
    from speech_intent.audio import load_audio

    clips = [load_audio(p) for p in sorted((Path(__file__).parents[1] / "assets" / "audio").glob("*.wav"))[:4]]
    asr = load_asr(None, device="cpu", num_workers=2)
    assert asr.num_workers == 2 and asr.model.model.num_workers == 2
    alone = [t.text for t in asr.transcribe(clips[:2], batch_size=2) + asr.transcribe(clips[2:], batch_size=2)]
    with ThreadPoolExecutor(2) as pool:
        together = [t.text for part in pool.map(lambda c: asr.transcribe(c, batch_size=2), [clips[:2], clips[2:]])
                    for t in part]
    assert_transcripts_match(together, alone)  # other threads, other CTranslate2 workers: see compare.py
    assert all(alone) and all(together)
    pipe = SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu", num_workers=2)
    assert pipe.asr.backend == "whisper"

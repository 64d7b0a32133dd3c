"""SpeechIntentPipeline with every ASR backend, per-file errors, save/load round trips."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speech_intent import FasterWhisperASR, IntentClassifier, SpeechIntentPipeline, Wav2Vec2ASR, WhisperASR
from speech_intent.errors import ModelLoadError

from .conftest import LABELS


@pytest.fixture()
def wav_dir(tmp_path, sine):
    for i, n in enumerate([16000, 8000, 20000]):
        sf.write(tmp_path / f"clip{i}.wav", sine[:n] if n <= len(sine) else np.tile(sine, 2)[:n], 16000)
    return tmp_path


def _intent(tiny_bert_dir):
    return IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")


@pytest.mark.parametrize("backend", ["whisper", "wav2vec2"])
def test_each_transformers_backend_runs_in_a_pipeline(backend, tiny_whisper_dir, tiny_wav2vec2_dir, tiny_bert_dir,
                                                      wav_dir, bad_files):
    asr = (WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=6) if backend == "whisper"
           else Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"))
    pipe = SpeechIntentPipeline(asr, _intent(tiny_bert_dir))
    good = sorted(str(p) for p in wav_dir.glob("clip*.wav"))
    inputs = [good[0], str(bad_files["corrupt"]), good[1], str(bad_files["empty"]), str(bad_files["text"]), good[2]]
    results = pipe(inputs, batch_size=2)
    assert [r.path for r in results] == inputs
    for r in results:
        bad = r.path in {str(v) for v in bad_files.values()}
        assert (r.error is not None) == bad
        if bad:
            assert r.path in r.error and r.intent is None and r.transcript is None
        else:
            assert isinstance(r.transcript, str) and r.duration > 0
            if r.text:
                assert r.intent in LABELS and 0 < r.confidence <= 1 and len(r.top_k) == 3
        json.dumps(r.to_dict())  # serialisable


def test_results_do_not_depend_on_batch_size(tiny_wav2vec2_dir, tiny_bert_dir, wav_dir):
    pipe = SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"), _intent(tiny_bert_dir))
    files = sorted(str(p) for p in wav_dir.glob("clip*.wav"))
    a = [r.to_dict() for r in pipe(files, batch_size=1)]
    b = [r.to_dict() for r in pipe(files, batch_size=3)]
    assert [r["transcript"] for r in a] == [r["transcript"] for r in b]
    for x, y in zip(a, b):
        assert x["intent"] == y["intent"]
        assert x["confidence"] == pytest.approx(y["confidence"], abs=1e-4)


@pytest.mark.parametrize("backend", ["whisper", "wav2vec2"])
def test_save_pretrained_round_trip_reproduces_predictions(backend, tiny_whisper_dir, tiny_wav2vec2_dir,
                                                           tiny_bert_dir, wav_dir, tmp_path):
    asr = (WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=6) if backend == "whisper"
           else Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"))
    pipe = SpeechIntentPipeline(asr, _intent(tiny_bert_dir), top_k=2)
    files = sorted(str(p) for p in wav_dir.glob("clip*.wav"))
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "pipeline.json").is_file()
    again = SpeechIntentPipeline.from_pretrained(tmp_path / "saved", device="cpu")
    assert type(again.asr) is type(asr) and again.top_k == 2
    assert [r.to_dict() for r in pipe(files)] == [r.to_dict() for r in again(files)]


def test_pipeline_dir_missing_a_stage_is_a_clear_error(tiny_wav2vec2_dir, tiny_bert_dir, tmp_path):
    import shutil

    pipe = SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"), _intent(tiny_bert_dir))
    pipe.save_pretrained(tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "intent")
    with pytest.raises(ModelLoadError, match="missing its intent stage"):
        SpeechIntentPipeline.from_pretrained(tmp_path / "p")
    with pytest.raises(ModelLoadError, match="not a pipeline directory"):
        SpeechIntentPipeline.from_pretrained(tmp_path)


def test_stages_stay_usable_on_their_own(tiny_wav2vec2_dir, tiny_bert_dir, sine):
    pipe = SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"), _intent(tiny_bert_dir))
    assert len(pipe.asr([sine])) == 1
    assert pipe.intent(["play some jazz"])[0].intent in LABELS
    assert len(pipe([sine, sine])) == 2 and pipe(sine)[0].path == "<array #0>"


@pytest.mark.slow
def test_faster_whisper_runs_in_a_pipeline_and_round_trips(tiny_bert_dir, tmp_path, bad_files):
    from .conftest import ASSETS

    files = sorted(str(p) for p in (ASSETS / "audio").glob("*.wav"))[:3]
    assert files, "assets/audio has no sample commands"
    pipe = SpeechIntentPipeline(FasterWhisperASR.from_pretrained(None, device="cpu"), _intent(tiny_bert_dir))
    results = pipe(files + [str(bad_files["text"])], batch_size=2)
    assert all(r.transcript for r in results[:3]) and results[3].error
    pipe.save_pretrained(tmp_path / "fw")
    again = SpeechIntentPipeline.from_pretrained(tmp_path / "fw", device="cpu")
    assert isinstance(again.asr, FasterWhisperASR)
    assert [r.to_dict() for r in again(files)] == [r.to_dict() for r in results[:3]]

"""End to end with the real bundled models on the sample commands in assets/audio.

The default intent model is fine-tuned on first use and cached
(``$SPEECH_INTENT_CACHE``); later sessions load it in seconds.
"""
from __future__ import annotations

from pathlib import Path

import jiwer
import pytest

from speech_intent import SpeechIntentPipeline, TextNormalizer, WhisperASR

from .conftest import AUDIO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def default_results(default_pipe):
    return default_pipe(sorted(str(p) for p in AUDIO.glob("*.wav")), batch_size=8)


def _scores(results, manifest):
    norm = TextNormalizer()
    by_name = {Path(r.path).name: r for r in results}
    refs = [norm(manifest[n]["text"]) for n in sorted(manifest)]
    hyps = [norm(by_name[n].transcript or "") for n in sorted(manifest)]
    accuracy = sum(by_name[n].intent == manifest[n]["intent"] for n in manifest) / len(manifest)
    return accuracy, jiwer.wer(refs, hyps)


def test_default_pipeline_on_sample_commands(default_results, manifest):
    assert len(default_results) == len(manifest) >= 30
    assert all(r.error is None for r in default_results)
    accuracy, wer = _scores(default_results, manifest)
    print(f"default pipeline: intent accuracy {accuracy:.1%}, WER {wer:.1%}")
    assert accuracy >= 0.90
    assert wer <= 0.15


def test_bad_files_get_errors_and_the_rest_are_right(default_pipe, manifest, bad_files):
    good = [str(AUDIO / n) for n in sorted(manifest)[:4]]
    inputs = [good[0], str(bad_files["corrupt"]), good[1], str(bad_files["empty"]), good[2],
              str(bad_files["text"]), good[3]]
    results = default_pipe(inputs, batch_size=3)
    assert [r.path for r in results] == inputs
    for r in results:
        if r.path in good:
            assert r.error is None and r.intent == manifest[Path(r.path).name]["intent"]
        else:
            assert r.error and r.path in r.error and r.intent is None


def test_converted_tiny_en_runs_in_whisper_asr(default_pipe, default_results, manifest, tmp_path_factory):
    from speech_intent.asr import convert_ctranslate2_whisper
    from speech_intent.bundled import bundled_whisper_path

    out = convert_ctranslate2_whisper(bundled_whisper_path(), tmp_path_factory.mktemp("tiny-en-hf"))
    pipe = SpeechIntentPipeline(WhisperASR.from_pretrained(out, device="cpu"), default_pipe.intent)
    results = pipe(sorted(str(p) for p in AUDIO.glob("*.wav")), batch_size=8)
    accuracy, wer = _scores(results, manifest)
    same = sum(a.transcript == b.transcript for a, b in zip(results, default_results))
    print(f"converted tiny.en in WhisperASR: accuracy {accuracy:.1%}, WER {wer:.1%}, "
          f"{same}/{len(results)} transcripts identical to faster-whisper int8")
    assert accuracy >= 0.90 and wer <= 0.15

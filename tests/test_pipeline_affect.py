"""The pipeline's affect stages: text sentiment (a tiny trained SentimentClassifier) and acoustic emotion (a small
stand-in with the EmotionRecognizer interface), filled per input, per utterance and in the stream; the same
``to_dict()`` keys on every row of a run; saved in and loaded from the pipeline directory."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pytest
import soundfile as sf

import speech_intent.emotion
from speech_intent import SpeechIntentPipeline
from speech_intent.asr.base import BaseASR
from speech_intent.bundled import bundled_encoder_path
from speech_intent.errors import ConfigError
from speech_intent.live import StreamingRecognizer
from speech_intent.nlu import IntentClassifier
from speech_intent.results import LabelScores, Transcript
from speech_intent.sentiment import SentimentClassifier, SentimentExample, SentimentTrainingOptions, train_sentiment
from speech_intent.testing import tiny_bert
from tests.serving import pcm16, with_silences

AFFECT_KEYS = ["sentiment", "sentiment_score", "text_emotion", "text_emotion_score", "emotion", "emotion_score"]
#: The fake ASR's transcript by the input's peak amplitude (tenths).
SAID = {2: "thanks, that's perfect", 3: "this is useless", 4: ""}


class _ScriptedASR(BaseASR):
    """Says what :data:`SAID` gives for the audio's peak (else a command)."""

    backend = "scripted"

    def _transcribe_batch(self, batch, prompt=None):
        return [Transcript(SAID.get(int(round(float(np.abs(a).max()) * 10)), "set a timer"), 0.9) for a in batch]

    def save_pretrained(self, save_directory) -> None:  # pragma: no cover - not saved here
        raise NotImplementedError


class _Voice:
    """The acoustic stage's interface: ``recognise(audios)`` -> LabelScores or None; it breaks on a peak of 0.5."""

    def __init__(self) -> None:
        self.calls: List[int] = []

    def recognise(self, audios: Sequence[np.ndarray]) -> List[Optional[LabelScores]]:
        self.calls.append(len(audios))
        out = []
        for audio in audios:
            assert audio.dtype == np.float32 and audio.ndim == 1
            peak = float(np.abs(audio).max()) if len(audio) else 0.0
            if abs(peak - 0.5) < 1e-3:
                raise RuntimeError("voice stage broke")
            out.append(LabelScores.from_scores({"angry": peak, "calm": 1 - peak}) if peak else None)
        return out

    def save_pretrained(self, path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "voice.json").write_text('{"kind": "fake"}')

    @classmethod
    def from_pretrained(cls, path, device=None) -> "_Voice":
        assert json.loads((Path(path) / "voice.json").read_text()) == {"kind": "fake"}
        return cls()


def _tone(peak: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (peak * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory) -> SentimentClassifier:
    base = tiny_bert(tmp_path_factory.mktemp("affect-base"), bundled_encoder_path())
    rows = [SentimentExample("thanks, that's perfect", ("positive",), ("joy",)),
            SentimentExample("this is useless", ("negative",), ("anger",)),
            SentimentExample("set a timer", ("neutral",), ("neutral",))]
    return train_sentiment(rows, tmp_path_factory.mktemp("affect-sentiment"), base=base, device="cpu",
                           options=SentimentTrainingOptions(epochs=1, batch_size=4, threshold=0.0), progress=False)


@pytest.fixture(scope="module")
def intent(tiny_bert_dir) -> IntentClassifier:
    return IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")


def test_both_stages_fill_each_row_and_every_row_has_the_same_keys(sentiment, intent, tmp_path):
    voice = _Voice()
    pipe = SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=sentiment, emotion=voice)
    inputs = [_tone(0.2), _tone(0.3), np.zeros(8000, np.float32), _tone(0.5), _tone(0.4), tmp_path / "missing.wav"]
    results = pipe(inputs, batch_size=8, workers=1)
    rows = [r.to_dict() for r in results]
    plain = [r.to_dict() for r in SpeechIntentPipeline(_ScriptedASR(), intent)(inputs[:1])]
    assert list(rows[0])[: len(plain[0])] == list(plain[0])  # the existing keys, unchanged, come first
    assert list(rows[0])[len(plain[0]):] == AFFECT_KEYS
    assert all(list(row) == list(rows[0]) for row in rows)  # silent, failed and unreadable rows too

    thanks, useless, silent, broken, empty, missing = results
    for result in (thanks, useless):
        assert result.ok and result.sentiment.label in {"negative", "neutral", "positive"}
        assert result.text_emotion.label in {"anger", "joy", "neutral"}
        assert result.to_dict()["sentiment_score"] == pytest.approx(result.sentiment.score)
    assert thanks.emotion.label == "calm" and thanks.emotion.score == pytest.approx(0.8, abs=1e-3)
    assert useless.to_dict()["emotion"] == "calm" and useless.to_dict()["emotion_score"] == pytest.approx(0.7, abs=1e-3)
    # digital silence: no ASR, no sentiment, no emotion, not an error
    assert silent.ok and silent.transcript == "" and silent.sentiment is None and silent.emotion is None
    # the acoustic stage raised on one input: that input alone fails, with every affect field None
    assert broken.error and "voice stage broke" in broken.error and broken.transcription is None
    assert all(rows[3][key] is None for key in AFFECT_KEYS)
    # an empty transcript has no sentiment; the voice still has its emotion
    assert empty.ok and empty.sentiment is None and empty.text_emotion is None and empty.emotion.label == "calm"
    assert missing.error and all(rows[5][key] is None for key in AFFECT_KEYS)
    assert voice.calls[0] == 4  # the chunk's four sounding inputs in one call, then one by one after it broke
    assert rows[1]["intent"] == [r.to_dict() for r in SpeechIntentPipeline(_ScriptedASR(), intent)(
        inputs[1:2])][0]["intent"]  # nothing else changes


def test_one_stage_gives_its_keys_only_and_none_gives_none(sentiment, intent):
    only_voice = SpeechIntentPipeline(_ScriptedASR(), intent, emotion=_Voice())([_tone(0.2)])[0].to_dict()
    assert [k for k in only_voice if k in AFFECT_KEYS] == ["emotion", "emotion_score"]
    only_text = SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=sentiment)([_tone(0.2)])[0].to_dict()
    assert [k for k in only_text if k in AFFECT_KEYS] == AFFECT_KEYS[:4]
    plain = SpeechIntentPipeline(_ScriptedASR(), intent)([_tone(0.2)])[0]
    assert plain.affect == () and not set(plain.to_dict()) & set(AFFECT_KEYS)
    with pytest.raises(ConfigError, match="sentiment= needs a text stage"):
        SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=object())
    with pytest.raises(ConfigError, match="emotion= needs an acoustic stage"):
        SpeechIntentPipeline(_ScriptedASR(), intent, emotion=sentiment)


def test_saved_in_and_loaded_from_the_pipeline_directory(tiny_whisper_pipeline_dir, sentiment, tmp_path,
                                                         monkeypatch):
    base = SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu")
    assert base.affect.keys == ()  # a directory without them loads as before
    SpeechIntentPipeline(base.asr, base.intent, sentiment=sentiment, emotion=_Voice()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "pipeline.json").read_text())
    assert config["sentiment"] == {"type": "sentiment-classifier", "path": "sentiment"}
    assert config["emotion"] == {"type": "emotion-recognizer", "path": "emotion"}
    assert (tmp_path / "sentiment" / "model.safetensors").is_file()
    monkeypatch.setattr(speech_intent.emotion, "EmotionRecognizer", _Voice, raising=False)
    loaded = SpeechIntentPipeline.from_pretrained(tmp_path, device="cpu")
    assert isinstance(loaded.affect.sentiment, SentimentClassifier) and isinstance(loaded.affect.emotion, _Voice)
    texts = ["thanks, that's perfect", "this is useless"]
    np.testing.assert_allclose(loaded.affect.sentiment.predict_proba(texts)["sentiment"],
                               sentiment.predict_proba(texts)["sentiment"], atol=1e-5)
    row = loaded([_tone(0.2)])[0].to_dict()
    assert [k for k in row if k in AFFECT_KEYS] == AFFECT_KEYS and row["emotion"] == "calm"


def test_long_recordings_have_them_per_utterance_and_on_whole_file_rows(sentiment, intent, tmp_path):
    pipe = SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=sentiment, emotion=_Voice())
    audio, _ = with_silences(("001_set_alarm.wav", "007_get_weather.wav"))
    talk, silent = tmp_path / "talk.wav", tmp_path / "silent.wav"
    sf.write(talk, audio, 16000)
    sf.write(silent, np.zeros(16000 * 3, np.float32), 16000)
    rows = [r.to_dict() for r in pipe.predict_segments(talk)]
    assert [r["segment"] for r in rows] == [0, 1]
    assert all(r["sentiment"] is not None and r["emotion"] in {"angry", "calm"} for r in rows)
    [whole] = [r.to_dict() for r in pipe.predict_segments(silent)]
    assert whole["segment"] is None and all(whole[key] is None for key in AFFECT_KEYS)
    assert list(whole) == list(rows[0])


def test_the_stream_carries_them_in_each_final(sentiment, intent):
    pipe = SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=sentiment, emotion=_Voice())
    audio, _ = with_silences(("001_set_alarm.wav",))
    finals = [e for e in StreamingRecognizer(pipe).process([pcm16(audio)]) if e.type == "final"]
    assert len(finals) == 1
    event = finals[0].to_dict()
    row = event["result"]
    assert row["sentiment"] in {"negative", "neutral", "positive"} and row["emotion"] in {"angry", "calm"}
    assert (event["sentiment"], event["emotion"]) == (row["sentiment"], row["emotion"])  # on the event too


def test_predict_cli_adds_the_stages_to_a_saved_pipeline(tiny_pipeline_dir, sentiment, tmp_path, capsys):
    from speech_intent.cli import main

    stage = tmp_path / "sentiment"
    sentiment.save_pretrained(stage)
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", _tone(0.2), 16000)
    (folder / "b.wav").write_bytes(b"not audio")
    out = tmp_path / "rows.jsonl"
    assert main(["predict", str(folder), "--pipeline", str(tiny_pipeline_dir), "--sentiment", str(stage),
                 "--device", "cpu", "-q", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(list(row) == list(rows[0]) for row in rows)
    assert {"sentiment", "sentiment_score", "text_emotion", "text_emotion_score"} <= set(rows[0])
    assert "emotion" not in rows[0]
    assert main(["predict", str(folder), "--pipeline", str(tiny_pipeline_dir), "--emotion",
                 str(tmp_path / "no-such-model"), "-q", "-o", str(tmp_path / "x.jsonl")]) == 1
    assert "no-such-model" in capsys.readouterr().err


def test_the_service_rows_carry_them_bad_uploads_too(sentiment, intent):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
    from fastapi.testclient import TestClient

    from speech_intent.serve import create_app
    from tests.serving import wav_bytes

    pipe = SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=sentiment, emotion=_Voice())
    with TestClient(create_app(pipe), base_url="http://127.0.0.1") as client:
        response = client.post("/v1/predict", files=[("files", ("a.wav", wav_bytes(_tone(0.3)), "audio/wav")),
                                                     ("files", ("bad.wav", b"RIFF....", "audio/wav"))])
    assert response.status_code == 200, response.text
    good, bad = response.json()["results"]
    assert list(good) == list(bad) and good["emotion"] == "calm" and good["sentiment"] is not None
    assert bad["error"] and all(bad[key] is None for key in AFFECT_KEYS)
    from speech_intent.cli import build_parser

    args = build_parser().parse_args(["serve", "--sentiment", "--emotion", "voice/"])
    assert args.sentiment == "default" and args.emotion == "voice/"  # the flag alone: the built-in stage


def test_predict_csv_has_the_affect_columns(tiny_pipeline_dir, sentiment, tmp_path):
    import csv

    from speech_intent.cli import main

    stage = tmp_path / "sentiment"
    sentiment.save_pretrained(stage)
    sf.write(tmp_path / "a.wav", _tone(0.2), 16000)
    out = tmp_path / "rows.csv"
    command = ["predict", str(tmp_path / "a.wav"), "--pipeline", str(tiny_pipeline_dir), "--sentiment", str(stage),
               "--device", "cpu", "-q", "-o", str(out)]
    assert main(command) == 0
    with out.open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames[-4:] == AFFECT_KEYS[:4] and len(rows) == 1
    assert rows[0]["sentiment"] in {"negative", "neutral", "positive", "uncertain"}
    assert main(command) == 0  # resumes: same columns, the input is done
    assert len(out.read_text().splitlines()) == 2


def test_a_ray_task_that_fails_whole_gives_rows_with_the_same_keys(sentiment, intent, monkeypatch):
    from speech_intent.batch.ray_runner import PipelineWorker

    pipe = SpeechIntentPipeline(_ScriptedASR(), intent, sentiment=sentiment, emotion=_Voice())

    def broken(*args, **kwargs):
        raise RuntimeError("the actor's pipeline broke")

    monkeypatch.setattr(pipe, "stream", broken)
    worker = PipelineWorker(lambda num_workers=1: pipe, "cpu", batch_size=2, worker_info=False)
    rows = worker.rows(["a.wav", "b.wav"], ["a.wav", "b.wav"])
    assert all(row["error"] and all(row[key] is None for key in AFFECT_KEYS) for row in rows)

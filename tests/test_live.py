"""Streaming recognition on real speech: events of utterances found by the VAD, resampling, limits
(the VAD itself: ``test_vad.py``)."""
from __future__ import annotations

import numpy as np
import pytest

from speech_intent import SpeechIntentPipeline
from speech_intent.errors import AudioError, ConfigError
from speech_intent.live import StreamingRecognizer
from speech_intent.vad import VADOptions
from tests.serving import chunks, near, pcm16, recording, with_silences

TWO = ("001_set_alarm.wav", "007_get_weather.wav")


@pytest.fixture(scope="module")
def pipe(tiny_whisper_pipeline_dir) -> SpeechIntentPipeline:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, above all on a busy machine
    yield SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu")
    torch.set_num_threads(threads)


def test_two_utterances_give_two_finals_from_pcm_bytes_in_chunks_of_any_size(pipe):
    audio, spans = with_silences(TWO)
    stream = StreamingRecognizer(pipe, partial_interval=0.8)
    events = list(stream.process(chunks(pcm16(audio))))  # odd byte counts included
    kinds = [e.type for e in events]
    assert kinds.count("speech_start") == 2 and kinds.count("final") == 2
    assert kinds.index("speech_start") < kinds.index("partial") < kinds.index("final")
    finals = [e for e in events if e.type == "final"]
    for final, (start, end) in zip(finals, spans):
        assert near((final.start, final.end), (start, end)), (final.start, final.end, start, end)
        assert final.reason == "silence" and final.result is not None and final.result.ok
        assert final.transcript == final.result.transcript and final.result.intent in pipe.intent.labels
        assert final.timings["recognition"] > 0 and 0.5 <= final.timings["endpoint_delay"] <= 0.7
        row = final.to_dict()
        assert row["type"] == "final" and row["result"]["intent"] == row["intent"] and "slots" in row
    assert [e.utterance for e in finals] == [0, 1]
    assert all(e.end <= finals[0].end + 0.7 for e in events if e.type == "partial" and e.utterance == 0)


def test_resampled_float_chunks_find_the_same_utterances(pipe):
    import soxr

    audio, spans = with_silences(TWO, gap=1.0)
    fast = soxr.resample(audio, 16000, 48000)
    stream = StreamingRecognizer(pipe, sample_rate=48000, partial_interval=None)
    finals = [e for e in stream.process(chunks(fast, seed=1, high=2000)) if e.type == "final"]
    assert len(finals) == 2
    for final, span in zip(finals, spans):
        assert near((final.start, final.end), span)


def test_max_utterance_cuts_continuous_speech_and_end_of_stream_flushes(pipe):
    speech = np.concatenate([recording(n) for n in ("001_set_alarm.wav", "004_set_timer.wav", "010_play_music.wav")])
    stream = StreamingRecognizer(pipe, vad=VADOptions(max_utterance=3.0), partial_interval=None)
    finals = [e for e in stream.process(chunks(speech, high=3000)) if e.type == "final"]
    assert len(finals) >= 2
    assert all(f.end - f.start <= 3.0 + 1e-6 for f in finals)
    assert "max_utterance" in {f.reason for f in finals}
    assert finals[-1].reason in ("end_of_stream", "silence", "max_utterance")


def test_silence_gives_no_events_and_trailing_silence_is_configurable(pipe):
    stream = StreamingRecognizer(pipe)
    assert list(stream.process([np.zeros(16000 * 3, np.float32)])) == []
    audio, _ = with_silences(TWO, gap=0.5)  # a 0.5 s pause: one utterance with a long silence setting
    joined = StreamingRecognizer(pipe, vad=VADOptions(trailing_silence=1.0), partial_interval=None)
    assert [e.type for e in joined.process([audio])].count("final") == 1
    split = StreamingRecognizer(pipe, vad=VADOptions(trailing_silence=0.3), partial_interval=None)
    assert [e.type for e in split.process([audio])].count("final") == 2


def test_bad_chunks_and_settings_raise_library_errors(pipe):
    stream = StreamingRecognizer(pipe)
    with pytest.raises(AudioError, match="NaN"):
        stream.feed(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="mono"):
        stream.feed(np.zeros((2, 10), np.float32))
    with pytest.raises(AudioError, match="chunk type"):
        stream.feed("not audio")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        StreamingRecognizer(pipe, sample_rate=10)
    with pytest.raises(ConfigError):
        StreamingRecognizer(pipe, vad=VADOptions(max_utterance=60.0))  # over the pipeline's 30 s
    with pytest.raises(ConfigError):
        VADOptions(threshold=1.5)
    with pytest.raises(ConfigError):
        StreamingRecognizer()
    stream.close()
    with pytest.raises(ConfigError, match="closed"):
        stream.feed(b"\x00\x00")


class _Answer:
    """A recognize function that answers with one fixed transcript and intent confidence (the
    streaming logic is under test here, not the models) and records the audio it was given."""

    def __init__(self, transcript: str, confidence: float) -> None:
        self.transcript, self.confidence, self.calls = transcript, confidence, []

    def __call__(self, audio: np.ndarray):
        from speech_intent.results import IntentPrediction, PipelineResult, Transcript

        self.calls.append(len(audio))
        return PipelineResult("<stream>", Transcript(self.transcript, 0.9),
                              IntentPrediction(self.transcript, "order", self.confidence))


def _finals(recognize, audio, **options):
    stream = StreamingRecognizer(recognize=recognize, partial_interval=None, **options)
    return [e for e in stream.process(chunks(pcm16(audio), high=1280)) if e.type == "final"]


def test_early_endpoint_ends_a_confident_command_after_a_short_pause():
    audio, spans = with_silences(TWO)
    usual = _finals(_Answer("Set an alarm.", 0.95), audio)
    answer = _Answer("Set an alarm.", 0.95)
    early = _finals(answer, audio, early_endpoint=0.2)
    assert [f.reason for f in usual] == ["silence", "silence"]
    assert [f.reason for f in early] == ["early_endpoint", "early_endpoint"]
    assert len(answer.calls) == 2  # the result computed when the pause began is the final: no second call
    for fast, slow, span in zip(early, usual, spans):
        assert 0.2 <= fast.timings["endpoint_delay"] <= 0.3 < 0.5 <= slow.timings["endpoint_delay"]
        assert near((fast.start, fast.end), span) and fast.start == slow.start and fast.end <= slow.end
        assert fast.result.intent == "order" and fast.to_dict()["reason"] == "early_endpoint"


@pytest.mark.parametrize("transcript, confidence", [("Set an alarm.", 0.5), ("Set an alarm for,", 0.95),
                                                    ("", 0.95)])
def test_an_unsure_or_unfinished_command_waits_for_the_trailing_silence(transcript, confidence):
    audio, _ = with_silences(TWO)
    answer = _Answer(transcript, confidence)
    finals = _finals(answer, audio, early_endpoint=0.2)
    assert [f.reason for f in finals] == ["silence", "silence"]
    assert len(answer.calls) == 4  # one at each pause, one at each end
    assert all(f.timings["endpoint_delay"] >= 0.5 for f in finals)


def test_early_endpoint_through_the_real_pipeline(pipe):
    audio, spans = with_silences(TWO)
    finals = _finals(lambda clip: pipe([clip], batch_size=1)[0], audio, early_endpoint=0.25, early_confidence=0.0)
    assert len(finals) == 2
    for final, span in zip(finals, spans):
        assert final.result.ok and final.result.intent in pipe.intent.labels and near((final.start, final.end), span)
        text = final.transcript.rstrip()
        assert final.reason == "early_endpoint" or not text or text.endswith((",", ";", ":", "-", "..."))


def test_early_endpoint_settings_are_checked(pipe):
    with pytest.raises(ConfigError, match="early_endpoint"):
        StreamingRecognizer(pipe, early_endpoint=0.8)  # over the 0.6 s trailing silence
    with pytest.raises(ConfigError, match="early_confidence"):
        StreamingRecognizer(pipe, early_endpoint=0.2, early_confidence=1.5)


@pytest.fixture(scope="module")
def turn():
    from speech_intent.turn import TurnTrainingOptions, train_turn_detector

    sentences = [f"{verb} {size} {drink}" for verb in ("set an alarm for", "get me a") for size in ("large", "small")
                 for drink in ("latte", "tea", "flat white")]
    return train_turn_detector(sentences, options=TurnTrainingOptions(n_features=2 ** 12, noise=0.0))


def test_the_turn_detector_ends_a_complete_command_early_and_waits_on_an_unfinished_one(turn):
    audio, spans = with_silences(TWO)
    answer = _Answer("Get me a large latte.", 0.2)  # a low intent confidence: the detector decides, not it
    done = _finals(answer, audio, turn=turn)
    assert [f.reason for f in done] == ["end_of_turn", "end_of_turn"] and len(answer.calls) == 2
    for final, span in zip(done, spans):
        assert 0.2 <= final.timings["endpoint_delay"] <= 0.3 and near((final.start, final.end), span)
        assert final.turn.label == "complete" and final.to_dict()["turn"]["label"] == "complete"
    unfinished = _Answer("Get me a large", 0.99)  # a confident intent, but the words cannot end a turn
    waited = _finals(unfinished, audio, turn=turn)
    assert [f.reason for f in waited] == ["silence", "silence"] and len(unfinished.calls) == 4
    assert all(f.timings["endpoint_delay"] >= 0.5 and f.turn.label == "incomplete" for f in waited)
    with pytest.raises(ConfigError, match="early_confidence"):
        StreamingRecognizer(recognize=answer, turn=turn, early_confidence=2.0)


def _paused(pause: float) -> tuple:
    """One command said in two parts with a ``pause`` between them (and silence around)."""
    return with_silences(TWO, gap=pause)


@pytest.mark.parametrize("revisions", [True, False])
def test_speech_resuming_within_the_trailing_silence_repairs_a_premature_end(turn, revisions):
    audio, spans = _paused(0.15)  # the VAD hears 0.45 s: over the 0.2 s turn pause, under the 0.6 s trailing silence
    answer = _Answer("Get me a large latte.", 0.9)
    stream = StreamingRecognizer(recognize=answer, turn=turn, revisions=revisions, partial_interval=None)
    events = list(stream.process(chunks(pcm16(audio), high=1280)))
    finals = [e for e in events if e.type == "final"]
    starts = [e for e in events if e.type == "speech_start"]
    assert finals[0].reason == "end_of_turn" and finals[0].utterance == 0 and finals[0].revises is None
    if not revisions:
        assert [f.utterance for f in finals] == [0, 1] and all(e.revises is None for e in events)
        return
    assert [f.utterance for f in finals] == [0, 0] and finals[1].revises == 0
    assert starts[1].revises == 0 and starts[1].utterance == 0 and starts[1].to_dict()["revises"] == 0
    assert near((finals[1].start, finals[1].end), (spans[0][0], spans[1][1]))  # both halves, joined
    joined = answer.calls[-1] / 16000
    assert joined >= spans[1][1] - spans[0][0] - 0.1  # recognised on the joined audio
    assert finals[1].to_dict()["revises"] == 0 and finals[1].reason == "end_of_turn"

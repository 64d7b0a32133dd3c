"""The tolerant comparison of two runs' results (tests/compare.py) still fails where the runs really differ."""
from __future__ import annotations

import pytest

from speech_intent.results import IntentPrediction, PipelineResult, Transcript

from .compare import assert_rows_match, assert_transcripts_match


def _result(path: str, text: str, intent: str, confidence: float = 0.9, error=None) -> PipelineResult:
    if error:
        return PipelineResult(path=path, error=error)
    return PipelineResult(path=path, transcription=Transcript(text, 0.5, duration=1.0),
                          prediction=IntentPrediction(text, intent, confidence))


ROWS = [_result(f"c{i}.wav", f"words {i}", "order") for i in range(4)] + [_result("bad.wav", "", "", error="bad")]


def test_rounding_and_one_near_tie_flip_pass():
    other = [_result(r.path, r.transcript, r.intent, 0.9 + 4e-4) if not r.error else r for r in ROWS]
    other[1] = _result("c1.wav", "words one", "order")  # a flipped token
    assert_rows_match(other, ROWS)


@pytest.mark.parametrize("change", ["order", "path", "error", "score", "flips", "duration", "length"])
def test_what_must_be_equal_is_checked(change):
    other = list(ROWS)
    if change == "order":
        other[0], other[2] = other[2], other[0]
    elif change == "path":
        other[3] = _result("c9.wav", "words 3", "order")
    elif change == "error":
        other[4] = _result("bad.wav", "", "", error="another")
    elif change == "score":
        other[0] = _result("c0.wav", "words 0", "order", 0.5)
    elif change == "flips":
        other[0], other[1] = _result("c0.wav", "x", "order"), _result("c1.wav", "words 1", "stop")
    elif change == "duration":
        other[2] = PipelineResult("c2.wav", Transcript("words 2", 0.5, duration=2.0), ROWS[2].prediction)
    else:
        other = other[:-1]
    with pytest.raises(AssertionError):
        assert_rows_match(other, ROWS)


def test_transcripts_allow_a_flip_and_check_confidence_where_the_text_agrees():
    a = [Transcript("one", 0.5, 1.0), Transcript("two", 0.5, 1.0), Transcript("three", 0.5, 1.0)]
    assert_transcripts_match([Transcript("one", 0.5004, 1.0), Transcript("too", 0.1, 1.0), a[2]], a)
    with pytest.raises(AssertionError):
        assert_transcripts_match([Transcript("one", 0.6, 1.0), a[1], a[2]], a)
    with pytest.raises(AssertionError):
        assert_transcripts_match(["x", "y", "three"], ["one", "two", "three"])
    assert_transcripts_match(["x", None], ["one", None])

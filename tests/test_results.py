"""speech_intent.results: PipelineResult as a composition of a Transcript and an IntentPrediction, with the
flat keys of its rows."""
from __future__ import annotations

import pytest

from speech_intent.results import IntentPrediction, PipelineResult, Transcript
from speech_intent.slots import SlotSpan

#: The keys of a result row before slot_spans and grammar_margin were added.
FLAT_KEYS = {"path", "transcript", "transcript_confidence", "text", "intent", "confidence", "top_k", "slots",
             "duration", "error", "in_grammar"}


def test_pipeline_result_is_a_composition_with_the_old_flat_keys():
    heard = Transcript("A large latte.", 0.8, duration=1.5, in_grammar=True, grammar_margin=0.3)
    spans = [SlotSpan("size", 2, 7, "large")]
    understood = IntentPrediction("a large latte", "order", 0.9, [("order", 0.9)], {"size": "large"}, spans)
    result = PipelineResult("/x/1.wav", heard, understood)
    assert (result.transcript, result.transcript_confidence, result.duration) == ("A large latte.", 0.8, 1.5)
    assert (result.text, result.intent, result.slots, result.slot_spans) == (
        "a large latte", "order", {"size": "large"}, spans)
    assert result.in_grammar is True and result.grammar_margin == 0.3 and result.top_k == [("order", 0.9)]
    row = result.to_dict()
    assert set(row) == FLAT_KEYS | {"slot_spans", "grammar_margin"}
    assert row["slot_spans"] == understood.to_dict()["slot_spans"] and len(row["slot_spans"]) == 1
    assert (row["transcript"], row["text"], row["grammar_margin"]) == ("A large latte.", "a large latte", 0.3)
    assert (row["confidence"], row["transcript_confidence"]) == (0.9, 0.8)
    failed = PipelineResult("/x/2.wav", error="/x/2.wav: cannot decode audio")
    failed_row = failed.to_dict()
    assert set(failed_row) == set(row) and failed_row["error"] and failed_row["path"] == "/x/2.wav"
    assert all(failed_row[k] is None for k in FLAT_KEYS - {"path", "error", "top_k", "slots"})
    assert failed_row["top_k"] == [] and failed_row["slots"] == {} and failed_row["slot_spans"] == []
    assert failed.intent is None and failed.slots == {} and not failed.ok
    with pytest.raises(AttributeError):
        result.intent = "cancel"  # read-only: change the prediction instead

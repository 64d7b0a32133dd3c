"""Intent stage: batching, confidences, top-k, thresholds, save/load, fine-tuning (plain classifiers, with
dev data and out-of-scope examples), the threshold chosen on dev data, NLU metrics."""
from __future__ import annotations

import pytest
import torch

from speech_intent.nlu import OOS_LABEL, IntentClassifier, TrainingOptions, choose_threshold, fine_tune, nlu_metrics
from speech_intent.normalize import TextNormalizer

from .conftest import LABELS, _toy_data

TEXTS = ["what's the weather in Paris?", "play some jazz", "wake me up at 7:30", ""]


def test_predictions_have_labels_confidence_and_sorted_top_k(tiny_bert_dir):
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")
    assert clf.labels == LABELS
    preds = clf(TEXTS, top_k=3)
    assert len(preds) == len(TEXTS)
    for p in preds[:3]:
        assert p.intent in LABELS and p.intent == p.top_k[0][0]
        assert p.confidence == pytest.approx(p.top_k[0][1])
        probs = [c for _, c in p.top_k]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert preds[3].intent is None and preds[3].confidence == 0.0
    assert set(preds[0].to_dict()) >= {"text", "intent", "confidence", "top_k", "slots"}


def test_batch_size_and_order_do_not_change_probabilities(tiny_bert_dir):
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")
    texts = TEXTS[:3] * 3
    a = clf.predict_proba(texts, batch_size=1)
    b = clf.predict_proba(texts, batch_size=4)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_save_load_round_trip_keeps_normalizer_and_threshold(tiny_bert_dir, tmp_path):
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu", normalizer=TextNormalizer(),
                                           threshold=0.99)
    clf.save_pretrained(tmp_path / "m")
    again = IntentClassifier.from_pretrained(tmp_path / "m", device="cpu")
    assert again.threshold == 0.99 and again.normalizer == clf.normalizer
    assert again("Wake me up at 7:30!")[0].text == "wake me up at seven thirty"
    torch.testing.assert_close(clf.predict_proba(TEXTS), again.predict_proba(TEXTS))
    # a random model is never 99% sure: everything is out of scope
    assert all(p.intent is None for p in again(TEXTS[:3]))


def test_fine_tune_learns_a_toy_domain(tiny_bert_dir, tmp_path):
    data = [(f"{verb} the weather {w}", "get_weather") for verb in ("what is", "tell me", "how is")
            for w in ("today", "tomorrow", "outside", "now")]
    data += [(f"{verb} some {w}", "play_music") for verb in ("play", "put on", "start")
             for w in ("jazz", "rock", "music", "songs")]
    config = TrainingOptions(epochs=30, learning_rate=3e-3, batch_size=8, seed=0)
    clf = fine_tune(data, tmp_path / "toy", base=tiny_bert_dir, options=config, device="cpu", progress=False)
    assert clf.labels == ["get_weather", "play_music"]
    preds = clf(["how is the weather today", "play some rock"])
    assert [p.intent for p in preds] == ["get_weather", "play_music"]
    assert (tmp_path / "toy" / "model.safetensors").is_file()
    # deterministic for a fixed seed on CPU
    again = fine_tune(data, tmp_path / "toy2", base=tiny_bert_dir, options=config, device="cpu", progress=False)
    torch.testing.assert_close(clf.predict_proba(TEXTS), again.predict_proba(TEXTS))


def test_plain_fine_tune_with_dev_and_out_of_scope_examples(tiny_bert_dir, tmp_path):
    data = [(ex.text, ex.intent) for ex in _toy_data()]  # no slots: a plain sequence classifier
    config = TrainingOptions(epochs=3, learning_rate=5e-3, batch_size=16, seed=0, early_stopping=1)
    clf = fine_tune(data, tmp_path / "plain", base=tiny_bert_dir, options=config, device="cpu", progress=False,
                    dev_examples=data[::3])
    assert not clf.is_joint and OOS_LABEL in clf.labels
    assert clf.training["best_dev_score"] is not None and clf.threshold == clf.training["threshold"]["threshold"]
    again = IntentClassifier.from_pretrained(tmp_path / "plain", device="cpu")
    assert again.threshold == clf.threshold and again("play jazz")[0].slots == {}


# ------------------------------------------------------------------ thresholds and metrics
def test_choose_threshold_on_dev():
    # with out-of-scope dev examples: best accuracy, lowest such threshold
    choice = choose_threshold([0.9, 0.8, 0.3, 0.2, 0.95], ["a", "b", "a", "b", "a"], ["a", "b", None, None, "a"])
    assert choice.method == "best-accuracy" and choice.threshold == 0.8 and choice.accuracy == 1.0
    # in scope only: keep >= 99% of the right answers (here: all of them)
    choice = choose_threshold([0.9, 0.8, 0.3, 0.2, 0.95], ["a", "b", "a", "b", "a"], ["a", "b", "a", "a", "a"])
    assert choice.method == "in-scope-recall" and choice.threshold == 0.3 and choice.in_scope_recall == 1.0
    confidences = [i / 200 for i in range(200)]
    choice = choose_threshold(confidences, ["a"] * 200, ["a"] * 200, target_recall=0.99)
    assert choice.threshold == 0.01 and choice.in_scope_recall == 0.99


def test_nlu_metrics_sentence_accuracy():
    m = nlu_metrics(["a", "b", "a"], ["a", "b", "b"], [["B-x", "O"], ["O"], ["B-x"]], [["B-x", "O"], ["B-x"], ["B-x"]])
    assert m.intent_accuracy == pytest.approx(2 / 3) and m.sentence_accuracy == pytest.approx(1 / 3)
    assert m.slot_precision == pytest.approx(2 / 3) and m.slot_recall == 1.0
    assert set(m.to_dict()) >= {"intent_accuracy", "slot_f1", "sentence_accuracy", "score"}

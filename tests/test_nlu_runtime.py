"""Intent-stage inference: batch / order independence, and the ONNX Runtime runtime against torch."""
from __future__ import annotations

import random
import sys

import pytest
import torch

from speech_intent.errors import ConfigError
from speech_intent.nlu import IntentClassifier, JointIntentSlotModel

from .conftest import LABELS

TEXTS = [
    "what's the weather in paris tomorrow",
    "play some jazz",
    "",
    "wake me up at seven thirty am",
    "set an alarm",
    "play the new album by the rolling stones in the kitchen please",
    "Weather?!",
    "   ",
    "turn it up " * 40,  # past max_length: truncated, the words after the cut are tagged O
    "paris",
    "play mozartish tunes at o'clock",
    "what's the weather in paris tomorrow",  # a repeat
]


@pytest.fixture(scope="module")
def joint_parts(tiny_bert_dir):
    """A tiny random joint model with sharpened heads (well-separated logits, so argmaxes are stable)."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, LABELS, ["O", "B-x", "I-x", "B-y", "I-y"]).eval()
    with torch.no_grad():
        model.intent_head.weight.mul_(100)
        model.slot_head.weight.mul_(100)
    return model, AutoTokenizer.from_pretrained(tiny_bert_dir)


def _classifier(parts, **kwargs) -> IntentClassifier:
    model, tokenizer = parts
    return IntentClassifier(model, tokenizer, device="cpu", **kwargs)


def _same(a, b, tol: float = 1e-5) -> None:
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.intent for p in a] == [p.intent for p in b]
    assert [p.slot_spans for p in a] == [p.slot_spans for p in b]
    assert [[label for label, _ in p.top_k] for p in a] == [[label for label, _ in p.top_k] for p in b]
    for p, q in zip(a, b):
        assert p.confidence == pytest.approx(q.confidence, abs=tol)


def test_results_do_not_depend_on_order_or_batch_size(joint_parts):
    clf = _classifier(joint_parts)
    reference = clf(TEXTS, batch_size=1)  # each text alone: no padding at all
    assert any(p.slot_spans for p in reference) and len({p.intent for p in reference}) > 1
    assert reference[2].intent is None and reference[2].confidence == 0.0  # empty text
    order = list(range(len(TEXTS)))
    random.Random(0).shuffle(order)
    for batch_size in (2, 5, 64):
        _same(clf(TEXTS, batch_size=batch_size), reference)
        shuffled = clf([TEXTS[i] for i in order], batch_size=batch_size)
        _same([shuffled[order.index(i)] for i in range(len(TEXTS))], reference)
    one = clf(TEXTS[0])
    _same(one, reference[:1])
    probs = clf.predict_proba([clf.normalize(t) for t in TEXTS], batch_size=3)
    assert probs.shape == (len(TEXTS), len(LABELS))
    assert torch.allclose(probs.sum(-1), torch.ones(len(TEXTS)))
    assert clf([]) == []


def test_unknown_runtime_or_device_is_a_config_error(joint_parts):
    with pytest.raises(ConfigError, match="runtime must be one of"):
        _classifier(joint_parts, runtime="tensorrt")
    with pytest.raises(ConfigError, match="float32"):
        _classifier(joint_parts, runtime="onnx", dtype="bf16")


def test_onnx_runtime_without_the_onnx_package_is_a_config_error(joint_parts, monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECH_INTENT_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ConfigError, match=r"speech-intent\[onnx\]"):
        _classifier(joint_parts, runtime="onnx")


def test_onnx_runtime_matches_torch_and_is_cached(joint_parts, monkeypatch, tmp_path):
    pytest.importorskip("onnx", reason="the onnx runtime's export needs the onnx package (speech-intent[onnx])")
    monkeypatch.setenv("SPEECH_INTENT_CACHE", str(tmp_path))
    torch_clf = _classifier(joint_parts)
    onnx_clf = _classifier(joint_parts, runtime="onnx")
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1 and onnx_clf.runtime == "onnx"
    for batch_size in (1, 4, 64):  # dynamic batch and token axes
        _same(onnx_clf(TEXTS, batch_size=batch_size), torch_clf(TEXTS), tol=1e-4)
    stamp = files[0].stat().st_mtime_ns
    _classifier(joint_parts, runtime="onnx")  # same weights: the cached file, not a new export
    assert sorted((tmp_path / "onnx").glob("*.onnx")) == files and files[0].stat().st_mtime_ns == stamp
    assert not list((tmp_path / "onnx").glob(".tmp-*"))


def test_onnx_export_is_keyed_by_the_weights(tiny_bert_dir, monkeypatch, tmp_path):
    pytest.importorskip("onnx", reason="the onnx runtime's export needs the onnx package (speech-intent[onnx])")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("SPEECH_INTENT_CACHE", str(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()  # a plain sequence classifier
    texts = [t for t in TEXTS if t.strip()]
    first = IntentClassifier(model, tokenizer, device="cpu", runtime="onnx")
    before = IntentClassifier(model, tokenizer, device="cpu").predict_proba(texts)
    assert torch.allclose(first.predict_proba(texts), before, atol=1e-5)
    with torch.no_grad():
        model.classifier.bias.add_(torch.arange(len(LABELS), dtype=torch.float32))  # other weights: another file
    second = IntentClassifier(model, tokenizer, device="cpu", runtime="onnx")
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    after = IntentClassifier(model, tokenizer, device="cpu").predict_proba(texts)
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.allclose(second.predict_proba(texts), after, atol=1e-5)
    assert not second(texts[0])[0].slot_spans  # no slot head: intents only

"""Intent-stage inference: a text's result does not depend on the other texts of its call, their order or the batch size."""
from __future__ import annotations

import random

import pytest
import torch

from speech_intent.nlu import IntentClassifier, JointIntentSlotModel

from .compare import assert_rows_match
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


def _classifier(parts) -> IntentClassifier:
    model, tokenizer = parts
    return IntentClassifier(model, tokenizer, device="cpu")


def _same(a, b, tol: float = 1e-5) -> None:
    """Same texts, intents and slots (but for a near-tie flip, tests/compare.py); confidences and the top-k
    probabilities equal up to float rounding (padding changes the summation order only)."""
    assert_rows_match(a, b, atol=tol)
    for p, q in zip(a, b):
        mine, theirs = dict(p.top_k), dict(q.top_k)
        common = mine.keys() & theirs.keys()  # a near-tie at the k-th place may swap the last label
        assert len(common) >= len(mine) - 1 and all(abs(mine[k] - theirs[k]) <= tol for k in common)


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


def test_sequence_classifier_batches_like_one_by_one(tiny_bert_dir):
    """A plain sequence classifier (no slot head, no offsets) through the same batching."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    clf = IntentClassifier(model, AutoTokenizer.from_pretrained(tiny_bert_dir), device="cpu")
    texts = [clf.normalize(t) for t in TEXTS]
    one_by_one = torch.cat([clf.predict_proba([t]) for t in texts])
    assert torch.allclose(clf.predict_proba(texts, batch_size=4), one_by_one, atol=1e-6)
    assert not any(p.slot_spans for p in clf(TEXTS))

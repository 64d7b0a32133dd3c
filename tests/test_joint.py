"""Joint intent + slot model: BIO labels on sub-words, save/load, training, decoding, slots in pipeline results."""
from __future__ import annotations

import json

import pytest
import torch

from speech_intent.nlu import OOS_LABEL, IntentClassifier, JointIntentSlotModel, TrainingOptions, fine_tune
from speech_intent.nlu.subwords import IGNORE_INDEX, align_labels, decode_tags

from .compare import assert_rows_match
from .conftest import LABELS, _toy_data


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.fixture(scope="module")
def toy_joint(tiny_bert_dir, tmp_path_factory) -> IntentClassifier:
    """A tiny joint model trained on the toy domain (with dev data: early stopping + threshold)."""
    config = TrainingOptions(epochs=20, learning_rate=5e-3, batch_size=16, seed=0, early_stopping=4)
    data = _toy_data()
    return fine_tune(data, tmp_path_factory.mktemp("toy-joint") / "m", base=tiny_bert_dir, options=config,
                     device="cpu", progress=False, dev_examples=data[::4])


# ------------------------------------------------------------------ BIO labels on sub-words
def test_bio_labels_sit_on_first_subwords_only(tokenizer):
    text = "play mozartish tunes at o'clock"
    enc = tokenizer(text, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    word_ids = [3, 1, 2, 0, 4]  # one label id per whitespace word
    labels = align_labels(enc["offset_mapping"], text, word_ids)
    assert len(tokens) > 7  # "mozartish" and "o'clock" are split into several sub-words
    assert labels[0] == labels[-1] == IGNORE_INDEX  # [CLS] / [SEP]
    assert [label for label in labels if label != IGNORE_INDEX] == word_ids
    starts = [tokens[i] for i, label in enumerate(labels) if label != IGNORE_INDEX]
    assert not any(t.startswith("##") for t in starts) and starts[-1] == "o"
    # decoding reads the same positions back
    assert decode_tags(enc["offset_mapping"], text, labels, ["O", "B-a", "I-a", "B-b", "I-b"]) == \
        ["B-b", "B-a", "I-a", "O", "I-b"]


# ------------------------------------------------------------------ model
def test_joint_model_save_load_round_trip(tiny_bert_dir, tokenizer, tmp_path):
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, LABELS, ["O", "B-x", "I-x"]).eval()
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file() and not list(tmp_path.glob("m/*.bin"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "speech-intent-joint" and config["slot_labels"] == ["O", "B-x", "I-x"]
    assert "auto_map" not in config  # loads without remote code
    assert AutoConfig.from_pretrained(tmp_path / "m").num_labels == len(LABELS)
    again = AutoModel.from_pretrained(tmp_path / "m", use_safetensors=True).eval()
    assert isinstance(again, JointIntentSlotModel)
    enc = tokenizer(["play some jazz", "hi"], padding=True, return_tensors="pt")
    a, b = model(**enc), again(**enc)
    torch.testing.assert_close(a.intent_logits, b.intent_logits)
    torch.testing.assert_close(a.slot_logits, b.slot_logits)
    labels = torch.tensor([0, 1])
    slot_labels = torch.full(enc["input_ids"].shape, IGNORE_INDEX)
    slot_labels[:, 1] = 1
    loss = model(**enc, labels=labels, slot_labels=slot_labels).loss
    expected = torch.nn.functional.cross_entropy(a.intent_logits, labels) + \
        torch.nn.functional.cross_entropy(a.slot_logits[:, 1], torch.tensor([1, 1]))
    torch.testing.assert_close(loss, expected)


def test_plain_checkpoint_still_loads_without_slots(tiny_bert_dir):
    clf = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")
    assert not clf.is_joint and clf.slot_labels == []
    pred = clf(["play some jazz"])[0]
    assert pred.slots == {} and pred.slot_spans == []


# ------------------------------------------------------------------ training + classifier
def test_fine_tune_learns_intents_and_slots(toy_joint):
    clf = toy_joint
    assert clf.is_joint and clf.labels == [OOS_LABEL, "get_weather", "play_music", "set_alarm"]
    assert clf.slot_labels == ["O", "B-city", "I-city", "B-song", "I-song", "B-time", "I-time"]
    preds = clf(["How is the weather in New York?", "put on bohemian rhapsody", "tell me a joke"])
    assert [p.intent for p in preds] == ["get_weather", "play_music", None]
    assert preds[0].slots == {"city": "new york"} and preds[1].slots == {"song": "bohemian rhapsody"}
    assert preds[2].slots == {} and preds[2].slot_spans == []
    for p in preds[:2]:
        assert all(p.text[s.start:s.end] == s.value for s in p.slot_spans)
    json.dumps(preds[0].to_dict())
    info = clf.training
    assert info["joint"] and info["dev_examples"] > 0 and info["threshold"]["method"] == "best-accuracy"
    assert clf.threshold == info["threshold"]["threshold"]


def test_joint_classifier_round_trip_and_batching(toy_joint, tmp_path):
    toy_joint.save_pretrained(tmp_path / "again")
    again = IntentClassifier.from_pretrained(tmp_path / "again", device="cpu")
    assert again.is_joint and again.threshold == toy_joint.threshold and again.training == toy_joint.training
    texts = ["what is the weather in paris", "play rock", "wake me at 7:30", "", "start playing the beatles"]
    one = [p.to_dict() for p in again(texts, batch_size=1)]
    many = [p.to_dict() for p in toy_joint(texts, batch_size=4)]
    assert_rows_match(one, many, atol=1e-5)  # other batch sizes: see tests/compare.py
    # truncation: words past max_length are simply untagged
    short = IntentClassifier(again.model, again.tokenizer, device="cpu", normalizer=again.normalizer, max_length=4)
    pred = short(["what is the weather in new york"])[0]
    assert all(pred.text[s.start:s.end] == s.value for s in pred.slot_spans)


def test_joint_fine_tune_is_deterministic_on_cpu(tiny_bert_dir, tmp_path):
    data = _toy_data()
    config = TrainingOptions(epochs=2, learning_rate=5e-3, batch_size=16, seed=3)
    a = fine_tune(data, tmp_path / "a", base=tiny_bert_dir, options=config, device="cpu", progress=False)
    b = fine_tune(data, tmp_path / "b", base=tiny_bert_dir, options=config, device="cpu", progress=False)
    texts = ["how is the weather in tokyo", "play jazz"]
    torch.testing.assert_close(a.predict_proba(texts), b.predict_proba(texts), atol=0, rtol=0)
    assert [p.slot_spans for p in a(texts)] == [p.slot_spans for p in b(texts)]


def test_head_learning_rate_applies_to_the_new_heads_only(tiny_bert_dir):
    from speech_intent.nlu.training import _optimizer

    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, LABELS, ["O", "B-x", "I-x"])
    optimizer = _optimizer(model, TrainingOptions(learning_rate=1e-4, head_learning_rate=1e-2))
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert rate[id(model.slot_head.weight)] == rate[id(model.intent_head.bias)] == 1e-2
    assert rate[id(model.encoder.embeddings.word_embeddings.weight)] == 1e-4
    assert decay[id(model.slot_head.bias)] == 0.0 and decay[id(model.slot_head.weight)] == 0.01
    assert len(rate) == sum(1 for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------ pipeline
def test_pipeline_results_carry_the_joint_slots(toy_joint, sine):
    from speech_intent import SpeechIntentPipeline
    from speech_intent.results import Transcript

    class FixedASR:  # a stand-in ASR stage: every input "says" the same sentence
        sampling_rate = 16000
        backend = "fixed"

        def transcribe(self, arrays, batch_size=8):
            return [Transcript("How is the weather in Paris?", 1.0, len(a) / 16000) for a in arrays]

    result = SpeechIntentPipeline(FixedASR(), toy_joint)([sine])[0]
    assert result.intent == "get_weather" and result.slots == {"city": "paris"}
    assert result.to_dict()["slots"] == {"city": "paris"}

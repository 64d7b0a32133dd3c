"""Closed slot values: canonicalisation, inference from data, and the ASR domain prompt."""
from __future__ import annotations

import numpy as np

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.asr.base import BaseASR
from speech_intent.data import Example, SlotSpan
from speech_intent.nlu.canonical import SlotCanonicalizer, domain_prompt, infer_closed_values
from speech_intent.results import Transcript

VALUES = {"roast": ["dark roast", "light roast", "medium roast"],
          "coffeeDrink": ["americano", "iced coffee", "iced mocha", "latte"]}


def test_asr_misspellings_map_to_canonical_values():
    canon = SlotCanonicalizer(VALUES)
    assert canon.match("roast", "light rose")[0] == "light roast"
    assert canon.match("roast", "medium most")[0] == "medium roast"
    assert canon.match("coffeeDrink", "ice mocha")[0] == "iced mocha"
    assert canon({"roast": "dark roast", "city": "paris"}) == {"roast": "dark roast", "city": "paris"}


def test_far_values_keep_the_raw_span():
    value, score = SlotCanonicalizer(VALUES).match("coffeeDrink", "hot chocolate")
    assert value == "hot chocolate" and score < 0.7


def test_closed_slots_are_inferred_from_repeated_values_only():
    examples = []
    for i in range(12):
        size = ["small", "large"][i % 2]
        text = f"a {size} coffee for table {i}"
        examples.append(Example(text, "order", (SlotSpan("size", 2, 2 + len(size), size),
                                                SlotSpan("table", text.rindex(str(i)), len(text), str(i)))))
    assert infer_closed_values(examples) == {"size": ["large", "small"]}


def test_domain_prompt_lists_values_within_budget():
    prompt = domain_prompt(VALUES)
    assert all(v in prompt for vals in VALUES.values() for v in vals)
    many = {"item": [f"thing number {i}" for i in range(200)]}
    assert len(domain_prompt(many, max_chars=200)) <= 200
    assert domain_prompt({}) is None


class _RecordingASR(BaseASR):
    backend = "recording"

    def __init__(self) -> None:
        self.initial_prompt = None
        self.seen = []

    def _transcribe_batch(self, batch):
        self.seen.append(self.initial_prompt)
        return [Transcript(text="a light rose latte", confidence=1.0) for _ in batch]

    def save_pretrained(self, save_directory) -> None:  # pragma: no cover - not saved here
        raise NotImplementedError


def test_pipeline_gives_the_domain_prompt_to_the_asr_for_the_call_only(tiny_bert_dir, tmp_path):
    intent = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu", canonicalizer=SlotCanonicalizer(VALUES))
    intent.save_pretrained(tmp_path / "m")
    assert IntentClassifier.from_pretrained(tmp_path / "m").canonicalizer == intent.canonicalizer
    asr = _RecordingASR()
    clip = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    SpeechIntentPipeline(asr, intent)([clip])
    assert asr.seen[-1] == domain_prompt(VALUES) and asr.initial_prompt is None
    SpeechIntentPipeline(asr, intent, domain_prompt=False)([clip])
    assert asr.seen[-1] is None
    asr.initial_prompt = "my own prompt"
    SpeechIntentPipeline(asr, intent)([clip])
    assert asr.seen[-1] == "my own prompt"

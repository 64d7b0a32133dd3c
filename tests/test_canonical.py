"""Closed slot values: canonicalisation, inference from data, and the ASR domain prompt."""
from __future__ import annotations

import numpy as np

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.asr.base import BaseASR
from speech_intent.asr.options import FasterWhisperOptions
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


def test_a_span_naming_another_number_is_never_snapped_to_a_listed_number():
    canon = SlotCanonicalizer({"party": ["one", "two", "three", "six", "seven"],
                               "shots": ["one shot", "three shots", "double shot"]})
    for raw in ("thirty", "sixty", "eleven", "seventy", "three hundred"):
        assert canon.match("party", raw)[0] == raw, raw
    assert canon.match("party", "tree")[0] == "three"  # a misheard number still maps
    assert canon.match("shots", "three shot")[0] == "three shots"
    assert canon.match("shots", "thirty shots")[0] == "thirty shots"
    assert canon.match("shots", "dabble shot")[0] == "double shot"
    sizes = SlotCanonicalizer({"size": ["small", "sixteen ounce", "twenty ounce"]})
    assert sizes.match("size", "sixty ounce")[0] == "sixteen ounce"  # the teen/ty confusion of recognisers
    assert sizes.match("size", "six ounce")[0] == "six ounce"


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
    """A stage that takes a prompt per call and records the prompt each batch was given."""

    backend = "recording"
    options_class = FasterWhisperOptions  # options with a ``prompt``
    accepts_prompt = True

    def __init__(self, prompt=None) -> None:
        self.options = FasterWhisperOptions(prompt=prompt)
        self.seen = []

    def _transcribe_batch(self, batch, prompt=None):
        self.seen.append(prompt)
        return [Transcript(text="a light rose latte", confidence=1.0) for _ in batch]

    def save_pretrained(self, save_directory) -> None:  # pragma: no cover - not saved here
        raise NotImplementedError


class _NoPromptASR(_RecordingASR):
    accepts_prompt = False

    def _transcribe_batch(self, batch):  # the protocol without prompts: never given one
        return super()._transcribe_batch(batch, prompt="(none)")


def _state(asr) -> dict:
    return {k: v for k, v in vars(asr).items() if k != "seen"}


def test_pipeline_gives_the_domain_prompt_to_the_asr_per_call(tiny_bert_dir, tmp_path):
    intent = IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu", canonicalizer=SlotCanonicalizer(VALUES))
    intent.save_pretrained(tmp_path / "m")
    assert IntentClassifier.from_pretrained(tmp_path / "m").canonicalizer == intent.canonicalizer
    asr = _RecordingASR()
    before = _state(asr)
    clip = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    SpeechIntentPipeline(asr, intent)([clip])
    assert asr.seen[-1] == domain_prompt(VALUES)
    assert _state(asr) == before and asr.options.prompt is None  # the stage object is never changed
    SpeechIntentPipeline(asr, intent, domain_prompt=False)([clip])
    assert asr.seen[-1] is None
    own = _RecordingASR(prompt="my own prompt")  # a prompt of its own is kept
    before = _state(own)
    SpeechIntentPipeline(own, intent)([clip])
    assert own.seen == ["my own prompt"] and _state(own) == before
    silent = _NoPromptASR()  # a stage without prompts gets none (and does not fail)
    assert SpeechIntentPipeline(silent, intent)([clip])[0].ok and silent.seen == ["(none)"]

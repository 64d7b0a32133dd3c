"""The shipped general-English rehearsal corpus (speech_intent/resources/rehearsal_en.csv).

It is mixed into Whisper fine-tuning against forgetting, so it must stay varied, within the
sentence lengths the synthesiser and trainer expect, and clear of the evaluation domains
(assistant commands, cafe drinks).
"""

from __future__ import annotations

import re

import pytest

from speech_intent.asr_training import bundled_rehearsal_path
from speech_intent.data import Example, load_examples

CORPUS = bundled_rehearsal_path()

#: Words of the evaluation domains; matched as whole words, plural included.
EXCLUDED = (
    "alarm", "timer", "weather", "playlist", "volume", "lamp", "shopping list",
    "text message", "espresso", "latte", "directions",
)
_EXCLUDED_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in EXCLUDED) + r")s?\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def corpus() -> list[Example]:
    return load_examples(CORPUS)


def test_corpus_size_and_labels(corpus: list[Example]) -> None:
    assert len(corpus) >= 400
    assert all(ex.text.strip() and ex.intent for ex in corpus)
    assert len({ex.intent for ex in corpus}) >= 10


def test_sentences_are_unique_ignoring_case(corpus: list[Example]) -> None:
    lowered = [ex.text.strip().lower() for ex in corpus]
    duplicates = sorted({t for t in lowered if lowered.count(t) > 1})
    assert not duplicates


def test_sentence_lengths(corpus: list[Example]) -> None:
    out_of_range = [ex.text for ex in corpus if not 4 <= len(ex.text.split()) <= 22]
    assert not out_of_range


def test_no_evaluation_domain_words(corpus: list[Example]) -> None:
    hits = [ex.text for ex in corpus if _EXCLUDED_RE.search(ex.text)]
    assert not hits


def test_excluded_pattern_matches_what_it_should() -> None:
    assert _EXCLUDED_RE.search("Set two alarms for tomorrow.")
    assert _EXCLUDED_RE.search("What's the Weather like?")
    assert _EXCLUDED_RE.search("Add milk to my shopping list.")
    assert not _EXCLUDED_RE.search("The lighthouse keeper was flattered.")

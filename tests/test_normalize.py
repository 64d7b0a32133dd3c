"""TextNormalizer: a property test that it never fails in an untyped way.

A longer run of the same property (>= 10,000 inputs) is ``benchmarks/fuzz.py``.
"""
from __future__ import annotations

import unicodedata

from hypothesis import given

from speech_intent.normalize import TextNormalizer

from .strategies import FAST, texts

NORMALIZE = TextNormalizer()


def _is_punctuation_or_symbol(char: str) -> bool:
    return char != "'" and unicodedata.category(char)[0] in "PS"


@FAST
@given(texts())
def test_normalizer_never_raises_is_idempotent_and_plain(text):
    once = NORMALIZE(text)
    assert NORMALIZE(once) == once
    assert once == once.lower()
    assert not any(_is_punctuation_or_symbol(c) for c in once), once
    assert once == once.strip() and "  " not in once


def test_years_with_a_zero_third_digit_keep_their_value():
    # "2005" read as "twenty five" would be the number 25
    assert NORMALIZE("in 2005") == "in twenty oh five"
    assert NORMALIZE("the 1907 flood") == "the nineteen oh seven flood"
    assert NORMALIZE("2025") == "twenty twenty five" and NORMALIZE("1900") == "nineteen hundred"


def test_currency_symbol_is_read_after_the_amount():
    assert NORMALIZE("it costs $5") == "it costs five dollars"
    assert NORMALIZE("$1,000 or $ 20?") == "one thousand dollars or twenty dollars"
    assert NORMALIZE("$ signs") == "dollars signs"


def test_negative_numbers_keep_their_sign():
    assert NORMALIZE("set it to -5 degrees") == "set it to minus five degrees"
    assert NORMALIZE("-2.5") == "minus two point five"
    assert NORMALIZE("pages 5-10, a -- b") == "pages five ten a b"


def test_times_glued_to_am_pm_read_like_spaced_ones():
    # "5:00pm" became "five zero pm" and "5:05pm" "five five pm"
    for glued, words in [("5:00pm", "five pm"), ("5:05pm", "five oh five pm"), ("10:30AM", "ten thirty am")]:
        assert NORMALIZE(glued) == NORMALIZE(glued[:-2] + " " + glued[-2:]) == words


def test_decimals_glued_to_a_unit_keep_their_point():
    # "1.5oz" became "one five ounce"
    assert NORMALIZE("a 1.5oz shot") == NORMALIZE("a 1.5 oz shot") == "a one point five ounce shot"

"""TextNormalizer: a property test that it never fails in an untyped way, and how it reads
numbers and abbreviations.

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


def test_unit_abbreviations_are_spelled_out_only_after_a_number():
    for text in ["twelve oz", "12 oz", "12oz", "12 OZ"]:
        assert NORMALIZE(text) == "twelve ounce", text
    assert NORMALIZE("1.5 oz") == "one point five ounce"
    assert NORMALIZE("5 lbs and 2 hrs") == "five pounds and two hours"
    assert NORMALIZE("in 5 min, 30 secs") == "in five minute thirty seconds"
    # anywhere else they are the words they are
    assert NORMALIZE("wizard in oz") == "wizard in oz"
    assert NORMALIZE("give me a min") == "give me a min"
    assert NORMALIZE("wait a sec") == "wait a sec"
    assert NORMALIZE("min 5 max 10") == "min five max ten"


def test_titles_are_spelled_out_before_a_name():
    assert NORMALIZE("dr smith") == NORMALIZE("Dr. Smith") == "doctor smith"
    assert NORMALIZE("mr and mrs jones") == "mister and missus jones"
    assert NORMALIZE("dr oz") == "doctor oz"  # "oz" is no unit here: no number before it
    assert NORMALIZE("see the dr") == "see the dr"
    assert NORMALIZE("Dr.") == "dr"


def test_st_is_saint_before_a_capitalised_word_and_street_otherwise():
    for text in ["St. Louis", "St Louis", "St.Louis", "fly to st. Louis"]:
        assert NORMALIZE(text).endswith("saint louis"), text
    assert NORMALIZE("elm st") == NORMALIZE("Elm St.") == "elm street"
    assert NORMALIZE("5th st") == "fifth street"
    assert NORMALIZE("Elm St is closed") == "elm street is closed"
    assert NORMALIZE("Elm St, then left") == "elm street then left"
    # text without case (a lower-cased corpus, shouting) shows no capital: "st" before a word is "saint"
    assert NORMALIZE("st. louis") == NORMALIZE("ST LOUIS") == "saint louis"
    assert NORMALIZE("the spirit of st  louis") == "the spirit of saint louis"
    assert NORMALIZE("ELM ST") == NORMALIZE("ELM ST.") == "elm street"


def test_decades_are_read_in_the_plural():
    assert NORMALIZE("the 80s") == NORMALIZE("the 80's") == NORMALIZE("the 80\u2019s") == "the eighties"
    assert NORMALIZE("1980s") == "nineteen eighties"
    assert NORMALIZE("the 1900s") == "the nineteen hundreds"
    assert NORMALIZE("the 1800s") == "the eighteen hundreds"
    assert NORMALIZE("the 2000s and 2010s") == "the two thousands and twenty tens"
    assert NORMALIZE("in his 20s") == "in his twenties"
    assert NORMALIZE("my 80 s party") == NORMALIZE("my '80s party") == "my eighties party"  # tokenised corpora
    # other numbers before an "s" keep their reading
    assert NORMALIZE("the 5s") == "the five s"


def test_two_thousand_is_a_plain_number():
    assert NORMALIZE("2000") == "two thousand"
    assert NORMALIZE("in 2000 and 2001") == "in two thousand and twenty oh one"
    assert NORMALIZE("2,000") == "two thousand"


def test_pieces_of_one_text_see_each_others_context():
    # training text is normalised cut at its slots; the context rules must see across the cuts
    assert NORMALIZE.normalize_pieces(["call dr ", "smith"]) == ["call doctor", "smith"]
    assert NORMALIZE.normalize_pieces(["a ", "12", " oz latte"]) == ["a", "twelve", "ounce latte"]
    assert NORMALIZE.normalize_pieces(["fly to St. ", "", "Louis"]) == ["fly to saint", "", "louis"]
    assert NORMALIZE.normalize_pieces(["see the dr", ""]) == ["see the dr", ""]
    assert NORMALIZE.normalize_pieces([]) == []


def test_dicts_saved_before_the_context_rules_load_and_keep_their_units():
    old = {"lowercase": True, "numbers_to_words": True, "split_hyphens": True, "strip_punctuation": True,
           "expand_contractions": False,
           "units": {"%": " percent ", "$": " dollars ", "oz": "ounce", "min": "minute", "dr": "doctor",
                     "st": "street"}}
    loaded = TextNormalizer.from_dict(old)
    assert loaded.units == old["units"] and loaded.titles == TextNormalizer().titles
    # every abbreviation in "units" is still spelled out everywhere, as when the model was trained
    assert loaded("wizard in oz, give me a min") == "wizard in ounce give me a minute"
    assert loaded("see the dr on elm st") == "see the doctor on elm street"
    assert loaded("12 oz") == "twelve ounce"
    assert TextNormalizer.from_dict(NORMALIZE.to_dict()) == NORMALIZE
    assert TextNormalizer.from_dict({**NORMALIZE.to_dict(), "unknown_field": 1}) == NORMALIZE

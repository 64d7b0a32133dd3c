"""speech_intent.slots: one span type, BIO round trips, spans through the normaliser, one slot F1."""
from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech_intent.data import Example, parse_markup, to_bio
from speech_intent.data.bio import bio_to_example
from speech_intent.evaluate import compute_report, evaluate_text
from speech_intent.nlu import nlu_metrics
from speech_intent.normalize import TextNormalizer
from speech_intent.results import IntentPrediction
from speech_intent.slots import (
    SlotSpan,
    aligned_bio,
    locate_values,
    normalize_example,
    normalize_spans,
    project_spans,
    slot_dict,
    slot_scores,
    span_from_dict,
    tags_to_slots,
    word_tags,
)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the span type
def test_slotspan_fields_raw_and_validation():
    assert [f.name for f in dataclasses.fields(SlotSpan)] == ["name", "start", "end", "value", "raw"]
    span = SlotSpan("roast", 2, 12, "light roast", raw="light rose")  # canonicalised: raw fits the span
    assert span.to_dict() == {"name": "roast", "start": 2, "end": 12, "value": "light roast", "raw": "light rose"}
    assert span_from_dict("a light rose", span.to_dict()) == span
    with pytest.raises(ValueError, match="does not fit"):
        SlotSpan("roast", 2, 12, "light roast")  # neither value nor raw fits
    with pytest.raises(ValueError):
        SlotSpan("time", "7:30", 0, 4)  # the old SlotValue field order is rejected
    with pytest.raises(ValueError):
        SlotSpan("x", 0, 2, "ab", raw=3)


def test_example_files_keep_their_slot_keys():
    ex = Example("play jazz", "music", (SlotSpan("genre", 5, 9, "jazz"),))
    assert ex.to_dict()["slots"] == [{"name": "genre", "start": 5, "end": 9, "value": "jazz"}]
    assert Example.from_dict(ex.to_dict()) == ex


def test_slots_module_is_the_lowest_layer():
    tree = ast.parse((REPO / "speech_intent" / "slots.py").read_text())
    allowed = set(sys.stdlib_module_names) | {"numpy", "seqeval", "__future__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.module == "errors", f"speech_intent.slots imports .{node.module}"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert all(n.split(".")[0] in allowed for n in names), names


# ------------------------------------------------------------------ BIO round trips
def test_spans_to_bio_and_back():
    text = "fly from new york to los angeles on friday"
    spans = [SlotSpan("to", 21, 32, "los angeles"), SlotSpan("from", 9, 17, "new york"), SlotSpan("day", 36, 42, "friday")]
    tags = word_tags(text, spans)
    assert tags == ["O", "O", "B-from", "I-from", "O", "B-to", "I-to", "O", "B-day"]
    assert tags_to_slots(text, tags) == sorted(spans, key=lambda s: s.start)
    assert to_bio(Example(text, "fly", tuple(spans))) == (text.split(), tags)


def _conlleval(tags):
    """What a lenient reader makes of ``tags``: an ``I-x`` that continues nothing is a ``B-x``."""
    out = []
    for i, tag in enumerate(tags):
        opens = tag.startswith("I-") and (i == 0 or tags[i - 1] == "O" or tags[i - 1][2:] != tag[2:])
        out.append("B-" + tag[2:] if opens else tag)
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "bb", "ccc", "7:30", "é"]),
                          st.sampled_from(["O", "B-x", "I-x", "B-y", "I-y"])), max_size=8))
def test_bio_to_spans_to_bio_is_conlleval_lenient(pairs):
    tokens, tags = [t for t, _ in pairs], [g for _, g in pairs]
    text = " ".join(tokens)
    spans = tags_to_slots(text, tags)
    assert all(text[s.start:s.end] == s.value for s in spans)
    assert word_tags(text, spans) == _conlleval(tags)
    assert to_bio(bio_to_example(tokens, tags, "i")) == (tokens, _conlleval(tags))


def test_tags_to_slots_is_lenient_and_spans_match_text():
    text = "fly from new york to los angeles"
    slots = tags_to_slots(text, ["O", "O", "B-from", "I-from", "O", "I-to", "I-to"])
    assert [(s.name, s.value) for s in slots] == [("from", "new york"), ("to", "los angeles")]
    assert all(text[s.start:s.end] == s.value for s in slots)


# ------------------------------------------------------------------ spans through the normaliser
@pytest.mark.parametrize("markup, text, tags, raws", [
    ("wake me at [7:30](time)", "wake me at seven thirty", "O O O B-time I-time", ["7:30"]),
    ("[7:30am](time) works", "seven thirty am works", "B-time I-time I-time O", ["7:30am"]),
    ("at [7:30](time), please", "at seven thirty please", "O B-time I-time O", ["7:30"]),
    ("[12:05 p.m.](time) is fine", "twelve oh five pm is fine", "B-time I-time I-time I-time O O", ["12:05 p.m."]),
    ("from [7:00](a) to [7:30](b)", "from seven to seven thirty", "O B-a O B-b I-b", ["7:00", "7:30"]),
])
def test_normaliser_moves_spans_onto_whole_words(markup, text, tags, raws):
    normalizer = TextNormalizer()
    example = parse_markup(markup, "alarm")
    norm = normalize_example(example, normalizer)
    assert norm.text == text == normalizer(example.text)
    assert [s.raw for s in norm.slots] == raws
    assert all(norm.text[s.start:s.end] == s.value for s in norm.slots)
    assert word_tags(norm.text, norm.slots) == tags.split()
    assert normalize_spans(example.text, example.slots, normalizer) == (norm.text, norm.slots)
    # evaluate's gold side is the same: normalised words, one tag each; right predictions score 1
    gold, pred = aligned_bio(example.text, example.slots, norm.text, tags_to_slots(norm.text, tags.split()), normalizer)
    assert gold == pred == tags.split()


def test_locate_project_and_slot_dict():
    text = "a large latte and a large mocha"
    found = locate_values(text, {"size": "Large", "drink": "latte", "milk": "oat"}, TextNormalizer())
    assert [(s.name, s.start, s.value) for s in found] == [("size", 2, "large"), ("drink", 8, "latte")]
    # spans whose words are not among the gold words still count: a trailing B- tag
    assert project_spans(["a", "b", "c"], "b c x", [SlotSpan("n", 0, 3, "b c"), SlotSpan("m", 4, 5, "x")]) == \
        ["O", "B-n", "I-n", "B-m"]
    assert slot_dict([SlotSpan("n", 4, 5, "x"), SlotSpan("n", 0, 1, "y"), SlotSpan("m", 2, 3, "z")]) == \
        {"n": "y", "m": "z"}


def test_normalize_example_moves_spans_into_normalised_text():
    ex = parse_markup("Wake me at [7:30](time) on [Friday](date)!", "set_alarm")
    norm = normalize_example(ex, TextNormalizer())
    assert norm.text == "wake me at seven thirty on friday"
    assert [(s.name, s.value, s.raw) for s in norm.slots] == [("time", "seven thirty", "7:30"),
                                                              ("date", "friday", "Friday")]
    assert all(norm.text[s.start:s.end] == s.value for s in norm.slots)
    assert word_tags(norm.text, norm.slots) == ["O", "O", "O", "B-time", "I-time", "O", "B-date"]
    # a slot that normalises to nothing is dropped; pairs without slots work too
    assert normalize_example(Example("go ?", "x", (SlotSpan("p", 3, 4, "?"),)), TextNormalizer()).slots == []
    assert normalize_example(("Hello,  World", "greet"), None).text == "Hello, World"


def test_slot_cuts_do_not_change_how_abbreviations_read():
    # each piece is normalised on its own, but a title, a unit or "st" reads as in the whole text
    normalizer = TextNormalizer()
    for markup, text, values in [
        ("call dr [smith](name)", "call doctor smith", ["smith"]),
        ("a [12](amount) oz latte", "a twelve ounce latte", ["twelve"]),
        ("fly to St. [Louis](city)", "fly to saint louis", ["louis"]),
        ("fly to [St.](x) [Louis](city)", "fly to saint louis", ["saint", "louis"]),
        ("wait a [min](unit)", "wait a min", ["min"]),
    ]:
        example = parse_markup(markup, "x")
        norm = normalize_example(example, normalizer)
        assert norm.text == text == normalizer(example.text), markup
        assert [s.value for s in norm.slots] == values
        assert all(norm.text[s.start:s.end] == s.value for s in norm.slots)


_WORDS = st.sampled_from(["set", "an", "alarm", "7:30", "12-ounce", "Dr.", "$5", "it's", "?", "a.m.", "Paris", "2nd"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(_WORDS, min_size=1, max_size=3), st.booleans()), min_size=1, max_size=5))
def test_normalised_spans_always_match_their_text(chunks):
    text, spans = "", []
    for i, (words, is_slot) in enumerate(chunks):
        piece = " ".join(words)
        if text:
            text += " "
        if is_slot:
            spans.append(SlotSpan(f"s{i}", len(text), len(text) + len(piece), piece))
        text += piece
    norm = normalize_example(Example(text, "x", tuple(spans)), TextNormalizer())
    assert all(norm.text[s.start:s.end] == s.value and s.value for s in norm.slots)
    assert "  " not in norm.text and norm.text == norm.text.strip()
    tags = word_tags(norm.text, norm.slots)
    assert [(s.name, s.start, s.end) for s in tags_to_slots(norm.text, tags)] == \
        [(s.name, s.start, s.end) for s in norm.slots]


# ------------------------------------------------------------------ one slot F1
def test_no_slot_rule_and_seqeval_otherwise():
    none = [["O", "O"], ["O"]]
    assert slot_scores(none, none) == (1.0, 1.0, 1.0)  # nothing to find, nothing wrongly found
    assert slot_scores([], []) == (1.0, 1.0, 1.0)
    assert slot_scores(none, [["B-x", "O"], ["O"]]) == (0.0, 0.0, 0.0)
    assert slot_scores([["B-x", "O"], ["O"]], none) == (0.0, 0.0, 0.0)
    # entity level: a partly right span is wrong; the orphan I-y opens an entity (conlleval)
    p, r, f = slot_scores([["B-x", "I-x", "O", "B-y"]], [["B-x", "O", "O", "I-y"]])
    assert (p, r, f) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="utterance 0"):
        slot_scores([["O"]], [["O", "O"]])
    metrics = nlu_metrics(["a", "b"], ["a", "a"], none, none)
    assert (metrics.slot_precision, metrics.slot_recall, metrics.slot_f1) == (1.0, 1.0, 1.0)


class _Tagger:
    """Stands in for a joint IntentClassifier: a fixed ``(intent, [(slot, value)])`` per text."""

    def __init__(self, answers):
        self.answers = answers
        self.normalizer = TextNormalizer()

    def normalize(self, text):
        return self.normalizer(text)

    def __call__(self, texts, batch_size=None):
        out = []
        for raw in texts:
            intent, values = self.answers[raw]
            text = self.normalize(raw)
            spans = [SlotSpan(n, text.index(v), text.index(v) + len(v), v) for n, v in values]
            out.append(IntentPrediction(text=text, intent=intent, confidence=1.0, slots=dict(values),
                                        slot_spans=spans))
        return out


def _snips_evaluate():
    """``evaluate`` of ``benchmarks/snips.py`` (imported; no training is run)."""
    from benchmarks.snips import evaluate

    return evaluate


def test_training_metrics_evaluate_and_snips_report_one_slot_f1():
    gold = [
        parse_markup("Wake me at [7:30](time) on [Friday](date)!", "alarm"),
        parse_markup("play [jazz](genre) by [Miles](artist)", "music"),
        parse_markup("call [john](name)'s phone", "call"),  # piecewise "john s", whole text "john's"
        parse_markup("set an alarm for [7:00](time)", "alarm"),
        parse_markup("hello there", "greet"),
        parse_markup("book a table", "book"),
    ]
    tagger = _Tagger({
        gold[0].text: ("alarm", [("time", "seven thirty")]),      # date missed
        gold[1].text: ("music", [("genre", "jazz")]),             # artist missed
        gold[2].text: ("call", [("name", "john's")]),             # cannot be placed on the gold words
        gold[3].text: ("alarm", [("time", "seven")]),
        gold[4].text: ("greet", []),
        gold[5].text: ("chat", [("thing", "table")]),             # extra
    })
    # gold 6 entities, predicted 5, right 3 (both times, jazz)
    expected = (3 / 5, 3 / 6, 2 * (3 / 5) * (3 / 6) / (3 / 5 + 3 / 6))
    predictions = tagger([ex.text for ex in gold])
    report = compute_report(gold, predictions, slot_mode="bio", bio_normalizer=tagger.normalize)
    from_text = evaluate_text(tagger, gold)
    tags = [aligned_bio(ex.text, ex.slots, p.text, p.slot_spans, tagger.normalize) for ex, p in zip(gold, predictions)]
    training = nlu_metrics([ex.intent for ex in gold], [p.intent for p in predictions],
                           [g for g, _ in tags], [q for _, q in tags])
    snips = _snips_evaluate()(tagger, gold)
    for scores in [(report.slot_precision, report.slot_recall, report.slot_f1),
                   (from_text.slot_precision, from_text.slot_recall, from_text.slot_f1),
                   (training.slot_precision, training.slot_recall, training.slot_f1),
                   (snips["slot_precision"], snips["slot_recall"], snips["slot_f1"])]:
        assert scores == pytest.approx(expected)
    assert report.slot_mode == from_text.slot_mode == "bio" and snips["text_mismatches"] == 1


def test_gold_slots_that_normalise_away_follow_the_same_rule_everywhere():
    gold = [Example("go ?", "go", (SlotSpan("p", 3, 4, "?"),)), Example("stop", "stop")]
    tagger = _Tagger({"go ?": ("go", []), "stop": ("stop", [])})
    report = evaluate_text(tagger, gold)
    predictions = tagger([ex.text for ex in gold])
    tags = [aligned_bio(ex.text, ex.slots, p.text, p.slot_spans, tagger.normalize) for ex, p in zip(gold, predictions)]
    training = nlu_metrics(["go", "stop"], ["go", "stop"], [g for g, _ in tags], [q for _, q in tags])
    assert report.slot_mode == "bio"
    assert (report.slot_precision, report.slot_recall, report.slot_f1) == (1.0, 1.0, 1.0)
    assert (training.slot_precision, training.slot_recall, training.slot_f1) == (1.0, 1.0, 1.0)

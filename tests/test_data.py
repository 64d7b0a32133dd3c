"""Tests for speech_intent.data: every format, validation errors, and the shared real data."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speech_intent.data import (
    DataFormatError,
    Example,
    SlotSpan,
    expand_grammar,
    grammar_slot_values,
    grammar_vocabulary,
    load_examples,
    parse_markup,
    read_bio,
    save_jsonl,
    to_bio,
    to_markup,
)
from speech_intent.data.examples import spans_from_values

SHARED = Path(__file__).parents[2] / "shared"
COFFEE = SHARED / "data" / "coffee" / "grammar.yaml"
SNIPS_TRAIN = SHARED / "data" / "snips" / "train"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared data folder {SHARED} (../shared from the repo root) is absent"
)


def _check_spans(example: Example) -> None:
    for span in example.slots:
        assert example.text[span.start : span.end] == span.value


# ---------------------------------------------------------------- Example / SlotSpan


def test_example_validates_and_round_trips() -> None:
    text = "play jazz by Zoë"
    ex = Example(text, "PlayMusic", (SlotSpan("artist", 13, 16, "Zoë"), SlotSpan("genre", 5, 9, "jazz")))
    assert [s.name for s in ex.slots] == ["genre", "artist"]  # sorted by start
    assert Example.from_dict(ex.to_dict()) == ex
    assert json.loads(json.dumps(ex.to_dict()))["slots"][1] == {
        "name": "artist", "start": 13, "end": 16, "value": "Zoë"}
    assert Example.from_dict({"text": "hi", "intent": None}).slots == ()
    assert ex.slot_dict() == {"genre": ["jazz"], "artist": ["Zoë"]}


@pytest.mark.parametrize(
    "slots, problem",
    [
        ((SlotSpan("a", 10, 20, "x" * 10),), "outside"),
        ((SlotSpan("a", 0, 4, "jazz"),), "!="),
        ((SlotSpan("a", 0, 4, "play"), SlotSpan("b", 2, 9, "ay jazz")), "overlap"),
    ],
)
def test_example_rejects_bad_spans(slots: tuple[SlotSpan, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Example("play jazz", "x", slots)


def test_slotspan_rejects_bad_offsets() -> None:
    with pytest.raises(ValueError):
        SlotSpan("a", 3, 3, "")
    with pytest.raises(ValueError):
        SlotSpan("a", 0, 3, "ab")


def test_spans_from_values_prefers_whole_words_and_longest_first() -> None:
    text = "almond milk latte with milk"
    spans = spans_from_values(text, [("milk", "milk"), ("drink", "almond milk")])
    assert {(s.name, s.start) for s in spans} == {("drink", 0), ("milk", 23)}
    assert spans_from_values("a cat", [("x", "a")])[0].start == 0
    with pytest.raises(ValueError, match="not found"):
        spans_from_values("tea", [("d", "coffee")])


# ---------------------------------------------------------------- CSV / TSV / JSONL


def test_csv_with_both_slot_forms_and_unicode(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "text,intent,slots\n"
        '"play café del mar, please",PlayMusic,"[{""name"": ""album"", ""start"": 5, ""end"": 17}]"\n'
        'weather in Zürich,GetWeather,"[{""name"": ""city"", ""value"": ""Zürich""}]"\n'
        "hello there,,\n",
        encoding="utf-8",
    )
    examples = load_examples(path)
    assert [e.intent for e in examples] == ["PlayMusic", "GetWeather", None]
    assert examples[0].slots[0].value == "café del mar"
    assert examples[1].slots[0] == SlotSpan("city", 11, 17, "Zürich")
    assert examples[2].slots == ()


def test_csv_intent_with_spaces_is_the_same_intent(tmp_path: Path) -> None:
    """``play jazz, play_music`` (a space after the comma) must not make a second intent " play_music"."""
    path = tmp_path / "spaced.csv"
    path.write_text("text,intent\nplay jazz, play_music\nplay rock,play_music\nhello,  \n", encoding="utf-8")
    assert [e.intent for e in load_examples(path)] == ["play_music", "play_music", None]


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text('text\tintent\tslots\nbook a table\tBook\t{"thing": "table"}\n', encoding="utf-8")
    (ex,) = load_examples(path)
    assert ex.slots == (SlotSpan("thing", 7, 12, "table"),)


@pytest.mark.parametrize(
    "body, where",
    [
        ("text,label\nhi,x\n", "line 1"),
        ('text,intent,slots\nok,x,\nbad,x,"[{""name"": ""a"", ""value"": ""zzz""}]"\n', "line 3"),
        ("text,intent,slots\nok,x,\nbad,x,[not json\n", "line 3"),
        ('text,intent,slots\nbad,x,"[{""name"": ""a"", ""start"": 0, ""end"": 99}]"\n', "line 2"),
        ("text,intent\nok,x,extra\n", "line 2"),
    ],
)
def test_csv_malformed(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataFormatError, match="broken.csv") as info:
        load_examples(path)
    assert where in str(info.value)


def test_jsonl_forms_and_save_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    records = [
        {"text": "set an alarm for 7 am", "intent": "Alarm", "slots": [{"name": "time", "start": 17, "end": 21}]},
        {"text": "écoute Björk", "intent": "Play", "slots": {"artist": "Björk"}},
        {"text": "two teas and tea", "intent": "Order", "slots": [{"name": "d", "value": "tea"},
                                                                  {"name": "n", "start": 0, "end": 3}]},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    examples = load_examples(path)
    assert examples[0].slots[0].value == "7 am"
    assert examples[1].slots[0] == SlotSpan("artist", 7, 12, "Björk")
    assert examples[2].slot_dict() == {"n": ["two"], "d": ["tea"]}
    assert examples[2].slots[1].start == 13  # whole word "tea", not inside "teas"
    out = save_jsonl(examples, tmp_path / "sub" / "out.jsonl")
    assert load_examples(out) == examples
    assert "Björk" in out.read_text(encoding="utf-8")


def test_json_array(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"text": "hi", "intent": "greet"}]), encoding="utf-8")
    assert load_examples(path) == [Example("hi", "greet")]


@pytest.mark.parametrize(
    "line",
    ['{"text": "hi", "intent": "greet"', '{"intent": "greet"}', '{"text": "hi", "intent": 3}',
     '{"text": "hi", "intent": "g", "slots": [{"name": "a", "value": "bye"}]}', '["hi"]'],
)
def test_jsonl_malformed(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "intent": "x"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl: line 2"):
        load_examples(path)


# ---------------------------------------------------------------- BIO folders


def _write_bio(folder: Path, seq_in: str, seq_out: str, label: str) -> Path:
    folder.mkdir()
    for name, content in (("seq.in", seq_in), ("seq.out", seq_out), ("label", label)):
        (folder / name).write_text(content, encoding="utf-8")
    return folder


def test_bio_folder(tmp_path: Path) -> None:
    folder = _write_bio(
        tmp_path / "train",
        "add  50 clásicos to rock playlist \nwhat is up\n",
        "O B-playlist I-playlist O B-genre O \nO O O\n",
        "AddToPlaylist\nChat\n",
    )
    first, second = load_examples(folder)
    assert first.text == "add 50 clásicos to rock playlist"
    assert first.slots == (SlotSpan("playlist", 4, 15, "50 clásicos"), SlotSpan("genre", 19, 23, "rock"))
    assert first.intent == "AddToPlaylist" and second.slots == ()
    assert to_bio(first) == (first.text.split(), "O B-playlist I-playlist O B-genre O".split())


def test_bio_orphan_inside_tag_starts_new_span(tmp_path: Path) -> None:
    folder = _write_bio(tmp_path / "d", "a b c d\n", "I-x B-y I-x O\n", "i\n")
    (ex,) = read_bio(folder)
    assert [(s.name, s.value) for s in ex.slots] == [("x", "a"), ("y", "b"), ("x", "c")]


@pytest.mark.parametrize(
    "seq_in, seq_out, label, match",
    [
        ("a b\nc\n", "O O\n", "x\ny\n", "line counts differ"),
        ("a b\nc d\n", "O O\nO\n", "x\ny\n", r"seq\.out: line 2: 2 tokens but 1 tags"),
        ("a\n", "X-foo\n", "x\n", "bad BIO tag"),
    ],
)
def test_bio_malformed(tmp_path: Path, seq_in: str, seq_out: str, label: str, match: str) -> None:
    folder = _write_bio(tmp_path / "broken_bio", seq_in, seq_out, label)
    with pytest.raises(DataFormatError, match=match) as info:
        read_bio(folder)
    assert "broken_bio" in str(info.value)


def test_bio_files_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Files saved with a UTF-8 BOM (Windows editors): no stray U+FEFF in the first token, tag or intent."""
    folder = tmp_path / "bom"
    folder.mkdir()
    for name, content in (("seq.in", "play jazz\nhi\n"), ("seq.out", "O B-genre\nO\n"), ("label", "Play\nGreet\n")):
        (folder / name).write_text(content, encoding="utf-8-sig")
    first, _ = read_bio(folder)
    assert first == Example("play jazz", "Play", (SlotSpan("genre", 5, 9, "jazz"),))


def test_bio_missing_file(tmp_path: Path) -> None:
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "seq.in").write_text("a\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="seq.out"):
        load_examples(folder)


# ---------------------------------------------------------------- Rasa


RASA = """\
version: "3.1"
nlu:
- intent: order_coffee
  examples: |
    - a [large](size) [latte](drink) please
    - un [café crème]{"entity": "drink", "value": "cafe creme"} s'il vous plaît
    - just [black](roast:dark) coffee, [sic]
- synonym: latte
  examples: |
    - caffe latte
- intent: greet
  examples:
  - text: hello
  - text: hi [Zoë](name)
"""


def test_rasa(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(RASA, encoding="utf-8")
    examples = load_examples(path)
    assert [e.intent for e in examples] == ["order_coffee"] * 3 + ["greet"] * 2
    assert examples[0] == Example("a large latte please", "order_coffee",
                                  (SlotSpan("size", 2, 7, "large"), SlotSpan("drink", 8, 13, "latte")))
    assert examples[1].text == "un café crème s'il vous plaît"
    assert examples[1].slots == (SlotSpan("drink", 3, 13, "café crème"),)
    assert examples[2].text == "just black coffee, [sic]"
    assert examples[2].slots == (SlotSpan("roast", 5, 10, "black"),)
    assert examples[4].slots == (SlotSpan("name", 3, 6, "Zoë"),)
    for ex in examples:
        _check_spans(ex)


@pytest.mark.parametrize(
    "body, match",
    [
        ("nlu:\n- intent: a\n  examples: |\n    - fine\n    no dash here\n", "line 5"),
        ('nlu:\n- intent: a\n  examples: |\n    - [x]{"role": "r"}\n', "line 4.*no string 'entity'"),
        ("nlu:\n- intent: a\n  examples: [\n", "invalid YAML"),
        ("stories: []\n", "no 'nlu:'"),
    ],
)
def test_rasa_malformed(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "bad_nlu.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataFormatError, match=match) as info:
        load_examples(path)
    assert "bad_nlu.yml" in str(info.value)


_PLAIN = st.text(st.characters(blacklist_characters="[](){}\n\r", blacklist_categories=("Cs",)), max_size=8)
_VALUE = st.text(st.characters(blacklist_characters="[](){}\n\r", blacklist_categories=("Cs",)),
                 min_size=1, max_size=8)
_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_PLAIN, _VALUE, _NAME), max_size=5), _PLAIN, st.booleans())
def test_rasa_markup_round_trip(parts: list[tuple[str, str, str]], tail: str, json_form: bool) -> None:
    def mark(value: str, name: str) -> str:
        return f"[{value}]" + (json.dumps({"entity": name}) if json_form else f"({name})")

    line = "".join(plain + mark(value, name) for plain, value, name in parts) + tail
    ex = parse_markup(line, "i")
    _check_spans(ex)
    assert [(s.name, s.value) for s in ex.slots] == [(name, value) for _, value, name in parts]
    assert ex.text == "".join(plain + value for plain, value, _ in parts) + tail
    assert parse_markup(to_markup(ex), "i") == ex


# ---------------------------------------------------------------- Grammar


GRAMMAR = {
    "context": {
        "expressions": {
            "order": ["[get me, give me] a $size:size (hot) $drink:drink",
                      "(please, kindly) make $drink:drink"],
            "cancel": ["cancel [it, the order]", "never mind"],
        },
        "slots": {"size": ["small", " large "], "drink": ["tea", "green  tea"]},
    }
}


def test_grammar_full_expansion() -> None:
    examples = expand_grammar(GRAMMAR, max_examples=None)
    assert len(examples) == 16 + 6 + 2 + 1 == len(set(examples))
    texts = {e.text for e in examples}
    assert {"give me a large hot green tea", "get me a small tea", "make tea", "kindly make green tea",
            "cancel the order", "never mind"} <= texts
    ex = next(e for e in examples if e.text == "give me a large hot green tea")
    assert ex.intent == "order"
    assert ex.slots == (SlotSpan("size", 10, 15, "large"), SlotSpan("drink", 20, 29, "green tea"))
    for e in examples:
        _check_spans(e)


def test_grammar_sampling_is_balanced_and_deterministic() -> None:
    ten = expand_grammar(GRAMMAR, max_examples=10, seed=3)
    assert Counter(e.intent for e in ten) == {"order": 7, "cancel": 3}
    assert sum(e.text.endswith("make tea") or "make green" in e.text for e in ten) == 3
    assert expand_grammar(GRAMMAR, max_examples=10, seed=3) == ten
    assert len(expand_grammar(GRAMMAR, max_examples=1000)) == 25  # capped by the full size


def test_grammar_nested_alternatives_and_helpers() -> None:
    grammar = {"expressions": {"go": ["[go (to the), head] $place:dest now"]},
               "slots": {"place": ["home", "the office"]}}
    texts = {e.text for e in expand_grammar(grammar, max_examples=None)}
    assert texts == {f"{verb} {place} now" for verb in ("go to the", "go", "head")
                     for place in ("home", "the office")}
    assert grammar_slot_values(grammar) == {"dest": ["home", "the office"]}
    assert grammar_vocabulary(grammar) == {"go", "to", "the", "head", "now", "home", "office"}


@pytest.mark.parametrize(
    "expression, match",
    [("order [a, b", "unclosed"), ("order a]", "unbalanced"), ("get $nope:x", "unknown slot type"),
     ("get [a, , b]", "empty alternative"), ("get (a]", "closes"), ("get $ now", "bad slot reference")],
)
def test_grammar_malformed(tmp_path: Path, expression: str, match: str) -> None:
    path = tmp_path / "bad_grammar.yaml"
    path.write_text(
        "context:\n  expressions:\n    x:\n      - fine\n      - " + json.dumps(expression)
        + "\n  slots:\n    size: [small]\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=match) as info:
        load_examples(path)
    assert "bad_grammar.yaml" in str(info.value) and "record 2" in str(info.value)


def test_grammar_bad_structure(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("context:\n  slots: {}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="g.yaml.*expressions"):
        load_examples(path)
    with pytest.raises(ValueError):
        expand_grammar(GRAMMAR, max_examples=0)


def test_grammar_file_keeps_plain_scalars_as_written(tmp_path: Path) -> None:
    """Unquoted YAML values such as ``on`` or ``7:30`` are words, not booleans or sexagesimal numbers."""
    path = tmp_path / "lights.yaml"
    path.write_text("context:\n  expressions:\n    light:\n      - turn it $state:state at $time:time\n"
                    "  slots:\n    state:\n      - on\n      - off\n    time: [7:30, 007]\n", encoding="utf-8")
    assert grammar_slot_values(path) == {"state": ["on", "off"], "time": ["7:30", "007"]}
    assert {e.text for e in load_examples(path, max_examples=None)} == {
        f"turn it {s} at {t}" for s in ("on", "off") for t in ("7:30", "007")}


# ---------------------------------------------------------------- dispatch


def test_load_examples_dispatch_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataFormatError, match="notes.txt"):
        load_examples(tmp_path / "notes.txt")
    with pytest.raises(DataFormatError, match="seq.in"):
        load_examples(tmp_path)
    with pytest.raises(DataFormatError, match="unknown format"):
        load_examples(tmp_path / "notes.txt", format="xml")
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "missing.csv")
    grammar = tmp_path / "g.yml"
    grammar.write_text(json.dumps(GRAMMAR), encoding="utf-8")
    assert len(load_examples(grammar, max_examples=None)) == 25


# ---------------------------------------------------------------- real shared data


@needs_shared
def test_coffee_grammar_expands() -> None:
    values = grammar_slot_values(COFFEE)
    assert set(values) == {"size", "roast", "numberOfShots", "coffeeDrink", "milkAmount", "sugarAmount"}
    started = time.perf_counter()
    examples = load_examples(COFFEE)
    elapsed = time.perf_counter() - started
    assert len(examples) == 20000 == len(set(examples))
    assert elapsed < 30
    seen: set[str] = set()
    for ex in examples:
        assert ex.intent == "orderDrink"
        _check_spans(ex)
        for span in ex.slots:
            assert span.value in values[span.name]
            seen.add(span.name)
    assert seen == set(values)
    assert load_examples(COFFEE, max_examples=500, seed=1) == expand_grammar(COFFEE, max_examples=500, seed=1)
    assert {"brew", "I'd", "americano", "sweetener"} <= grammar_vocabulary(COFFEE)


@needs_shared
def test_snips_train_loads() -> None:
    examples = load_examples(SNIPS_TRAIN)
    assert len(examples) == 13084
    assert len({e.intent for e in examples}) == 7
    assert sum(len(e.slots) for e in examples) > 10000
    tags = (SNIPS_TRAIN / "seq.out").read_text(encoding="utf-8").splitlines()
    for ex, line in zip(examples[:2000], tags):
        _check_spans(ex)
        assert to_bio(ex)[1] == line.split()

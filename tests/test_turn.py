"""End-of-turn detection: the model trained on a tiny domain, grammar and required-slot completeness,
save / load (the streaming recogniser's use of it: test_live.py)."""
from __future__ import annotations

import numpy as np
import pytest

from speech_intent.data.grammar import expand_grammar
from speech_intent.errors import ConfigError, ModelLoadError
from speech_intent.results import LabelScores
from speech_intent.turn import (
    EndOfTurnDetector,
    GrammarCompleteness,
    SlotCompleteness,
    TurnTrainingOptions,
    combine,
    load_turn_detector,
    train_turn_detector,
    turn_examples,
)

GRAMMAR = {"context": {
    "expressions": {
        "order": ["[get me, I want, can I have] [a, an] (large, small) $drink:drink (with $milk:milk)"],
        "stop": ["stop", "stop it now"],
    },
    "slots": {"drink": ["latte", "flat white", "tea", "espresso", "iced mocha"], "milk": ["oat milk", "milk", "cream"]},
}}


@pytest.fixture(scope="module")
def detector() -> EndOfTurnDetector:
    sentences = [e.text for e in expand_grammar(GRAMMAR, max_examples=None)]
    return train_turn_detector(sentences, grammar=GRAMMAR, options=TurnTrainingOptions(n_features=2 ** 14))


def test_complete_commands_and_their_truncations(detector):
    complete = ["get me a latte", "I want a large flat white with oat milk", "can I have an espresso", "stop"]
    truncated = ["get me a", "I want a large flat", "can I have an espresso with", "can I have", "stop it"]
    answers = detector.predict(complete + truncated)
    assert all(isinstance(a, LabelScores) for a in answers)
    assert [a.label for a in answers] == ["complete"] * len(complete) + ["incomplete"] * len(truncated)
    for answer in answers:
        assert answer.scores["complete"] + answer.scores["incomplete"] == pytest.approx(1.0)
        assert answer.score == answer.scores[answer.label]
    assert detector.metrics["dev_texts"] > 0 and detector.metrics["auc"] >= 0.95
    assert 0.5 <= detector.threshold <= 1.0


def test_the_model_alone_learns_the_ends_and_an_empty_text_is_unfinished(detector):
    p = detector.model_probabilities(["I want a small tea", "I want a small", "", None])
    assert p[0] > 0.5 > p[1] and p[2] == p[3] == 0.0
    assert [a.label for a in detector.predict(["", None])] == ["incomplete", "incomplete"]
    assert detector.predict([]) == []


def test_grammar_completeness_reads_prefixes_sentences_and_ends():
    grammar = GrammarCompleteness(GRAMMAR)
    prefix, sentence, final = grammar.state("get me a"), grammar.state("get me a latte"), grammar.state(
        "get me a latte with oat milk")
    assert prefix.known and not prefix.complete and prefix.can_continue
    assert sentence.known and sentence.complete and sentence.can_continue  # "... with milk" may follow
    assert final.known and final.complete and not final.can_continue
    assert grammar.state("get me a iced mocha").complete  # a two-word slot value
    assert not grammar.state("get me a pizza").known and not grammar.state("").known
    assert grammar.is_sentence("stop") and not grammar.is_sentence("stop it")


def test_a_truncation_that_is_itself_a_sentence_counts_as_complete():
    grammar = GrammarCompleteness(GRAMMAR)
    examples = turn_examples(["stop it now", "get me a latte with milk"], is_sentence=grammar.is_sentence, noise=0.0)
    labels = {e.text: e.label for e in examples}
    assert labels["stop"] == 1 and labels["stop it"] == 0 and labels["stop it now"] == 1
    assert labels["get me a latte"] == 1 and labels["get me a latte with"] == 0 and labels["get me a"] == 0
    noisy = turn_examples(["get me a latte with milk"], noise=1.0, seed=3)
    assert len(noisy) > len(turn_examples(["get me a latte with milk"], noise=0.0))


def test_the_domain_moves_the_models_probability():
    prefix, done = GrammarCompleteness(GRAMMAR).state("get me a"), GrammarCompleteness(GRAMMAR).state("stop it now")
    assert combine(0.8, prefix) < 0.1 and combine(0.5, done) > 0.9 and combine(0.5) == 0.5
    slots = SlotCompleteness({"order": ["drink"]})
    assert not slots.state("order", {}).complete and slots.state("order", {"drink": "tea"}).complete
    assert not slots.state(None, {}).known and slots.state("stop", {}).complete
    with pytest.raises(ConfigError):
        SlotCompleteness({"order": "drink"})


def test_required_slots_need_the_nlu_result(detector):
    with_slots = EndOfTurnDetector(detector.coef, detector.intercept, normalizer=detector.normalizer,
                                   required_slots=SlotCompleteness({"order": ["milk"]}))
    text = ["get me a latte"]
    missing = with_slots.probabilities(text, intents=["order"], slots=[{"drink": "latte"}])[0]
    filled = with_slots.probabilities(text, intents=["order"], slots=[{"drink": "latte", "milk": "milk"}])[0]
    assert missing < 0.2 < 0.9 < filled
    assert with_slots.probabilities(text)[0] == pytest.approx(float(with_slots.model_probabilities(text)[0]))


def test_save_and_load_keep_the_model_the_grammar_and_the_threshold(detector, tmp_path):
    detector.save_pretrained(tmp_path / "intent" / "turn")
    loaded = load_turn_detector(tmp_path)  # finds intent/turn/ as a pipeline directory has it
    texts = ["get me a", "get me a latte", "stop it now", "can I have a small tea with"]
    assert loaded is not None and loaded.threshold == detector.threshold and loaded.metrics == detector.metrics
    np.testing.assert_allclose(loaded.probabilities(texts), detector.probabilities(texts), atol=1e-5)
    assert loaded.grammar is not None and loaded.grammar.state("get me a").can_continue
    assert load_turn_detector(tmp_path / "nothing") is None
    with pytest.raises(ModelLoadError, match="end-of-turn"):
        EndOfTurnDetector.from_pretrained(tmp_path)
    assert EndOfTurnDetector.from_pretrained(tmp_path / "intent" / "turn", threshold=0.7).threshold == 0.7


def test_bad_training_input_is_a_config_error():
    with pytest.raises(ConfigError, match="2 distinct"):
        train_turn_detector(["stop"])
    with pytest.raises(ConfigError, match="two words"):
        train_turn_detector(["stop", "go"])
    with pytest.raises(ConfigError, match="precision"):
        TurnTrainingOptions(precision=0.2)


def test_train_turn_command_saves_a_detector_streaming_finds(tmp_path, capsys):
    import yaml

    from speech_intent.cli import main

    grammar = tmp_path / "grammar.yaml"
    grammar.write_text(yaml.safe_dump(GRAMMAR))
    assert main(["train-turn", "--data", str(grammar), "--output", str(tmp_path / "model" / "turn"),
                 "--required-slots", '{"order": ["drink"]}']) == 0
    assert "end-of-turn detector" in capsys.readouterr().err
    loaded = load_turn_detector(tmp_path / "model")
    assert loaded.required_slots.to_dict() == {"order": ["drink"]} and loaded.grammar is not None
    assert [a.label for a in loaded.predict(["can I have a", "can I have a tea"])] == ["incomplete", "complete"]
    assert main(["train-turn", "--data", str(grammar)]) == 1  # neither --intent nor --output


@pytest.mark.parametrize("no_turn", [False, True])
def test_speech_intent_train_fits_the_detector_beside_the_intent_model(tiny_bert_dir, tmp_path, capsys, no_turn):
    from speech_intent.cli import main

    data = tmp_path / "intents.csv"
    rows = [f"{verb} a {size} {drink},order" for verb in ("get me", "i want") for size in ("large", "small")
            for drink in ("latte", "tea")] + ["stop it now,stop", "stop,stop"]
    data.write_text("text,intent\n" + "\n".join(rows) + "\n")
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--output", str(out), "--base", str(tiny_bert_dir), "--epochs", "1",
                 "--device", "cpu", "-q", *(["--no-turn"] if no_turn else [])]) == 0
    err = capsys.readouterr().err
    assert ("end-of-turn detector" in err) is not no_turn
    found = load_turn_detector(out)
    assert (found is None) is no_turn
    if found is not None:
        assert [a.label for a in found.predict(["i want a small", "i want a small tea"])] == ["incomplete", "complete"]


def test_serve_gives_streams_with_a_detector_the_longer_trailing_silence(detector, tmp_path):
    from speech_intent.cli import build_parser
    from speech_intent.cli.serve import config_from_args
    from speech_intent.live import TURN_TRAILING_SILENCE

    detector.save_pretrained(tmp_path / "turn")
    parser = build_parser()

    def silence(*argv):
        return config_from_args(parser.parse_args(["serve", *argv])).vad.trailing_silence

    assert silence() == 0.6 and silence("--intent", str(tmp_path)) == TURN_TRAILING_SILENCE
    assert silence("--intent", str(tmp_path), "--trailing-silence", "0.8") == 0.8
    assert silence("--intent", str(tmp_path), "--turn", "none") == 0.6

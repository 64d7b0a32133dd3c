"""The text sentiment / emotion stage: data readers, training a tiny random model, the saved stage, thresholds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from speech_intent.bundled import bundled_encoder_path
from speech_intent.errors import ConfigError, DataFormatError, DataNotFoundError, ModelLoadError
from speech_intent.results import LabelScores
from speech_intent.sentiment import (
    SentimentClassifier,
    SentimentExample,
    SentimentTrainingOptions,
    read_goemotions,
    read_sentiment_data,
    train_sentiment,
)
from speech_intent.sentiment.classifier import default_data_path
from speech_intent.sentiment.data import label_sets, read_table
from speech_intent.sentiment.training import head_predictions
from speech_intent.testing import tiny_bert


def assert_close(a, b, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(a, b, atol=atol)

GOEMOTIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "goemotions"
ROWS = [
    SentimentExample("thanks, that's perfect", ("positive",), ("joy",)),
    SentimentExample("this is useless", ("negative",), ("anger", "disgust")),
    SentimentExample("set a timer for ten minutes", ("neutral",), ("neutral",)),
    SentimentExample("why do you never understand me", ("negative",), ("anger",)),
    SentimentExample("I love it", ("positive",), ("joy",)),
    SentimentExample("turn off the lights", ("neutral",), ()),
]
FAST = SentimentTrainingOptions(epochs=1, batch_size=4, seed=0, threshold=0.5)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("sentiment-base"), bundled_encoder_path())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base) -> Path:
    out = tmp_path_factory.mktemp("sentiment-model")
    train_sentiment(ROWS, out, base=tiny_base, options=FAST, device="cpu", progress=False)
    return out


def _goemotions_folder(root: Path) -> Path:
    """A two-set GoEmotions folder (group + ekman) with three comments."""
    for name, labels, ids in (("group", ["ambiguous", "negative", "neutral", "positive"], ["3", "1", "2,3"]),
                              ("ekman", ["anger", "joy", "neutral"], ["1", "0", "2,1"])):
        (root / name).mkdir(parents=True)
        (root / name / "labels.txt").write_text("\n".join(labels) + "\n")
        texts = ["I'm so happy", "This is awful", 'okay "fine" I guess']
        lines = [f"{text}\t{i}\tid{n}" for n, (text, i) in enumerate(zip(texts, ids))]
        (root / name / "train.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_goemotions_folder_joins_group_and_ekman_by_comment_id(tmp_path):
    rows = read_goemotions(_goemotions_folder(tmp_path))
    assert [(r.text, r.sentiment, r.emotion) for r in rows] == [
        ("I'm so happy", ("positive",), ("joy",)),
        ("This is awful", ("negative",), ("anger",)),
        ('okay "fine" I guess', ("neutral", "positive"), ("neutral", "joy")),  # quotes kept: QUOTE_NONE
    ]
    assert label_sets(rows)["sentiment"] == (["negative", "neutral", "positive"], True)
    one = read_sentiment_data(tmp_path / "ekman" / "train.tsv")  # a lone file: its labels.txt says emotion
    assert one[0].emotion == ("joy",) and one[0].sentiment == ()
    with pytest.raises(DataNotFoundError, match="dev.tsv"):
        read_goemotions(tmp_path, "dev")


def test_goemotions_bad_label_id_names_file_and_line(tmp_path):
    root = _goemotions_folder(tmp_path)
    (root / "group" / "train.tsv").write_text("fine\t0\ta\nbroken\t9\tb\n")
    with pytest.raises(DataFormatError, match=r"train.tsv: line 2: label ids '9'"):
        read_sentiment_data(root / "group" / "train.tsv")


@pytest.mark.skipif(not GOEMOTIONS.is_dir(), reason="the shared GoEmotions data (../shared/data/goemotions) is absent")
def test_shared_goemotions_dev_is_read_whole():
    rows = read_goemotions(GOEMOTIONS, "dev")
    assert len(rows) == 5426
    assert label_sets(rows)["emotion"][0] == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


def test_tables_and_jsonl(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('text,sentiment,emotion\n"great, thanks",positive,"joy,surprise"\nno label,,\n')
    assert read_sentiment_data(csv_file) == [SentimentExample("great, thanks", ("positive",), ("joy", "surprise"))]
    tsv_file = tmp_path / "d.tsv"
    tsv_file.write_text("text\tlabel\nawful\tnegative\nyay\tjoy\n")  # a lone label column: sentiment or emotion
    assert read_sentiment_data(tsv_file) == [SentimentExample("awful", ("negative",)),
                                             SentimentExample("yay", (), ("joy",))]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"text": "meh", "sentiment": "neutral", "emotion": ["neutral"]}) + "\n\n")
    assert read_sentiment_data(jsonl) == [SentimentExample("meh", ("neutral",), ("neutral",))]
    jsonl.write_text('{"text": "meh"\n')
    with pytest.raises(DataFormatError, match="d.jsonl: line 1: invalid JSON"):
        read_sentiment_data(jsonl)
    (tmp_path / "x.csv").write_text("words,label\nhi,positive\n")
    with pytest.raises(DataFormatError, match="needs a 'text' column"):
        read_sentiment_data(tmp_path / "x.csv")
    with pytest.raises(DataNotFoundError):
        read_sentiment_data(tmp_path / "missing.csv")
    with pytest.raises(DataFormatError, match="unknown data format"):
        read_sentiment_data(csv_file.rename(tmp_path / "d.txt"))


def test_shipped_default_sentences_cover_the_labels():
    rows = read_table(default_data_path())
    sets = label_sets(rows)
    assert sets["sentiment"] == (["negative", "neutral", "positive"], False)
    assert sets["emotion"][0] == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    assert len(rows) >= 80


def test_trained_tiny_model_round_trip(trained, tmp_path):
    stage = SentimentClassifier.from_pretrained(trained, device="cpu")
    assert stage.labels == {"sentiment": ["negative", "neutral", "positive"],
                            "emotion": ["anger", "disgust", "joy", "neutral"]}
    config = stage.model.config
    assert not config.sentiment_multi_label and config.emotion_multi_label  # one row had two emotions
    # rare labels weigh more in the BCE: (negatives / positives) ** 0.5 over the 5 rows with emotions
    assert config.emotion_pos_weight == pytest.approx([1.5 ** 0.5, 2.0, 1.5 ** 0.5, 2.0])
    assert config.sentiment_pos_weight is None  # a softmax head
    texts = ["thanks, that's perfect", "", "this is useless, why do you never understand me"]
    answers = stage.predict(texts)
    assert answers[1].sentiment is None and answers[1].emotion is None  # empty text: no answer
    first = answers[0]
    assert isinstance(first.sentiment, LabelScores)
    assert sum(first.sentiment.scores.values()) == pytest.approx(1.0, abs=1e-5)  # softmax head
    assert all(0.0 <= p <= 1.0 for p in first.emotion.scores.values())  # sigmoid head, each on its own
    assert first.to_dict()["sentiment"]["scores"].keys() == {"negative", "neutral", "positive"}
    stage.save_pretrained(tmp_path / "again")
    again = SentimentClassifier.from_pretrained(tmp_path / "again", device="cpu")
    for head in ("sentiment", "emotion"):
        assert_close(again.predict_proba(texts)[head], stage.predict_proba(texts)[head])
    assert again.training["train_examples"] == len(ROWS)
    assert not list((tmp_path / "again").glob("*.bin"))  # safetensors only
    # batching: a text's answer does not depend on its batch
    one_by_one = np.concatenate([stage.predict_proba([t])["emotion"] for t in texts])
    assert_close(one_by_one, stage.predict_proba(texts, batch_size=2)["emotion"])


def test_uncertain_under_threshold(trained):
    sure = SentimentClassifier.from_pretrained(trained, device="cpu", threshold=0.0)
    doubtful = SentimentClassifier.from_pretrained(trained, device="cpu", threshold=1.0)
    a, b = sure.predict("I love it")[0], doubtful.predict("I love it")[0]
    assert a.sentiment.label in {"negative", "neutral", "positive"}
    assert b.sentiment.label == LabelScores.UNCERTAIN and b.emotion.label == LabelScores.UNCERTAIN
    assert b.sentiment.score == pytest.approx(a.sentiment.score)  # the best score is still reported


def test_bad_inputs_and_settings(trained, tmp_path, tiny_base):
    stage = SentimentClassifier.from_pretrained(trained, device="cpu")
    with pytest.raises(ConfigError, match="text #1 must be a string"):
        stage.predict(["fine", 3])
    assert stage.predict([None])[0].sentiment is None
    with pytest.raises(ConfigError, match="threshold"):
        SentimentClassifier.from_pretrained(trained, device="cpu", threshold=1.5)
    with pytest.raises(ModelLoadError, match="not a sentiment model"):
        SentimentClassifier.from_pretrained(tiny_base, device="cpu")
    with pytest.raises(ModelLoadError):
        SentimentClassifier.from_pretrained(tmp_path / "nothing-here", device="cpu")
    with pytest.raises(ConfigError, match="no training example"):
        train_sentiment([SentimentExample("no labels")], tmp_path / "x", base=tiny_base, options=FAST,
                        progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        train_sentiment(ROWS, tmp_path / "x", base=tiny_base, options=SentimentTrainingOptions(epochs=0))


def test_sentiment_only_data_has_no_emotion_head(tmp_path, tiny_base):
    rows = [SentimentExample(ex.text, ex.sentiment) for ex in ROWS]
    stage = train_sentiment(rows, tmp_path / "m", base=tiny_base, options=FAST, device="cpu", progress=False)
    answer = stage.predict("fine")[0]
    assert answer.emotion is None and answer.sentiment is not None
    assert list(stage.labels) == ["sentiment"]


def test_multi_label_predictions_use_the_decision_threshold():
    probabilities = np.array([[0.9, 0.4, 0.1], [0.2, 0.25, 0.1]])
    assert head_predictions(probabilities, True, 0.3).tolist() == [[1, 1, 0], [0, 1, 0]]  # none over: the best
    assert head_predictions(probabilities, False, 0.3).tolist() == [[1, 0, 0], [0, 1, 0]]


def test_cli_train_sentiment_on_a_goemotions_folder(tmp_path, tiny_base, capsys):
    from speech_intent.cli import main

    root = _goemotions_folder(tmp_path / "go")
    for name in ("group", "ekman"):
        (root / name / "dev.tsv").write_text((root / name / "train.tsv").read_text())
    out = tmp_path / "stage"
    assert main(["train-sentiment", str(root), "--output", str(out), "--base", str(tiny_base), "--epochs", "1",
                 "--batch-size", "2", "--device", "cpu", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["labels"] == {"sentiment": ["negative", "neutral", "positive"],
                                 "emotion": ["anger", "joy", "neutral"]}
    assert summary["train_examples"] == 3 and summary["dev_examples"] == 3  # its dev split was found
    assert SentimentClassifier.from_pretrained(out, device="cpu").model.config.emotion_multi_label
    assert main(["train-sentiment", str(tmp_path / "none.csv"), "--output", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["train-sentiment", str(root), "--output", str(out), "--threshold", "2"]) == 1
    assert "threshold" in capsys.readouterr().err


@pytest.mark.slow
def test_default_stage_trains_on_first_use_and_hears_thanks_and_complaints(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECH_INTENT_CACHE", str(tmp_path))
    stage = SentimentClassifier.default(device="cpu", progress=False)
    assert len(list(tmp_path.glob("sentiment-*/model.safetensors"))) == 1  # cached for the next call
    thanks, useless, command = stage.predict(["thank you, that's great", "this is useless, you never get it right",
                                              "set a timer for five minutes"])
    assert thanks.sentiment.label == "positive" and useless.sentiment.label == "negative"
    assert command.sentiment.label == "neutral"
    assert useless.emotion.label in {"anger", "disgust", LabelScores.UNCERTAIN}
    assert SentimentClassifier.default(device="cpu").training == stage.training  # loaded, not trained again

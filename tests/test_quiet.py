"""What a first run prints: no third-party load reports or loading bars, one progress bar for a fine-tune,
nothing on stdout (where ``speech-intent predict`` writes its results)."""
from __future__ import annotations

import re

import pytest

from speech_intent.nlu import TrainingOptions, fine_tune
from speech_intent.quiet import quiet_transformers

from .conftest import _toy_data

#: the first frame of a tqdm bar: "  0%|          | 0/12 [" (one per bar, whatever its description)
BAR_START = re.compile(r"\b0/\d+ \[")


@pytest.mark.parametrize("joint, progress", [(True, True), (False, True), (True, False)])
def test_fine_tune_shows_one_bar_and_no_load_report(tiny_bert_dir, tmp_path, capfd, joint, progress):
    data = _toy_data() if joint else [(ex.text, ex.intent) for ex in _toy_data()]
    options = TrainingOptions(epochs=2, learning_rate=5e-3, batch_size=16, seed=0)
    capfd.readouterr()
    # the base is a sequence classifier: its head is UNEXPECTED for a joint model, MISSING for new labels;
    # dev data: an evaluation each epoch, and the best epoch reloaded at the end
    fine_tune(data, tmp_path / "m", base=tiny_bert_dir, options=options, device="cpu", progress=progress,
              dev_examples=data[::3])
    out, err = capfd.readouterr()
    assert out == ""
    assert "LOAD REPORT" not in err and "Loading weights" not in err and "Writing model shards" not in err
    assert len(BAR_START.findall(err)) == (1 if progress else 0), err
    assert "dev=" in err if progress else err.strip() == ""


def test_quiet_transformers_restores_what_it_changed():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    with quiet_transformers(reports=False):  # bars only
        assert hf_logging.get_verbosity() == before
        with quiet_transformers():  # nested: load reports too, until it ends
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert type(hf_logging.tqdm(range(3))).__name__ == "EmptyTqdm"
        assert hf_logging.get_verbosity() == before
        assert type(hf_logging.tqdm(range(3))).__name__ == "EmptyTqdm"
    assert hf_logging.get_verbosity() == before
    previous = hf_logging.set_tqdm_hook(None)
    assert previous is None  # the bar hook put back
    hf_logging.set_verbosity_info()  # someone asked to see transformers' messages: kept
    try:
        with quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.INFO
    finally:
        hf_logging.set_verbosity(before)


def test_quiet_cli_runs_train_the_demo_model_without_a_bar(monkeypatch):
    import argparse

    from speech_intent import demo_model
    from speech_intent.cli.options import load_classifier

    seen = []
    monkeypatch.setattr(demo_model, "default_intent_model", lambda **kwargs: seen.append(kwargs["progress"]))
    for quiet in (True, False):
        load_classifier(argparse.Namespace(intent=None, device="cpu", nlu_runtime="torch", quiet=quiet))
    load_classifier(argparse.Namespace(intent=None, device="cpu", nlu_runtime="torch"))  # a command without -q
    assert seen == [False, True, True]


def test_an_intent_checkpoint_without_its_head_is_still_reported(tiny_bert_dir, tmp_path, caplog, capfd):
    import shutil

    from transformers import BertModel

    from speech_intent import IntentClassifier

    encoder_only = tmp_path / "no-head"
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(encoder_only)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_bert_dir / name, encoder_only / name)  # the labels of the classifier, not its head
    capfd.readouterr()
    with caplog.at_level("WARNING", logger="speech_intent"):
        IntentClassifier.from_pretrained(encoder_only, device="cpu")
    assert "LOAD REPORT" not in capfd.readouterr().err  # transformers' table is replaced by one line of ours
    assert any("classifier.weight" in r.getMessage() and "start at random" in r.getMessage() for r in caplog.records)

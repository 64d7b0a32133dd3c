"""CRF slot decoder: likelihood and Viterbi against brute force, BIO constraints, the joint model with a
CRF (train, save, reload, same predictions), layer-wise learning rates, the per-epoch history and the
SNIPS benchmark's flags, history and learning-curve plot."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

from speech_intent.errors import ConfigError
from speech_intent.nlu import IntentClassifier, JointIntentSlotModel, TrainingOptions, fine_tune
from speech_intent.nlu.crf import CRF, bio_allowed
from speech_intent.nlu.subwords import IGNORE_INDEX
from speech_intent.nlu.training import _optimizer, epoch_history

from .conftest import LABELS, _toy_data

BIO = ["O", "B-a", "I-a", "B-b", "I-b"]


def _random_crf(num_tags: int, seed: int) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(num_tags)
    with torch.no_grad():
        for param in crf.parameters():
            param.normal_(0, 1.5)
    return crf


def _batch(seed: int, num_tags: int):
    """Emissions over 7 token positions; scattered masks (as first sub-words are), one row empty."""
    g = torch.Generator().manual_seed(seed)
    emissions = torch.randn(4, 7, num_tags, generator=g) * 2
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 0],
                         [0, 1, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0],
                         [0, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    tags = torch.randint(num_tags, (4, 7), generator=g).masked_fill(~mask, IGNORE_INDEX)
    return emissions, mask, tags


def _path_score(crf: CRF, em: torch.Tensor, path) -> torch.Tensor:
    score = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
    score = score + sum(em[t, y] for t, y in enumerate(path))
    return score + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))


def _valid(path, labels) -> bool:
    previous = "O"
    for y in path:
        tag = labels[y]
        if tag.startswith("I-") and previous not in (f"B-{tag[2:]}", tag):
            return False
        previous = tag
    return True


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_likelihood_is_path_score_minus_log_sum_exp_of_all_paths(seed):
    crf = _random_crf(3, seed)
    emissions, mask, tags = _batch(seed, 3)
    got = crf.log_likelihood(emissions, tags, mask)
    for b in range(len(mask)):
        positions = mask[b].nonzero().flatten().tolist()
        if not positions:
            assert got[b] == 0.0
            continue
        em = emissions[b, positions]
        gold = _path_score(crf, em, tags[b, positions].tolist())
        all_paths = torch.stack([_path_score(crf, em, p) for p in itertools.product(range(3), repeat=len(positions))])
        torch.testing.assert_close(got[b], gold - torch.logsumexp(all_paths, 0), atol=1e-4, rtol=1e-5)
    got.sum().backward()
    assert crf.transitions.grad.abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_viterbi_is_the_brute_force_best_path(seed):
    crf = _random_crf(4, seed)
    emissions, mask, _ = _batch(seed, 4)
    got = crf.decode(emissions, mask)
    assert got.shape == mask.shape and (got[~mask] == 0).all()
    for b in range(len(mask)):
        positions = mask[b].nonzero().flatten().tolist()
        if not positions:
            continue
        em = emissions[b, positions]
        best = max(itertools.product(range(4), repeat=len(positions)), key=lambda p: float(_path_score(crf, em, p).detach()))
        assert got[b, positions].tolist() == list(best)


@pytest.mark.parametrize("seed", range(4))
def test_bio_constrained_viterbi_is_the_best_valid_path(seed):
    crf = _random_crf(len(BIO), seed)
    emissions, mask, _ = _batch(seed, len(BIO))
    emissions[:, :, [2, 4]] += 3.0  # I- tags everywhere: unconstrained decoding breaks BIO
    allowed = bio_allowed(BIO)
    free, constrained = crf.decode(emissions, mask), crf.decode(emissions, mask, allowed)
    invalid_free = 0
    for b in range(len(mask)):
        positions = mask[b].nonzero().flatten().tolist()
        if not positions:
            continue
        invalid_free += not _valid(free[b, positions].tolist(), BIO)
        path = constrained[b, positions].tolist()
        assert _valid(path, BIO)  # never I-x first, after O or after another slot
        em = emissions[b, positions]
        candidates = [p for p in itertools.product(range(len(BIO)), repeat=len(positions)) if _valid(p, BIO)]
        assert path == list(max(candidates, key=lambda p: float(_path_score(crf, em, p).detach())))
    assert invalid_free > 0  # the constraint did something


def test_bio_allowed_masks():
    start, trans = bio_allowed(BIO)
    assert start.tolist() == [True, True, False, True, False]
    assert trans[:, 2].tolist() == [False, True, True, False, False]  # I-a after B-a / I-a only
    assert trans[:, [0, 1, 3]].all()


# ------------------------------------------------------------------ joint model with a CRF
def test_crf_joint_model_loss_and_eval_tags(tiny_bert_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, LABELS, BIO, slot_decoder="crf")
    assert model.crf is not None and (model.crf.transitions == 0).all()
    enc = tokenizer(["play some jazz", "hi there"], padding=True, return_tensors="pt")
    slot_labels = torch.full(enc["input_ids"].shape, IGNORE_INDEX)
    slot_labels[:, 1:3] = torch.tensor([[1, 2], [0, 3]])
    labels = torch.tensor([0, 1])
    model.eval()
    out = model(**enc, labels=labels, slot_labels=slot_labels)
    mask = slot_labels != IGNORE_INDEX
    nll = -model.crf.log_likelihood(out.slot_logits, slot_labels, mask).sum() / mask.sum()
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.intent_logits, labels) + nll)
    assert torch.equal(out.slot_tags, model.decode_slots(out.slot_logits, mask))
    with pytest.raises(ConfigError, match="slot_decoder"):
        JointIntentSlotModel.from_encoder(tiny_bert_dir, LABELS, BIO, slot_decoder="lstm")


@pytest.fixture(scope="module")
def crf_classifier(tiny_bert_dir, tmp_path_factory) -> IntentClassifier:
    config = TrainingOptions(epochs=6, learning_rate=5e-3, batch_size=16, seed=0, early_stopping=0,
                            slot_decoder="crf", head_learning_rate=2e-2, layer_lr_decay=0.8)
    data = _toy_data()
    return fine_tune(data, tmp_path_factory.mktemp("crf") / "m", base=tiny_bert_dir, options=config, device="cpu",
                     progress=False, dev_examples=data[::3])


def test_crf_fine_tune_saves_and_reloads_with_identical_predictions(crf_classifier, tmp_path):
    clf = crf_classifier
    assert clf.model.config.slot_decoder == "crf" and clf.model.config.bio_constrained
    path = tmp_path / "again"
    clf.save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["slot_decoder"] == "crf"
    weights = load_file(path / "model.safetensors")
    torch.testing.assert_close(weights["crf.transitions"], clf.model.crf.transitions.detach())
    assert weights["crf.transitions"].abs().sum() > 0  # learned, not the zero initialisation
    again = IntentClassifier.from_pretrained(path, device="cpu")
    assert again.model.crf is not None
    torch.testing.assert_close(again.model.crf.transitions, clf.model.crf.transitions)
    texts = ["what is the weather in new york", "put on bohemian rhapsody", "wake me at 6 am", "play jazz"]
    a, b = clf(texts), again(texts)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    one_by_one = again(texts, batch_size=1)  # padding changes the scores by rounding only
    assert [(p.intent, p.slot_spans) for p in one_by_one] == [(p.intent, p.slot_spans) for p in a]
    assert any(p.slots for p in a)
    for p in a:
        tags = {s.name for s in p.slot_spans}
        assert all(p.text[s.start:s.end] == s.value for s in p.slot_spans) and tags <= {"city", "song", "time"}


def test_fine_tune_records_the_per_epoch_history(crf_classifier):
    history = crf_classifier.training["history"]
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    for row in history:
        assert row["train_loss"] > 0 and 0 <= row["dev_slot_f1"] <= 1 and 0 <= row["dev_intent_accuracy"] <= 1
        assert {"dev_sentence_accuracy", "dev_loss", "learning_rate"} <= set(row)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_epoch_history_merges_train_and_eval_logs():
    logs = [{"loss": 2.0, "learning_rate": 1e-4, "epoch": 1.0},
            {"eval_loss": 1.5, "eval_slot_f1": 0.5, "eval_runtime": 3.0, "eval_samples_per_second": 9.0, "epoch": 1.0},
            {"loss": 1.0, "learning_rate": 5e-5, "epoch": 2.0},
            {"train_runtime": 10.0, "train_loss": 1.5, "epoch": 2.0}]
    assert epoch_history(logs) == [
        {"epoch": 1.0, "train_loss": 2.0, "learning_rate": 1e-4, "dev_loss": 1.5, "dev_slot_f1": 0.5},
        {"epoch": 2.0, "train_loss": 1.0, "learning_rate": 5e-5},
    ]


def test_layer_lr_decay_parameter_groups(tiny_bert_dir):
    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, LABELS, BIO, slot_decoder="crf")
    n = model.config.encoder.num_hidden_layers
    config = TrainingOptions(learning_rate=1e-3, head_learning_rate=1e-2, layer_lr_decay=0.5)
    optimizer = _optimizer(model, config)
    lr_of = {id(p): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]}
    params = dict(model.named_parameters())
    assert len(lr_of) == len(params)

    def lr(name):
        return lr_of[id(params[name])][0]

    assert lr("encoder.embeddings.word_embeddings.weight") == pytest.approx(1e-3 * 0.5 ** (n + 1))
    for i in range(n):
        assert lr(f"encoder.encoder.layer.{i}.attention.self.query.weight") == pytest.approx(1e-3 * 0.5 ** (n - i))
    assert lr("slot_head.weight") == lr("intent_head.weight") == lr("crf.transitions") == 1e-2
    assert lr_of[id(params["crf.transitions"])][1] == 0.0 and lr_of[id(params["slot_head.weight"])][1] == 0.01


@pytest.mark.parametrize("change, message", [
    ({"slot_decoder": "lstm"}, "slot_decoder"),
    ({"layer_lr_decay": 0.0}, "layer_lr_decay"),
    ({"lr_scheduler": "triangle"}, "lr_scheduler"),
    ({"warmup_ratio": 1.5}, "warmup_ratio"),
])
def test_bad_training_options_are_config_errors(tiny_bert_dir, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        fine_tune(_toy_data(), tmp_path / "m", base=tiny_bert_dir, options=TrainingOptions(**change), device="cpu")


def test_crf_needs_slots(tiny_bert_dir, tmp_path):
    pairs = [("play jazz", "play_music"), ("weather in paris", "get_weather")]
    with pytest.raises(ConfigError, match="needs a joint model"):
        fine_tune(pairs, tmp_path / "m", base=tiny_bert_dir, options=TrainingOptions(slot_decoder="crf"), device="cpu")


# ------------------------------------------------------------------ benchmarks/snips.py flags
def _write_bio(folder, examples):
    from speech_intent.data.bio import to_bio

    folder.mkdir(parents=True)
    rows = [to_bio(ex) for ex in examples]
    (folder / "seq.in").write_text("".join(" ".join(words) + "\n" for words, _ in rows))
    (folder / "seq.out").write_text("".join(" ".join(tags) + "\n" for _, tags in rows))
    (folder / "label").write_text("".join(f"{ex.intent}\n" for ex in examples))


def test_snips_benchmark_flags_history_and_plot(tiny_bert_dir, tmp_path):
    data = [ex for ex in _toy_data() if ex.intent is not None]
    for split, examples in (("train", data), ("dev", data[::3]), ("test", data[1::2])):
        _write_bio(tmp_path / "snips" / split, examples)
    from benchmarks import snips

    out, png = tmp_path / "snips.json", tmp_path / "curves.png"
    assert snips.main(["--data", str(tmp_path / "snips"), "--base", str(tiny_bert_dir), "--device", "cpu", "-q",
                       "--epochs", "3", "--early-stopping", "0", "--lr", "5e-3", "--head-lr", "2e-2", "--crf",
                       "--warmup", "0.2", "--scheduler", "cosine", "--layer-lr-decay", "0.8",
                       "--json", str(out), "--plot", str(png)]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["crf"] and result["settings"]["layer_lr_decay"] == 0.8
    assert result["settings"]["scheduler"] == "cosine" and result["settings"]["warmup"] == 0.2
    history = result["history"]
    assert [row["epoch"] for row in history] == [1.0, 2.0, 3.0]
    for row in history:
        assert {"train_loss", "seconds", "dev_slot_f1", "dev_intent_accuracy", "dev_sentence_accuracy",
                "test_slot_f1", "test_intent_accuracy", "test_sentence_accuracy"} <= set(row)
    assert [row["seconds"] for row in history] == sorted(row["seconds"] for row in history)
    best = next(row for row in history if row["epoch"] == result["best_epoch"])
    # the per-epoch test scores of the kept epoch are the final test scores
    assert (best["test_intent_accuracy"], best["test_slot_f1"], best["test_sentence_accuracy"]) == \
        (result["intent_accuracy"], result["slot_f1"], result["sentence_accuracy"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

"""Differentially private fine-tuning (Opacus DP-SGD): the achieved ε, clipping and noise, the record, the CLI."""
from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

pytest.importorskip("opacus")

from speech_intent.errors import ConfigError  # noqa: E402
from speech_intent.nlu import IntentClassifier, JointIntentSlotModel, TrainingOptions, fine_tune  # noqa: E402
from speech_intent.nlu.dataset import JointCollator, encode, prepare_examples  # noqa: E402
from speech_intent.nlu.joint import slot_label_list  # noqa: E402
from speech_intent.nlu.private_training import frozen_prefixes, per_example_loss  # noqa: E402
from speech_intent.privacy.dp import PRIVACY_FILE, PrivacyOptions, freeze_parameters, make_private, read_privacy  # noqa: E402

from .conftest import _toy_data  # noqa: E402

OPTIONS = TrainingOptions(epochs=2, learning_rate=5e-3, batch_size=8, seed=0, oos_recall=None)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["softmax", "crf"])
def test_private_fine_tune_spends_at_most_the_target_and_records_it(tiny_bert_dir, tmp_path, decoder):
    from safetensors.torch import load_file

    out = tmp_path / "model"
    options = TrainingOptions(**{**vars(OPTIONS), "slot_decoder": decoder})
    clf = fine_tune(_toy_data(), out, base=tiny_bert_dir, options=options, device="cpu", progress=False,
                    privacy=PrivacyOptions(epsilon=3.0, max_grad_norm=0.5, max_physical_batch_size=4))
    record = read_privacy(out)
    assert record is not None and (out / PRIVACY_FILE).is_file()
    assert 0 < record.epsilon <= 3.0 and record.target_epsilon == 3.0
    assert record.delta == 1e-5 and record.max_grad_norm == 0.5 and record.noise_multiplier > 0.3
    assert record.train_examples == 33 and record.epochs == 2 and record.steps == 2 * 5  # ceil(33 / 8) per epoch
    assert clf.training["privacy"] == record.to_dict()
    assert [row["epsilon"] for row in clf.training["history"]][-1] == pytest.approx(record.epsilon)
    # loads back with its record; it predicts
    again = IntentClassifier.from_pretrained(out, device="cpu")
    assert again.training["privacy"]["epsilon"] == record.epsilon and again.is_joint
    assert again(["what is the weather in paris"])[0].confidence > 0
    # frozen: the embeddings (and a CRF's transitions) keep their start values; the layers trained
    base = load_file(tiny_bert_dir / "model.safetensors")
    saved = load_file(out / "model.safetensors")
    name = next(k for k in base if k.endswith("embeddings.word_embeddings.weight"))
    torch.testing.assert_close(saved["encoder.embeddings.word_embeddings.weight"], base[name])
    layer = next(k for k in base if k.endswith("layer.0.attention.self.query.weight"))
    assert not torch.allclose(saved["encoder.encoder.layer.0.attention.self.query.weight"], base[layer])
    assert record.frozen == (["encoder.embeddings.", "crf."] if decoder == "crf" else ["encoder.embeddings."])
    if decoder == "crf":
        assert not saved["crf.transitions"].any()


def _private_toy(tiny_bert_dir, clip: float):
    """The tiny joint model, frozen as private training freezes it, wrapped by Opacus on the toy data."""
    train = prepare_examples(_toy_data(), None)
    intents = sorted({ex.intent for ex in train})
    slots = slot_label_list([s.name for ex in train for s in ex.slots])
    torch.manual_seed(0)
    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, intents, slots)
    privacy = PrivacyOptions(epsilon=8.0, max_grad_norm=clip, accountant="rdp")
    freeze_parameters(model, frozen_prefixes(model, privacy))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    data = encode(tokenizer, train, {label: i for i, label in enumerate(intents)}, slot_labels=slots)
    loader = torch.utils.data.DataLoader(data, batch_size=16, collate_fn=JointCollator(tokenizer))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    return make_private(model, optimizer, loader, privacy, epochs=1, seed=0), JointCollator(tokenizer)(
        [data[i] for i in range(len(data))])


def test_per_example_gradients_are_clipped_and_noise_is_calibrated(tiny_bert_dir):
    clip = 1e-3
    run, batch = _private_toy(tiny_bert_dir, clip)
    params = [p for p in run.module.parameters() if p.requires_grad]
    assert not any(p.requires_grad for n, p in run.module._module.named_parameters() if "embeddings" in n)
    run.optimizer.zero_grad()
    losses = per_example_loss(run.module, batch)
    assert losses.shape == (33,)
    with warnings.catch_warnings():  # the hook on the first trained layer, after the frozen embeddings
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        losses.mean().backward()
    per_example = torch.stack([p.grad_sample.reshape(33, -1).norm(dim=1) for p in params]).norm(dim=0)
    assert per_example.min() > 10 * clip  # the raw per-example gradients are far above the clipping norm
    run.optimizer.clip_and_accumulate()
    summed = torch.cat([p.summed_grad.reshape(-1) for p in params])
    assert summed.norm() <= 33 * clip * (1 + 1e-4)  # each example contributes at most C
    run.optimizer.add_noise()
    # grad = sum of clipped + N(0, (sigma C)^2) (divided by the expected batch in scale_grad): calibrated noise
    noise = torch.cat([(p.grad - p.summed_grad).reshape(-1) for p in params])
    sigma = run.optimizer.noise_multiplier * clip
    assert noise.numel() > 10_000 and noise.std().item() == pytest.approx(sigma, rel=0.05)
    assert abs(noise.mean().item()) < 0.05 * sigma
    model = run.release()
    assert all(p.requires_grad and not hasattr(p, "grad_sample") for p in model.parameters())


@pytest.mark.slow
def test_private_and_plain_runs_from_the_same_seed_differ(tiny_bert_dir, tmp_path):
    from safetensors.torch import load_file

    options = TrainingOptions(**{**vars(OPTIONS), "early_stopping": 0, "warmup_ratio": 0.0})
    fine_tune(_toy_data(), tmp_path / "plain", base=tiny_bert_dir, options=options, device="cpu", progress=False)
    fine_tune(_toy_data(), tmp_path / "dp", base=tiny_bert_dir, options=options, device="cpu", progress=False,
              privacy=PrivacyOptions(epsilon=1.0, accountant="rdp"))
    fine_tune(_toy_data(), tmp_path / "dp2", base=tiny_bert_dir, options=options, device="cpu", progress=False,
              privacy=PrivacyOptions(epsilon=1.0, accountant="rdp"))
    plain, dp, dp2 = (load_file(tmp_path / n / "model.safetensors") for n in ("plain", "dp", "dp2"))
    key = "encoder.encoder.layer.1.output.dense.weight"
    assert (dp[key] - plain[key]).abs().max() > 1e-3
    torch.testing.assert_close(dp[key], dp2[key])  # same seed: the same sampling and noise on the CPU
    assert not (tmp_path / "plain" / PRIVACY_FILE).exists() and read_privacy(tmp_path / "plain") is None


@pytest.mark.parametrize("kwargs", [{"epsilon": 0}, {"epsilon": -1.0}, {"epsilon": math.inf}, {"epsilon": math.nan},
                                    {"epsilon": 1.0, "delta": 0.0}, {"epsilon": 1.0, "delta": 1.5},
                                    {"epsilon": 1.0, "max_grad_norm": 0.0}, {"epsilon": 1.0, "accountant": "moments"},
                                    {"epsilon": 1.0, "max_physical_batch_size": 0}])
def test_bad_privacy_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match=next(iter(k for k in kwargs if k != "epsilon"), "epsilon")):
        PrivacyOptions(**kwargs)


def test_default_delta_is_below_one_over_n():
    assert PrivacyOptions(epsilon=1.0).delta_for(13084) == 1e-5
    assert PrivacyOptions(epsilon=1.0).delta_for(1000) == 1e-5
    assert PrivacyOptions(epsilon=1.0).delta_for(100_000) == 1 / 200_000
    assert PrivacyOptions(epsilon=1.0, delta=1e-6).delta_for(10) == 1e-6


def test_cli_train_dp_flags(tiny_bert_dir, tmp_path, capsys):
    from speech_intent.cli import main
    from speech_intent.data import save_jsonl

    data = tmp_path / "train.jsonl"
    save_jsonl(_toy_data(), data)
    out = tmp_path / "model"
    common = ["train", "--data", str(data), "--output", str(out), "--base", str(tiny_bert_dir), "--epochs", "1",
              "--lr", "5e-3", "--batch-size", "8", "--device", "cpu", "-q"]
    assert main(common + ["--dp-epsilon", "0"]) == 1
    assert "epsilon must be a finite number > 0" in capsys.readouterr().err and not out.exists()
    assert main(common + ["--dp-delta", "1e-6"]) == 1
    assert "--dp-delta needs --dp-epsilon" in capsys.readouterr().err
    assert main(common + ["--dp-epsilon", "4", "--dp-delta", "1e-6", "--dp-max-grad-norm", "0.25"]) == 0  # prv
    err = capsys.readouterr().err
    assert "differential privacy: ε=" in err and "(target 4)" in err
    record = json.loads((out / PRIVACY_FILE).read_text())
    assert record["delta"] == 1e-6 and record["max_grad_norm"] == 0.25 and 0 < record["epsilon"] <= 4


def test_private_training_rejects_trainer_callbacks_and_oversized_batches(tiny_bert_dir, tmp_path):
    from transformers import TrainerCallback

    with pytest.raises(ConfigError, match="callbacks"):
        fine_tune(_toy_data(), tmp_path / "m", base=tiny_bert_dir, options=OPTIONS, device="cpu", progress=False,
                  privacy=PrivacyOptions(epsilon=1.0), callbacks=[TrainerCallback()])
    big = TrainingOptions(**{**vars(OPTIONS), "batch_size": 64})
    with pytest.raises(ConfigError, match="batch_size 64"):
        fine_tune(_toy_data(), tmp_path / "m", base=tiny_bert_dir, options=big, device="cpu", progress=False,
                  privacy=PrivacyOptions(epsilon=1.0))


def test_trainable_layers_freeze_the_lower_encoder_layers(tiny_bert_dir):
    model = JointIntentSlotModel.from_encoder(tiny_bert_dir, ["a", "b"], ["O", "B-x", "I-x"], slot_decoder="crf")
    assert frozen_prefixes(model, PrivacyOptions(epsilon=1.0)) == ["encoder.embeddings.", "crf."]
    assert frozen_prefixes(model, PrivacyOptions(epsilon=1.0, trainable_layers=1, freeze_embeddings=False)) == \
        ["encoder.encoder.layer.0.", "crf."]
    heads_only = frozen_prefixes(model, PrivacyOptions(epsilon=1.0, trainable_layers=0))
    frozen = freeze_parameters(model, heads_only)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == \
        {"intent_head.weight", "intent_head.bias", "slot_head.weight", "slot_head.bias"}
    assert len(frozen) == sum(1 for n, _ in model.named_parameters() if n.startswith(("encoder.", "crf.")))
    with pytest.raises(ConfigError, match="trainable_layers"):
        PrivacyOptions(epsilon=1.0, trainable_layers=-1)

"""The acoustic emotion stage: a tiny random Whisper encoder + the head, trained on synthetic "emotions"
(tones of two pitches), recognise / save / load, the speaker-independent split, the CLI end to end, and
(when the shared data is there) a small RAVDESS check."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speech_intent.cli import main as cli_main
from speech_intent.emotion import (
    EmotionRecognizer,
    EmotionTrainingOptions,
    HeadConfig,
    fit_emotion,
    read_emotion_labels,
    speaker_split,
    train_head,
)
from speech_intent.emotion.encoder import crop_states, hidden_states, real_frames, window_frames
from speech_intent.errors import ConfigError, ManifestError, ModelLoadError
from speech_intent.results import LabelScores

from .conftest import SHARED

RAVDESS = SHARED / "data" / "ravdess"


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    """A tone with a little noise and a random amplitude: one synthetic "emotion" per pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    wave = rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6))
    return (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def tone_set(count: int, seed: int = 0):
    """``count`` clips per pitch: (audios, targets) with target 0 = 220 Hz ("calm"), 1 = 1200 Hz ("angry")."""
    audios, targets = [], []
    for i in range(count):
        for target, freq in enumerate((220.0, 1200.0)):
            audios.append(tone(freq * (1 + 0.05 * (i % 3)), 0.6 + 0.1 * (i % 4), seed * 1000 + 2 * i + target))
            targets.append(target)
    return audios, targets


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    """A random 2-layer ``WhisperModel`` (d_model 32) saved with the standard feature extractor. Its
    weights are drawn wider than transformers' default (init_std 0.3, not 0.02) so that the convolutions,
    not the position table, dominate its states: random as it is, it then hears pitch."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(vocab_size=64, num_mel_bins=80, encoder_layers=2, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, d_model=32, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=16, init_std=0.3,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-whisper-encoder")
    WhisperModel(config).save_pretrained(out, safe_serialization=True)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def recognizer(encoder_dir) -> EmotionRecognizer:
    return EmotionRecognizer.build(encoder_dir, ["calm", "angry"], HeadConfig(hidden=16, dropout=0.0),
                                   device="cpu", context_margin=0.5)


@pytest.fixture(scope="module")
def trained(recognizer) -> EmotionRecognizer:
    audios, targets = tone_set(6)
    states = recognizer.features(audios)
    dev_audios, dev_targets = tone_set(3, seed=1)
    report = train_head(recognizer.head, states, targets, dev_states=recognizer.features(dev_audios),
                        dev_targets=dev_targets, options=EmotionTrainingOptions(epochs=12, learning_rate=5e-3,
                                                                                batch_size=6))
    assert report.dev_uar is not None and report.dev_uar >= 0.8, report.history
    return recognizer


def test_hidden_states_match_transformers_on_the_full_window(encoder_dir, recognizer):
    """The encoder's own forward (30 s window, output_hidden_states) gives the states the stage computes."""
    from transformers import WhisperModel

    encoder = WhisperModel.from_pretrained(encoder_dir).get_encoder().eval()
    features = recognizer.feature_extractor([tone(300, 1.0, 0)], sampling_rate=16000,
                                            return_tensors="pt").input_features
    with torch.no_grad():
        expected = encoder(features, output_hidden_states=True).hidden_states
        ours = hidden_states(encoder, features)
    assert ours.shape[1] == len(expected) == encoder.config.encoder_layers + 1
    for index, state in enumerate(expected):
        torch.testing.assert_close(ours[0, index], state[0], atol=1e-5, rtol=1e-4)


def test_states_cover_the_real_frames_only_and_do_not_depend_on_the_batch(recognizer):
    short, long = tone(300, 0.5, 1), tone(300, 2.3, 2)
    alone = recognizer.features([short])[0]
    together = recognizer.features([long, short])
    assert alone.shape == (3, real_frames(len(short)), 32) and together[0].shape[1] == real_frames(len(long)) == 115
    torch.testing.assert_close(alone, together[1])  # its window depends on its own length, not the batch's
    assert window_frames(len(short), 0.5) == 100 and window_frames(len(long), None) == 3000


def test_states_of_another_pass_of_the_same_encoder_give_the_same_answers(recognizer, encoder_dir):
    """What the pipeline does to reuse the ASR's encoder pass: same weights (fingerprint), the batch's
    states cut to each clip's real frames, the head only."""
    from transformers import WhisperModel

    other = WhisperModel.from_pretrained(encoder_dir).get_encoder().eval()
    assert recognizer.encoder_fingerprint() == EmotionRecognizer.build(encoder_dir, ["a", "b"]).encoder_fingerprint()
    audios = [tone(300, 0.4, 11), tone(900, 0.5, 12)]
    features = recognizer.feature_extractor(audios, sampling_rate=16000, return_tensors="pt", padding="max_length",
                                            max_length=100 * 160).input_features  # both windows are 1 s
    with torch.no_grad():
        states = crop_states(hidden_states(other, features), [len(a) for a in audios])
    ours = recognizer.features(audios)
    for a, b in zip(states, ours):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(recognizer.recognise_states(states), recognizer.recognise(audios)):
        assert a.label == b.label and a.score == pytest.approx(b.score, abs=1e-5)


def test_trained_head_tells_the_tones_apart_and_scores_sum_to_one(trained):
    audios, targets = tone_set(3, seed=7)
    results = trained.recognise(audios)
    assert all(isinstance(r, LabelScores) for r in results)
    for result in results:
        assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(result.scores) == {"calm", "angry"} and result.score == max(result.scores.values())
    accuracy = np.mean([r.label == ["calm", "angry"][t] for r, t in zip(results, targets)])
    assert accuracy >= 0.8


def test_empty_silent_and_broken_clips_give_none_and_the_batch_goes_on(trained):
    good = tone(1200, 0.7, 3)
    results = trained.recognise([np.zeros(0, np.float32), good, np.zeros(8000, np.float32),
                                 np.full(800, np.nan, np.float32), np.zeros((2, 100), np.float32)])
    assert results[0] is None and results[2] is None and results[3] is None and results[4] is None
    assert isinstance(results[1], LabelScores)
    assert trained.recognise([]) == []


def test_threshold_gives_uncertain(trained):
    trained.threshold = 0.999999
    try:
        result = trained.recognise([tone(700, 0.7, 5)])[0]
    finally:
        trained.threshold = 0.0
    assert result.label == LabelScores.UNCERTAIN and 0 < result.score < 0.999999


def test_save_and_load_round_trip(trained, tmp_path):
    audios, _ = tone_set(2, seed=9)
    before = trained.recognise(audios)
    trained.save_pretrained(tmp_path / "emotion")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in (tmp_path / "emotion").iterdir()}
    loaded = EmotionRecognizer.from_pretrained(tmp_path / "emotion", device="cpu")
    assert loaded.labels == ["calm", "angry"] and loaded.context_margin == 0.5
    after = loaded.recognise(audios)
    for a, b in zip(before, after):
        assert a.label == b.label
        for label in a.scores:
            assert a.scores[label] == pytest.approx(b.scores[label], abs=1e-4)


def test_loading_a_directory_that_is_not_an_emotion_model_is_a_model_load_error(tmp_path, tiny_whisper_dir):
    with pytest.raises(ModelLoadError):
        EmotionRecognizer.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="emotion"):
        EmotionRecognizer.from_pretrained(tiny_whisper_dir)


def test_speaker_split_never_puts_a_speaker_on_both_sides():
    speakers = [f"s{i % 7}" for i in range(70)]
    for seed in range(5):
        train, dev = speaker_split(speakers, 0.3, seed)
        assert sorted(train + dev) == list(range(70))
        assert not {speakers[i] for i in train} & {speakers[i] for i in dev}
        assert len({speakers[i] for i in dev}) == 2
    assert speaker_split(speakers, 0.0) == (list(range(70)), [])
    with pytest.raises(ConfigError, match="2 speakers"):
        speaker_split(["a", "a"], 0.2)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        HeadConfig(pooling="max")
    with pytest.raises(ConfigError):
        EmotionTrainingOptions(epochs=0)
    with pytest.raises(ConfigError):
        EmotionTrainingOptions(dev_fraction=1.0)
    with pytest.raises(ConfigError, match="speeds"):
        EmotionTrainingOptions(speeds=(0.1,))


def write_tone_csv(folder: Path, speakers: int = 4, per_speaker: int = 3) -> Path:
    """A labels CSV of tone clips: ``speakers`` speakers x ``per_speaker`` clips of each pitch."""
    rows = []
    for s in range(speakers):
        for i in range(per_speaker):
            for emotion, freq in (("calm", 220.0), ("angry", 1200.0)):
                name = f"clips/s{s}_{emotion}_{i}.wav"
                (folder / "clips").mkdir(parents=True, exist_ok=True)
                sf.write(folder / name, tone(freq, 0.6 + 0.1 * i, 100 * s + 10 * i + len(emotion)), 16000)
                rows.append({"path": name, "emotion": emotion, "actor": f"A{s}", "gender": "x"})
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder / "labels.csv"


def test_cli_trains_saves_and_the_model_loads(tmp_path, encoder_dir, capsys):
    labels = write_tone_csv(tmp_path)
    out = tmp_path / "model"
    code = cli_main(["train-emotion", str(labels), "--output", str(out), "--encoder", str(encoder_dir),
                     "--speaker-column", "actor", "--epochs", "8", "--lr", "5e-3", "--batch-size", "4",
                     "--dev-fraction", "0.25", "--speeds", "0.9", "--device", "cpu"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["labels"] == ["angry", "calm"] and summary["dev_clips"] == 6 and len(summary["dev_speakers"]) == 1
    loaded = EmotionRecognizer.from_pretrained(out, device="cpu")
    assert isinstance(loaded.recognise([tone(220, 0.8, 42)])[0], LabelScores)


def test_cli_names_a_missing_column(tmp_path, encoder_dir, capsys):
    labels = write_tone_csv(tmp_path, speakers=2, per_speaker=1)
    code = cli_main(["train-emotion", str(labels), "--output", str(tmp_path / "m"), "--encoder",
                     str(encoder_dir)])  # the speaker column is "actor", not "speaker"
    assert code == 1 and "speaker" in capsys.readouterr().err
    with pytest.raises(ManifestError):
        read_emotion_labels(labels)


def test_fit_skips_unreadable_recordings(tmp_path, encoder_dir):
    labels = write_tone_csv(tmp_path, speakers=2, per_speaker=2)
    clips = read_emotion_labels(labels, speaker_column="actor")
    (clips[0].path).write_bytes(b"not audio")
    recognizer, result = fit_emotion(clips, encoder_dir, device="cpu", options=EmotionTrainingOptions(
        epochs=2, dev_fraction=0.5, head=HeadConfig(hidden=8)))
    assert len(result.skipped) == 1 and result.train_clips + result.dev_clips == len(clips) - 1
    assert recognizer.labels == ["angry", "calm"]


@pytest.mark.skipif(not RAVDESS.is_dir(), reason="RAVDESS is not in ../shared/data/ravdess (CI has it)")
def test_ravdess_labels_read_with_the_actor_column():
    clips = read_emotion_labels(RAVDESS / "labels.csv", speaker_column="actor")
    assert len(clips) == 1080 and len({c.speaker for c in clips}) == 18
    assert len({c.emotion for c in clips}) == 8
    train, dev = speaker_split([c.speaker for c in clips], 0.2)
    assert not {clips[i].speaker for i in train} & {clips[i].speaker for i in dev}


@pytest.mark.skipif(not RAVDESS.is_dir(), reason="RAVDESS is not in ../shared/data/ravdess (CI has it)")
def test_ravdess_clips_run_through_the_stage(recognizer):
    from speech_intent.audio import load_audio

    clips = read_emotion_labels(RAVDESS / "labels.csv", speaker_column="actor")[:3]
    results = recognizer.recognise([load_audio(c.path) for c in clips])
    assert all(isinstance(r, LabelScores) for r in results)

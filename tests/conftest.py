"""Shared fixtures: tiny random models built from configs, saved and loaded back
through the real ``from_pretrained`` code, plus paths to real data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_intent.models import bundled_encoder_path, bundled_whisper_path
from speech_intent.testing import tiny_bert, tiny_wav2vec2, tiny_whisper

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
SHARED = REPO.parent / "shared"
LABELS = ["get_weather", "play_music", "set_alarm"]


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def sine() -> np.ndarray:
    t = np.arange(int(1.5 * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    """A 2-layer random Whisper with the real tiny.en tokenizer and feature extractor."""
    return tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"), bundled_whisper_path() / "tokenizer.json")


@pytest.fixture(scope="session")
def tiny_wav2vec2_dir(tmp_path_factory) -> Path:
    """A 2-layer random wav2vec2 CTC model with a character vocabulary."""
    return tiny_wav2vec2(tmp_path_factory.mktemp("tiny-wav2vec2"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer random BERT classifier over the bundled uncased vocabulary."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"), bundled_encoder_path(), LABELS)


@pytest.fixture()
def bad_files(tmp_path) -> dict:
    """A corrupt wav, an empty wav, a text file renamed .wav and a missing path."""
    corrupt = tmp_path / "corrupt.wav"
    good = tmp_path / "good.wav"
    t = np.arange(16000) / 16000
    sf.write(good, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(40))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is a text file, not audio\n")
    return {"corrupt": corrupt, "empty": empty, "text": text, "missing": tmp_path / "missing.wav"}


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory, tiny_wav2vec2_dir, tiny_bert_dir) -> Path:
    """A saved pipeline (tiny wav2vec2 + tiny BERT) for fast CLI runs with ``--pipeline``."""
    from speech_intent import IntentClassifier, SpeechIntentPipeline, Wav2Vec2ASR

    out = tmp_path_factory.mktemp("tiny-pipeline")
    SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"),
                         IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")).save_pretrained(out)
    return out


# ------------------------------------------------------------------ helpers shared by several test modules
def _signal(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * noise).astype(np.float32)

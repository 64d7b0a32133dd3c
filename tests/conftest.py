"""Shared fixtures: tiny random models built from configs, saved and loaded back
through the real ``from_pretrained`` code, plus paths to real data; and the helpers
(audio, example texts, a grammar) that several test modules use."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.asr.grammar import GrammarAutomaton
from speech_intent.bundled import bundled_encoder_path, bundled_whisper_path
from speech_intent.data import Example, SlotSpan, parse_markup
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


def _intent(tiny_bert_dir):
    return IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu")


# ------------------------------------------------------------------ the bundled sample commands (slow tests)
AUDIO = ASSETS / "audio"


@pytest.fixture(scope="session")
def manifest() -> dict:
    with (AUDIO / "manifest.csv").open() as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="session")
def default_pipe() -> SpeechIntentPipeline:
    return SpeechIntentPipeline.default(device="cpu", progress=False)


# ------------------------------------------------------------------ audio
def _signal(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * noise).astype(np.float32)


def _sine(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# ------------------------------------------------------------------ text examples
CITIES = ["paris", "london", "new york", "tokyo", "berlin"]
SONGS = ["jazz", "rock", "bohemian rhapsody", "the beatles"]


def _toy_data() -> list:
    data = [parse_markup(f"{v} the weather in [{c}](city)", "get_weather")
            for v in ("what is", "how is", "tell me") for c in CITIES]
    data += [parse_markup(f"{v} [{s}](song)", "play_music") for v in ("play", "put on", "start playing") for s in SONGS]
    data += [parse_markup(f"wake me at [{t}](time)", "set_alarm") for t in ("7:30", "6 am", "noon", "8:15")]
    data += [Example("tell me a joke", None), Example("who are you", None)]
    return data


def _ex(text: str, intent, **slots) -> Example:
    spans = tuple(SlotSpan(name, text.index(value), text.index(value) + len(value), value)
                  for name, value in slots.items())
    return Example(text, intent, spans)


# ------------------------------------------------------------------ a grammar for constrained decoding
GRAMMAR = {
    "context": {
        "expressions": {
            "changeLight": ["[turn, switch] (the) $light:light [on, off]", "$light:light [on, off] (please)"],
            "orderDrink": ["I'd like a $size:size $drink:drink"],
        },
        "slots": {
            "light": ["kitchen light", "lamp"],
            "size": ["small", "twelve ounce"],
            "drink": ["latte", "iced mocha"],
        },
    }
}


@pytest.fixture(scope="module")
def automaton() -> GrammarAutomaton:
    return GrammarAutomaton.from_grammar(GRAMMAR)


# ------------------------------------------------------------------ the service (tests/test_serve_*.py, test_browser.py)
@pytest.fixture(scope="session")
def tiny_whisper_pipeline_dir(tmp_path_factory, tiny_whisper_dir, tiny_bert_dir) -> Path:
    """A saved pipeline of the tiny random Whisper (transformers backend, 16 tokens at most) and the tiny BERT."""
    from speech_intent import WhisperASR

    out = tmp_path_factory.mktemp("tiny-whisper-pipeline")
    asr = WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu").configure(max_new_tokens=16)  # fast nonsense
    SpeechIntentPipeline(asr, _intent(tiny_bert_dir)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_pipe(tiny_whisper_pipeline_dir) -> SpeechIntentPipeline:
    """That pipeline loaded in this process, for in-process apps (``create_app``) and batchers."""
    return SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu")


@pytest.fixture(scope="session")
def server(tmp_path_factory, tiny_whisper_pipeline_dir):
    """``speech-intent serve`` as a real process on a free loopback port (small limits so the 413s are
    cheap to reach), stopped at the end of the session."""
    pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
    pytest.importorskip("uvicorn", reason="the serve extra (fastapi, uvicorn) is not installed")
    pytest.importorskip("httpx", reason="httpx (test extra) is not installed")
    from tests.serving import serve

    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(tiny_whisper_pipeline_dir, log, "--max-body-mb", "2", "--max-duration", "10",
               "--partial-interval", "0.5", "--max-wait-ms", "20", "--threads", "1") as running:
        yield running

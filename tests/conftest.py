"""Shared fixtures: tiny random models built from configs, saved and loaded back
through the real ``from_pretrained`` code, plus paths to real data."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

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
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor
    from transformers import WhisperTokenizerFast

    from speech_intent.models import bundled_whisper_path

    out = tmp_path_factory.mktemp("tiny-whisper")
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(bundled_whisper_path() / "tokenizer.json"),
                                     bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                     unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    vocab = len(tokenizer)
    sot = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=80, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=1500,
        max_target_positions=64, decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
    )
    import torch

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = sot
    model.generation_config.eos_token_id = eot
    model.generation_config.pad_token_id = eot
    model.generation_config.no_timestamps_token_id = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    model.generation_config.is_multilingual = False
    model.generation_config.max_length = 16
    model.save_pretrained(out, safe_serialization=True)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_wav2vec2_dir(tmp_path_factory) -> Path:
    """A 2-layer random wav2vec2 CTC model with a character vocabulary."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    out = tmp_path_factory.mktemp("tiny-wav2vec2")
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
    vocab_file = out / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=True)
    config = Wav2Vec2Config(
        vocab_size=len(chars), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
        pad_token_id=0, ctc_loss_reduction="mean",
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(out, safe_serialization=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer random BERT classifier over the bundled uncased vocabulary."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from speech_intent.models import bundled_encoder_path

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(bundled_encoder_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
                        label2id={l: i for i, l in enumerate(LABELS)})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


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

"""Tiny random models built from configs and saved through the real ``save_pretrained`` code.

For tests and checks that must exercise the real loading and inference code paths without real
weights (the test suite, the GPU readiness check's dry run). The models are random: their
outputs are well-formed but meaningless. Tokenizers are real (passed in), so texts round-trip.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, Union

PathLike = Union[str, Path]

__all__ = ["tiny_bert", "tiny_wav2vec2", "tiny_whisper"]


def tiny_whisper(out: PathLike, tokenizer_file: PathLike, *, seed: int = 0, max_length: int = 16) -> Path:
    """A 2-layer random Whisper with a real Whisper ``tokenizer.json`` and the standard feature extractor."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    out = Path(out)
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_file), bos_token="<|endoftext|>",
                                     eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                     pad_token="<|endoftext|>")
    sot = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=1500,
        max_target_positions=64, decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    generation = model.generation_config
    generation.decoder_start_token_id, generation.eos_token_id, generation.pad_token_id = sot, eot, eot
    generation.no_timestamps_token_id = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    generation.is_multilingual = False
    generation.max_length = max_length
    model.save_pretrained(out, safe_serialization=True)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(out)
    return out


def tiny_wav2vec2(out: PathLike, *, seed: int = 0) -> Path:
    """A 2-layer random wav2vec2 CTC model with an upper-case character vocabulary."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).save_pretrained(out, safe_serialization=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    return out


def tiny_bert(out: PathLike, tokenizer_dir: PathLike, labels: Sequence[str] = (), *, seed: int = 0) -> Path:
    """A 2-layer random BERT over the vocabulary of ``tokenizer_dir``: a sequence classifier over
    ``labels``, or with no labels a bare encoder (a ``base`` for :func:`~speech_intent.nlu.fine_tune`)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    out = Path(out)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    torch.manual_seed(seed)
    if labels:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out

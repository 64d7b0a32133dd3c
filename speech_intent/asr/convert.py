"""Convert a CTranslate2 Whisper model directory into a Hugging Face transformers one.

``model.bin`` is read by :mod:`~speech_intent.asr.ctranslate2_format` (no ``ctranslate2`` needed);
its variables are mapped onto ``WhisperForConditionalGeneration``'s weights, and the config,
generation config, tokenizer and feature extractor are written beside them. The output loads offline
with ``WhisperForConditionalGeneration``/``WhisperProcessor.from_pretrained``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bundled import bundled_whisper_path, cache_dir
from ..errors import CTranslate2FormatError
from .ctranslate2_format import dequantize, read_ctranslate2_model

logger = logging.getLogger(__name__)

__all__ = ["CTranslate2FormatError", "bundled_whisper_transformers_path", "convert_ctranslate2_whisper"]

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Special tokens every Whisper tokenizer must define (name -> token string).
_SPECIAL = {"eot": "<|endoftext|>", "sot": "<|startoftranscript|>", "translate": "<|translate|>",
            "transcribe": "<|transcribe|>", "prev": "<|startofprev|>", "no_timestamps": "<|notimestamps|>"}
# CT2 fuses q/k/v (self-attention) and k/v (cross-attention) projections: (ct2 linear, HF projections).
_SELF_ATTN = [("linear_0", ["q", "k", "v"]), ("linear_1", ["out"])]
_CROSS_ATTN = [("linear_0", ["q"]), ("linear_1", ["k", "v"]), ("linear_2", ["out"])]


def _pop_tied_projection(v: dict[str, np.ndarray]) -> None:
    """Drop CT2's output projection after checking it equals (is tied to) the token embeddings."""
    for suffix in ("weight", "weight_scale"):
        proj, emb = v.pop(f"decoder/projection/{suffix}", None), v.get(f"decoder/embeddings/{suffix}")
        if proj is not None and (emb is None or not np.array_equal(proj, emb)):
            raise CTranslate2FormatError(f"decoder/projection/{suffix} differs from the embeddings (untied head)")


def _state_dict(v: dict[str, np.ndarray], n_enc: int, n_dec: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables onto ``WhisperForConditionalGeneration`` state-dict names."""
    used: set[str] = set()

    def get(name: str) -> torch.Tensor:
        if name not in v:
            raise CTranslate2FormatError(f"CTranslate2 model is missing variable {name!r}")
        used.add(name)
        return torch.from_numpy(np.ascontiguousarray(v[name])).to(dtype)

    def norm(ct2: str) -> list[torch.Tensor]:
        if f"{ct2}/gamma" in v:
            return [get(f"{ct2}/gamma"), get(f"{ct2}/beta")]
        return [get(f"{ct2}/weight"), get(f"{ct2}/bias")]

    sd: dict[str, torch.Tensor] = {}

    def put_norm(hf: str, ct2: str) -> None:
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = norm(ct2)

    def put_linear(hf: str, ct2: str) -> None:
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = get(f"{ct2}/weight"), get(f"{ct2}/bias")

    def put_attention(hf: str, ct2: str, fused: list[tuple[str, list[str]]]) -> None:
        for ct2_lin, parts in fused:
            w, b = get(f"{ct2}/{ct2_lin}/weight"), get(f"{ct2}/{ct2_lin}/bias")
            for part, wp, bp in zip(parts, w.chunk(len(parts)), b.chunk(len(parts)), strict=True):
                sd[f"{hf}.{part}_proj.weight"] = wp.contiguous()
                if part == "k":  # Whisper's k_proj has no bias (a key bias is softmax-invariant anyway).
                    if (kmax := bp.abs().max().item()) > 1e-6:
                        logger.warning("%s/%s: dropping non-zero key bias (max %.3g)", ct2, ct2_lin, kmax)
                else:
                    sd[f"{hf}.{part}_proj.bias"] = bp.contiguous()

    def put_self_attention_and_ffn(hf: str, ct2: str) -> None:
        put_attention(f"{hf}.self_attn", f"{ct2}/self_attention", _SELF_ATTN)
        put_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        put_linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        put_linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        put_norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    enc, dec = "model.encoder", "model.decoder"
    for i in (1, 2):
        put_linear(f"{enc}.conv{i}", f"encoder/conv{i}")
    sd[f"{enc}.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    put_norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        hf, ct2 = f"{enc}.layers.{i}", f"encoder/layer_{i}"
        put_self_attention_and_ffn(hf, ct2)
    sd[f"{dec}.embed_tokens.weight"] = get("decoder/embeddings/weight")
    sd[f"{dec}.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    put_norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        hf, ct2 = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        put_self_attention_and_ffn(hf, ct2)
        put_attention(f"{hf}.encoder_attn", f"{ct2}/attention", _CROSS_ATTN)
        put_norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
    # proj_out is tied to the token embeddings (CT2's decoder/projection was checked by _pop_tied_projection).
    sd["proj_out.weight"] = sd[f"{dec}.embed_tokens.weight"]
    unused = sorted(k for k, a in v.items() if k not in used and a.ndim > 0)
    if unused:
        raise CTranslate2FormatError(f"unmapped CTranslate2 tensors (unknown Whisper variant?): {unused[:8]}")
    return sd


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CTranslate2FormatError(f"{path}: cannot read JSON: {exc}") from exc


def _token_ids(tokenizer_json: Path, vocabulary_txt: Path | None) -> dict[str, int]:
    """Return the ids of the special added tokens, cross-checked against ``vocabulary.txt``."""
    data = _read_json(tokenizer_json)
    ids = {t["content"]: int(t["id"]) for t in data.get("added_tokens", []) if t.get("special", True)}
    missing = [tok for tok in _SPECIAL.values() if tok not in ids]
    if missing:
        raise CTranslate2FormatError(f"{tokenizer_json}: special tokens missing: {missing}")
    if vocabulary_txt is not None and vocabulary_txt.is_file():
        vocab = vocabulary_txt.read_text(encoding="utf-8").split("\n")
        for tok in _SPECIAL.values():
            if ids[tok] >= len(vocab) or vocab[ids[tok]] != tok:
                raise CTranslate2FormatError(f"{vocabulary_txt}: {tok} is not at id {ids[tok]} as in {tokenizer_json}")
    return ids


def _count_layers(v: dict[str, np.ndarray], side: str) -> int:
    found = {int(m.group(1)) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))}
    if found != set(range(len(found))) or not found:
        raise CTranslate2FormatError(f"{side} layers are missing or not contiguous: {sorted(found)}")
    return len(found)


def _num_heads(v: dict[str, np.ndarray], side: str, d_model: int) -> int:
    """Heads from CT2's ``<side>/num_heads`` scalar, else Whisper's fixed head size of 64."""
    return int(v[f"{side}/num_heads"]) if f"{side}/num_heads" in v else d_model // 64


def convert_ctranslate2_whisper(src: str | Path, dst: str | Path, *, dtype: str = "float32") -> Path:
    """Convert a CTranslate2 Whisper model directory into a transformers Whisper directory.

    Args:
        src: Directory with CTranslate2's ``model.bin``, ``config.json`` and ``tokenizer.json``
            (``vocabulary.txt`` is optional and only used as a cross-check).
        dst: Output directory (created if needed; existing files are overwritten).
        dtype: Weight dtype to save: ``"float32"``, ``"float16"`` or ``"bfloat16"``.

    Returns:
        ``dst``, holding config/generation_config/preprocessor_config JSON, model.safetensors, tokenizer files.

    Raises:
        CTranslate2FormatError: (a ``ValueError``) if the input is missing, corrupt or unsupported.
        ValueError: for an unsupported ``dtype``.
    """
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_TORCH_DTYPES)}, got {dtype!r}")
    src, dst = Path(src), Path(dst)
    t0 = time.perf_counter()
    for required in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / required).is_file():
            raise CTranslate2FormatError(f"{src / required}: required file not found")
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    spec, revision, ct2_cfg, v = _read_whisper(src)
    shape = _Shape.of(v, src / "model.bin")
    ids = _token_ids(src / "tokenizer.json", src / "vocabulary.txt")
    logger.info("CTranslate2 %s rev %d: d_model=%d enc=%d dec=%d vocab=%d n_mels=%d multilingual=%s",
                spec, revision, shape.d_model, shape.n_enc, shape.n_dec, shape.vocab_size, shape.n_mels,
                shape.multilingual)
    tokenizer = _tokenizer(src / "tokenizer.json", ids, shape.vocab_size)
    config = _whisper_config(v, shape, ids, ct2_cfg, dtype, src / "model.bin")
    state_dict = _state_dict(v, shape.n_enc, shape.n_dec, _TORCH_DTYPES[dtype])
    v = None  # free the dequantized arrays before saving
    model = _meta_model(config, state_dict)
    model.generation_config = _generation_config(config, ids, ct2_cfg, shape.multilingual)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)

    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=shape.n_mels),
                                 tokenizer=tokenizer)
    processor.save_pretrained(dst)
    processor.feature_extractor.save_pretrained(dst)  # preprocessor_config.json for older/other loaders
    logger.info("Converted %s -> %s (%s) in %.2fs", src, dst, dtype, time.perf_counter() - t0)
    return dst


def _read_whisper(src: Path) -> tuple[str, int, dict[str, Any], dict[str, np.ndarray]]:
    """``(spec, revision, config.json, variables)`` of a CTranslate2 Whisper directory: the variables
    dequantized, the output projection checked to be tied to the embeddings and dropped."""
    spec, revision, raw = read_ctranslate2_model(src / "model.bin")
    if spec != "WhisperSpec":
        raise CTranslate2FormatError(f"{src / 'model.bin'}: spec {spec!r} is not a Whisper model (WhisperSpec)")
    ct2_cfg: dict[str, Any] = _read_json(src / "config.json")
    _pop_tied_projection(raw)
    return spec, revision, ct2_cfg, dequantize(raw)


def _dim(v: dict[str, np.ndarray], name: str, axis: int, where: Path) -> int:
    """Size of variable ``name`` along ``axis`` (CTranslate2FormatError naming ``where`` when it is missing)."""
    if name not in v:
        raise CTranslate2FormatError(f"{where}: missing Whisper variable {name!r}")
    return int(v[name].shape[axis])


@dataclass(frozen=True)
class _Shape:
    """The model sizes read from the variables."""

    vocab_size: int
    d_model: int
    n_mels: int
    n_enc: int
    n_dec: int

    @classmethod
    def of(cls, v: dict[str, np.ndarray], where: Path) -> "_Shape":
        return cls(vocab_size=_dim(v, "decoder/embeddings/weight", 0, where),
                   d_model=_dim(v, "decoder/embeddings/weight", 1, where),
                   n_mels=_dim(v, "encoder/conv1/weight", 1, where),
                   n_enc=_count_layers(v, "encoder"), n_dec=_count_layers(v, "decoder"))

    @property
    def multilingual(self) -> bool:
        return self.vocab_size >= 51865  # English-only checkpoints have 51864 tokens.


def _suppress_lists(ct2_cfg: dict[str, Any], eot: int) -> tuple[list[int], list[int]]:
    """``(suppress_tokens, begin_suppress_tokens)``; null (CTranslate2's converter writes it for a checkpoint
    without suppress lists) = the default."""
    suppress = [int(t) for t in ct2_cfg.get("suppress_ids") or []]
    begin_suppress = [int(t) for t in ct2_cfg.get("suppress_ids_begin") or [220, eot]]
    return suppress, begin_suppress


def _tokenizer(tokenizer_json: Path, ids: dict[str, int], vocab_size: int):
    """The ``WhisperTokenizer`` of ``tokenizer.json``, with the timestamp tokens added when it lacks them;
    CTranslate2FormatError when it does not match the vocabulary."""
    from transformers import AddedToken, WhisperTokenizer

    eot, no_ts = ids[_SPECIAL["eot"]], ids[_SPECIAL["no_timestamps"]]
    specials = sorted((i, t) for t, i in ids.items() if i > eot)
    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_json), pad_token=_SPECIAL["eot"],
                                 extra_special_tokens=[t for _, t in specials], model_max_length=1024)
    n_timestamps = vocab_size - (no_ts + 1)
    if n_timestamps > 0 and len(tokenizer) == no_ts + 1:
        tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False)
                              for i in range(n_timestamps)])
    if len(tokenizer) != vocab_size or tokenizer.all_special_ids[-1] != no_ts:
        raise CTranslate2FormatError(f"tokenizer mismatch: {len(tokenizer)} tokens vs vocab {vocab_size}, last "
                                     f"special id {tokenizer.all_special_ids[-1]} vs <|notimestamps|> {no_ts}")
    return tokenizer


def _whisper_config(v: dict[str, np.ndarray], shape: _Shape, ids: dict[str, int], ct2_cfg: dict[str, Any],
                    dtype: str, where: Path):
    """The ``WhisperConfig`` of the converted model."""
    from transformers import WhisperConfig

    eot, sot = ids[_SPECIAL["eot"]], ids[_SPECIAL["sot"]]
    suppress, begin_suppress = _suppress_lists(ct2_cfg, eot)
    config = WhisperConfig(
        vocab_size=shape.vocab_size, num_mel_bins=shape.n_mels, d_model=shape.d_model, encoder_layers=shape.n_enc,
        decoder_layers=shape.n_dec,
        encoder_attention_heads=_num_heads(v, "encoder", shape.d_model),
        decoder_attention_heads=_num_heads(v, "decoder", shape.d_model),
        encoder_ffn_dim=_dim(v, "encoder/layer_0/ffn/linear_0/weight", 0, where),
        decoder_ffn_dim=_dim(v, "decoder/layer_0/ffn/linear_0/weight", 0, where),
        max_source_positions=_dim(v, "encoder/position_encodings/encodings", 0, where),
        max_target_positions=_dim(v, "decoder/position_encodings/encodings", 0, where),
        pad_token_id=eot, bos_token_id=sot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=suppress, begin_suppress_tokens=begin_suppress, tie_word_embeddings=True, dtype=dtype,
    )
    config.architectures = ["WhisperForConditionalGeneration"]
    return config


def _meta_model(config: Any, state_dict: dict[str, torch.Tensor]):
    """``WhisperForConditionalGeneration`` built on the meta device and given ``state_dict``'s tensors;
    CTranslate2FormatError when a weight is missing, unexpected or of the wrong shape."""
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    bad = missing + unexpected + [k for k in expected if k in state_dict and expected[k].shape != state_dict[k].shape]
    if bad:
        raise CTranslate2FormatError(f"weight mapping mismatch (missing, unexpected or wrong shape): {bad[:8]}")
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model


def _generation_config(config: Any, ids: dict[str, int], ct2_cfg: dict[str, Any], is_multilingual: bool):
    """The ``GenerationConfig``: special tokens, suppress lists, alignment heads, languages and tasks
    (multilingual checkpoints)."""
    from transformers import GenerationConfig

    eot, sot, no_ts = ids[_SPECIAL["eot"]], ids[_SPECIAL["sot"]], ids[_SPECIAL["no_timestamps"]]
    suppress, begin_suppress = _suppress_lists(ct2_cfg, eot)
    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=sot, eos_token_id=eot, pad_token_id=eot,
        max_length=config.max_target_positions, suppress_tokens=suppress, begin_suppress_tokens=begin_suppress,
        no_timestamps_token_id=no_ts, prev_sot_token_id=ids[_SPECIAL["prev"]], max_initial_timestamp_index=50,
        is_multilingual=is_multilingual, return_timestamps=False,
        alignment_heads=[[int(a), int(b)] for a, b in ct2_cfg.get("alignment_heads", [])] or None,
    )
    if is_multilingual:
        gen.lang_to_id = {t: i for t, i in ids.items() if sot < i < ids[_SPECIAL["translate"]]}
        gen.task_to_id = {"transcribe": ids[_SPECIAL["transcribe"]], "translate": ids[_SPECIAL["translate"]]}
    # No forced_decoder_ids: transformers >= 4.38 builds the prompt itself ([sot] + [<|notimestamps|>]
    # for English-only models) and only warns about the deprecated attribute if present.
    return gen


def bundled_whisper_transformers_path() -> Path:
    """The bundled tiny.en converted to transformers format (made once, kept in the cache).

    Needed by the transformers-only features (grammar-constrained decoding).
    """
    target = cache_dir() / "whisper-tiny.en-transformers"
    if (target / "model.safetensors").is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir()) as scratch:  # converted aside, then moved in one step
        converted = convert_ctranslate2_whisper(bundled_whisper_path(), Path(scratch) / "model")
        try:
            os.replace(converted, target)
        except OSError:  # another process got there first
            if not (target / "model.safetensors").is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(converted, target)
    return target

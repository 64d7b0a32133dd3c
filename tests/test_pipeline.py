"""SpeechIntentPipeline with every ASR backend, per-file errors, save/load round trips; every kind of bad
audio and silence in one batch, a stage failing on one input, determinism across runs and batch sizes,
speech the grammar rejects."""
from __future__ import annotations

import csv
import json
import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import soundfile as sf

from speech_intent import FasterWhisperASR, SpeechIntentPipeline, Wav2Vec2ASR, WhisperASR
from speech_intent.asr.base import BaseASR
from speech_intent.cli import main
from speech_intent.errors import ModelLoadError
from speech_intent.results import IntentPrediction, Transcript

from .compare import assert_rows_match
from .conftest import LABELS, _intent, _signal


@pytest.fixture()
def wav_dir(tmp_path, sine):
    for i, n in enumerate([16000, 8000, 20000]):
        sf.write(tmp_path / f"clip{i}.wav", sine[:n] if n <= len(sine) else np.tile(sine, 2)[:n], 16000)
    return tmp_path


@pytest.mark.parametrize("backend", ["whisper", "wav2vec2"])
def test_each_transformers_backend_runs_in_a_pipeline(backend, tiny_whisper_dir, tiny_wav2vec2_dir, tiny_bert_dir,
                                                      wav_dir, bad_files):
    asr = (WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=6) if backend == "whisper"
           else Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"))
    pipe = SpeechIntentPipeline(asr, _intent(tiny_bert_dir))
    good = sorted(str(p) for p in wav_dir.glob("clip*.wav"))
    inputs = [good[0], str(bad_files["corrupt"]), good[1], str(bad_files["empty"]), str(bad_files["text"]), good[2]]
    results = pipe(inputs, batch_size=2)
    assert [r.path for r in results] == inputs
    for r in results:
        bad = r.path in {str(v) for v in bad_files.values()}
        assert (r.error is not None) == bad
        if bad:
            assert r.path in r.error and r.intent is None and r.transcript is None
        else:
            assert isinstance(r.transcript, str) and r.duration > 0
            assert r.prediction is not None and r.text == pipe.intent.normalize(r.transcript)  # classified it
            if r.text:  # a text: one of the model's labels (no threshold, no grammar to refuse it)
                assert r.intent in LABELS and 0 < r.confidence <= 1 and len(r.top_k) == 3
                assert r.top_k[0] == (r.intent, r.confidence)
            else:  # nothing heard: no intent, and no scores to show for it
                assert r.intent is None and r.confidence == 0.0 and r.top_k == []
        json.dumps(r.to_dict())  # serialisable
    good = [r for r in results if r.error is None]
    assert len(good) == 3 and any(r.text for r in good), [r.transcript for r in good]  # the labels above were seen


def test_results_do_not_depend_on_batch_size(tiny_wav2vec2_dir, tiny_bert_dir, wav_dir):
    pipe = SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"), _intent(tiny_bert_dir))
    files = sorted(str(p) for p in wav_dir.glob("clip*.wav"))
    a = [r.to_dict() for r in pipe(files, batch_size=1)]
    b = [r.to_dict() for r in pipe(files, batch_size=3)]
    assert_rows_match(a, b, atol=1e-4)  # padding changes the float summation order only (tests/compare.py)


@pytest.mark.parametrize("backend", ["whisper", "wav2vec2"])
def test_save_pretrained_round_trip_reproduces_predictions(backend, tiny_whisper_dir, tiny_wav2vec2_dir,
                                                           tiny_bert_dir, wav_dir, tmp_path):
    asr = (WhisperASR.from_pretrained(tiny_whisper_dir, device="cpu", max_new_tokens=6) if backend == "whisper"
           else Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"))
    pipe = SpeechIntentPipeline(asr, _intent(tiny_bert_dir), top_k=2)
    files = sorted(str(p) for p in wav_dir.glob("clip*.wav"))
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "pipeline.json").is_file()
    again = SpeechIntentPipeline.from_pretrained(tmp_path / "saved", device="cpu")
    assert type(again.asr) is type(asr) and again.top_k == 2
    assert [r.to_dict() for r in pipe(files)] == [r.to_dict() for r in again(files)]


def test_pipeline_dir_missing_a_stage_is_a_clear_error(tiny_wav2vec2_dir, tiny_bert_dir, tmp_path):
    import shutil

    pipe = SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"), _intent(tiny_bert_dir))
    pipe.save_pretrained(tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "intent")
    with pytest.raises(ModelLoadError, match="missing its intent stage"):
        SpeechIntentPipeline.from_pretrained(tmp_path / "p")
    with pytest.raises(ModelLoadError, match="not a pipeline directory"):
        SpeechIntentPipeline.from_pretrained(tmp_path)


def test_stages_stay_usable_on_their_own(tiny_wav2vec2_dir, tiny_bert_dir, sine):
    pipe = SpeechIntentPipeline(Wav2Vec2ASR.from_pretrained(tiny_wav2vec2_dir, device="cpu"), _intent(tiny_bert_dir))
    assert len(pipe.asr([sine])) == 1
    assert pipe.intent(["play some jazz"])[0].intent in LABELS
    assert len(pipe([sine, sine])) == 2 and pipe(sine)[0].path == "<array #0>"


@pytest.mark.slow
def test_faster_whisper_runs_in_a_pipeline_and_round_trips(tiny_bert_dir, tmp_path, bad_files):
    from .conftest import ASSETS

    files = sorted(str(p) for p in (ASSETS / "audio").glob("*.wav"))[:3]
    assert files, "assets/audio has no sample commands"
    pipe = SpeechIntentPipeline(FasterWhisperASR.from_pretrained(None, device="cpu"), _intent(tiny_bert_dir))
    results = pipe(files + [str(bad_files["text"])], batch_size=2)
    assert all(r.transcript for r in results[:3]) and results[3].error
    pipe.save_pretrained(tmp_path / "fw")
    again = SpeechIntentPipeline.from_pretrained(tmp_path / "fw", device="cpu")
    assert isinstance(again.asr, FasterWhisperASR)
    assert [r.to_dict() for r in again(files)] == [r.to_dict() for r in results[:3]]


# ------------------------------------------------------------------------------------ bad inputs, failing stages
OK, SILENT = "ok", "silent"


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


def test_a_tuple_of_two_arrays_is_two_inputs_and_an_array_with_its_rate_is_one(tiny_pipeline_dir):
    pipe = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    a, b = _signal(16000, 0.5), _signal(16000, 0.7)
    results = pipe((a, b))
    assert [(r.path, r.error) for r in results] == [("<array #0>", None), ("<array #1>", None)]
    assert [r.duration for r in results] == pytest.approx([0.5, 0.7])
    assert [r.duration for r in pipe((a, 8000))] == pytest.approx([1.0])  # (samples, rate): one input


def test_workers_recognise_chunks_at_once_and_results_keep_the_input_order(tiny_pipeline_dir):
    import threading

    from speech_intent.errors import ConfigError

    pipe = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", num_workers=2)
    inputs = [_signal(16000, 0.3 + 0.1 * i) for i in range(7)] + [b"not audio"]
    alone = list(pipe.stream(inputs, batch_size=2, workers=1))
    together = list(pipe.stream(inputs, batch_size=2, workers=2))  # each chunk on one thread, not two
    assert_rows_match(together, alone)  # same order, paths, errors, durations; model outputs to a tolerance
    assert [r.path for r in alone] == [f"<array #{i}>" for i in range(7)] + ["<bytes #7>"]
    assert alone[-1].error is not None and all(r.error is None for r in alone[:-1])  # the bad input, in its place

    process, meet = pipe._process_chunk, threading.Barrier(2, timeout=5)

    def met(chunk, start, batch_size):  # each chunk waits until another is being recognised too
        meet.wait()
        return process(chunk, start, batch_size)

    pipe._process_chunk = met  # type: ignore[method-assign]
    assert len(pipe(inputs[:4], batch_size=2, workers=2)) == 4
    with pytest.raises(ConfigError, match="workers"):
        pipe(inputs, workers=0)


def test_the_python_default_runs_two_chunks_at_once_on_a_cpu_as_predict_does(tiny_pipeline_dir, monkeypatch):
    """Called from Python with no ``workers``, a pipeline loaded on a CPU of 2+ threads recognises two chunks at
    once (what ``speech-intent predict`` does there); a lone chunk runs in the caller's thread, on all threads."""
    import threading

    import speech_intent.device

    monkeypatch.setattr(speech_intent.device, "available_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pipe = SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    assert pipe.workers == 2
    assert SpeechIntentPipeline(pipe.asr, pipe.intent).workers == 2  # a torch stage: the device's default
    assert SpeechIntentPipeline(pipe.asr, pipe.intent, workers=1).workers == 1
    assert SpeechIntentPipeline.from_pretrained(tiny_pipeline_dir, device="cpu", num_workers=1).workers == 1
    inputs = [_signal(16000, 0.3 + 0.1 * i) for i in range(4)]
    process, meet, callers = pipe._process_chunk, threading.Barrier(2, timeout=5), []

    def met(chunk, batch_size, decoded):  # each chunk waits until another is being recognised too
        callers.append(threading.current_thread())
        meet.wait()
        return process(chunk, batch_size, decoded)

    pipe._process_chunk = met  # type: ignore[method-assign]
    assert [r.path for r in pipe(inputs, batch_size=2)] == [f"<array #{i}>" for i in range(4)]
    assert threading.current_thread() not in callers
    pipe._process_chunk = lambda *args: (callers.append(threading.current_thread()), process(*args))[1]
    callers.clear()
    assert len(pipe(inputs, batch_size=8)) == 4 and callers == [threading.current_thread()]  # one chunk


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
        assert_rows_match(first, other, atol=1e-4)  # padding changes float summation order only


# ------------------------------------------------------------------------------------ rejected speech, silence
class _OutOfGrammarASR(BaseASR):
    backend = "rejecting"

    def _transcribe_batch(self, batch):
        return [Transcript("play some jazz", 0.7, in_grammar=False, grammar_margin=2.5) for _ in batch]

    def save_pretrained(self, save_directory) -> None:  # pragma: no cover - not saved here
        raise NotImplementedError


def test_rejected_speech_has_no_intent_and_silence_has_empty_parts(tiny_bert_dir):
    intent = _intent(tiny_bert_dir)
    assert intent(["play some jazz"])[0].intent is not None  # what the intent stage alone says
    tone = (0.2 * np.sin(np.arange(16000) / 3)).astype(np.float32)
    rejected, silent = SpeechIntentPipeline(_OutOfGrammarASR(), intent)([tone, np.zeros(8000, dtype=np.float32)])
    assert rejected.ok and rejected.in_grammar is False and rejected.grammar_margin == 2.5
    assert rejected.intent is None and rejected.slots == {} and rejected.slot_spans == []
    assert rejected.transcript == "play some jazz" and rejected.text == "play some jazz"
    assert rejected.to_dict()["intent"] is None and rejected.to_dict()["grammar_margin"] == 2.5
    assert silent.transcription == Transcript("", 0.0, 0.5) and silent.prediction == IntentPrediction("", None, 0.0)

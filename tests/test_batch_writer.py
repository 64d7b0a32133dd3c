"""ResultWriter: resuming keeps one latest row per file (JSONL and CSV), non-UTF-8 file names."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from speech_intent.batch.writer import ResultWriter
from speech_intent.results import PipelineResult, Transcript


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


def test_overwrite_leaves_the_output_as_it_was_when_the_models_fail_to_load(tmp_path, tiny_pipeline_dir):
    from speech_intent.cli import main

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    out = tmp_path / "out.jsonl"
    out.write_text('{"path": "earlier.wav", "error": null, "file_key": "1:1"}\n')
    before = out.read_text()
    # a typo in --intent: the models do not load, nothing runs
    assert main(["predict", str(clip), "--overwrite", "--intent", str(tmp_path / "no-such-model"), "-q",
                 "-o", str(out)]) != 0
    assert out.read_text() == before
    assert main(["predict", str(clip), "--overwrite", "--pipeline", str(tiny_pipeline_dir), "--device", "cpu", "-q",
                 "-o", str(out)]) == 0
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == [str(clip)]


def test_a_directory_as_the_output_is_refused_before_any_model_loads(tmp_path, capsys):
    from speech_intent.cli import main

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    # the models named would not load either: the output is checked first, and named
    assert main(["predict", str(clip), "--intent", str(tmp_path / "no-such-model"), "-q", "-o", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "is a directory" in err and str(tmp_path) in err and "no-such-model" not in err


class _CopyingASR:
    """An ASR stage during whose work the input file is still being written (a copy in progress)."""

    sampling_rate = 16000

    def __init__(self, path: Path) -> None:
        self.path = path

    def transcribe(self, arrays, batch_size=8, **kwargs):
        with open(self.path, "ab") as handle:  # more of the file arrives after it was read
            handle.write(b"\0" * 3200)
        return [Transcript("hi", 1.0, duration=len(a) / 16000) for a in arrays]


@pytest.mark.parametrize("segment", [False, True])
def test_a_file_that_changes_while_it_is_processed_is_redone_by_the_rerun(tmp_path, tiny_bert_dir, monkeypatch,
                                                                          segment):
    import numpy as np
    import soundfile as sf

    from speech_intent.cli import main, predict
    from speech_intent.nlu import IntentClassifier
    from speech_intent.pipeline import SpeechIntentPipeline

    clip = tmp_path / "a.wav"
    t = np.arange(16000) / 16000
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    pipe = SpeechIntentPipeline(_CopyingASR(clip), IntentClassifier.from_pretrained(tiny_bert_dir, device="cpu"))
    monkeypatch.setattr(predict, "build_pipeline", lambda args, **kwargs: pipe)
    out = tmp_path / "out.jsonl"
    cmd = ["predict", str(clip), "-q", "-o", str(out)]
    if segment:
        monkeypatch.setattr(SpeechIntentPipeline, "predict_segments", lambda self, path, **kw: iter(
            [PipelineResult(path=path, transcription=self.asr.transcribe([np.zeros(1600)])[0], segment=0,
                            start=0.0, end=0.1, last=True)]))
        cmd.append("--segment")
    assert main(cmd) == 0
    # the row describes the file as it was read, not as it is now: the rerun redoes it
    assert ResultWriter(str(out), segments=segment).pending([str(clip)]) == [str(clip)]


def test_resuming_into_a_file_that_is_not_a_results_file_refuses_instead_of_emptying_it(tmp_path):
    from speech_intent.errors import DataFormatError

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    out = tmp_path / "labels.json"  # e.g. a pretty-printed labels file given as -o by mistake
    out.write_text(json.dumps({"a.wav": {"intent": "orderDrink", "slots": {"size": "small"}}}, indent=1) + "\n")
    before = out.read_text()
    with pytest.raises(DataFormatError, match="not a JSONL results file"):
        ResultWriter(str(out)).pending([str(clip)])
    assert out.read_text() == before
    data = tmp_path / "train.jsonl"  # a JSONL of another kind: results are not appended to it
    data.write_text('{"text": "a small latte", "intent": "orderDrink"}\n')
    with pytest.raises(DataFormatError, match="not a JSONL results file"):
        ResultWriter(str(data))


def test_resuming_through_a_symlinked_output_updates_the_file_it_points_to(tmp_path):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF")
    real = tmp_path / "runs" / "out.jsonl"
    real.parent.mkdir()
    writer = ResultWriter(str(real))
    writer.write(_result(str(clip), error=f"{clip}: boom"))
    writer.close()
    link = tmp_path / "out.jsonl"
    link.symlink_to(real)
    writer = ResultWriter(str(link))
    assert writer.pending([str(clip)]) == [str(clip)]  # drops the failed row: the file is rewritten
    writer.write(_result(str(clip)))
    writer.close()
    assert link.is_symlink()
    assert [json.loads(line)["error"] for line in real.read_text().splitlines()] == [None]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_non_utf8_file_names_to_a_strict_utf8_stdout_do_not_stop_the_run(tmp_path, tiny_pipeline_dir, monkeypatch,
                                                                         fmt):
    import io
    import sys

    from speech_intent.cli import main

    odd = tmp_path / os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name: not valid UTF-8
    odd.write_bytes(b"RIFF")
    plain = tmp_path / "plain.wav"
    plain.write_bytes(b"RIFF")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")  # errors="strict", as in a UTF-8 locale
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["predict", str(odd), str(plain), "--format", fmt, "--pipeline", str(tiny_pipeline_dir),
                 "--device", "cpu", "-q"]) == 0
    stdout.flush()
    text = stdout.buffer.getvalue().decode("utf-8")
    rows = [json.loads(line) for line in text.splitlines()] if fmt == "jsonl" else list(csv.DictReader(io.StringIO(text)))
    assert [Path(r["path"]).name for r in rows][1:] == ["plain.wav"]
    assert rows[0]["path"] == str(odd) if fmt == "jsonl" else rows[0]["path"].endswith("caf\ufffd.wav")

"""Long recordings: a 12-minute file split into utterances where they were placed, in bounded memory;
files without speech or unreadable ones; ``predict --segment`` resuming utterance by utterance."""
from __future__ import annotations

import csv
import gc
import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from speech_intent import SpeechIntentPipeline
from speech_intent.cli import main
from speech_intent.errors import ConfigError
from speech_intent.longform import iter_utterances
from speech_intent.vad import VADOptions
from tests.serving import recording

PLACED = (("001_set_alarm.wav", 30.0), ("007_get_weather.wav", 300.0), ("014_lights_on.wav", 650.0))


@pytest.fixture(scope="module")
def pipe(tiny_whisper_pipeline_dir) -> SpeechIntentPipeline:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield SpeechIntentPipeline.from_pretrained(tiny_whisper_pipeline_dir, device="cpu")
    torch.set_num_threads(threads)


def _recording(seconds: float, placed, rate: int = 16000, noise: float = 1e-3):
    """Faint noise with the clips at the given seconds: (audio at ``rate``, [(start, end)] placed)."""
    audio = (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * noise).astype(np.float32)
    spans = []
    for name, at in placed:
        clip = recording(name)
        i = int(at * 16000)
        audio[i: i + len(clip)] += clip
        spans.append((at, at + len(clip) / 16000))
    if rate != 16000:
        import soxr

        audio = soxr.resample(audio, 16000, rate)
    return audio, spans


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """12 minutes, 8 kHz stereo (resampled and averaged to mono on the way in): 23 MB of PCM16 that
    would be 46 MB as float32; three utterances."""
    audio, spans = _recording(12 * 60, PLACED, rate=8000)
    path = tmp_path_factory.mktemp("long") / "call.wav"
    sf.write(path, np.stack([audio, 0.5 * audio], axis=1), 8000, subtype="PCM_16")
    return path, spans


def _near(row, span, tolerance=0.3):
    """The row's times are the speech span widened by the VAD's pad on both sides."""
    pad = VADOptions().pad
    return abs(row["start"] - (span[0] - pad)) <= tolerance and abs(row["end"] - (span[1] + pad)) <= tolerance


def test_a_long_recording_gives_one_row_per_utterance_where_it_was_placed_in_bounded_memory(pipe, long_wav):
    path, spans = long_wav
    gc.collect()
    tracemalloc.start()
    try:
        found = [(u.start, u.end, len(u.audio)) for u in iter_utterances(path)]
        vad_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        rows = [r.to_dict() for r in pipe.predict_segments(path, batch_size=1)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    decoded = 12 * 60 * 8000 * 2 * 4  # the whole file as float32
    assert vad_peak < decoded / 6, vad_peak  # read in blocks, only the utterance in progress kept
    assert peak < decoded / 2.5, peak  # plus the ASR's features of one utterance
    assert len(found) == 3 and all(n == round((end - start) * 16000) for start, end, n in found)
    assert [r["segment"] for r in rows] == [0, 1, 2] and [r["last"] for r in rows] == [False, False, True]
    for row, span in zip(rows, spans):
        assert _near(row, span), (row["start"], row["end"], span)
        assert row["path"] == str(path) and row["error"] is None and row["intent"] in pipe.intent.labels
        assert row["duration"] == pytest.approx(row["end"] - row["start"], abs=0.002)
    assert set(rows[0]) == set(pipe([recording("001_set_alarm.wav")])[0].to_dict()) | {"segment", "start", "end",
                                                                                          "last"}


def test_files_without_speech_or_unreadable_give_one_whole_file_row(pipe, tmp_path, bad_files):
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(16000 * 40, np.float32), 16000)  # longer than max_duration: fine when segmented
    [row] = [r.to_dict() for r in pipe.predict_segments(silent)]
    assert row["segment"] is None and row["last"] is True and row["error"] is None
    assert row["transcript"] == "" and row["intent"] is None and row["end"] == pytest.approx(40.0)
    for name in ("corrupt", "empty", "text", "missing"):
        [row] = [r.to_dict() for r in pipe.predict_segments(bad_files[name])]
        assert row["segment"] is None and row["last"] is True and row["error"].startswith(str(bad_files[name]))
    m4a = tmp_path / "talk.m4a"
    m4a.write_bytes(b"\0" * 100)
    assert "block by block" in next(iter(pipe.predict_segments(m4a))).error
    with pytest.raises(ConfigError, match="max_utterance"):
        pipe.predict_segments(silent, vad=VADOptions(max_utterance=40.0))  # over max_duration (30 s)


def test_utterance_results_and_their_errors_name_the_file_as_given(pipe, monkeypatch):
    """The pipeline is given the file's name for its utterances: no result is renamed afterwards."""
    import io

    audio, _ = _recording(12.0, (("001_set_alarm.wav", 1.0), ("014_lights_on.wav", 7.0)))
    data = io.BytesIO()
    sf.write(data, audio, 16000, format="WAV")
    asked = []
    recognise = pipe.recognise

    def spy(arrays, names=None, **kwargs):
        asked.append(list(names))
        return recognise(arrays, names, **kwargs)

    monkeypatch.setattr(pipe, "recognise", spy)
    rows = [r.to_dict() for r in pipe.predict_segments(data.getvalue(), name="call 7", batch_size=1)]
    assert [row["segment"] for row in rows] == [0, 1] and {row["path"] for row in rows} == {"call 7"}
    assert asked == [["call 7"], ["call 7"]]

    def exploding(arrays, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(pipe.asr, "transcribe", exploding)
    rows = [r.to_dict() for r in pipe.predict_segments(data.getvalue(), name="call 7", batch_size=2)]
    assert [(row["segment"], row["error"]) for row in rows] == [
        (i, "call 7: processing failed (RuntimeError: model exploded)") for i in (0, 1)]


def test_whole_file_rows_are_unchanged(pipe):
    row = pipe([recording("001_set_alarm.wav")])[0].to_dict()
    assert not {"segment", "start", "end", "last"} & set(row)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_predict_segment_resumes_utterance_by_utterance(tiny_whisper_pipeline_dir, tmp_path, capsys, fmt):
    folder = tmp_path / "in"
    folder.mkdir()
    audio, spans = _recording(100, (("010_play_music.wav", 5.0), ("022_get_time.wav", 40.0),
                                    ("027_cancel.wav", 90.0)))
    sf.write(folder / "a_call.wav", audio, 16000)
    sf.write(folder / "b_quiet.wav", np.zeros(16000 * 3, np.float32), 16000)
    (folder / "c_broken.wav").write_bytes(b"RIFF not really")
    out = tmp_path / f"out.{fmt}"
    cmd = ["predict", str(folder), "--segment", "--pipeline", str(tiny_whisper_pipeline_dir), "--device", "cpu",
           "--batch-size", "2", "-q", "-o", str(out)]

    def rows():
        if fmt == "jsonl":
            return [json.loads(line) for line in out.read_text().splitlines()]
        with out.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def summary():
        return [line for line in capsys.readouterr().err.splitlines() if line.startswith("done: ")][-1]

    call = str(folder / "a_call.wav")
    assert main(cmd) == 0
    assert summary().startswith("done: 2, skipped: 0, failed: 1, utterances: 3")
    first = rows()
    assert [str(r["segment"]) for r in first if r["path"] == call] == ["0", "1", "2"]
    for row, span in zip([r for r in first if r["path"] == call], spans):
        assert _near({"start": float(row["start"]), "end": float(row["end"])}, span)

    # a run killed before the last utterance's row, and an utterance that failed
    kept = [r for r in first if not (r["path"] == call and str(r["segment"]) == "2")]
    for r in kept:
        if r["path"] == call and str(r["segment"]) == "0":
            r["error"] = f"{call}: processing failed (RuntimeError: boom)"
    if fmt == "jsonl":
        out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    else:
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(first[0]))
            writer.writeheader()
            writer.writerows(kept)
    assert main(cmd) == 0  # only utterances 0 and 2 are recognised again; the broken file is retried
    assert summary().startswith("done: 1, skipped: 1, failed: 1, utterances: 2")
    again = rows()
    keys = [(r["path"], str(r["segment"])) for r in again]
    assert len(keys) == len(set(keys)) == len(first)  # exactly once each
    assert sorted(keys) == sorted((r["path"], str(r["segment"])) for r in first)
    assert [r["path"] for r in again if r["error"]] == [str(folder / "c_broken.wav")]
    assert main(cmd) == 0
    assert summary().startswith("done: 0, skipped: 2, failed: 1, utterances: 0")
    assert len(rows()) == len(first)

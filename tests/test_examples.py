"""The examples run as a user runs them (a fresh interpreter, the embedded default pipeline) and do
what their docstrings say. ``quickstart.py`` runs in ``.ci/run`` right after the install."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO / "assets" / "audio"
EXAMPLES = REPO / "examples"


def _run(*args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """An example in a fresh interpreter, importing this checkout; ``env``: more environment variables."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", **env})


def _labels() -> dict:
    with (AUDIO / "manifest.csv").open(newline="") as handle:
        return {row["file"]: row["intent"] for row in csv.DictReader(handle)}


def test_batch_predict_writes_one_row_per_file_keeps_going_past_a_bad_one_and_resumes(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = ["014_lights_on.wav", "007_get_weather.wav", "001_set_alarm.wav"]
    for name in good:
        shutil.copy(AUDIO / name, folder / name)
    (folder / "broken.wav").write_bytes(b"RIFF this is not audio")
    out = tmp_path / "results.jsonl"

    first = _run(str(EXAMPLES / "batch_predict.py"), str(folder), str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "4 files, 0 already in" in first.stdout
    assert "done: 3, skipped: 0, failed: 1" in first.stdout
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    labels = _labels()
    assert sorted(rows) == sorted(good + ["broken.wav"])
    for name in good:
        assert rows[name]["error"] is None and rows[name]["intent"] == labels[name], rows[name]
    assert "broken.wav" in rows["broken.wav"]["error"]

    again = _run(str(EXAMPLES / "batch_predict.py"), str(folder), str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 files, 3 already in" in again.stdout  # only the failed file is tried again
    lines = out.read_text().splitlines()
    assert sorted(Path(json.loads(line)["path"]).name for line in lines) == sorted(rows)  # each file once


def test_stream_microphone_streams_a_wav_at_real_time_and_prints_the_command(tmp_path):
    done = _run(str(EXAMPLES / "stream_microphone.py"), "--wav", str(AUDIO / "014_lights_on.wav"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "speech_start" and types[-1] == "final" and types.count("final") == 1
    final = events[-1]
    assert final["intent"] == _labels()["014_lights_on.wav"] and final["error"] is None
    assert final["reason"] == "silence" and final["speech_end"] < final["end"]


def test_fine_tune_intents_trains_on_a_users_csv_predicts_and_saves_a_pipeline_that_loads(tmp_path):
    sentences = {
        "lights_on": ["turn on the lights", "switch the lamp on", "lights on please", "put the light on",
                      "turn the kitchen light on", "can you switch on the lights"],
        "get_weather": ["what is the weather", "will it rain today", "how hot is it outside",
                        "weather forecast please", "is it sunny tomorrow", "what's the weather like in paris"],
        "set_alarm": ["wake me up at seven", "set an alarm for six", "alarm at nine thirty please",
                      "set my alarm for tomorrow morning", "i need an alarm at five", "wake me at eight"],
    }
    data = tmp_path / "intents.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "intent"])
        writer.writerows([text, intent] for intent, texts in sentences.items() for text in texts)
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("014_lights_on.wav", "007_get_weather.wav"):
        shutil.copy(AUDIO / name, audio / name)

    done = _run(str(EXAMPLES / "fine_tune_intents.py"), str(data), str(audio), cwd=tmp_path, timeout=600,
                TMPDIR=str(tmp_path))  # the example's work folder (tempfile.mkdtemp) inside the test's
    assert done.returncode == 0, done.stderr[-2000:]
    assert "training on 18 examples" in done.stdout
    printed = [line.split()[0] for line in done.stdout.splitlines() if line.split(" ", 1)[0].endswith(".wav")]
    assert printed == ["007_get_weather.wav", "014_lights_on.wav"]
    saved = [line for line in done.stdout.splitlines() if line.startswith("whole pipeline saved to")]
    assert len(saved) == 1
    from speech_intent import SpeechIntentPipeline

    pipe = SpeechIntentPipeline.from_pretrained(saved[0].split()[4], device="cpu")
    assert sorted(pipe.intent.labels) == sorted(sentences)

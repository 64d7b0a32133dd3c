"""The command line (``speech_intent.cli.main`` and ``python -m speech_intent.cli``): predict killed
mid-run, then rerun."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speech_intent.cli import main

from .conftest import REPO, _signal


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

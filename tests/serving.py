"""Helpers for the service tests (tests/test_serve_*.py, test_browser.py): a real ``speech-intent serve``
process on a free loopback port, uploads and WAV bytes; and for them and the streaming and VAD tests
(test_live.py, test_vad.py): recordings with silence between utterances, cut in chunks of random sizes."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from tests.processes import free_ports, stop_group

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO / "assets" / "audio"
LOCAL = "http://127.0.0.1"  # in-process clients: a loopback Host, as a browser on this machine sends
STREAM = "ws://127.0.0.1/v1/stream"  # (the test client gives WebSockets its own host unless the URL names one)


def free_port() -> int:
    return free_ports(1)[0]


class Server:
    """A running server: ``url``, ``ws_url``, ``process`` (its pid for RSS) and its ``log`` file."""

    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url, self.process, self.log = url, process, log
        self.ws_url = url.replace("http://", "ws://")

    def alive(self) -> bool:
        return self.process.poll() is None


@contextlib.contextmanager
def serve(pipeline_dir: Optional[Path], log: Path, *args: str, timeout: float = 120.0,
          env: Optional[Dict[str, str]] = None, cwd: Path = REPO, prefix: Sequence[str] = ()) -> Iterator[Server]:
    """Start ``python -m speech_intent serve --pipeline DIR`` (this checkout; the default pipeline when
    ``pipeline_dir`` is None) with ``env`` added to this process's environment (and ``prefix``, e.g. a tracer,
    before the command), wait for ``/health``,
    yield it, then stop it (terminate, then kill) so no process is left behind."""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           **(env or {})}
    pipeline = ["--pipeline", str(pipeline_dir)] if pipeline_dir is not None else []
    command = [*prefix, sys.executable, "-m", "speech_intent", "serve", *pipeline, "--device", "cpu", "--port", str(port), *args]
    handle = log.open("wb")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start in {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield Server(url, process, log)
    finally:  # the whole process group: a server started under a ``prefix`` (a tracer) is its child
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)  # reaped here: a zombie leader would keep the group "alive" for stop_group
        stop_group(process.pid, grace=5)  # whatever is left of the group
        if process.poll() is None:
            process.wait(10)
        handle.close()


def recording(name: str) -> np.ndarray:
    audio, rate = sf.read(AUDIO / name, dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    return audio


def with_silences(names: Sequence[str], gap: float = 1.5, lead: float = 1.0, tail: float = 1.5) -> tuple:
    """The recordings joined by silence: (16 kHz float32 audio, [(start, end) seconds of each])."""
    parts: List[np.ndarray] = [np.zeros(int(lead * 16000), np.float32)]
    spans, position = [], lead
    for i, name in enumerate(names):
        clip = recording(name)
        parts.append(clip)
        spans.append((position, position + len(clip) / 16000))
        position += len(clip) / 16000
        pause = gap if i < len(names) - 1 else tail
        parts.append(np.zeros(int(pause * 16000), np.float32))
        position += pause
    return np.concatenate(parts), spans


def chunks(data, seed: int = 0, low: int = 1, high: int = 4000) -> Iterator:
    """``data`` (samples or bytes) in consecutive pieces of random sizes from ``low`` to ``high``."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(data):
        size = int(rng.integers(low, high))
        yield data[start: start + size]
        start += size


def near(found: Tuple[float, ...], expected: Tuple[float, ...], tolerance: float = 0.45) -> bool:
    """Each time in ``found`` within ``tolerance`` seconds of the one in ``expected``."""
    return all(abs(a - b) <= tolerance for (a, b) in zip(found, expected))


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def wav_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    """``audio`` as the bytes of a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def uploads(*names: str) -> list:
    """The bundled recordings as the ``files`` of a multipart upload (``/v1/predict``)."""
    return [("files", (name, (AUDIO / name).read_bytes(), "audio/wav")) for name in names]

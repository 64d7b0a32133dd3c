"""Nothing leaves the machine: the default pipeline, training, evaluation and the service with its browser page
run with every connection to another host refused, and none is attempted.

Two independent witnesses: ``tests/no_network/sitecustomize.py`` (loaded by every Python process these tests
start) refuses and records any non-loopback connection, datagram or name lookup made through Python's
``socket``; ``strace`` (when the machine has it) records the ``connect`` / ``sendto`` / ``sendmsg`` system calls of
the process and its children, so a native library (CTranslate2, tokenizers, torch) reaching out is seen too.
No hub-offline variable is set: the code must not try, not merely be told to give up.
"""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import soundfile as sf

from tests.serving import REPO, serve

GUARD = REPO / "tests" / "no_network"
STRACE = shutil.which("strace")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
AUDIO = REPO / "assets" / "audio"
HUB_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")

TINY_DOMAIN = """version: "3.1"
nlu:
- intent: lights_on
  examples: |
    - turn on the lights
    - lights on please
    - switch the [kitchen](room) lights on
    - can you turn the [bedroom](room) light on
- intent: lights_off
  examples: |
    - turn off the lights
    - lights off please
    - switch the [kitchen](room) lights off
    - turn the [bedroom](room) light off
"""


def _environment(tmp_path: Path, log: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in HUB_VARIABLES}
    env.update(PYTHONPATH=f"{GUARD}{os.pathsep}{REPO}", SPEECH_INTENT_NETWORK_LOG=str(log),
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return env


def _traced(command: List[str], trace: Path) -> List[str]:
    return [*_tracer(trace), *command]


def _tracer(trace: Path) -> List[str]:
    """``strace`` recording the network system calls of a command and its children into ``trace``."""
    if not STRACE:
        return []
    return [STRACE, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg", "-e", "signal=none",
            "-o", str(trace)]


_ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def _outside(trace: Path) -> List[str]:
    """The traced system calls whose destination is an IPv4/IPv6 address other than loopback."""
    if not trace.exists():
        return []
    calls = []
    for line in trace.read_text(errors="replace").splitlines():
        for match in _ADDRESS.finditer(line):
            address = ipaddress.ip_address(match.group(1) or match.group(2))
            if not (address.is_loopback or address.is_unspecified):
                calls.append(line.strip())
    return calls


def _attempts(log: Path, trace: Path) -> List[str]:
    recorded = log.read_text().splitlines() if log.exists() else []
    return recorded + _outside(trace)


def test_the_guard_sees_an_attempt(tmp_path):
    """The witnesses work: a lookup and a connection to another host are refused and recorded by both."""
    log, trace = tmp_path / "network.log", tmp_path / "strace.log"
    code = ("import socket\n"
            "for target in ('huggingface.co', '93.184.216.34'):\n"
            "    try:\n"
            "        socket.create_connection((target, 443), timeout=1)\n"
            "    except OSError:\n"
            "        pass\n"
            )
    result = subprocess.run(_traced([sys.executable, "-c", code], trace), env=_environment(tmp_path, log),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    recorded = log.read_text()
    assert "getaddrinfo 'huggingface.co'" in recorded and "93.184.216.34" in recorded, recorded
    if STRACE:  # a native connect (no Python socket involved) shows in the system-call trace
        native = subprocess.run(_traced(["bash", "-c", "exec 3<>/dev/tcp/192.0.2.1/80"], trace),
                                capture_output=True, timeout=60)
        assert native.returncode != 0
        assert any("192.0.2.1" in call for call in _outside(trace)), trace.read_text()[-2000:]


@pytest.mark.slow
def test_default_pipeline_training_and_evaluation_reach_no_other_host(tmp_path):
    log, trace = tmp_path / "network.log", tmp_path / "strace.log"
    env = _environment(tmp_path, log)
    domain = tmp_path / "domain.yml"
    domain.write_text(TINY_DOMAIN)
    files = [str(AUDIO / name) for name in ("001_set_alarm.wav", "007_get_weather.wav", "014_lights_on.wav")]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("audio,intent\n" + "".join(f"{path},{Path(path).stem.split('_', 1)[1]}\n" for path in files))
    cli = [sys.executable, "-m", "speech_intent"]
    commands = {
        "predict": [*cli, "predict", *files, "-o", str(tmp_path / "results.jsonl"), "-q", "--device", "cpu"],
        "train": [*cli, "train", "--data", str(domain), "--output", str(tmp_path / "model"), "--epochs", "1", "-q",
                  "--device", "cpu"],
        "evaluate": [*cli, "evaluate", str(manifest), "-q", "--device", "cpu"],
    }
    for name, command in commands.items():
        result = subprocess.run(_traced(command, trace), cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        assert not _attempts(log, trace), f"{name} reached out: {_attempts(log, trace)}"
    rows = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(rows) == 3 and '"intent": "set_alarm"' in rows[0]
    assert (tmp_path / "model" / "model.safetensors").exists() or any((tmp_path / "model").glob("*.safetensors"))


@pytest.mark.slow
def test_service_and_its_page_reach_no_other_host_and_store_nothing(tmp_path):
    httpx = pytest.importorskip("httpx", reason="httpx (test extra) is not installed")
    log, trace = tmp_path / "network.log", tmp_path / "strace.log"
    scratch, home, workdir = tmp_path / "tmp", tmp_path / "home", tmp_path / "cwd"
    for folder in (scratch, home, workdir):
        folder.mkdir()
    env = _environment(tmp_path, log)
    from speech_intent.bundled import cache_dir

    # uploads above the multipart parser's in-memory limit are spooled to TMPDIR: it must be empty afterwards
    env.update(TMPDIR=str(scratch), HOME=str(home), SPEECH_INTENT_CACHE=str(cache_dir()))
    long_clip = tmp_path / "long.wav"
    audio, rate = sf.read(AUDIO / "007_get_weather.wav", dtype="float32")
    sf.write(long_clip, list(audio) * 8, rate, subtype="FLOAT")  # > 1 MB: spooled to disk while parsed
    assert long_clip.stat().st_size > 1_100_000
    server_log = tmp_path / "server.log"
    with serve(None, server_log, "--threads", "1", env={key: env[key] for key in (
            "PYTHONPATH", "SPEECH_INTENT_NETWORK_LOG", "TMPDIR", "HOME", "SPEECH_INTENT_CACHE")}, cwd=workdir,
               prefix=_tracer(trace)) as server:
        with long_clip.open("rb") as handle:
            answer = httpx.post(server.url + "/v1/predict", files={"files": ("long.wav", handle, "audio/wav")},
                                timeout=120)
        assert answer.status_code == 200, answer.text
        requests = []
        if CHROMIUM:  # the browser page, as a user opens it: every request it makes goes to this machine
            sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
                try:
                    page = browser.new_page()
                    page.on("request", lambda request: requests.append(request.url))
                    page.goto(server.url + "/")
                    page.set_input_files("#file", str(AUDIO / "014_lights_on.wav"))
                    page.wait_for_selector("text=014_lights_on.wav", timeout=60_000)
                    intent = page.get_attribute("#results li.result", "data-intent")
                finally:
                    browser.close()
            assert intent == "lights_on"
            assert requests and all(url.startswith(server.url) or url.startswith(server.ws_url) for url in requests), \
                requests
        server_pid = server.process.pid
    assert not _attempts(log, trace), _attempts(log, trace)
    assert "getaddrinfo" not in server_log.read_text()
    with pytest.raises(ProcessLookupError):  # the traced server is gone with its tracer
        os.killpg(server_pid, 0)
    leftovers = [str(path) for folder in (scratch, home, workdir) for path in folder.rglob("*")]
    assert not leftovers, f"the service left files behind: {leftovers}"

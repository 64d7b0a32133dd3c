"""Service benchmark (loopback only, bounded in count and time).

Starts ``speech-intent serve`` (micro-batching on, then off), and measures:

- streaming: end of speech -> ``final`` latency (p50 / p95) with 1 and 8 concurrent WebSocket clients
  replaying recordings in 20 ms frames at real time, 1 s of silence between utterances (the latency
  includes the trailing silence the VAD waits for, 0.6 s by default);
- ``/v1/predict`` throughput (requests/s and audio seconds/s) with 1, 8 and 32 concurrent clients;
- the server's peak RSS (VmHWM).

Recordings: ``../shared/data/coffee/dev`` when present, else ``assets/audio``.

    python benchmarks/serve.py                                   # the embedded default pipeline
    python benchmarks/serve.py --pipeline DIR --utterances 2 --requests 16 --smoke
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
COFFEE = REPO.parent / "shared" / "data" / "coffee" / "dev"


def recordings(limit: int) -> list:
    folder = COFFEE if COFFEE.is_dir() and any(COFFEE.glob("*.wav")) else REPO / "assets" / "audio"
    return sorted(folder.glob("*.wav"))[:limit]


def start_server(args, batching: bool):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "speech_intent", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--queue-size", "256", "--max-streams", "64"]
    command += ["--pipeline", args.pipeline] if args.pipeline else []
    command += ["--device", args.device] if args.device else []
    command += [] if batching else ["--no-micro-batching"]
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    import httpx

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("server did not start in time")


def stop_server(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------------- streaming
async def stream_client(url: str, files: list, gap: float, budget: float) -> list:
    import websockets

    latencies, ends, pending = [], [], asyncio.Event()
    async with websockets.connect(url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:
        await ws.recv()

        async def receive():
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "final":  # pair with the speech ends it covers (a missed one is skipped)
                    matched = None
                    while ends and ends[0][0] <= event["end"] + 0.05:
                        matched = ends.pop(0)
                    if matched is not None:
                        latencies.append(time.monotonic() - matched[1])
                if event["type"] == "end":
                    pending.set()
                    return

        reader = asyncio.create_task(receive())
        began = time.monotonic()
        sent = 0
        for path in files:
            audio, rate = sf.read(path, dtype="int16")
            if audio.ndim > 1:
                audio = audio[:, 0]
            for clip, is_speech in ((audio, True), (np.zeros(int(gap * rate), np.int16), False)):
                step = int(rate * 0.02)
                for start in range(0, len(clip), step):
                    await ws.send(clip[start: start + step].tobytes())
                    sent += min(step, len(clip) - start) / rate
                    await asyncio.sleep(max(0.0, began + sent - time.monotonic()))
                if is_speech:
                    ends.append((sent, time.monotonic()))  # (stream seconds, wall clock) of the end of speech
            if time.monotonic() - began > budget:
                break
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(pending.wait(), 60)
        await reader
    return latencies


def streaming(url: str, clients: int, files: list, args) -> dict:
    async def run():
        jobs = [stream_client(url, files[i % len(files):] + files[: i % len(files)], args.gap, args.max_seconds)
                for i in range(clients)]
        return await asyncio.gather(*jobs)

    latencies = [x for client in asyncio.run(run()) for x in client]
    p = np.percentile(latencies, [50, 95]) if latencies else [float("nan")] * 2
    return {"clients": clients, "finals": len(latencies), "p50_s": round(float(p[0]), 3),
            "p95_s": round(float(p[1]), 3)}


# ---------------------------------------------------------------------------- /v1/predict
def throughput(url: str, clients: int, files: list, args) -> dict:
    import httpx

    blobs = [(p.name, p.read_bytes(), sf.info(p).duration) for p in files]
    count = args.requests
    client = httpx.Client(timeout=300)

    def one(i):
        name, data, seconds = blobs[i % len(blobs)]
        response = client.post(url + "/v1/predict", files=[("files", (name, data, "audio/wav"))])
        return response.status_code, seconds

    began = time.monotonic()
    with client, ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    elapsed = time.monotonic() - began
    ok = [s for code, s in results if code == 200]
    return {"clients": clients, "requests": count, "ok": len(ok), "seconds": round(elapsed, 2),
            "req_per_s": round(len(ok) / elapsed, 2), "audio_x_realtime": round(sum(ok) / elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default=None, help="saved pipeline dir (default: the embedded default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--stream-clients", default="1,8")
    parser.add_argument("--predict-clients", default="1,8,32")
    parser.add_argument("--utterances", type=int, default=6, help="recordings each streaming client replays")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of silence after each recording")
    parser.add_argument("--requests", type=int, default=64, help="/v1/predict requests per setting")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound on each streaming run")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--smoke", action="store_true", help="note in the output: a smoke run, not for timing")
    parser.add_argument("-o", "--output", default=None, help="write the JSON report here")
    args = parser.parse_args()
    files = recordings(max(args.utterances, 32))
    report = {"recordings": str(files[0].parent), "smoke": args.smoke, "pipeline": args.pipeline or "default",
              "load_average": os.getloadavg(), "runs": []}
    for batching in (True, False):
        process, url = start_server(args, batching)
        try:
            run = {"micro_batching": batching, "stream": [], "predict": []}
            if batching:  # streaming latency with the service's defaults
                for clients in map(int, args.stream_clients.split(",")):
                    run["stream"].append(streaming(url, clients, files[: args.utterances], args))
                    print("stream", batching, run["stream"][-1], flush=True)
            for clients in map(int, args.predict_clients.split(",")):
                run["predict"].append(throughput(url, clients, files, args))
                print("predict", batching, run["predict"][-1], flush=True)
            run["peak_rss_mb"] = round(peak_rss_mb(process.pid), 1)
        finally:
            stop_server(process)
        report["runs"].append(run)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()

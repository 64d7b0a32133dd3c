"""Service benchmark (loopback only, bounded in count and time).

Starts ``speech-intent serve`` (micro-batching on, then off; for each ``--workers`` count), and measures:

- streaming, with 1 and 8 concurrent WebSocket clients replaying recordings in 20 ms frames at real
  time (``--gap`` s of silence after each; client ``i`` replays recordings ``iN .. iN + N - 1``,
  ``N = --utterances``): end of speech -> ``final`` latency (from the last speech sample sent; it
  contains the trailing silence the VAD waits for) and endpoint -> ``final`` (from the end of that
  silence: the service's own work), p50 / p95; utterances dropped or split; and how many streamed
  results (intent and slots) equal ``/v1/predict`` on the same file (the differences are listed);
- ``/v1/predict`` throughput (requests/s and audio seconds/s) with 1, 8 and 32 concurrent clients;
- the server's peak RSS (``common.PeakMemory`` of the server process, every 50 ms from its start).

Recordings (``--recordings``): ``../shared/data/coffee/dev`` when present, else ``assets/audio``.

    python -m benchmarks.serve --intent /tmp/speech-intent-coffee/model --utterances 13 --max-seconds 170
    python -m benchmarks.serve                                   # the embedded default pipeline
    python -m benchmarks.serve --pipeline DIR --utterances 2 --requests 16 --smoke
    python -m benchmarks.serve --intent DIR --early-endpoint 0.2 --predict-clients ''   # streaming only
    python -m benchmarks.serve --intent DIR --workers 1,2 --stream-clients 1,8 --predict-clients 1,8,32
"""
from __future__ import annotations

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
from typing import Optional

import numpy as np
import soundfile as sf

from speech_intent.vad import VADOptions

from .common import (
    ASSETS_AUDIO,
    COFFEE_DATA,
    REPO,
    PeakMemory,
    add_device_flag,
    add_json_flag,
    benchmark_parser,
    child_env,
    to_json,
    write_json,
)


def recordings(folder: Optional[Path], limit: int) -> list:
    """The first ``limit`` wav files of ``folder`` (default: the coffee dev recordings, else assets/audio)."""
    if folder is None:
        coffee = COFFEE_DATA / "dev"
        folder = coffee if coffee.is_dir() and any(coffee.glob("*.wav")) else ASSETS_AUDIO
    return sorted(folder.glob("*.wav"))[:limit]


def start_server(args, batching: bool, workers: int = 1):
    """Start ``speech-intent serve`` on a free loopback port; (process, url, its peak-memory sampler) once
    ``/health`` answers (the sampler runs from the process's start, so loading the models counts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "speech_intent", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--queue-size", "256", "--max-streams", "64"]
    command += ["--pipeline", args.pipeline] if args.pipeline else []
    command += ["--intent", args.intent] if args.intent else []
    command += ["--trailing-silence", str(args.trailing_silence)]
    command += ["--early-endpoint", str(args.early_endpoint)] if args.early_endpoint is not None else []
    command += ["--max-wait-ms", str(args.max_wait_ms)] if args.max_wait_ms is not None else []
    command += ["--device", args.device] if args.device else []
    command += [] if batching else ["--no-micro-batching"]
    command += ["--workers", str(workers)]
    process = subprocess.Popen(command, cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    memory = PeakMemory(process.pid, interval=0.05).start()
    import httpx

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            memory.stop()
            raise SystemExit(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url, memory
        except httpx.HTTPError:
            time.sleep(0.5)
    memory.stop()
    process.kill()
    raise SystemExit("server did not start in time")


def stop_server(process) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------------- streaming
async def stream_client(url: str, files: list, gap: float, budget: float, revisions: bool = False) -> dict:
    """Replay ``files`` at real time (20 ms frames, ``gap`` s of silence after each); returns the
    wall clock of stream time 0, each file's start (stream seconds), the ``final`` events with
    their arrival times and how many finals were revised. With ``revisions`` the stream asks for them: a final
    that ``revises`` an earlier one replaces it (a premature end repaired), as a client showing results would."""
    import websockets

    finals, starts, done, revised = [], [], asyncio.Event(), [0]
    async with websockets.connect(url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:
        await ws.recv()
        if revisions:
            await ws.send(json.dumps({"revisions": True}))

        async def receive():
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "final":
                    if event.get("revises") is not None:
                        kept = [f for f in finals if f[1].get("utterance") != event["revises"]]
                        revised[0] += len(finals) - len(kept)
                        finals[:] = kept
                    finals.append((time.monotonic(), event))
                if event["type"] == "end":
                    done.set()
                    return

        reader = asyncio.create_task(receive())
        began = time.monotonic()
        sent = 0.0
        for path in files:
            audio, rate = sf.read(path, dtype="int16")
            if audio.ndim > 1:
                audio = audio[:, 0]
            starts.append(sent)
            for clip in (audio, np.zeros(int(gap * rate), np.int16)):
                step = int(rate * 0.02)
                for start in range(0, len(clip), step):
                    await ws.send(clip[start: start + step].tobytes())
                    sent += min(step, len(clip) - start) / rate
                    await asyncio.sleep(max(0.0, began + sent - time.monotonic()))
            if time.monotonic() - began > budget:
                break
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(done.wait(), 120)
        await reader
    return {"began": began, "starts": starts, "files": files[: len(starts)], "finals": finals, "revised": revised[0]}


def streaming(url: str, clients: int, files: list, args) -> dict:
    """``clients`` concurrent streams, client ``i`` replaying recordings ``i*N .. (i+1)*N - 1``
    (``N = --utterances``). Latencies of each ``final`` ended by silence, an early endpoint or the end-of-turn detector:

    - end of speech -> final: from the moment the last speech sample was sent (the event's
      ``speech_end``), so it includes the silence the VAD waits for (the trailing silence, or the
      pause of an ``early_endpoint``);
    - endpoint -> final: from the moment that silence was complete (the service's own work).

    Each recording's streamed result (its longest final) is compared with ``/v1/predict`` on the file.
    """
    count = args.utterances

    async def run():
        jobs = [stream_client(url, [files[(i * count + k) % len(files)] for k in range(count)], args.gap,
                              args.max_seconds, args.revisions) for i in range(clients)]
        return await asyncio.gather(*jobs)

    eos, endpoint, recognition, streamed, reasons, revised = [], [], [], {}, {}, 0
    for client in asyncio.run(run()):
        revised += client["revised"]
        by_file: dict = {}
        for arrival, event in client["finals"]:
            # the utterance starts up to ``pad`` before its speech, so maybe before its recording
            index = max([i for i, start in enumerate(client["starts"]) if start <= event["start"] + args.pad + 1e-6],
                        default=0)
            by_file.setdefault(index, []).append(event)
            reasons[event.get("reason")] = reasons.get(event.get("reason"), 0) + 1
            if event.get("reason") in ("silence", "early_endpoint", "end_of_turn"):
                eos.append(arrival - (client["began"] + event["speech_end"]))
                endpoint.append(eos[-1] - event["timings"]["endpoint_delay"])
                recognition.append(event["timings"]["recognition"])
        for index, path in enumerate(client["files"]):
            events = by_file.get(index, [])
            longest = max(events, key=lambda e: e["end"] - e["start"]) if events else None
            streamed.setdefault(path, []).append((len(events), longest))
    agree, split, dropped, compared, differ = 0, 0, 0, 0, []
    reference = file_results(url, sorted(streamed))
    for path, outcomes in streamed.items():
        for n, event in outcomes:
            compared += 1
            dropped += n == 0
            split += n > 1
            file_row = reference.get(path) or {}
            same = event is not None and (event["intent"], event["slots"]) == (file_row.get("intent"), file_row.get("slots"))
            agree += same
            if not same:
                differ.append({"file": path.name, "finals": n, "file_transcript": file_row.get("transcript"),
                               "file_intent": file_row.get("intent"), "file_slots": file_row.get("slots"),
                               "stream_transcript": event and event["transcript"],
                               "stream_intent": event and event["intent"], "stream_slots": event and event["slots"]})

    def pct(values, q):
        return round(float(np.percentile(values, q)), 3) if values else float("nan")
    return {"clients": clients, "utterances": compared, "finals": sum(len(c) for c in streamed.values()),
            "dropped": dropped, "split": split, "revised": revised, "reasons": reasons, "same_as_file": agree,
            "eos_p50_s": pct(eos, 50), "eos_p95_s": pct(eos, 95),
            "endpoint_p50_s": pct(endpoint, 50), "endpoint_p95_s": pct(endpoint, 95),
            "recognition_p50_s": pct(recognition, 50), "differences": differ}


def file_results(url: str, paths: list) -> dict:
    """``/v1/predict`` on each recording: ``{path: {intent, slots, transcript}}`` (``None``: an error row)."""
    import httpx

    out = {}
    with httpx.Client(timeout=300) as client:
        for path in paths:
            response = client.post(url + "/v1/predict", files=[("files", (path.name, path.read_bytes(), "audio/wav"))])
            row = response.json()["results"][0] if response.status_code == 200 else {}
            out[path] = None if row.get("error") else {"intent": row.get("intent"), "slots": row.get("slots") or {},
                                                       "transcript": row.get("transcript")}
    return out


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

    def batching() -> dict:
        return httpx.get(url + "/v1/info", timeout=30).json()["batching"]

    before = batching()
    began = time.monotonic()
    with client, ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    elapsed = time.monotonic() - began
    after = batching()
    batches = after["batches"] - before["batches"]
    ok = [s for code, s in results if code == 200]
    return {"clients": clients, "requests": count, "ok": len(ok), "seconds": round(elapsed, 2),
            "req_per_s": round(len(ok) / elapsed, 2), "audio_x_realtime": round(sum(ok) / elapsed, 2),
            "mean_batch": round((after["items"] - before["items"]) / batches, 2) if batches else None}


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--pipeline", default=None, help="saved pipeline dir (default: the embedded default)")
    parser.add_argument("--intent", default=None, help="intent model dir (e.g. the coffee model of coffee.py)")
    parser.add_argument("--trailing-silence", type=float, default=0.6, help="the streams' VAD trailing silence")
    parser.add_argument("--early-endpoint", type=float, default=None,
                        help="the service's --early-endpoint (seconds of pause; default: off)")
    parser.add_argument("--max-wait-ms", type=float, default=None,
                        help="the service's --max-wait-ms (micro-batching; default: the service's)")
    add_device_flag(parser, None, help="the service's --device (default: the service's)")
    parser.add_argument("--recordings", type=Path, default=None,
                        help="folder of wav files (default: ../shared/data/coffee/dev, else assets/audio)")
    parser.add_argument("--stream-clients", default="1,8", help="'' for /v1/predict only")
    parser.add_argument("--predict-clients", default="1,8,32", help="'' for streaming only")
    parser.add_argument("--utterances", type=int, default=6, help="recordings each streaming client replays")
    parser.add_argument("--pad", type=float, default=VADOptions().pad, help="the service's VAD pad (seconds)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of silence after each recording")
    parser.add_argument("--requests", type=int, default=64, help="/v1/predict requests per setting")
    parser.add_argument("--workers", type=lambda text: [int(w) for w in text.split(",")], default=[1],
                        help="the service's --workers, comma-separated: a server (micro-batching on and off) each")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound on each streaming run")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--smoke", action="store_true", help="note in the output: a smoke run, not for timing")
    parser.add_argument("--revisions", action="store_true",
                        help="streams ask for revisions: a premature end repaired replaces its final (the demo page does)")
    add_json_flag(parser, help="write the report here")
    args = parser.parse_args()
    stream_clients = [int(c) for c in args.stream_clients.split(",") if c.strip()]
    files = recordings(args.recordings, max([args.utterances * c for c in stream_clients] + [32]))
    report = {"recordings": str(files[0].parent), "smoke": args.smoke, "pipeline": args.pipeline or "default",
              "intent": args.intent, "trailing_silence": args.trailing_silence,
              "early_endpoint": args.early_endpoint, "max_wait_ms": args.max_wait_ms,
              "load_average": os.getloadavg(), "runs": []}
    predict_clients = [int(c) for c in args.predict_clients.split(",") if c.strip()]
    settings = [(w, b) for w in args.workers for b in ((True, False) if predict_clients else (True,))]
    for workers, batching in settings:  # no /v1/predict runs: streaming only
        process, url, memory = start_server(args, batching, workers)
        try:
            run = {"workers": workers, "micro_batching": batching, "stream": [], "predict": []}
            if batching:  # streaming latency with the service's defaults
                for clients in stream_clients:
                    run["stream"].append(streaming(url, clients, files, args))
                    print("stream", workers, batching,
                          {k: v for k, v in run["stream"][-1].items() if k != "differences"}, flush=True)
            for clients in predict_clients:
                run["predict"].append(throughput(url, clients, files, args))
                print("predict", workers, batching, run["predict"][-1], flush=True)
            run["peak_rss_mb"] = round(memory.peak_mb, 1)
        finally:
            memory.stop()
            stop_server(process)
        report["runs"].append(run)
    print(to_json(report))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()

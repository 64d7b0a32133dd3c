"""``streams64``: concurrent :class:`~speech_intent.live.StreamingRecognizer` streams in this process
(one thread each, 20 ms frames at microphone pace, each stream starting at a random moment of its
first second), recognised through a :class:`~speech_intent.serve.batcher.MicroBatcher` over the
check's pipeline as the service's WebSocket route does (the service's defaults but ``max_batch``).
Each stream replays one coffee recording (stream ``i``: recording ``i`` mod 16) and 1 s of silence.
Latencies, as ``benchmarks/serve.py`` measures them: **end of speech -> final** (from the moment the
microphone delivered the final's ``speech_end``: it holds the trailing silence the VAD waits for) and
**endpoint -> final** (from the end of that silence: the recogniser's own work). Rows: 1 stream and
64; passes when every stream got a final without an error (the 100 ms p95 target is reported, not
judged).
"""
from __future__ import annotations

import threading
import time
from typing import Dict, List

import numpy as np

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.audio import SAMPLE_RATE, load_audio
from speech_intent.errors import OverloadedError
from speech_intent.live import StreamingRecognizer
from speech_intent.results import PipelineResult
from speech_intent.serve.batcher import MicroBatcher
from speech_intent.serve.options import ServeOptions

from .base import REPO, Result, describe, whisper
from .model_checks import check_fine_tune

FRAME = 320  # samples: 20 ms at 16 kHz, what a browser microphone sends
#: Streams of the large row, and the most inputs in one batch there (the service's default is 8, for CPUs).
STREAMS, STREAM_BATCH = 64, 32
#: The service target of the 64-stream row (reported, not judged).
TARGET_P95_MS = 100.0


def coffee_recordings(ctx) -> tuple:
    """(16 kHz arrays, where from): the coffee recordings of .gpu (or ../shared), else the sample commands."""
    if not ctx.dry_run:
        for folder in (ctx.assets / "coffee" / "dev", REPO.parent / "shared" / "data" / "coffee" / "dev"):
            wavs = sorted(folder.glob("*.wav"))[:16]
            if wavs:
                return [load_audio(p) for p in wavs], f"{len(wavs)} coffee recordings"
    return ctx.audio, f"{len(ctx.audio)} sample commands (assets/audio)"


def stream_pipeline(ctx) -> SpeechIntentPipeline:
    if ctx.intent_dir is None:  # --only streams64: train the intent model the pipeline check uses
        check_fine_tune(ctx)
    return SpeechIntentPipeline(whisper(ctx), IntentClassifier.from_pretrained(ctx.intent_dir, device=ctx.device))


def run_streams(pipe, recordings: List[np.ndarray], streams: int, config: ServeOptions, *, pace: float = 1.0,
                seed: int = 0) -> Dict[str, float]:
    """``streams`` concurrent streams through one micro-batcher; ``pace``: times real time (dry run > 1)."""
    batcher = MicroBatcher(pipe, max_batch=config.max_batch, max_wait=config.max_wait,
                           queue_size=max(config.queue_size, 2 * streams)).start()

    def recognize(audio: np.ndarray) -> PipelineResult:  # as speech_intent/serve/ws.py does
        try:
            return batcher.submit_audio([audio], ["<stream>"]).result()[0]
        except OverloadedError as error:
            return PipelineResult(path="<stream>", error=str(error))

    audio = [np.concatenate([recordings[i % len(recordings)], np.zeros(SAMPLE_RATE, np.float32)])
             for i in range(streams)]
    offsets = np.random.default_rng(seed).uniform(0.0, 1.0, streams) if streams > 1 else np.zeros(1)
    began = time.perf_counter() + 0.2
    deadline = began + (max(len(a) for a in audio) / SAMPLE_RATE + 1.0) / pace + 30.0
    outcomes: List[dict] = [{} for _ in range(streams)]

    def stream(i: int) -> None:
        out = outcomes[i]
        out.update(finals=[], lag=0.0, stopped=False, error=None)
        try:
            recognizer = StreamingRecognizer(vad=config.vad, partial_interval=config.partial_interval,
                                             recognize=recognize, early_endpoint=config.early_endpoint,
                                             early_confidence=config.early_confidence)
            zero = out["zero"] = began + offsets[i] / pace  # wall clock of stream time 0
            for k in range(0, len(audio[i]), FRAME):
                due = zero + (k + FRAME) / SAMPLE_RATE / pace  # the microphone has delivered this frame
                now = time.perf_counter()
                if now > deadline:
                    out["stopped"] = True
                    break
                if now < due:
                    time.sleep(due - now)
                else:
                    out["lag"] = max(out["lag"], now - due)
                events = recognizer.feed(audio[i][k: k + FRAME])
                out["finals"] += [(time.perf_counter(), e) for e in events if e.type == "final"]
            out["finals"] += [(time.perf_counter(), e) for e in recognizer.close() if e.type == "final"]
        except Exception as error:  # a stream that breaks is reported, never hangs the check
            out["error"] = describe(error)

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline + 60.0 - time.perf_counter()))
    batcher.stop()
    eos, endpoint, recognition = [], [], []
    for out in outcomes:
        for arrival, event in out.get("finals", []):
            if event.reason in ("silence", "early_endpoint"):
                eos.append(arrival - (out["zero"] + event.speech_end / pace))
                endpoint.append(eos[-1] - event.timings["endpoint_delay"] / pace)
                recognition.append(event.timings["recognition"])
    finals = [len(out.get("finals", [])) for out in outcomes]
    errors = [e.result.error for out in outcomes for _, e in out.get("finals", []) if e.result and e.result.error]
    broken = [out["error"] for out in outcomes if out.get("error")] + \
             [f"stream {i} did not end" for i, t in enumerate(threads) if t.is_alive()]

    def ms(values, q):
        return 1000 * float(np.percentile(values, q)) if values else float("nan")
    return {"streams": streams, "finals": sum(finals), "dropped": sum(n == 0 for n in finals),
            "split": sum(n > 1 for n in finals), "errors": len(errors), "first_error": (errors or broken or [""])[0],
            "broken": len(broken), "stopped": sum(bool(out.get("stopped")) for out in outcomes),
            "eos_p50_ms": ms(eos, 50), "eos_p95_ms": ms(eos, 95), "endpoint_p50_ms": ms(endpoint, 50),
            "endpoint_p95_ms": ms(endpoint, 95), "recognition_p50_ms": ms(recognition, 50),
            "max_lag_ms": 1000 * float(max(out.get("lag", 0.0) for out in outcomes)), **batcher.stats.to_dict()}


def check_streams(ctx) -> List[Result]:
    recordings, source = coffee_recordings(ctx)
    pipe = stream_pipeline(ctx)
    many, pace = (3, 4.0) if ctx.dry_run else (STREAMS, 1.0)
    config = ServeOptions(max_batch=min(STREAM_BATCH, many), max_streams=many)
    pipe(recordings[:8], batch_size=8)  # warm-up: CUDA context and kernels, and the VAD's ONNX session
    pipe(recordings[:1], batch_size=1)
    StreamingRecognizer(recognize=lambda audio: PipelineResult(path="<warm-up>"))
    rows = []
    for streams in (1, many):
        started = time.perf_counter()
        row = run_streams(pipe, recordings, streams, config, pace=pace)
        ok = not (row["dropped"] or row["errors"] or row["broken"])
        target = "" if streams == 1 else (
            f"; target p95 <= {TARGET_P95_MS:.0f} ms: end of speech {'met' if row['eos_p95_ms'] <= TARGET_P95_MS else 'not met'}"
            f", endpoint {'met' if row['endpoint_p95_ms'] <= TARGET_P95_MS else 'not met'}")
        detail = (f"end of speech -> final p50/p95 {row['eos_p50_ms']:.0f}/{row['eos_p95_ms']:.0f} ms (holds the "
                  f"{config.vad.trailing_silence} s trailing silence), endpoint -> final "
                  f"{row['endpoint_p50_ms']:.0f}/{row['endpoint_p95_ms']:.0f} ms{target}; finals/stream "
                  f"{row['finals'] / streams:.2f}, dropped {row['dropped']}, split {row['split']}, errors "
                  f"{row['errors']}, broken {row['broken']}; mean batch {row['mean_batch']:.2f} (largest "
                  f"{row['largest_batch']}, max {config.max_batch}), recognition p50 {row['recognition_p50_ms']:.0f} ms, "
                  f"max feed lag {row['max_lag_ms']:.0f} ms; {source}, {pace:g}x real time"
                  + (f"; first problem: {row['first_error']}" if row["first_error"] else ""))
        rows.append(Result(f"streams {streams}", "PASS" if ok else "FAIL", row["eos_p95_ms"], "ms p95", detail,
                                round(time.perf_counter() - started, 1)))
    return rows

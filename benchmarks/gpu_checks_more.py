"""The service and ASR fine-tuning checks of ``gpu_check.py`` (the GPU targets of the service and
fine-tuning work), kept beside it to keep each file short; ``gpu_check.py`` imports them.

``streams64``: concurrent :class:`~speech_intent.live.StreamingRecognizer` streams in this process
(one thread each, 20 ms frames at microphone pace, each stream starting at a random moment of its
first second), recognised through a :class:`~speech_intent.serve.batcher.MicroBatcher` over the
check's pipeline as the service's WebSocket route does (the service's defaults but ``max_batch``).
Each stream replays one coffee recording (stream ``i``: recording ``i`` mod 16) and 1 s of silence.
Latencies, as ``benchmarks/serve.py`` measures them: **end of speech -> final** (from the moment the
microphone delivered the final's ``speech_end``: it holds the trailing silence the VAD waits for) and
**endpoint -> final** (from the end of that silence: the recogniser's own work). Rows: 1 stream and
64; passes when every stream got a final without an error (the 100 ms p95 target is reported, not
judged).

``asr-finetune``: ``fine_tune_asr`` of tiny.en (the fp16 copy in ``.gpu``, loaded in fp32) for a few
steps on espeak-ng speech synthesised by ``gpu_prepare.sh`` (``.gpu/tts``: coffee grammar sentences,
never a coffee recording; the coffee recordings are passed as ``exclude=``), ``dtype="auto"`` (bf16 on
CUDA), then the same steps on the CPU (stopped at :data:`CPU_BUDGET` seconds); seconds per step and
clips/s of each. Passes when training finishes with finite losses. Nothing here synthesises.

Also :func:`pack_int8` / :func:`unpack_int8`: how ``gpu_prepare.sh`` fits tiny.en into the carry limit.
"""
from __future__ import annotations

import contextlib
import csv
import math
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import gpu_check as base
import numpy as np
import torch

from speech_intent import IntentClassifier, SpeechIntentPipeline
from speech_intent.asr_training import ASRTrainingOptions, fine_tune_asr
from speech_intent.audio import SAMPLE_RATE, load_audio
from speech_intent.errors import OverloadedError
from speech_intent.live import StreamingRecognizer
from speech_intent.results import PipelineResult
from speech_intent.serve.batcher import MicroBatcher
from speech_intent.serve.options import ServeOptions

FRAME = 320  # samples: 20 ms at 16 kHz, what a browser microphone sends
#: Streams of the large row, and the most inputs in one batch there (the service's default is 8, for CPUs).
STREAMS, STREAM_BATCH = 64, 32
#: The service target of the 64-stream row (reported, not judged).
TARGET_P95_MS = 100.0
#: Fine-tuning: epochs and clips per step (the 32 clips of .gpu/tts: 8 steps).
TRAIN_EPOCHS, TRAIN_BATCH = 2.0, 8
#: Seconds the CPU reference training may run before it stops after the step in progress.
CPU_BUDGET = 60.0
#: The carried Whisper weights (:func:`pack_int8`) and the suffixes of a packed tensor's parts.
INT8_WEIGHTS, _Q, _SCALE = "model.int8.safetensors", ".int8", ".scale"


# ------------------------------------------------------------------ the carried checkpoint
def pack_int8(checkpoint: Path) -> Path:
    """Replace ``checkpoint/model.safetensors`` by :data:`INT8_WEIGHTS`: 2-D weights as int8 rows with an fp32
    scale each (symmetric, absmax), the rest in fp16; and ``tokenizer.json`` by its gzip. Run by gpu_prepare.sh:
    tiny.en in fp16 is 75.5 MB (+ a 3.9 MB tokenizer), over the carry limit by itself; packed it is 40 MB."""
    import gzip

    from safetensors.torch import load_file, save_file

    packed = {}
    for name, tensor in load_file(checkpoint / "model.safetensors").items():
        if tensor.ndim == 2 and tensor.numel() >= 65536 and "embed_positions" not in name:
            weight = tensor.float()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            packed[f"{name}{_Q}"] = torch.round(weight / scale).to(torch.int8)
            packed[f"{name}{_SCALE}"] = scale
        else:
            packed[name] = tensor.half()
    save_file(packed, checkpoint / INT8_WEIGHTS, metadata={"format": "pt"})
    (checkpoint / "model.safetensors").unlink()
    tokenizer = checkpoint / "tokenizer.json"
    (checkpoint / "tokenizer.json.gz").write_bytes(gzip.compress(tokenizer.read_bytes(), 9))
    tokenizer.unlink()
    return checkpoint / INT8_WEIGHTS


def unpack_int8(packed: Path, out: Path) -> Path:
    """The fp16 checkpoint of a :func:`pack_int8` folder, written to ``out`` (its other files copied, gzips
    uncompressed)."""
    import gzip
    import shutil

    from safetensors.torch import load_file, save_file

    tensors = load_file(packed / INT8_WEIGHTS)
    weights = {name[: -len(_Q)]: (value.float() * tensors[name[: -len(_Q)] + _SCALE]).half()
               for name, value in tensors.items() if name.endswith(_Q)}
    weights.update({name: value for name, value in tensors.items() if not name.endswith((_Q, _SCALE))})
    out.mkdir(parents=True, exist_ok=True)
    for file in packed.iterdir():
        if file.suffix == ".gz":
            (out / file.stem).write_bytes(gzip.decompress(file.read_bytes()))
        elif file.is_file() and file.name != INT8_WEIGHTS:
            shutil.copy2(file, out / file.name)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


# ------------------------------------------------------------------ streams
def coffee_recordings(ctx) -> tuple:
    """(16 kHz arrays, where from): the coffee recordings of .gpu (or ../shared), else the sample commands."""
    if not ctx.dry_run:
        for folder in (ctx.assets / "coffee" / "dev", base.REPO.parent / "shared" / "data" / "coffee" / "dev"):
            wavs = sorted(folder.glob("*.wav"))[:16]
            if wavs:
                return [load_audio(p) for p in wavs], f"{len(wavs)} coffee recordings"
    return ctx.audio, f"{len(ctx.audio)} sample commands (assets/audio)"


def stream_pipeline(ctx) -> SpeechIntentPipeline:
    if ctx.intent_dir is None:  # --only streams64: train the intent model the pipeline check uses
        base.check_fine_tune(ctx)
    return SpeechIntentPipeline(base.whisper(ctx), IntentClassifier.from_pretrained(ctx.intent_dir, device=ctx.device))


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
            out["error"] = base.describe(error)

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


def check_streams(ctx) -> List["base.Result"]:
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
        rows.append(base.Result(f"streams {streams}", "PASS" if ok else "FAIL", row["eos_p95_ms"], "ms p95", detail,
                                round(time.perf_counter() - started, 1)))
    return rows


# ------------------------------------------------------------------ ASR fine-tuning
def training_clips(ctx) -> tuple:
    """(manifest, where from): .gpu/tts/manifest.csv (made by gpu_prepare.sh), or, in a dry run without it,
    a stand-in of noise clips with coffee-like transcripts (the code path is the same: an audio manifest)."""
    prepared = ctx.assets / "tts" / "manifest.csv"
    if prepared.is_file():
        if not ctx.dry_run:
            return prepared, "espeak-ng clips (.gpu/tts)"
        with prepared.open(newline="") as handle:
            rows = list(csv.DictReader(handle))[:4]
        for row in rows:
            row["audio"] = str((prepared.parent / row["audio"]).resolve())
    elif ctx.dry_run:
        import soundfile as sf

        rng = np.random.default_rng(0)
        rows = []
        for i, text in enumerate(["Can I get a large latte.", "Brew a dark roast.", "Make me a mocha.",
                                  "I'd like a small espresso."]):
            path = ctx.work / "stand-in" / f"clip-{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, (0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
            rows.append({"audio": str(path), "text": text})
    else:
        raise base.Skip(f"no {prepared}: run benchmarks/gpu_prepare.sh here (espeak-ng; none on the GPU machine)")
    manifest = ctx.work / "train-clips.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["audio", "text"])
        writer.writeheader()
        writer.writerows({"audio": r["audio"], "text": r["text"]} for r in rows)
    return manifest, f"{'espeak-ng' if prepared.is_file() else 'stand-in noise'} clips (dry run)"


def fp32_base(ctx) -> Path:
    """The Whisper checkpoint to train from, in fp32 (transformers loads the fp16 copy as fp16)."""
    if not ctx.real_weights:
        return ctx.whisper_dir
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    out = ctx.work / "whisper-fp32"
    if not (out / "model.safetensors").is_file():
        model = WhisperForConditionalGeneration.from_pretrained(ctx.whisper_dir, dtype=torch.float32)
        model.save_pretrained(out, safe_serialization=True)
        WhisperProcessor.from_pretrained(ctx.whisper_dir).save_pretrained(out)
    return out


@contextlib.contextmanager
def step_timer(device: torch.device, budget: Optional[float]):
    """Wall-clock marks at the start of training and the end of each step (synchronised on CUDA); stops the
    training after the step that passes ``budget`` seconds. ``fine_tune_asr`` takes no callbacks, so the timer
    joins transformers' default callbacks for the duration of the block."""
    from transformers import TrainerCallback
    from transformers import trainer as hf_trainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.marks: List[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            self.marks.append(time.perf_counter())
            if budget is not None and self.marks[-1] - self.marks[0] >= budget:
                control.should_training_stop = True
            return control

    timer, callbacks = StepTimer(), getattr(hf_trainer, "DEFAULT_CALLBACKS", None)
    if not isinstance(callbacks, list):  # another transformers: untimed steps (the rows fall back to the total)
        yield timer
        return
    callbacks.append(timer)
    try:
        yield timer
    finally:
        callbacks.remove(timer)


def train_row(ctx, manifest: Path, device: torch.device, budget: Optional[float], clips: int) -> dict:
    options = ASRTrainingOptions(epochs=TRAIN_EPOCHS, batch_size=min(TRAIN_BATCH, clips), dtype="auto",
                                 ctranslate2=False, logging_steps=1, seed=0,
                                 rehearsal_examples=0)  # recordings only: no espeak-ng needed on the device
    exclude = [p for p in (ctx.assets / "coffee" / "dev",) if p.is_dir()]
    out = ctx.work / f"asr-{device.type}"
    with step_timer(device, budget) as timer:
        result = fine_tune_asr([manifest], out, base=fp32_base(ctx), options=options, exclude=exclude,
                               device=device, progress=False)
    steps = np.diff(timer.marks)
    per_step = float(np.median(steps[1:])) if len(steps) > 1 else \
        (float(steps[0]) if len(steps) else result.seconds / max(1, result.steps))
    losses = [loss for _, loss in result.train_loss]
    planned = math.ceil(result.train_examples / options.batch_size) * TRAIN_EPOCHS
    return {"steps": result.steps, "planned": int(planned), "per_step": per_step,
            "first_step": float(steps[0]) if len(steps) else math.nan, "batch": options.batch_size,
            "losses": losses, "seconds": result.seconds, "clips": result.train_examples,
            "finite": bool(losses) and all(math.isfinite(v) for v in losses)}


def check_asr_finetune(ctx) -> List["base.Result"]:
    manifest, source = training_clips(ctx)
    clips = len(manifest.read_text().splitlines()) - 1
    devices = [(ctx.device, None)]
    if ctx.device.type == "cuda" or ctx.dry_run:  # the CPU reference (in a dry run: stopped after one step)
        devices.append((torch.device("cpu"), 0.0 if ctx.dry_run else CPU_BUDGET))
    rows, results = [], []
    for device, budget in devices:
        started = time.perf_counter()
        row = train_row(ctx, manifest, device, budget, clips)
        rows.append(row)
        cuda = device.type == "cuda"
        dtype = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
        name = f"asr fine-tune {dtype} ({device.type})" if budget is None else f"asr fine-tune {dtype} (cpu ref.)"
        stopped = f" (stopped at the {budget:g} s budget)" if budget is not None and row["steps"] < row["planned"] else ""
        versus = ""
        if len(rows) == 2 and math.isfinite(rows[1]["per_step"]) and rows[0]["per_step"] > 0:
            versus = f"; the {ctx.device.type} run is {rows[1]['per_step'] / rows[0]['per_step']:.1f}x faster per step"
        loss = f"loss {row['losses'][0]:.3f} -> {row['losses'][-1]:.3f}" if row["losses"] else "no loss logged"
        detail = (f"{row['steps']} of {row['planned']} steps of {row['batch']} clips{stopped}, "
                  f"{row['batch'] / row['per_step']:.1f} clips/s, first step {row['first_step']:.1f} s, {loss}, "
                  f"{row['seconds']:.0f} s in all (load, train, save); {row['clips']} {source}; "
                  f"{'tiny.en in fp32 (from the fp16 copy)' if ctx.real_weights else 'a tiny random Whisper'}"
                  + (f", {torch.get_num_threads()} CPU threads" if not cuda else "") + versus)
        ok = row["finite"] and row["steps"] >= 1
        result = base.Result(name, "PASS" if ok else "FAIL", row["per_step"], "s/step", detail)
        result.seconds = round(time.perf_counter() - started, 1)
        results.append(result)
    return results

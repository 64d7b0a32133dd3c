"""``asr-finetune``: ``fine_tune_asr`` of tiny.en (the fp16 copy in ``.gpu``, loaded in fp32) for a few
steps on espeak-ng speech synthesised by ``prepare.sh`` (``.gpu/tts``: coffee grammar sentences,
never a coffee recording; the coffee recordings are passed as ``exclude=``), ``dtype="auto"`` (bf16 on
CUDA), then the same steps on the CPU (stopped at :data:`CPU_BUDGET` seconds); seconds per step and
clips/s of each. Passes when training finishes with finite losses. Nothing here synthesises.
"""
from __future__ import annotations

import contextlib
import csv
import math
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from speech_intent.asr_training import ASRTrainingOptions, fine_tune_asr
from speech_intent.audio import SAMPLE_RATE

from .base import Result, Skip

#: Fine-tuning: epochs and clips per step (the 32 clips of .gpu/tts: 8 steps).
TRAIN_EPOCHS, TRAIN_BATCH = 2.0, 8
#: Seconds the CPU reference training may run before it stops after the step in progress.
CPU_BUDGET = 60.0


def training_clips(ctx) -> tuple:
    """(manifest, where from): .gpu/tts/manifest.csv (made by prepare.sh), or, in a dry run without it,
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
        raise Skip(f"no {prepared}: run tools/gpu_check/prepare.sh here (espeak-ng; none on the GPU machine)")
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


def check_asr_finetune(ctx) -> List[Result]:
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
        result = Result(name, "PASS" if ok else "FAIL", row["per_step"], "s/step", detail)
        result.seconds = round(time.perf_counter() - started, 1)
        results.append(result)
    return results

"""Throughput on CPU (and GPU): same audio, same weights, interleaved repetitions.

Audio: the coffee dev recordings (``--data``: ``../shared/data/coffee``, its ``dev/*.wav``, ~8 s each) and
``assets/audio/*.wav``. Weights: the bundled Whisper tiny.en (CTranslate2) and its
transformers twin made by ``speech_intent.asr.convert_ctranslate2_whisper``.

Rows (each family in its own worker process, so peak RSS is per family (``common.PeakMemory`` of that
process, every 10 ms of each timed call); workers are driven
one at a time, rows interleaved and rotated every repetition; peak GPU memory counts torch's
allocator only, not CTranslate2's):

- ``fw 1-by-1``: faster-whisper ``WhisperModel.transcribe`` one file at a time, int8 (the CPU anchor);
- ``HF pipeline``: ``transformers.pipeline("automatic-speech-recognition")`` batched, greedy (second anchor);
- ``ours``: ``SpeechIntentPipeline`` end to end (decode + ASR + normalise + NLU) per backend
  (faster-whisper; transformers Whisper; transformers Whisper constrained to the coffee grammar),
  encoder context and batch size, with the library's defaults (on a CPU of 2+ cores two chunks at once,
  faster-whisper with two CTranslate2 workers; ``--workers 1`` adds one-chunk-at-a-time rows), plus CPU thread / worker variants of faster-whisper. The intent
  model is the coffee model of ``benchmarks/coffee.py`` (``--intent``), so the domain prompt is on,
  as it is for a user of that model;
- ``NLU``: the intent model alone on many texts of the demo domain (utterances/s).

Accuracy, so speed never silently costs it: **coffee command acceptance** (intent and every
labelled slot right; our rows score their own results, an anchor's transcripts go through the
same intent model); transcripts compared with the anchor's (identical after ``TextNormalizer``,
and WER) on the coffee set, short-context rows also with the same backend at 30 s; WER on
``assets/audio`` against its manifest texts; coffee slot recall (labelled slot phrases found in
the transcript).

Usage (the coffee model is trained on first use, like ``benchmarks/coffee.py`` does)::

    SPEECH_INTENT_CACHE=/tmp/si-cache python -m benchmarks.throughput --quick
    SPEECH_INTENT_CACHE=/tmp/si-cache python -m benchmarks.throughput --reps 3 --batch-sizes 1,8,16 --json out.json
"""
from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .common import (
    ASSETS_AUDIO,
    COFFEE_DATA,
    PeakMemory,
    add_data_flag,
    add_device_flag,
    add_json_flag,
    benchmark_parser,
)
from .throughput_report import report


@dataclass
class Row:
    """One measured configuration; rows with the same ``group`` share a worker (and its models)."""

    name: str
    kind: str  # anchor | hf | ours | nlu
    device: str = "cpu"
    backend: str = "faster-whisper"
    batch: int = 1
    margin: Optional[float] = None  # shorter encoder context (seconds of margin); None = 30 s
    threads: Optional[int] = None  # CTranslate2 threads per worker (None = library default)
    workers: Optional[int] = None  # CTranslate2 workers (None = the library default: default_workers)
    chunks: Optional[int] = None  # batches at once (pipe(..., workers=chunks); None = the pipeline's default)
    compute: Optional[str] = None  # CTranslate2 compute type (None = int8 on CPU, float16 on CUDA)
    whole_encoder: bool = False  # one encoder call per batch (before CPU slicing)
    group: str = ""
    runs: List[Dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ workers


def anchor_model(device: str = "cpu"):
    """The CPU anchor's model: faster-whisper ``WhisperModel`` of the bundled tiny.en, int8 on CPU (float16 on
    CUDA), on every core."""
    from faster_whisper import WhisperModel

    from speech_intent.bundled import bundled_whisper_path
    from speech_intent.device import available_cpus

    return WhisperModel(str(bundled_whisper_path()), device=device,
                        compute_type="float16" if device == "cuda" else "int8", cpu_threads=available_cpus())


def anchor_transcripts(model, files: List[str], prompt: Optional[str] = None) -> List[str]:
    """The anchor's transcripts: ``WhisperModel.transcribe`` one file at a time, greedy, no VAD, no
    timestamps, no previous text (``prompt``: its ``initial_prompt``)."""
    texts = []
    for f in files:
        segments, _ = model.transcribe(f, beam_size=1, without_timestamps=True, condition_on_previous_text=False,
                                       vad_filter=False, initial_prompt=prompt)
        texts.append("".join(s.text for s in segments).strip())
    return texts


def _load(row: Row, paths: Dict[str, Optional[str]]):
    """Build what a row family runs: a callable ``files -> list of transcripts`` (anchors), of
    ``{"transcript", "intent", "slots"}`` (ours), or ``texts -> None`` (NLU).

    ``paths``: ``hf`` (the transformers twin of tiny.en), ``intent`` (intent model dir; ``None`` =
    the demo model) and ``grammar`` (for the grammar-constrained rows).
    """
    import soundfile as sf

    cuda = row.device == "cuda"
    if row.kind == "anchor":
        model = anchor_model(row.device)
        return lambda files, batch: anchor_transcripts(model, files)
    if row.kind == "hf":
        import torch
        from transformers import pipeline

        pipe = pipeline("automatic-speech-recognition", model=paths["hf"], device=row.device,
                        dtype=torch.float16 if cuda else torch.float32)

        def run(files, batch):  # greedy like every other row (the pipeline's own default is 5 beams)
            audio = [{"raw": sf.read(f, dtype="float32")[0], "sampling_rate": 16000} for f in files]
            out = pipe(audio, batch_size=batch, generate_kwargs={"num_beams": 1, "max_new_tokens": 128})
            return [o["text"].strip() for o in out]
        return run
    from speech_intent import FasterWhisperASR, IntentClassifier, SpeechIntentPipeline, WhisperASR
    from speech_intent.demo_model import default_intent_model

    intent = (IntentClassifier.from_pretrained(paths["intent"], device=row.device) if paths["intent"]
              else default_intent_model(device=row.device, progress=False))
    if row.kind == "nlu":
        return lambda texts, batch: (intent(texts), None)[1]
    if row.backend == "faster-whisper":
        from speech_intent.device import default_workers

        workers = default_workers(row.device) if row.workers is None else row.workers
        asr = FasterWhisperASR.from_pretrained(None, device=row.device, cpu_threads=row.threads,
                                               num_workers=workers, compute_type=row.compute)
    else:
        asr = WhisperASR.from_pretrained(paths["hf"], device=row.device,
                                         grammar=paths["grammar"] if row.backend == "grammar" else None)
    if row.whole_encoder:
        asr.configure(encoder_budget=float("inf"))  # one encoder call per batch
    pipe = SpeechIntentPipeline(asr, intent)

    def run(files, batch, margin=None):
        asr.configure(context_margin=margin)
        results = pipe(files, batch_size=batch, workers=row.chunks)
        failed = [r.error for r in results if r.error]
        if failed:  # the pipeline isolates failures per file; a benchmark must not time them
            raise RuntimeError(f"{len(failed)} of {len(files)} inputs failed, e.g. {failed[0]}")
        return [{"transcript": r.transcript or "", "intent": r.intent, "slots": r.slots} for r in results]
    return run


def worker(conn, row_dict: Dict[str, Any], paths: Dict[str, Optional[str]]) -> None:
    """Worker process: load once, then run rows on request and reply with time and memory."""
    import faulthandler
    import signal

    import torch

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints a stuck worker's stack
    import transformers

    transformers.logging.set_verbosity_error()
    run = _load(Row(**row_dict), paths)
    conn.send({"torch_threads": torch.get_num_threads()})
    while True:
        message = conn.recv()
        if message is None:
            return
        row, inputs = Row(**message["row"]), message["inputs"]
        extra = {"margin": row.margin} if row.kind == "ours" else {}
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        try:
            with PeakMemory(interval=0.01) as memory:  # this worker process
                start = time.perf_counter()
                out = run(inputs, row.batch, **extra)
                wall = time.perf_counter() - start
        except Exception as error:  # reported by the driver, which stops the run
            conn.send({"error": f"{row.name} b={row.batch}: {type(error).__name__}: {error}"})
            continue
        gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
        conn.send({"wall": wall, "rss_mb": memory.peak_mb, "gpu_mb": gpu, "out": out})


# ------------------------------------------------------------------------------------------ data


def audio_files(coffee_dev: Path, quick: bool) -> Tuple[List[str], List[str], float]:
    """(coffee files, asset files, total audio seconds)."""
    import soundfile as sf

    coffee, assets = sorted(map(str, coffee_dev.glob("*.wav"))), sorted(map(str, ASSETS_AUDIO.glob("*.wav")))
    if quick:
        coffee, assets = coffee[:4], assets[:2]
    if not coffee and not assets:
        raise SystemExit(f"no audio found under {coffee_dev} or {ASSETS_AUDIO}")
    return coffee, assets, sum(sf.info(f).duration for f in coffee + assets)


def nlu_texts(count: int) -> List[str]:
    """``count`` utterances cycled from the demo domain (varied lengths, realistic words)."""
    from speech_intent.data import read_rasa
    from speech_intent.demo_model import demo_domain_path

    texts = [e.text for e in read_rasa(demo_domain_path())]
    return [texts[i % len(texts)] for i in range(count)]


# ------------------------------------------------------------------------------------------ rows


def build_rows(args) -> List[Row]:
    """The anchors, our pipeline per backend / context / batch size, thread variants, NLU."""
    import torch

    devices = ["cpu"]
    if args.device in ("cuda", "auto") and torch.cuda.is_available():
        devices.append("cuda")
    elif args.device == "cuda":
        raise SystemExit("--device cuda: CUDA is not available")
    rows = [Row("fw 1-by-1 (anchor)", "anchor", group="anchor")]  # CPU threads: all cores, like ours
    for dev in devices:
        if not args.no_hf:
            rows.append(Row(f"HF pipeline {dev}", "hf", device=dev, batch=args.torch_batch, group=f"hf-{dev}"))
        for backend in args.backends:
            for margin in args.margins:
                if backend == "grammar" and not args.grammar:
                    continue
                for bs in (args.batch_sizes if backend == "faster-whisper" else [args.torch_batch]):
                    ctx = "30s" if margin is None else f"short+{margin:g}s"
                    rows.append(Row(f"ours {backend} {dev} {ctx}", "ours", device=dev, backend=backend, batch=bs,
                                    margin=margin, group=f"ours-{backend}-{dev}"))
    for variant in args.fw_variants:  # WORKERSxTHREADS[:COMPUTE][:whole]
        shape, *rest = variant.split(":")
        workers, threads = (int(x) for x in shape.split("x"))
        compute = next((r for r in rest if r != "whole"), None)
        whole = "whole" in rest
        rows.append(Row(f"ours faster-whisper cpu 30s {workers}w x {threads}t {compute or 'int8'}"
                        + (" whole-batch encoder" if whole else ""), "ours", batch=args.variant_batch,
                        threads=threads or None, workers=workers, chunks=1, compute=compute, whole_encoder=whole,
                        group=f"ours-fw-{variant}"))
    for chunks in args.workers:  # the CLI's default on a CPU: 2 batches at once, 2 CTranslate2 workers
        for margin in args.margins:
            for bs in args.batch_sizes:
                ctx = "30s" if margin is None else f"short+{margin:g}s"
                rows.append(Row(f"ours faster-whisper cpu {ctx} {chunks} workers", "ours", batch=bs, margin=margin,
                                workers=chunks, chunks=chunks, group=f"ours-fw-{chunks}-workers"))
    rows.append(Row("NLU alone", "nlu", device=devices[-1], batch=0, group="nlu"))
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help="6 files, 1 repetition, batch sizes 1,4 (smoke run)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1,8,16")
    add_device_flag(parser, "auto", choices=["cpu", "cuda", "auto"], help="auto: CPU rows, and CUDA rows where there is one")
    add_data_flag(parser, COFFEE_DATA, "coffee data: dev/ recordings and labels.json, grammar.yaml")
    parser.add_argument("--backends", default="faster-whisper,whisper,grammar",
                        help="our rows: faster-whisper, whisper (transformers), grammar (transformers, decoding "
                             "constrained to the coffee grammar, 4 beams)")
    parser.add_argument("--margins", default="none,2", help="shorter-context margins in s ('none' = 30 s window)")
    parser.add_argument("--fw-variants", default="",
                        help="extra faster-whisper rows WORKERSxTHREADS[:COMPUTE][:whole], e.g. 1x1,1x4,2x1,"
                             "1x2:float32,1x2:int8:whole (0 threads = library default; whole = one encoder call"
                             " per batch)")
    parser.add_argument("--workers", default="",
                        help="extra faster-whisper rows running N batches at once (pipe(..., workers=N), N "
                             "CTranslate2 workers on their share of the threads; 2 is the default on a CPU), "
                             "per margin and batch size, e.g. 2")
    parser.add_argument("--variant-batch", type=int, default=8, help="batch size of the thread variants")
    parser.add_argument("--torch-batch", type=int, default=8, help="batch size of the transformers rows")
    parser.add_argument("--no-hf", action="store_true", help="leave out the transformers pipeline anchor")
    parser.add_argument("--nlu-texts", type=int, default=2000)
    parser.add_argument("--intent", default="coffee",
                        help="intent model of our rows, also used to score every row's command acceptance on the "
                             "coffee recordings: 'coffee' (benchmarks/coffee.py's model in its default work dir, "
                             "trained from the grammar there first if missing), 'demo' (the demo-domain model; no "
                             "acceptance) or a model dir")
    add_json_flag(parser, help="write all measurements here")
    args = parser.parse_args(argv)
    args.torch_batch = 4 if args.quick else args.torch_batch
    args.batch_sizes = [1, 4] if args.quick else [int(b) for b in args.batch_sizes.split(",")]
    args.reps = 1 if args.quick else args.reps
    args.backends = [b for b in args.backends.split(",") if b]
    args.margins = [None if m == "none" else float(m) for m in args.margins.split(",")]
    args.fw_variants = [v for v in args.fw_variants.split(",") if v]
    args.workers = [int(w) for w in args.workers.split(",") if w]

    from speech_intent.asr import convert_ctranslate2_whisper
    from speech_intent.bundled import bundled_whisper_path

    coffee, assets, audio_s = audio_files(args.data / "dev", args.quick)
    files = coffee + assets
    intent_dir = resolve_intent(args.intent, args.data)
    grammar = args.data / "grammar.yaml"
    args.grammar = str(grammar) if grammar.is_file() else None
    args.classify = None
    if intent_dir is not None and args.intent != "demo":
        from speech_intent import IntentClassifier

        args.classify = IntentClassifier.from_pretrained(intent_dir, device="cpu")
    texts = nlu_texts(200 if args.quick else args.nlu_texts)
    rows = build_rows(args)
    loads = [("start", os.getloadavg())]
    with tempfile.TemporaryDirectory(prefix="si-bench-") as tmp:
        paths = {"hf": str(convert_ctranslate2_whisper(bundled_whisper_path(), Path(tmp) / "tiny-en-hf")),
                 "intent": str(intent_dir) if intent_dir else None, "grammar": args.grammar}
        ctx = mp.get_context("spawn")
        workers: Dict[str, Any] = {}
        info: Dict[str, Any] = {}
        for row in rows:  # one process per row family; started (and loaded) one after another
            if row.group not in workers:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker, args=(child, asdict(row), paths), daemon=True)
                proc.start()
                info[row.group] = parent.recv()
                workers[row.group] = (proc, parent)
        try:
            for row in rows:  # warm-up: first-call initialisation is not throughput
                _call(workers, row, texts[:16] if row.kind == "nlu" else files[:2])
            for rep in range(args.reps):
                shift = rep % len(rows)
                for row in rows[shift:] + rows[:shift]:
                    row.runs.append(_call(workers, row, texts if row.kind == "nlu" else files))
                    print(f"rep {rep + 1}/{args.reps} {row.name} b={row.batch}: {row.runs[-1]['wall']:.2f} s "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
                loads.append((f"after rep {rep + 1}", os.getloadavg()))
                if args.json:  # partial results survive an interrupted run
                    report(rows, files, len(coffee), audio_s, len(texts), loads, info, args, quiet=True)
        finally:
            for proc, conn in workers.values():
                conn.send(None)
                proc.join(timeout=30)
    report(rows, files, len(coffee), audio_s, len(texts), loads, info, args)


def resolve_intent(choice: str, data: Path) -> Optional[Path]:
    """The intent model directory for ``--intent`` (``None`` = the demo model); ``data``: the coffee data."""
    if choice == "demo":
        return None
    if choice != "coffee":
        return Path(choice)
    from . import coffee  # the coffee benchmark's training recipe, so both benchmarks score the same model

    model_dir = coffee.DEFAULT_WORK / "model"
    if not (model_dir / "model.safetensors").is_file():
        if not (data / "grammar.yaml").is_file():
            print(f"no coffee grammar under {data}: using the demo intent model, no acceptance column")
            return None
        print(f"training the coffee intent model into {model_dir} (benchmarks/coffee.py's recipe)", flush=True)
        coffee.train_intent_model(data / "grammar.yaml", model_dir)
    return model_dir


def _call(workers, row: Row, inputs) -> Dict[str, Any]:
    conn = workers[row.group][1]
    conn.send({"row": {k: v for k, v in asdict(row).items() if k != "runs"}, "inputs": inputs})
    reply = conn.recv()
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


if __name__ == "__main__":
    main()

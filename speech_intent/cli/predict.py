"""``speech-intent predict``: audio files, folders or globs -> one JSONL/CSV row per input, resumable;
``--segment``: recordings of any length split into utterances, one row per utterance."""
from __future__ import annotations

import argparse
import sys
import time
from functools import partial

from ..device import default_workers
from ..errors import ConfigError
from ..inputs import expand_inputs
from ..writer import ResultWriter, file_key
from .options import add_model_args, add_vad_args, build_pipeline, check_model_args, vad_options


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("predict", help="audio files/dirs/globs -> JSONL or CSV of transcript + intent")
    p.add_argument("inputs", nargs="+", help="audio files, directories (searched recursively) or globs")
    p.add_argument("-o", "--output", default=None, help="results file (.jsonl or .csv); default: stdout")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output's suffix")
    p.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(p)
    segment = p.add_argument_group("long recordings (--segment)")
    segment.add_argument("--segment", action="store_true",
                         help="split each file (any length) into utterances with the VAD: one row per utterance "
                              "with segment, start, end (seconds) and last; --max-duration applies to utterances")
    add_vad_args(segment)
    ray = p.add_argument_group("distributed (--engine ray)")
    p.add_argument("--workers", type=int, default=None,
                   help="batches at once: locally, threads sharing this process's cores (default: 2 on a CPU with "
                        "2 or more cores, else 1; 1 with --segment, which refuses more); with --engine ray, actors each loading the "
                        "pipeline once (default: 1)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: a pool of Ray actors (needs speech-intent[distributed])")
    ray.add_argument("--address", default=None,
                     help="auto, ray://HOST:PORT or HOST:PORT (default: start a local Ray for this run); a cluster "
                          "requiring a token: this machine's is used for an address of this machine, elsewhere "
                          "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (`ray get-auth-token` on the head prints it)")
    ray.add_argument("--cpus-per-worker", type=float, default=None,
                     help="CPUs (threads) each actor reserves (without --address: this machine's CPUs shared "
                          "among the workers; with it: 1)")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each actor reserves (0)")
    ray.add_argument("--parquet", default=None,
                     help="also write the results as Parquet (default: the JSONL output's name with .parquet)")
    ray.add_argument("--files-per-task", type=int, default=None,
                     help="inputs per Ray task (default: 8 batches, fewer for small jobs)")
    ray.add_argument("--worker-info", action="store_true", help="add a `worker` field (node id, host:pid) to rows")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Predict every input into a resumable JSONL/CSV; prints ``done: N, skipped: N, failed: N``."""
    if args.engine == "ray":
        if args.segment:
            raise ConfigError("--segment runs with --engine local only")
        return run_ray(args)
    vad = vad_options(args) if args.segment else None
    if vad is not None and args.max_duration is not None and vad.max_utterance > args.max_duration:
        raise ConfigError(f"--max-utterance ({vad.max_utterance} s) is over --max-duration ({args.max_duration} s)")
    files = expand_inputs(args.inputs)
    if not files:
        print("error: no input files found", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if vad is not None and (args.workers or 1) > 1:
        raise ConfigError("--segment runs one file at a time (--workers 1)")
    workers = 1 if vad is not None else args.workers or default_workers(args.device)
    writer = ResultWriter(args.output, args.format, resume=not args.overwrite, segments=args.segment)
    # load the models before changing the output: a model that fails to load leaves it as it was
    pipe = build_pipeline(args, num_workers=workers) if any(not writer.is_done(f) for f in files) else None
    todo = writer.pending(files)  # drops the rows of files about to be retried: one row per file in the end
    skipped = len(files) - len(todo)
    done = failed = utterances = 0
    audio_seconds = 0.0
    start = time.perf_counter()
    interrupted = False
    try:
        if pipe is not None and vad is not None:
            for path in _progress(todo, args.quiet):
                ok, heard = True, 0.0
                key = file_key(path)  # before reading: the rows describe the file as it was read
                for result in pipe.predict_segments(path, vad=vad, batch_size=args.batch_size,
                                                    skip=writer.done_segments(path)):
                    writer.write(result, key)
                    ok = ok and not result.error
                    utterances += result.segment is not None
                    heard = max(heard, result.end or 0.0)  # the file's audio up to its last utterance
                done, failed, audio_seconds = done + ok, failed + (not ok), audio_seconds + heard
        elif pipe is not None:
            keys: dict = {}

            def keyed(paths):
                for path in paths:  # taken as the pipeline takes the file, before it reads it
                    keys[path] = file_key(path)
                    yield path

            for result in pipe.stream(keyed(todo), batch_size=args.batch_size, progress=not args.quiet,
                                      total=len(todo), workers=workers):
                writer.write(result, keys.pop(result.path, None))
                if result.error:
                    failed += 1
                else:
                    done += 1
                    audio_seconds += result.duration or 0.0
    except KeyboardInterrupt:
        interrupted = True
    finally:
        writer.close()
    elapsed = time.perf_counter() - start
    rtf = f", {audio_seconds / elapsed:.1f}x real time" if elapsed > 0 and audio_seconds else ""
    note = f"; interrupted, {len(todo) - done - failed} not processed: rerun to resume" if interrupted else ""
    counts = f", utterances: {utterances}" if vad is not None else ""
    print(f"done: {done}, skipped: {skipped}, failed: {failed}{counts} ({elapsed:.1f} s{rtf}){note}", file=sys.stderr)
    return 130 if interrupted else 0


def _progress(files, quiet: bool):
    """The files, with a progress bar unless ``quiet``."""
    if quiet:
        return files
    from tqdm.auto import tqdm

    return tqdm(files, unit="file")


def run_ray(args: argparse.Namespace) -> int:
    """``--engine ray``: the same rows from a pool of Ray actors (see :mod:`speech_intent.distributed`)."""
    from ..distributed import RayOptions, default_parquet_path, predict_distributed, print_summary

    check_model_args(args)  # cheap checks on the driver; the workers load the models
    options = RayOptions(address=args.address, workers=args.workers or 1, cpus_per_worker=args.cpus_per_worker,
                         gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
                         files_per_task=args.files_per_task,
                         worker_info=args.worker_info, progress=not args.quiet)
    parquet = args.parquet or (default_parquet_path(args.output) if args.format in (None, "jsonl") else None)
    try:
        summary = predict_distributed(args.inputs, args.output, pipeline=partial(build_pipeline, args),
                                      device=args.device, options=options, fmt=args.format,
                                      overwrite=args.overwrite, parquet=parquet)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    print_summary(summary)
    return 0

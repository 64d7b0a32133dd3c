"""``speech-intent predict``: audio files, folders or globs -> one JSONL/CSV row per input, resumable;
``--segment``: recordings of any length split into utterances, one row per utterance."""
from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Optional

from ..batch.inputs import expand_inputs
from ..batch.run import LocalEngine, RunSummary, format_summary, run_batch
from ..batch.writer import RedactRow
from ..device import default_workers
from ..errors import ConfigError
from .affect import add_affect_args, affect_fields, check_affect_args, with_affect
from .options import add_model_args, add_vad_args, build_pipeline, check_model_args, vad_options
from .redaction import add_redact_args, redactor_from_args


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("predict", help="audio files/dirs/globs -> JSONL or CSV of transcript + intent")
    p.add_argument("inputs", nargs="+", help="audio files, directories (searched recursively) or globs")
    p.add_argument("-o", "--output", default=None, help="results file (.jsonl or .csv); default: stdout")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output's suffix")
    p.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(p)
    add_affect_args(p)
    add_redact_args(p)
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
    """Predict every input into a resumable JSONL/CSV; prints ``done: N, skipped: N, failed: N``.
    ``--redact``: rows and log lines redacted (:class:`~speech_intent.privacy.redact.Redactor`)."""
    redactor = redactor_from_args(args)  # checked before any model loads
    check_affect_args(args)
    if redactor is not None:
        redactor.log_filter().install()
    redact = redactor.row if redactor is not None else None
    try:
        summary = run_ray(args, redact) if args.engine == "ray" else run_local(args, redact)
    except KeyboardInterrupt:  # before any row came in (models loading, Ray starting)
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    if summary is None:
        return 2
    print(format_summary(summary), file=sys.stderr)
    return 130 if summary.interrupted else 0


def pipeline_with_affect(args: argparse.Namespace, num_workers: Optional[int] = None):
    """The pipeline of the model flags with the ``--sentiment`` / ``--emotion`` stages (picklable for Ray actors)."""
    return with_affect(args, build_pipeline(args, num_workers=num_workers))


def run_local(args: argparse.Namespace, redact: Optional[RedactRow] = None) -> Optional[RunSummary]:
    """``--engine local``: this process (``None``: no input files found, said on stderr)."""
    vad = vad_options(args) if args.segment else None
    if vad is not None and args.max_duration is not None and vad.max_utterance > args.max_duration:
        raise ConfigError(f"--max-utterance ({vad.max_utterance} s) is over --max-duration ({args.max_duration} s)")
    files = expand_inputs(args.inputs)
    if not files:
        print("error: no input files found", file=sys.stderr)
        return None
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if vad is not None and (args.workers or 1) > 1:
        raise ConfigError("--segment runs one file at a time (--workers 1)")
    workers = 1 if vad is not None else args.workers or default_workers(args.device)
    engine = LocalEngine(partial(pipeline_with_affect, args, num_workers=workers), batch_size=args.batch_size,
                         workers=workers, vad=vad, progress=not args.quiet)
    return run_batch(files, engine, args.output, fmt=args.format, overwrite=args.overwrite, segments=args.segment,
                     redact=redact, extra_fields=affect_fields(args))


def run_ray(args: argparse.Namespace, redact: Optional[RedactRow] = None) -> RunSummary:
    """``--engine ray``: the same rows from a pool of Ray actors (see :mod:`speech_intent.batch.ray_runner`)."""
    from ..batch.ray_runner import RayOptions, default_parquet_path, predict_distributed

    if args.segment:
        raise ConfigError("--segment runs with --engine local only")
    check_model_args(args)  # cheap checks on the driver; the workers load the models
    options = RayOptions(address=args.address, workers=args.workers or 1, cpus_per_worker=args.cpus_per_worker,
                         gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size,
                         files_per_task=args.files_per_task,
                         worker_info=args.worker_info, progress=not args.quiet)
    parquet = args.parquet or (default_parquet_path(args.output) if args.format in (None, "jsonl") else None)
    return predict_distributed(args.inputs, args.output, pipeline=partial(pipeline_with_affect, args), device=args.device,
                               options=options, fmt=args.format, overwrite=args.overwrite, parquet=parquet,
                               redact=redact)

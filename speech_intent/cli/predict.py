"""``speech-intent predict``: audio files, folders or globs -> one JSONL/CSV row per input, resumable."""
from __future__ import annotations

import argparse
import sys
import time

from ..inputs import expand_inputs
from ..writer import ResultWriter
from .options import add_model_args, build_pipeline


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("predict", help="audio files/dirs/globs -> JSONL or CSV of transcript + intent")
    p.add_argument("inputs", nargs="+", help="audio files, directories (searched recursively) or globs")
    p.add_argument("-o", "--output", default=None, help="results file (.jsonl or .csv); default: stdout")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from --output's suffix")
    p.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_args(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Predict every input into a resumable JSONL/CSV; prints ``done: N, skipped: N, failed: N``."""
    files = expand_inputs(args.inputs)
    if not files:
        print("error: no input files found", file=sys.stderr)
        return 2
    writer = ResultWriter(args.output, args.format, resume=not args.overwrite)
    # load the models before changing the output: a model that fails to load leaves it as it was
    pipe = build_pipeline(args) if any(not writer.is_done(f) for f in files) else None
    todo = writer.pending(files)  # drops the rows of files about to be retried: one row per file in the end
    skipped = len(files) - len(todo)
    done = failed = 0
    audio_seconds = 0.0
    start = time.perf_counter()
    interrupted = False
    try:
        if pipe is not None:
            for result in pipe.stream(todo, batch_size=args.batch_size, progress=not args.quiet, total=len(todo)):
                writer.write(result)
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
    print(f"done: {done}, skipped: {skipped}, failed: {failed} ({elapsed:.1f} s{rtf}){note}", file=sys.stderr)
    return 130 if interrupted else 0

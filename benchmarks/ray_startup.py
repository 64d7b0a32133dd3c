"""Where a ``predict --engine ray`` job's fixed cost goes: one run, timestamps from the driver's start.

Marks: the driver's imports (what ``speech-intent predict`` imports), ``import ray``, the local Ray started
(``ray.init``), each actor process created, the actor building its pipeline (entered / loaded), the
first row back and the job's end. The pipeline is ``rss.py``'s (``tiny``: random 2-layer wav2vec2 +
BERT; ``bundled``: faster-whisper tiny.en + the tiny BERT) on N one-second files, loaded through
``predict_distributed`` with a builder that records its own times (the actor imports speech_intent while
unpickling it, so "entered" already has those imports behind it).

    python benchmarks/ray_startup.py --files 100 --workers 1
"""
from __future__ import annotations

import time

T0 = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rss import REPO, make_files, make_pipeline  # noqa: E402

sys.path.insert(0, str(REPO))
import speech_intent.cli.predict  # noqa: E402,F401  (the CLI's imports)

MARKS = {"driver imports": time.time() - T0}
import ray  # noqa: E402,F401

MARKS["import ray"] = time.time() - T0


class Builder:
    """Builds the pipeline in an actor and appends its timestamps to ``log``."""

    def __init__(self, path: str, log: str) -> None:
        self.path, self.log = path, log

    def __call__(self):
        import psutil

        entered = time.time()
        from speech_intent.distributed import load_pipeline

        pipe = load_pipeline(self.path, device="cpu")  # what a worker does with a pipeline directory
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "created": psutil.Process().create_time(), "entered": entered,
                                "loaded": time.time()}) + "\n")
        return pipe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2, help="CPUs the actors share")
    parser.add_argument("--asr", choices=["tiny", "bundled"], default="tiny")
    args = parser.parse_args()
    from speech_intent import distributed

    with tempfile.TemporaryDirectory(prefix="si-ray-startup-") as tmp:
        work = Path(tmp)
        make_files(work / "in", args.files, 1.0)
        pipeline = make_pipeline(work / "pipeline", args.asr)
        log = work / "actors.jsonl"
        start = time.time()
        connect, stream = distributed.connect, distributed._stream_rows

        def timed_connect(options):
            started = connect(options)
            MARKS["ray.init"] = time.time() - T0
            return started

        def timed_stream(*a, **k):
            for i, row in enumerate(stream(*a, **k)):
                if i == 0:
                    MARKS["first row"] = time.time() - T0
                yield row

        distributed.connect, distributed._stream_rows = timed_connect, timed_stream
        MARKS["job start (files and pipeline made)"] = start - T0
        summary = distributed.predict_distributed(
            [str(work / "in")], str(work / "out.jsonl"), pipeline=Builder(str(pipeline), str(log)), device="cpu",
            options=distributed.RayOptions(workers=args.workers, cpus_per_worker=args.cores / args.workers))
        MARKS["job end"] = time.time() - T0
        for line in log.read_text().splitlines():
            actor = json.loads(line)
            for key in ("created", "entered", "loaded"):
                MARKS[f"actor {actor['pid']} {key}"] = actor[key] - T0
    for name, at in sorted(MARKS.items(), key=lambda kv: kv[1]):
        print(f"{at:7.2f} s  {name}")
    print(f"{summary.done} rows, {summary.failed} failed; job (first input to last row) {summary.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a ``predict --engine ray`` job's fixed cost goes: one run, timestamps from the driver's start.

Marks: the driver's imports (what ``speech-intent predict`` imports), ``import ray``, the local Ray started
(``ray.init``), each actor process created, the actor building its pipeline (entered / loaded), the
first row back and the job's end; with ``--cpu``, also the CPU seconds each process used during the
job (Ray's daemons, Ray Data's helper actors, idle workers, the map actor, the driver). The pipeline is ``rss.py``'s (``tiny``: random 2-layer wav2vec2 +
BERT; ``bundled``: faster-whisper tiny.en + the tiny BERT) on N one-second files, loaded through
``predict_distributed`` with a builder that records its own times (the actor imports speech_intent while
unpickling it, so "entered" already has those imports behind it).

    python -m benchmarks.ray_startup --files 100 --workers 1
    python -m benchmarks.ray_startup --files 100 --asr bundled --cpu
"""
from __future__ import annotations

import time

T0 = time.time()

import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import speech_intent.cli.predict  # noqa: E402,F401  (the CLI's imports)

from .common import add_synthetic_asr_flag, benchmark_parser  # noqa: E402
from .rss import make_files, make_pipeline  # noqa: E402

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
        from speech_intent.batch.ray_runner import load_pipeline

        pipe = load_pipeline(self.path, device="cpu")  # what a worker does with a pipeline directory
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "created": psutil.Process().create_time(), "entered": entered,
                                "loaded": time.time()}) + "\n")
        return pipe


class CpuSampler:
    """CPU seconds per process, by name, between :meth:`start` and :meth:`stop` (every process on
    the machine is sampled twice a second; one that ends between samples loses its last half second).
    Ray names its workers by their job (``ray::IDLE``, ``ray::_StatsActor``, ``ray::MapWorker(...)``); a
    process is counted under the name it had at its last sample."""

    DAEMONS = ("gcs_server", "raylet", "dashboard/agent", "runtime_env/agent", "log_monitor", "monitor.py",
               "dashboard.py")

    def __init__(self) -> None:
        self.baseline: dict = {}  # pid -> CPU seconds at start (processes started later: none)
        self.latest: dict = {}  # pid -> (name, CPU seconds at the last sample)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def name(process) -> str:
        command = " ".join(process.cmdline())
        if command.startswith("ray::"):
            return command.split("(")[0].split(".")[0].strip()
        for daemon in CpuSampler.DAEMONS:
            if daemon in command:
                return daemon
        return "this driver" if process.pid == os.getpid() else process.name()

    def _sample(self) -> None:
        import psutil

        for process in psutil.process_iter():
            try:
                times = process.cpu_times()
                self.latest[process.pid] = (self.name(process), times.user + times.system)
            except (psutil.Error, OSError):
                continue

    def _run(self) -> None:
        while not self.stopped.wait(0.5):
            self._sample()

    def start(self) -> "CpuSampler":
        self._sample()
        self.baseline = {pid: used for pid, (_, used) in self.latest.items()}
        self.thread.start()
        return self

    def stop(self) -> Counter:
        self.stopped.set()
        self.thread.join()
        total: Counter = Counter()
        for pid, (name, used) in self.latest.items():
            total[name] += used - self.baseline.get(pid, 0.0)
        return total


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2, help="CPUs the actors share")
    add_synthetic_asr_flag(parser, "tiny")
    parser.add_argument("--cpu", action="store_true", help="CPU seconds per process during the job")
    args = parser.parse_args()
    from speech_intent.batch import ray_runner as distributed

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
        sampler = CpuSampler().start() if args.cpu else None
        summary = distributed.predict_distributed(
            [str(work / "in")], str(work / "out.jsonl"), pipeline=Builder(str(pipeline), str(log)), device="cpu",
            options=distributed.RayOptions(workers=args.workers, cpus_per_worker=args.cores / args.workers))
        MARKS["job end"] = time.time() - T0
        used = sampler.stop() if sampler else Counter()
        for line in log.read_text().splitlines():
            actor = json.loads(line)
            for key in ("created", "entered", "loaded"):
                MARKS[f"actor {actor['pid']} {key}"] = actor[key] - T0
    for name, at in sorted(MARKS.items(), key=lambda kv: kv[1]):
        print(f"{at:7.2f} s  {name}")
    print(f"{summary.done} rows, {summary.failed} failed; job (first input to last row) {summary.seconds:.1f} s")
    if used:
        print("CPU seconds during the job:")
        for name, seconds in used.most_common():
            if seconds >= 0.05:
                print(f"{seconds:7.2f} s  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

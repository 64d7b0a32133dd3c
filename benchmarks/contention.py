"""How much a little background CPU load slows a local ``predict`` that uses every core.

    python -m benchmarks.contention                       # 100 one-second files, bundled tiny.en, 2 threads
    python -m benchmarks.contention --loads 0 9/50 --reps 3

Why: one Ray actor given all of a 2-core machine ran its files 12-20% slower than local ``predict``
while Ray's own processes (daemons, driver, Ray Data's helper actors) used ~7 s of CPU in a ~39 s job,
about 0.18 of a core (``ray_startup.py --cpu``). This runs local ``predict`` (``OMP_NUM_THREADS`` =
``--threads``) alone and next to a ticker process that spins BURST ms every PERIOD ms (``9/50``: 0.18 of
a core), alternating, and prints each wall time. Files and pipeline as ``distributed.py --asr bundled``
makes them (``rss.py``). Not part of CI; run it on a quiet machine.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Tuple

from .common import add_synthetic_asr_flag, add_threads_flag, add_work_flag, benchmark_parser, child_env
from .rss import make_files, make_pipeline

TICKER = """
import sys, time
burst, period = float(sys.argv[1]) / 1000, float(sys.argv[2]) / 1000
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < burst:
        pass
    time.sleep(max(0.0, period - burst))
"""


def predict(files: Path, pipeline: Path, out: Path, threads: int, load: Optional[Tuple[str, str]]) -> float:
    """Wall seconds of one ``speech-intent predict`` with the ticker (``load``) running beside it."""
    out.unlink(missing_ok=True)
    env = child_env(threads=threads)
    ticker = subprocess.Popen([sys.executable, "-c", TICKER, *load]) if load else None
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speech_intent", "predict", str(files), "--pipeline", str(pipeline),
                        "-o", str(out), "-q"], env=env, check=True, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        if ticker is not None:
            ticker.kill()
            ticker.wait()


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--files", type=int, default=100)
    add_synthetic_asr_flag(parser, "bundled")
    add_threads_flag(parser, os.cpu_count() or 1, help="OMP_NUM_THREADS of predict (default: the cores)")
    parser.add_argument("--loads", nargs="+", default=["0", "9/50", "30/100"],
                        help="BURST/PERIOD in ms of the background ticker; 0: none")
    parser.add_argument("--reps", type=int, default=2)
    add_work_flag(parser, None, help="folder for the files and pipeline (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="contention-"))
    make_files(work / "files", args.files, 1.0)
    pipeline = work / f"pipeline-{args.asr}"
    if not pipeline.exists():
        make_pipeline(pipeline, args.asr)
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.files} files, {args.threads} threads", flush=True)
    walls = {load: [] for load in args.loads}
    for _ in range(args.reps):
        for load in args.loads:
            spec = None if load == "0" else tuple(load.split("/"))
            walls[load].append(predict(work / "files", pipeline, work / "out.jsonl", args.threads, spec))
            print(f"load {load}: {walls[load][-1]:.1f} s", flush=True)
    quiet = sum(walls[args.loads[0]]) / len(walls[args.loads[0]])
    for load, runs in walls.items():
        burst, period = (0.0, 1.0) if load == "0" else map(float, load.split("/"))
        mean = sum(runs) / len(runs)
        print(f"{load:>8}: {burst / period:.2f} of a core beside; mean {mean:.1f} s ({mean / quiet - 1:+.1%} vs "
              f"{args.loads[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

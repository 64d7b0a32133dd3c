"""Local ``speech-intent predict`` vs ``--engine ray`` with 1 and 2 workers on the same cores.

    python -m benchmarks.distributed --files 1000 10000            # the targets' sizes
    python -m benchmarks.distributed --files 100 --cores 2         # a smoke run
    python -m benchmarks.distributed --files 1000 --asr bundled    # real tiny.en (slow on CPU)
    python -m benchmarks.distributed --files 1000 10000 --cluster  # Ray rows on an already running cluster

Generates N short wav files in a temp dir (``benchmarks/rss.py``'s tones + noise; hard links
for each N), saves a pipeline (``tiny``: random 2-layer wav2vec2 + BERT, so the batch and Ray
machinery is not hidden behind model time; ``bundled``: faster-whisper tiny.en + the tiny BERT),
then runs the CLI on each N in a subprocess:

- ``local``: ``predict`` with ``OMP_NUM_THREADS=CORES`` (one process uses every core);
- ``ray x1``: ``--engine ray --workers 1 --cpus-per-worker CORES``;
- ``ray x2``: ``--engine ray --workers 2 --cpus-per-worker CORES/2``.

Reported per row: wall time of the whole command (Ray: includes starting a local Ray and loading
the pipeline in every actor; ``--address`` reuses a running cluster instead), files/s, overhead
vs local (``wall / local wall - 1``), the driver's peak RSS (``common.PeakMemory`` of the driver process
alone, every 50 ms: Ray's own daemons and the actors are other processes) and the rows written (must equal N: nothing lost or
doubled). Not part of CI.

``--cluster``: the Ray rows run with ``--address`` on a cluster this script starts first, so their
wall time leaves out Ray's own start-up (it still has the driver's imports, the actors loading the
pipeline and Ray Data's start). The cluster is ``ray start --head`` with Ray's defaults (token
authentication included, as a user's would have) except: ``--num-cpus CORES`` (room for the x1
row's one actor of CORES CPUs and the x2 row's two of CORES/2), no GPUs, no dashboard (a quiet
machine), its own free ports and temp dir. It runs in its own process group and is stopped by that
group when the script ends, on an error or Ctrl-C too (not ``ray stop``: that would stop every Ray
on the machine). The local row is run as without ``--cluster``; the cluster's start time is printed.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from tests.processes import free_ports, ray_node_port_args, stop_group

from .common import (
    PeakMemory,
    add_batch_size_flag,
    add_json_flag,
    add_synthetic_asr_flag,
    add_work_flag,
    benchmark_parser,
    child_env,
    write_json,
)
from .rss import link_set, make_files, make_pipeline


def run(cmd: List[str], output: Path, threads: int) -> Dict[str, float]:
    """Run one CLI command; wall time, the driver's peak RSS (sampled every 50 ms) and the rows written."""
    env = child_env(threads=threads, RAY_USAGE_STATS_ENABLED="0")
    for stale in (output, output.with_suffix(".parquet")):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    memory = PeakMemory(proc.pid, interval=0.05).start()  # the driver alone
    try:
        while proc.poll() is None:
            time.sleep(0.05)
    finally:  # interrupted: the command does not outlive the benchmark (or its cluster)
        memory.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    rows = [json.loads(line)["path"] for line in open(output, encoding="utf-8")]
    return {"wall_s": wall, "driver_peak_rss_mb": memory.peak_mb, "rows": len(rows), "unique": len(set(rows)),
            "summary": next((line for line in stderr.splitlines() if line.startswith("done: ")), "")}


@contextlib.contextmanager
def ray_cluster(cores: int) -> Iterator[str]:
    """``ray start --head`` with ``cores`` CPUs on free ports; its address; stopped on leaving."""
    temp = Path(tempfile.mkdtemp(prefix="si-ray-"))  # short: Ray's socket paths live under it
    gcs, client = free_ports(2)
    args = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={gcs}",
            f"--ray-client-server-port={client}", "--node-ip-address=127.0.0.1", f"--num-cpus={cores}",
            "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats",
            *ray_node_port_args()]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    for unset in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # Ray gives each actor its CPUs' worth
        env.pop(unset, None)
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the cluster
    try:
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{out.decode(errors='replace')[-3000:]}")
        address = f"127.0.0.1:{gcs}"
        print(f"cluster: ray start --head, {cores} CPUs, at {address}, started in "
              f"{time.perf_counter() - start:.1f} s (not in the ray rows' wall time)", flush=True)
        yield address
    finally:
        stop_group(proc.pid)
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(temp, ignore_errors=True)


def commands(inputs: Path, pipeline: Path, out: Path, batch: int, cores: int, address: Optional[str]) -> dict:
    base = [sys.executable, "-m", "speech_intent", "predict", str(inputs), "--pipeline", str(pipeline),
            "--device", "cpu", "--batch-size", str(batch), "-q", "-o", str(out), "--overwrite"]
    ray = ["--engine", "ray"] + (["--address", address] if address else [])
    return {
        "local": (base, cores),
        "ray x1": (base + ray + ["--workers", "1", "--cpus-per-worker", str(cores)], cores),
        "ray x2": (base + ray + ["--workers", "2", "--cpus-per-worker", str(cores / 2)], max(1, cores // 2)),
    }


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 10000], help="file counts to run")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each file")
    add_batch_size_flag(parser)
    parser.add_argument("--cores", type=int, default=2, help="cores all three runs share")
    add_synthetic_asr_flag(parser, "tiny")
    parser.add_argument("--address", default=None, help="a running Ray cluster (default: each run starts one)")
    parser.add_argument("--cluster", action="store_true",
                        help="start a Ray cluster (ray start --head, CORES CPUs) first and run the ray rows on it")
    parser.add_argument("--runs", default="local,ray x1,ray x2", help="which rows, comma-separated")
    add_json_flag(parser, help="also write the rows here")
    add_work_flag(parser, None, help="keep files here (default: a temp dir, removed)")
    args = parser.parse_args()
    if args.cluster and args.address:
        parser.error("--cluster starts its own cluster: give --cluster or --address, not both")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="speech-intent-ray-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pipeline = make_pipeline(work / f"pipeline-{args.asr}", args.asr)
        make_files(work / "all", max(args.files), args.seconds)
        runs = args.runs.split(",")
        with (ray_cluster(args.cores) if args.cluster and any(r.startswith("ray") for r in runs)
              else contextlib.nullcontext(args.address)) as address:
            print(f"{'files':>6} {'run':>7} {'wall s':>7} {'files/s':>8} {'overhead':>9} {'driver RSS MB':>14} "
                  f"{'rows':>6} {'unique':>6}", flush=True)
            for n in args.files:
                folder = link_set(work / "all", work / f"set_{n}", n)
                local_wall = None
                for name, (cmd, threads) in commands(folder, pipeline, work / f"out_{n}.jsonl", args.batch_size,
                                                     args.cores, address).items():
                    if name not in runs:
                        continue
                    r = run(cmd, work / f"out_{n}.jsonl", threads)
                    local_wall = r["wall_s"] if name == "local" else local_wall
                    overhead = f"{100 * (r['wall_s'] / local_wall - 1):+.1f}%" if local_wall and name != "local" else ""
                    print(f"{n:>6} {name:>7} {r['wall_s']:>7.1f} {n / r['wall_s']:>8.1f} {overhead:>9} "
                          f"{r['driver_peak_rss_mb']:>14.0f} {r['rows']:>6} {r['unique']:>6}   [{r['summary']}]",
                          flush=True)
                    results.append({"files": n, "run": name, "address": address if name != "local" else None,
                                    "cluster": args.cluster and name != "local", **r})
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

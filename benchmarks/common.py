"""What the benchmark scripts share: where the repository and the shared data are, the flags several
scripts take, JSON result files, the environment of the CLI runs they start, and the one peak-memory
sampler (:class:`PeakMemory`).

Every script runs from the repository root as ``python -m benchmarks.NAME``; data paths are flags whose
defaults are the folders below (``../shared/data`` beside the repository).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional

#: The repository root.
REPO = Path(__file__).resolve().parents[1]
#: Data sets shared between checkouts, beside the repository (never committed).
SHARED_DATA = REPO.parent / "shared" / "data"
#: The Picovoice coffee benchmark: ``grammar.yaml``, ``dev/`` (recordings and ``labels.json``), ``noise/``.
COFFEE_DATA = SHARED_DATA / "coffee"
#: SNIPS in JointBERT folders: ``train/``, ``dev/``, ``test/``.
SNIPS_DATA = SHARED_DATA / "snips"
#: The 30 sample commands and their ``manifest.csv``.
ASSETS_AUDIO = REPO / "assets" / "audio"
MB = 1024 * 1024


# ------------------------------------------------------------------ flags
def benchmark_parser(doc: Optional[str]) -> argparse.ArgumentParser:
    """The argument parser of a benchmark script: its docstring (usage lines included) is the help text,
    and its usage line says ``python -m benchmarks.NAME`` when it runs as one."""
    script = Path(sys.argv[0])
    prog = f"python -m benchmarks.{script.stem}" if script.resolve().parent == REPO / "benchmarks" else None
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data_flag(parser: argparse.ArgumentParser, default: Optional[Path], help: str) -> None:
    """``--data DIR``: the data folder the script reads (a default under :data:`SHARED_DATA`)."""
    parser.add_argument("--data", type=Path, default=default,
                        help=help if default is None else f"{help} (default: %(default)s)")


def add_work_flag(parser: argparse.ArgumentParser, default: Optional[Path], help: Optional[str] = None) -> None:
    """``--work DIR``: where the script keeps what it makes (models, files); ``None``: a temp dir."""
    if help is None:
        help = "folder for what the run makes (default: " + ("%(default)s)" if default else "a temp dir)")
    parser.add_argument("--work", type=Path, default=default, help=help)


def add_json_flag(parser: argparse.ArgumentParser, help: str = "write the results here (JSON)") -> None:
    """``--json PATH``: the result file (:func:`write_json`)."""
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help=help)


def add_device_flag(parser: argparse.ArgumentParser, default: Optional[str], help: Optional[str] = None,
                    **kwargs: Any) -> None:
    """``--device``: where the models run (``cpu``, ``cuda``; ``kwargs`` e.g. ``choices``)."""
    parser.add_argument("--device", default=default, help=help, **kwargs)


def add_threads_flag(parser: argparse.ArgumentParser, default: Optional[int], help: str) -> None:
    """``--threads N``: the CPU threads of the measured work."""
    parser.add_argument("--threads", type=int, default=default, help=help)


def add_batch_size_flag(parser: argparse.ArgumentParser, default: int = 8, help: Optional[str] = None) -> None:
    """``--batch-size N``: inputs per model call."""
    parser.add_argument("--batch-size", type=int, default=default, help=help)


def add_synthetic_asr_flag(parser: argparse.ArgumentParser, default: str) -> None:
    """``--asr tiny|bundled``: the ASR stage of the pipeline ``rss.make_pipeline`` saves (a random tiny
    wav2vec2, or the bundled tiny.en on faster-whisper)."""
    parser.add_argument("--asr", choices=["tiny", "bundled"], default=default,
                        help="pipeline: a random tiny wav2vec2 + BERT (tiny) or tiny.en + the tiny BERT (bundled)")


# ------------------------------------------------------------------ results and child processes
def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot write itself: numpy / torch scalars as numbers, anything else as text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def to_json(data: Any) -> str:
    """``data`` as indented JSON (numpy scalars as numbers, paths and other objects as text)."""
    return json.dumps(data, indent=2, default=_plain)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` to ``path`` as :func:`to_json` text with a final newline (parent folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(data) + "\n")
    return path


def child_env(threads: Optional[int] = None, **extra: str) -> Dict[str, str]:
    """The environment of a CLI process a benchmark starts: this one's, the repository on ``PYTHONPATH``,
    and with ``threads`` the torch / MKL threads fixed to it and the tokenizers' own threads off."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


# ------------------------------------------------------------------ peak memory
class PeakMemory:
    """Peak resident memory (RSS) of a process while active, sampled by a background thread.

    Every ``interval`` seconds the thread reads the RSS of process ``pid`` (default: this process) and,
    with ``children=True``, adds the RSS of each of its descendants alive at that moment. :attr:`peak`
    is the largest such sum and :attr:`latest` the last one (bytes; 0 before the first sample). The
    sampling stops when the process has exited. Use as a context manager or :meth:`start` /
    :meth:`stop`; a sample is taken at both ends too.

    Sampling (psutil) rather than the kernel's high-water marks: it covers a tree of processes (a
    process's ``VmHWM`` / ``ru_maxrss`` is its own; for children, ``ru_maxrss`` is the largest one, not
    their sum), works on another process, and gives the peak of one interval of a long-lived process
    (a high-water mark counts from the process's start). A spike shorter than ``interval`` can be
    missed. ``children=True`` scans every process's ``/proc`` entry at each sample: keep it off where
    the measured process starts none and the sampler runs beside timed work.
    """

    def __init__(self, pid: Optional[int] = None, *, children: bool = False, interval: float = 0.05) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.children, self.interval = children, interval
        self.peak = self.latest = 0
        self._process: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)

    @property
    def peak_mb(self) -> float:
        return self.peak / MB

    def sample(self) -> int:
        """Read the RSS now (and record it); 0 once the process is gone."""
        import psutil

        try:
            if self._process is None:
                self._process = psutil.Process(self.pid)
            rss = self._process.memory_info().rss
            if self.children:
                for child in self._process.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.Error:  # ended between the listing and the read
                        pass
        except psutil.Error:
            return 0
        self.latest, self.peak = rss, max(self.peak, rss)
        return rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.sample():
                return

    def start(self) -> "PeakMemory":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop sampling (after a last sample); the peak in bytes."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        return self.peak

    def __enter__(self) -> "PeakMemory":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

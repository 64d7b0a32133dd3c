"""Explicit device, dtype and CPU-thread settings (never global state at import time).

torch is imported by the functions that need it, not by this module, so that the CLI and the Ray
driver can import this module without loading torch.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Union

from .errors import ConfigError, check_int

if TYPE_CHECKING:
    import torch

DeviceLike = Union[str, "torch.device", None]
DTypeLike = Union[str, "torch.dtype", None]

#: dtype names accepted by :func:`resolve_dtype` -> the ``torch`` attribute
_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}


def resolve_device(device: DeviceLike = None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return resolved


def resolve_dtype(dtype: DTypeLike, device: torch.device) -> torch.dtype:
    """``None`` -> float16 on CUDA, float32 elsewhere; strings like ``"bf16"`` are accepted."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        name = _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None
    return getattr(torch, name)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def available_cpus() -> int:
    """CPU cores this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def thread_budget() -> int:
    """Threads a model may use by default: ``OMP_NUM_THREADS`` where it is set to a positive number
    (as torch's own default; Ray sets it to an actor's CPUs), else :func:`available_cpus`."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.strip().isdigit() and int(value) > 0:
        return min(int(value), available_cpus())
    return available_cpus()


def set_torch_threads(threads: int) -> None:
    """Pin torch's intra-op threads for the calling thread and the threads it starts afterwards.

    Called by an application's entry point (``speech-intent serve``), never on import. torch's
    OpenMP setting is per thread: a worker thread that runs the models calls this itself.
    """
    check_int("threads", threads)
    import torch

    torch.set_num_threads(threads)


def default_workers(device: DeviceLike = None, threads: Optional[int] = None) -> int:
    """Batches to run at once by default (``predict`` / ``serve --workers``, a Ray actor's): 2 on a CPU
    with 2 or more threads to share (``threads``, default :func:`thread_budget`): two batches on one
    thread each outrun one batch on two, as each batch's reading and text work overlap the other's
    model time (benchmarks/README.md); else 1 (GPUs: not measured)."""
    threads = thread_budget() if threads is None else threads
    return 2 if threads >= 2 and resolve_device(device).type == "cpu" else 1

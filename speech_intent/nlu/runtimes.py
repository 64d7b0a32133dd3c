"""The intent model's forward-pass runtimes, and the check that ONNX Runtime is installed.

Light on purpose (no torch, no onnxruntime import): the CLI's ``--nlu-runtime`` choices and the
Ray driver's pre-flight checks use it; :mod:`.onnx` runs the runtimes.
"""
from __future__ import annotations

import importlib.util

from ..errors import ConfigError

__all__ = ["RUNTIMES", "require_onnx"]

#: Forward-pass runtimes of :class:`~speech_intent.nlu.IntentClassifier`.
RUNTIMES = ("torch", "onnx", "onnx-int8")


def require_onnx(runtime: str = "onnx") -> None:
    """Raise :class:`ConfigError` naming what to install when ``onnx`` / ``onnxruntime`` are missing
    (found without importing them)."""
    missing = [package for package in ("onnx", "onnxruntime") if not _installed(package)]
    if missing:
        raise ConfigError(f"runtime {runtime!r} needs the {' and '.join(missing)} package(s): "
                          "pip install 'speech-intent[onnx]'")


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False

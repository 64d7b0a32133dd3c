"""Typed errors raised by speech-intent.

Every error that concerns a file names it, so a batch report can say exactly
which input failed and why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class SpeechIntentError(Exception):
    """Base class of every error raised on purpose by this library."""


class AudioError(SpeechIntentError):
    """Audio that cannot be used: unreadable, empty, non-finite, too long...

    Attributes:
        source: the file (or a description such as ``"<bytes>"``) that failed.
        reason: a short, human-readable explanation.
    """

    def __init__(self, source: Optional[PathLike], reason: str) -> None:
        self.source = str(source) if source is not None else "<array>"
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ModelLoadError(SpeechIntentError):
    """A model directory or checkpoint that cannot be loaded safely."""

    def __init__(self, source: Optional[PathLike], reason: str) -> None:
        self.source = str(source) if source is not None else "<model>"
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

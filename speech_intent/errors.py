"""Every error speech-intent raises on purpose: one hierarchy under :class:`SpeechIntentError`.

::

    SpeechIntentError
    ├── AudioError               audio that cannot be used (names the input)
    │   └── AudioTooLongError        audio over the duration limit
    ├── ModelLoadError           a model directory or checkpoint that cannot be loaded safely
    │   └── CTranslate2FormatError   a CTranslate2 model.bin the converter cannot read
    ├── DataFormatError          a malformed training-data file (names file, line, record)
    │   ├── ManifestError            a malformed audio manifest
    │   └── DataNotFoundError        a data file or manifest that does not exist
    ├── ConfigError              an invalid option or argument value
    ├── OverloadedError          a service whose queue is full (try again later)
    ├── DistributedError         a Ray job that cannot run (Ray missing, no cluster, workers that cannot start)
    └── SynthesizerUnavailable   a text-to-speech engine that is not installed

Errors about a file name it, so a batch report says exactly which input failed and why.
Those that replace a built-in error also derive from it (``ConfigError`` and
``DataFormatError`` are ``ValueError``\\ s, ``DataNotFoundError`` is also a ``FileNotFoundError``), so
older ``except ValueError`` code still works.
"""
from __future__ import annotations

from os import PathLike as _PathLike
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


class AudioTooLongError(AudioError):
    """Audio over the duration limit (``duration`` and ``limit`` in seconds)."""

    def __init__(self, source: Optional[PathLike], duration: float, limit: float) -> None:
        self.duration, self.limit = duration, limit
        super().__init__(source, f"audio is {duration:.1f} s long, over the {limit:.1f} s limit (max_duration)")


class ModelLoadError(SpeechIntentError):
    """A model directory or checkpoint that cannot be loaded safely."""

    def __init__(self, source: Optional[PathLike], reason: str) -> None:
        self.source = str(source) if source is not None else "<model>"
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class CTranslate2FormatError(ModelLoadError, ValueError):
    """A CTranslate2 model directory or ``model.bin`` that cannot be converted."""

    def __init__(self, message: str) -> None:
        source, _, reason = message.partition(": ")
        if not reason:
            source, reason = None, message
        super().__init__(source, reason)
        self.args = (message,)

    def __str__(self) -> str:
        return self.args[0]


class DataFormatError(SpeechIntentError, ValueError):
    """A training-data file is malformed; the message names the file, the place and the problem."""

    def __init__(
        self,
        problem: str,
        *,
        source: Union[str, "_PathLike[str]", None] = None,
        line: Optional[int] = None,
        record: Optional[int] = None,
    ) -> None:
        self.problem = problem
        self.source = None if source is None else str(source)
        self.line = line
        self.record = record
        where = [self.source] if self.source is not None else []
        if line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record}")
        super().__init__(": ".join([*where, problem]))

    @classmethod
    def from_yaml(cls, exc: Exception, source: Union[str, "_PathLike[str]"]) -> "DataFormatError":
        """Wrap a PyYAML parse error, keeping its line number when it has one."""
        mark = getattr(exc, "problem_mark", None)
        return cls(f"invalid YAML: {exc}", source=source, line=None if mark is None else mark.line + 1)


class ManifestError(DataFormatError):
    """An audio manifest is malformed; the message names the file, the line and the problem."""


class DataNotFoundError(DataFormatError, FileNotFoundError):
    """A data file, folder or manifest that does not exist."""


class ConfigError(SpeechIntentError, ValueError):
    """An invalid option or argument: an unknown backend, a batch size under 1, a bad device..."""


class OverloadedError(SpeechIntentError):
    """A service cannot take more work now; ``retry_after``: seconds to wait before trying again."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class SynthesizerUnavailable(SpeechIntentError, RuntimeError):
    """A text-to-speech engine is not installed (the message says how to get it)."""


class DistributedError(SpeechIntentError, RuntimeError):
    """A distributed (Ray) job cannot run: Ray is not installed, the cluster cannot be reached, or the
    workers cannot start (e.g. the pipeline fails to load on them). Per-input failures are never this:
    they are rows with ``error`` set."""


def check_int(name: str, value: object, *, minimum: int = 1, maximum: Optional[int] = None,
              optional: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer (not a bool) in ``[minimum, maximum]``
    (``None`` too when ``optional``); the message names ``name``."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be an integer {bound}{' or None' if optional else ''}, got {value!r}")

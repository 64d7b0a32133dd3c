"""Audio manifests: which recording is which, read by one reader for evaluation and ASR training.

Formats read by :func:`read_audio_manifest`:

- CSV/TSV with a header, JSON Lines, or a JSON array of records (in a ``.json`` file, or a
  ``.jsonl`` file that starts with ``[``), each with an audio column ``audio`` (or ``file`` /
  ``path``; a relative path is resolved against the manifest's folder) and any other columns.
- A ``labels.json``-style mapping ``{"file.wav": {...}}`` (the Picovoice benchmark's), the wavs
  next to it (or where the key says).

The reader knows the audio column only; what the other columns mean is the caller's (a ``parse``
function turns a :class:`ManifestRecord` into the caller's item and raises ``ValueError`` for a bad
one). Every problem raises :class:`~speech_intent.errors.ManifestError` naming the file and the line
(or record, or entry).
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, TypeVar, Union

from ..errors import DataNotFoundError, ManifestError

logger = logging.getLogger(__name__)

__all__ = ["AUDIO_COLUMNS", "MANIFEST_SUFFIXES", "ManifestRecord", "is_audio_manifest", "read_audio_manifest"]

PathLike = Union[str, Path]
T = TypeVar("T")
AUDIO_COLUMNS = ("audio", "file", "path")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


@dataclass(frozen=True)
class ManifestRecord:
    """One entry of an audio manifest.

    Attributes:
        audio: absolute path of the recording.
        fields: the entry's columns (a ``labels.json`` entry: its object).
        source: the manifest file.
        line: the line the entry starts on (``None`` in a JSON array).
        record: the entry's number in a JSON array (else ``None``).
        name: the entry's key in a ``labels.json`` mapping (else ``None``).
    """

    audio: Path
    fields: Mapping[str, Any]
    source: Path
    line: Optional[int] = None
    record: Optional[int] = None
    name: Optional[str] = None

    @property
    def location(self) -> str:
        """``manifest:entry name``, ``manifest:line`` or ``manifest:record number``."""
        where = self.name if self.name is not None else self.line if self.line is not None else self.record
        return f"{self.source}:{where}"


@dataclass(frozen=True)
class _Raw:
    """An entry before its audio path is checked."""

    fields: Mapping[str, Any]
    line: Optional[int] = None
    record: Optional[int] = None
    name: Optional[str] = None

    def error(self, path: Path, problem: str) -> ManifestError:
        if self.name is not None and not problem.startswith("entry "):
            problem = f"entry {self.name!r}: {problem}"
        return ManifestError(problem, source=path, line=self.line, record=self.record)


def _csv(path: Path, required: Sequence[str]) -> List[_Raw]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        fields = reader.fieldnames or []
        if not any(c in fields for c in AUDIO_COLUMNS) or not all(c in fields for c in required):
            needs = "".join(f" and {c!r}" for c in required)
            raise ManifestError(f"header {fields!r} needs an audio column (one of {', '.join(AUDIO_COLUMNS)})"
                                f"{needs}", source=path, line=1)
        out = []
        for row in reader:
            if None in row or None in row.values():
                raise ManifestError(f"row does not have the header's {len(fields)} fields", source=path,
                                    line=reader.line_num)
            out.append(_Raw(row, line=reader.line_num))
    return out


def _json_array(path: Path, data: Any) -> List[_Raw]:
    out = []
    for number, record in enumerate(data, start=1):
        if not isinstance(record, Mapping):
            raise ManifestError(f"expected a JSON object, got {type(record).__name__}", source=path, record=number)
        out.append(_Raw(record, record=number))
    return out


def _labels(path: Path, content: str, data: Mapping[str, Any]) -> List[_Raw]:
    out = []
    for name, record in data.items():
        raw = _Raw(record, line=content[: max(content.find(json.dumps(name)), 0)].count("\n") + 1, name=str(name))
        if not isinstance(record, Mapping):
            raise raw.error(path, f"expected an object, got {type(record).__name__}")
        out.append(raw)
    return out


def _json_lines(path: Path, content: str) -> List[_Raw]:
    out = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ManifestError(f"invalid JSON: {error.msg}", source=path, line=lineno) from error
        if not isinstance(record, Mapping):
            raise ManifestError(f"expected a JSON object, got {type(record).__name__}", source=path, line=lineno)
        out.append(_Raw(record, line=lineno))
    return out


def _entries(path: Path, required: Sequence[str], labels_only: bool) -> List[_Raw]:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(f"cannot tell the manifest format from suffix {suffix or '(none)'!r} "
                            "(use .csv, .tsv, .jsonl or .json)", source=path)
    if suffix in (".csv", ".tsv") and not labels_only:
        return _csv(path, required)
    content = path.read_text(encoding="utf-8-sig")
    if suffix == ".jsonl" and not labels_only and not content.lstrip().startswith("["):
        return _json_lines(path, content)
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise ManifestError(f"invalid JSON: {error.msg}", source=path, line=error.lineno) from error
    if isinstance(data, Mapping):
        return _labels(path, content, data)
    if labels_only:
        raise ManifestError("expected a JSON object mapping file names to labels", source=path, line=1)
    if not isinstance(data, list):
        raise ManifestError("expected a JSON array of records or an object of file names", source=path)
    return _json_array(path, data)


def _audio(raw: _Raw, base: Path) -> Path:
    name = raw.name
    if name is None:
        key = next((c for c in AUDIO_COLUMNS if c in raw.fields), None)
        if key is None:
            raise ValueError(f"no audio column (one of {', '.join(AUDIO_COLUMNS)})")
        name = raw.fields[key]
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"audio path must be a non-empty string, got {name!r}")
    path = Path(name.strip())
    return (path if path.is_absolute() else base / path).resolve()


def read_audio_manifest(path: PathLike, parse: Optional[Callable[[ManifestRecord], T]] = None, *,
                        check_files: bool = True, required: Sequence[str] = (),
                        labels_only: bool = False) -> List[Any]:
    """The entries of an audio manifest (formats in the module docstring), in file order.

    Args:
        path: the manifest file.
        parse: turns each :class:`ManifestRecord` into the caller's item; a ``ValueError`` it raises
            becomes a :class:`ManifestError` naming the file and the entry's line (record, entry).
            ``None``: the records themselves.
        check_files: a listed recording that does not exist is an error.
        required: columns a CSV/TSV header must have besides the audio column (checked on line 1).
        labels_only: accept only a ``labels.json``-style mapping.

    Raises :class:`~speech_intent.errors.DataNotFoundError` when ``path`` is not a file and
    :class:`ManifestError` for a bad entry or a manifest that lists no recordings.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such manifest file", source=path)
    items: List[Any] = []
    for raw in _entries(path, required, labels_only):
        try:
            audio = _audio(raw, path.parent)
            if check_files and not audio.is_file():
                raise ValueError(f"audio file not found: {audio}")
            record = ManifestRecord(audio, raw.fields, path, line=raw.line, record=raw.record, name=raw.name)
            items.append(record if parse is None else parse(record))
        except ValueError as error:
            raise raw.error(path, str(error)) from error
    if not items:
        raise ManifestError("manifest lists no recordings", source=path)
    logger.info("read %d manifest entries from %s", len(items), path)
    return items


def is_audio_manifest(path: PathLike) -> bool:
    """True when ``path`` looks like an audio manifest rather than text training data: a
    ``labels.json``-style mapping, or a CSV/TSV/JSONL/JSON whose header or first record has an
    ``audio``/``file``/``path`` column. Whether its entries are valid is checked when it is read."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file() or suffix not in MANIFEST_SUFFIXES:
        return False
    try:
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
            return any(c in header for c in AUDIO_COLUMNS)
        with path.open(encoding="utf-8-sig") as handle:
            first = next((line for line in handle if line.strip()), "")
        if suffix == ".jsonl" and not first.lstrip().startswith("["):
            record = json.loads(first) if first else None
            return isinstance(record, Mapping) and any(c in record for c in AUDIO_COLUMNS)
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    if isinstance(data, Mapping):
        return bool(data) and all(isinstance(v, Mapping) for v in data.values())
    return (isinstance(data, list) and bool(data) and isinstance(data[0], Mapping)
            and any(c in data[0] for c in AUDIO_COLUMNS))

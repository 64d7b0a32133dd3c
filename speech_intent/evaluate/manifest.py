"""Audio evaluation manifests: which recording says what.

Formats read by :func:`read_manifest`:

- CSV/TSV with a header, or JSON Lines (or a ``.json`` array of records), with columns
  ``audio`` (or ``file`` / ``path``; relative paths are resolved against the manifest's folder),
  ``intent`` (empty / null = out of scope), optional ``slots`` (a JSON object name -> value;
  in CSV a JSON string) and optional ``text`` (the reference transcript).
- The Picovoice benchmark's ``labels.json``: ``{"file.wav": {"intent": ..., "slots": {...}}}``
  with the wavs next to it.

Every problem raises :class:`ManifestError` naming the file and the line (or entry).
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from ..errors import DataNotFoundError, ManifestError

logger = logging.getLogger(__name__)

AUDIO_COLUMNS = ("audio", "file", "path")
PathLike = Union[str, Path]

__all__ = ["ManifestError", "ManifestItem", "read_manifest", "read_labels_json", "is_audio_manifest"]


@dataclass(frozen=True)
class ManifestItem:
    """One labelled recording.

    Attributes:
        audio: absolute path of the recording.
        intent: the gold intent (``None`` = out of scope).
        slots: gold slot name -> canonical value.
        text: the reference transcript, when the manifest has one.
        line: the manifest line the item came from (``None`` when unknown).
    """

    audio: Path
    intent: Optional[str]
    slots: Dict[str, str] = field(default_factory=dict)
    text: Optional[str] = None
    line: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"audio": str(self.audio), "intent": self.intent, "slots": dict(self.slots), "text": self.text,
                "line": self.line}


def _slots(raw: Any) -> Dict[str, str]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"slots is not valid JSON ({error.msg})") from error
    if not isinstance(raw, Mapping):
        raise ValueError(f"slots must be a JSON object name -> value, got {type(raw).__name__}")
    out: Dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            raise ValueError(f"slot {name!r}: value must be a string, got {value!r}")
        out[str(name)] = value
    return out


def _item(record: Mapping[str, Any], base: Path, *, check_files: bool, line: Optional[int],
          audio: Optional[str] = None) -> ManifestItem:
    """Build an item from one parsed record; raises ValueError (callers add file and line)."""
    if audio is None:
        key = next((k for k in AUDIO_COLUMNS if k in record), None)
        if key is None:
            raise ValueError(f"no audio column (one of {', '.join(AUDIO_COLUMNS)})")
        audio = record[key]
    if not isinstance(audio, str) or not audio.strip():
        raise ValueError(f"audio path must be a non-empty string, got {audio!r}")
    path = Path(audio.strip())
    path = path if path.is_absolute() else base / path
    if check_files and not path.is_file():
        raise ValueError(f"audio file not found: {path}")
    if "intent" not in record:
        raise ValueError("missing 'intent'")
    intent = record["intent"]
    if intent == "":
        intent = None
    if intent is not None and not isinstance(intent, str):
        raise ValueError(f"intent must be a string or null, got {intent!r}")
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text must be a string, got {text!r}")
    return ManifestItem(path.resolve(), intent, _slots(record.get("slots")), text if text else None, line)


def _read_csv(path: Path, check_files: bool) -> List[ManifestItem]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    items: List[ManifestItem] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        fields = reader.fieldnames or []
        if not any(c in fields for c in AUDIO_COLUMNS) or "intent" not in fields:
            raise ManifestError(f"header {fields!r} needs an audio column (one of {', '.join(AUDIO_COLUMNS)}) "
                                "and 'intent'", source=path, line=1)
        for row in reader:
            try:
                if None in row or None in row.values():
                    raise ValueError(f"row does not have the header's {len(fields)} fields")
                items.append(_item(row, path.parent, check_files=check_files, line=reader.line_num))
            except ValueError as error:
                raise ManifestError(str(error), source=path, line=reader.line_num) from error
    return items


def _read_records(path: Path, content: str, check_files: bool) -> List[ManifestItem]:
    items: List[ManifestItem] = []
    if content.lstrip().startswith("["):
        try:
            records = json.loads(content)
        except json.JSONDecodeError as error:
            raise ManifestError(f"invalid JSON: {error.msg}", source=path, line=error.lineno) from error
        for number, record in enumerate(records, start=1):
            try:
                if not isinstance(record, Mapping):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                items.append(_item(record, path.parent, check_files=check_files, line=None))
            except ValueError as error:
                raise ManifestError(str(error), source=path, record=number) from error
        return items
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"invalid JSON: {error.msg}") from error
            if not isinstance(record, Mapping):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            items.append(_item(record, path.parent, check_files=check_files, line=lineno))
        except ValueError as error:
            raise ManifestError(str(error), source=path, line=lineno) from error
    return items


def _is_labels_mapping(data: Any) -> bool:
    return isinstance(data, Mapping) and bool(data) and all(isinstance(v, Mapping) for v in data.values())


def read_labels_json(path: PathLike, *, check_files: bool = True) -> List[ManifestItem]:
    """Read a benchmark ``labels.json`` (``{"file.wav": {"intent", "slots"}}``), in file order."""
    path = Path(path)
    content = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise ManifestError(f"invalid JSON: {error.msg}", source=path, line=error.lineno) from error
    if not isinstance(data, Mapping):
        raise ManifestError("expected a JSON object mapping file names to labels", source=path, line=1)
    items: List[ManifestItem] = []
    for name, label in data.items():
        line = content[: max(content.find(json.dumps(name)), 0)].count("\n") + 1
        try:
            if not isinstance(label, Mapping):
                raise ValueError(f"entry {name!r}: expected an object with 'intent', got {type(label).__name__}")
            items.append(_item(label, path.parent, check_files=check_files, line=line, audio=name))
        except ValueError as error:
            message = str(error) if str(error).startswith("entry ") else f"entry {name!r}: {error}"
            raise ManifestError(message, source=path, line=line) from error
    return items


def read_manifest(path: PathLike, *, check_files: bool = True) -> List[ManifestItem]:
    """Read an audio manifest (CSV/TSV, JSONL, JSON array or ``labels.json``) into items.

    Args:
        path: the manifest file.
        check_files: raise :class:`ManifestError` when a listed recording does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such manifest file", source=path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        items = _read_csv(path, check_files)
    elif suffix in (".jsonl", ".json"):
        content = path.read_text(encoding="utf-8-sig")
        if suffix == ".json" and content.lstrip().startswith("{"):
            items = read_labels_json(path, check_files=check_files)
        else:
            items = _read_records(path, content, check_files)
    else:
        raise ManifestError(f"cannot tell the manifest format from suffix {suffix or '(none)'!r} "
                            "(use .csv, .tsv, .jsonl or .json)", source=path)
    if not items:
        raise ManifestError("manifest lists no recordings", source=path)
    logger.info("read %d manifest items from %s", len(items), path)
    return items


def is_audio_manifest(path: PathLike) -> bool:
    """True when ``path`` looks like an audio manifest rather than text training data.

    A ``labels.json``-style mapping, or a CSV/TSV/JSONL/JSON whose header or first record
    has an ``audio``/``file``/``path`` column.
    """
    path = Path(path)
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
            return any(c in header for c in AUDIO_COLUMNS)
        if suffix == ".jsonl":
            with path.open(encoding="utf-8-sig") as handle:
                first = next((line for line in handle if line.strip()), "")
            record = json.loads(first) if first else None
            return isinstance(record, Mapping) and any(c in record for c in AUDIO_COLUMNS)
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            if _is_labels_mapping(data):
                return True
            return (isinstance(data, list) and bool(data) and isinstance(data[0], Mapping)
                    and any(c in data[0] for c in AUDIO_COLUMNS))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False

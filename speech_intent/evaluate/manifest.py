"""Audio evaluation manifests: which recording says what.

Formats read by :func:`read_manifest`:

- CSV/TSV with a header, or JSON Lines (or a ``.json`` array of records), with columns
  ``audio`` (or ``file`` / ``path``; relative paths are resolved against the manifest's folder),
  ``intent`` (empty / null = out of scope), optional ``slots`` (a JSON object name -> value;
  in CSV a JSON string) and optional ``text`` (the reference transcript).
- The Picovoice benchmark's ``labels.json``: ``{"file.wav": {"intent": ..., "slots": {...}}}``
  with the wavs next to it.

Every problem raises :class:`ManifestError` naming the file and the line (or entry). The files are
read by :func:`speech_intent.data.manifest.read_audio_manifest` (shared with ASR training); this
module gives the columns their evaluation meaning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from ..data.manifest import AUDIO_COLUMNS, ManifestRecord, is_audio_manifest, read_audio_manifest
from ..errors import ManifestError

PathLike = Union[str, Path]

#: The columns that hold an item's labels; every other column is kept in ``ManifestItem.columns``.
LABEL_COLUMNS = AUDIO_COLUMNS + ("intent", "slots", "text")

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
        columns: the manifest's other columns (speaker, gender, noise condition, ...) as text, for
            per-group evaluation (:mod:`speech_intent.evaluate.groups`).
    """

    audio: Path
    intent: Optional[str]
    slots: Dict[str, str] = field(default_factory=dict)
    text: Optional[str] = None
    line: Optional[int] = None
    columns: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"audio": str(self.audio), "intent": self.intent, "slots": dict(self.slots), "text": self.text,
                "line": self.line, "columns": dict(self.columns)}


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


def _item(record: ManifestRecord) -> ManifestItem:
    """An item from one manifest record; raises ValueError (the reader adds file and line)."""
    fields = record.fields
    if "intent" not in fields:
        raise ValueError("missing 'intent'")
    intent = fields["intent"]
    if intent == "":
        intent = None
    if intent is not None and not isinstance(intent, str):
        raise ValueError(f"intent must be a string or null, got {intent!r}")
    text = fields.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"text must be a string, got {text!r}")
    columns = {str(k): str(v) for k, v in fields.items()
               if k not in LABEL_COLUMNS and v is not None and not isinstance(v, (dict, list))}
    return ManifestItem(record.audio, intent, _slots(fields.get("slots")), text if text else None, record.line,
                        columns)


def read_labels_json(path: PathLike, *, check_files: bool = True) -> List[ManifestItem]:
    """Read a benchmark ``labels.json`` (``{"file.wav": {"intent", "slots"}}``), in file order."""
    return read_audio_manifest(path, _item, check_files=check_files, labels_only=True)


def read_manifest(path: PathLike, *, check_files: bool = True) -> List[ManifestItem]:
    """Read an audio manifest (CSV/TSV, JSONL, JSON array or ``labels.json``) into items.

    Args:
        path: the manifest file.
        check_files: raise :class:`ManifestError` when a listed recording does not exist.
    """
    return read_audio_manifest(path, _item, check_files=check_files, required=("intent",))

"""Training-data loading: one :class:`Example` type, many on-disk formats.

``load_examples`` picks the reader from the path (or ``format=``): a directory with
``seq.in`` -> BIO; ``.csv``/``.tsv`` -> tabular; ``.jsonl``/``.json`` -> JSON Lines;
``.yaml``/``.yml`` -> grammar when it has a top-level ``context:``, else Rasa NLU.
Audio manifests (recordings and their labels or transcripts) are read by :mod:`.manifest`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import DataNotFoundError
from ..slots import SlotSpan
from .bio import read_bio, to_bio
from .examples import DataFormatError, Example
from .grammar import expand_grammar, grammar_slot_values, grammar_vocabulary
from .manifest import ManifestRecord, is_audio_manifest, read_audio_manifest
from .rasa import parse_markup, read_rasa, to_markup
from .tabular import read_csv, read_jsonl, save_jsonl

logger = logging.getLogger(__name__)

__all__ = [
    "DataFormatError", "Example", "SlotSpan", "load_examples", "save_jsonl", "detect_format",
    "read_bio", "to_bio", "read_csv", "read_jsonl", "read_rasa", "parse_markup", "to_markup",
    "expand_grammar", "grammar_slot_values", "grammar_vocabulary", "ManifestRecord", "read_audio_manifest",
    "is_audio_manifest",
]

_READERS: dict[str, Callable[..., list[Example]]] = {
    "bio": read_bio,
    "csv": read_csv,
    "tsv": read_csv,
    "jsonl": read_jsonl,
    "rasa": read_rasa,
    "grammar": expand_grammar,
}
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def detect_format(path: str | Path) -> str:
    """Name of the reader for ``path`` (a key of the format table); DataFormatError if unknown."""
    path = Path(path)
    if path.is_dir():
        if (path / "seq.in").is_file():
            return "bio"
        raise DataFormatError("directory has no seq.in (not a BIO/JointBERT folder)", source=path)
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DataFormatError.from_yaml(exc, path) from exc
        return "grammar" if isinstance(data, dict) and "context" in data else "rasa"
    raise DataFormatError(f"cannot tell the data format from suffix {suffix or '(none)'!r}", source=path)


def load_examples(path: str | Path, format: str | None = None, **kw: Any) -> list[Example]:
    """Load labelled examples from ``path``; ``kw`` goes to the reader (e.g. ``max_examples``)."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError("no such data file or directory", source=path)
    name = (format or detect_format(path)).lower()
    if name not in _READERS:
        raise DataFormatError(f"unknown format {name!r}; choose from {sorted(_READERS)}", source=path)
    if name == "tsv":
        kw.setdefault("delimiter", "\t")
    examples = _READERS[name](path, **kw)
    logger.debug("loaded %d %s examples from %s", len(examples), name, path)
    return examples

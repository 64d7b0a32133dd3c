"""CSV/TSV and JSON Lines readers, plus the JSONL writer."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..slots import SlotSpan, span_from_dict, spans_from_values
from .examples import DataFormatError, Example

logger = logging.getLogger(__name__)

__all__ = ["read_csv", "read_jsonl", "save_jsonl", "example_from_record"]


def _slots_from_json(text: str, raw: Any) -> tuple[SlotSpan, ...]:
    """Build spans from a JSON slot description (list of dicts, or name -> value mapping)."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        pairs: list[tuple[str, str]] = []
        for name, value in raw.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if not isinstance(v, str):
                    raise ValueError(f"slot {name!r}: value must be a string, got {v!r}")
                pairs.append((name, v))
        return spans_from_values(text, pairs)
    if not isinstance(raw, list):
        raise ValueError(f"slots must be a list or a mapping, got {type(raw).__name__}")
    positioned: list[SlotSpan] = []
    by_value: list[tuple[str, str]] = []
    for item in raw:
        if not isinstance(item, Mapping) or "name" not in item:
            raise ValueError(f"each slot needs a 'name': {item!r}")
        if "start" in item or "end" in item:
            positioned.append(span_from_dict(text, item))
        elif isinstance(item.get("value"), str):
            by_value.append((str(item["name"]), item["value"]))
        else:
            raise ValueError(f"slot needs start/end or a string value: {item!r}")
    if by_value:
        # Place value-only slots in text the positioned ones leave free.
        masked = list(text)
        for span in positioned:
            masked[span.start : span.end] = "\0" * (span.end - span.start)
        positioned.extend(spans_from_values("".join(masked), by_value))
    return tuple(positioned)


def example_from_record(record: Mapping[str, Any]) -> Example:
    """Build an Example from a parsed ``{"text", "intent", "slots"}`` record.

    Raises ``ValueError`` when the record is invalid; callers add file and line context.
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("missing or non-string 'text'")
    intent = record.get("intent")
    if isinstance(intent, str):  # "a, b" in a CSV: the intent cell is " b"
        intent = intent.strip() or None
    if intent is not None and not isinstance(intent, str):
        raise ValueError(f"intent must be a string or null, got {intent!r}")
    return Example(text, intent, _slots_from_json(text, record.get("slots")))


def read_csv(path: str | Path, delimiter: str | None = None) -> list[Example]:
    """Read a CSV (or TSV, by extension or ``delimiter``) file with a header row.

    Columns: ``text``, ``intent`` and optionally ``slots`` (JSON list of ``{name, start, end}``
    or ``{name, value}`` objects, or a ``{name: value}`` object). Empty intent means ``None``.
    """
    path = Path(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    examples: list[Example] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        fields = reader.fieldnames or []
        missing = {"text", "intent"} - set(fields)
        if missing:
            raise DataFormatError(
                f"header {fields!r} lacks column(s) {sorted(missing)}", source=path, line=1
            )
        for number, row in enumerate(reader, start=1):
            try:
                if None in row:
                    raise ValueError(f"row has more fields than the header ({len(fields)})")
                if None in row.values():
                    raise ValueError(f"row has fewer fields than the header ({len(fields)})")
                slots_cell = (row.get("slots") or "").strip()
                record = {
                    "text": row["text"],
                    "intent": row["intent"],
                    "slots": json.loads(slots_cell) if slots_cell else None,
                }
                examples.append(example_from_record(record))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise DataFormatError(str(exc), source=path, line=reader.line_num, record=number) from exc
    logger.info("read %d examples from %s", len(examples), path)
    return examples


def read_jsonl(path: str | Path) -> list[Example]:
    """Read JSON Lines (one record per line), or a ``.json`` file holding one array of records."""
    path = Path(path)
    content = path.read_text(encoding="utf-8-sig")
    examples: list[Example] = []
    if path.suffix.lower() == ".json" and content.lstrip().startswith("["):
        try:
            records = json.loads(content)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", source=path, line=exc.lineno) from exc
        for number, record in enumerate(records, start=1):
            try:
                examples.append(example_from_record(record))
            except ValueError as exc:
                raise DataFormatError(str(exc), source=path, record=number) from exc
    else:
        for lineno, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                examples.append(example_from_record(json.loads(line)))
            except ValueError as exc:
                raise DataFormatError(str(exc), source=path, line=lineno) from exc
    logger.info("read %d examples from %s", len(examples), path)
    return examples


def save_jsonl(examples: Iterable[Example], path: str | Path) -> Path:
    """Write examples as UTF-8 JSON Lines (readable by :func:`read_jsonl`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for example in examples:
            fh.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    logger.info("wrote %d examples to %s", count, path)
    return path

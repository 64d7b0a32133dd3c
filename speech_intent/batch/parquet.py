"""Results as Parquet: a finished JSONL result file (one row per input) -> one typed Parquet file.

The columns are the JSONL's keys (``PipelineResult.to_dict()`` plus ``file_key``, and ``worker``
when the rows carry it), typed: ``top_k`` is a list of ``{intent, confidence}``, ``slots`` a
string -> string map, ``slot_spans`` a list of ``{name, start, end, value, raw}``. The JSONL stays the
resumable record while a run goes on; the Parquet file is written from it once the run is complete,
streamed in chunks (memory does not grow with the number of rows) and replaced atomically. When the
JSONL holds several rows for a path (written without resume), the last one is taken, as a reader of
the JSONL would.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

from ..errors import ConfigError

CHUNK_ROWS = 4096


def result_schema(worker: bool = False):
    """The Arrow schema of a result row (``worker``: add the debug column naming the worker)."""
    import pyarrow as pa

    fields = [
        ("path", pa.string()),
        ("transcript", pa.string()),
        ("transcript_confidence", pa.float64()),
        ("duration", pa.float64()),
        ("in_grammar", pa.bool_()),
        ("grammar_margin", pa.float64()),
        ("text", pa.string()),
        ("intent", pa.string()),
        ("confidence", pa.float64()),
        ("top_k", pa.list_(pa.struct([("intent", pa.string()), ("confidence", pa.float64())]))),
        ("slots", pa.map_(pa.string(), pa.string())),
        ("slot_spans", pa.list_(pa.struct([("name", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
                                           ("value", pa.string()), ("raw", pa.string())]))),
        ("error", pa.string()),
        ("file_key", pa.string()),
    ]
    if worker:
        fields.append(("worker", pa.string()))
    return pa.schema(fields)


def _last_row_per_path(jsonl: Path) -> Dict[str, int]:
    """Line number of the last parseable row of each path (only ints kept: flat in memory per row)."""
    last: Dict[str, int] = {}
    with open(jsonl, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle):
            row = _parse(line)
            if row is not None and isinstance(row.get("path"), str):
                last[row["path"]] = number
    return last


def _parse(line: str) -> Optional[dict]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:  # a torn last line: the JSONL reader ignores it too
        return None
    return row if isinstance(row, dict) else None


def _rows(jsonl: Path, keep: Dict[str, int]) -> Iterator[dict]:
    with open(jsonl, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle):
            row = _parse(line)
            if row is not None and keep.get(row.get("path")) == number:  # type: ignore[arg-type]
                yield row


def jsonl_to_parquet(jsonl: Union[str, Path], parquet: Union[str, Path]) -> int:
    """Write ``parquet`` from the result rows in ``jsonl`` (last row per path); returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl, parquet = Path(jsonl), Path(parquet)
    if not jsonl.is_file():
        raise ConfigError(f"{jsonl}: no JSONL results to convert to Parquet")
    keep = _last_row_per_path(jsonl)
    with_worker = any("worker" in row for row in _first_rows(jsonl, 1))
    schema = result_schema(worker=with_worker)
    parquet.parent.mkdir(parents=True, exist_ok=True)
    tmp = parquet.with_name(parquet.name + ".tmp")
    count = 0
    with pq.ParquetWriter(tmp, schema) as out:
        chunk: List[dict] = []
        for row in _rows(jsonl, keep):
            chunk.append(row)
            if len(chunk) == CHUNK_ROWS:
                out.write_table(pa.Table.from_pylist([_typed(r) for r in chunk], schema=schema))
                count, chunk = count + len(chunk), []
        if chunk or count == 0:
            out.write_table(pa.Table.from_pylist([_typed(r) for r in chunk], schema=schema))
            count += len(chunk)
    os.replace(tmp, parquet)
    return count


def _first_rows(jsonl: Path, n: int) -> List[dict]:
    rows: List[dict] = []
    with open(jsonl, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            row = _parse(line)
            if row is not None:
                rows.append(row)
            if len(rows) >= n:
                break
    return rows


def _typed(row: dict) -> dict:
    """``slots`` as (key, value) pairs for the Arrow map type; everything else as it is."""
    out = dict(row)
    slots = row.get("slots") or {}
    out["slots"] = [(str(k), None if v is None else str(v)) for k, v in slots.items()]
    return out

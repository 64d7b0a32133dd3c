"""Input discovery for batch jobs, and resumable result files (JSONL / CSV)."""
from __future__ import annotations

import csv
import glob
import json
import logging
import os
from pathlib import Path
from typing import IO, Dict, Iterable, List, Optional, Set, Tuple

from .audio import AUDIO_EXTENSIONS
from .results import PipelineResult

logger = logging.getLogger(__name__)

CSV_FIELDS = ["path", "transcript", "intent", "confidence", "slots", "transcript_confidence", "duration", "error",
              "file_key"]


def expand_inputs(items: Iterable[str], extensions: Tuple[str, ...] = AUDIO_EXTENSIONS) -> List[str]:
    """Files as given, directories searched recursively for audio files, globs expanded.

    A path that does not exist is kept (it becomes a per-file error), never dropped.
    Order: as given, each directory and glob sorted; duplicates removed.
    """
    seen: Set[str] = set()
    out: List[str] = []

    def add(path: str) -> None:
        if path not in seen:
            seen.add(path)
            out.append(path)

    for item in items:
        path = Path(item)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions):
                add(str(found))
        elif not path.exists() and glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                logger.warning("pattern %s matched no files", item)
            for match in matches:
                if Path(match).is_file():
                    add(match)
        else:
            add(str(path))
    return out


def file_key(path: str) -> Optional[str]:
    """``size:mtime_ns`` of a file (changes when the file does), or ``None`` if it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class ResultWriter:
    """Append results to a JSONL or CSV file, one flushed line per finished input.

    With ``resume=True`` an existing file is read first; inputs already in it
    (same path and same ``file_key``) are reported by :meth:`is_done` so a
    rerun skips them. Errors are recorded too, and retried on the next run.
    """

    def __init__(self, path: Optional[str], fmt: Optional[str] = None, *, resume: bool = True,
                 stream: Optional[IO[str]] = None) -> None:
        self.path = path
        self.format = fmt or ("csv" if path and path.lower().endswith(".csv") else "jsonl")
        self.done: Dict[str, str] = self._read_done() if (path and resume) else {}
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            new = not Path(path).exists() or Path(path).stat().st_size == 0 or not resume
            self._file: IO[str] = open(path, "a" if resume else "w", encoding="utf-8", newline="")
            if resume and not new and not _ends_with_newline(path):
                self._file.write("\n")  # a line cut short by a kill: end it so the next row stays whole
        else:
            import sys

            new = True
            self._file = stream or sys.stdout
        self._csv = csv.DictWriter(self._file, fieldnames=CSV_FIELDS) if self.format == "csv" else None
        if self._csv is not None and new:
            self._csv.writeheader()

    def _read_done(self) -> Dict[str, str]:
        done: Dict[str, str] = {}
        if not self.path or not Path(self.path).is_file():
            return done
        with open(self.path, encoding="utf-8", newline="") as handle:
            rows: Iterable[dict]
            if self.format == "csv":
                rows = csv.DictReader(handle)
            else:
                rows = (_parse_json_line(line) for line in handle)
            for row in rows:
                if row and not row.get("error") and row.get("file_key"):
                    done[row["path"]] = row["file_key"]
        return done

    def is_done(self, path: str) -> bool:
        return path in self.done and self.done[path] == file_key(path)

    def write(self, result: PipelineResult) -> None:
        row = result.to_dict()
        row["file_key"] = file_key(result.path)
        if self._csv is not None:
            flat = {k: row.get(k) for k in CSV_FIELDS}
            flat["slots"] = json.dumps(row["slots"], ensure_ascii=False) if row["slots"] else ""
            self._csv.writerow(flat)
        else:
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self.path:
            self._file.close()


def _parse_json_line(line: str) -> Optional[dict]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:  # a line cut short by a crash: ignore it, the file is retried
        return None
    return value if isinstance(value, dict) else None


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"

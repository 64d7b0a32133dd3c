"""Resumable result files: one JSONL or CSV row per finished input, flushed as it finishes."""
from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

from ..errors import ConfigError, DataFormatError
from ..results import PipelineResult

logger = logging.getLogger(__name__)

CSV_FIELDS = ["path", "transcript", "intent", "confidence", "slots", "transcript_confidence", "duration", "error",
              "in_grammar", "file_key"]
#: The extra columns of a segmented output (``predict --segment``: one row per utterance).
SEGMENT_FIELDS = ["segment", "start", "end", "last"]

Key = Tuple[str, Optional[int]]  # (path, segment): one row each
#: Redacts a row (``speech_intent.privacy.Redactor.row``): returns a copy without personal data.
RedactRow = Callable[[Dict[str, object]], Dict[str, object]]


def file_key(path: str) -> Optional[str]:
    """``size:mtime_ns`` of a file (changes when the file does), or ``None`` if it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def result_row(result: PipelineResult, key: Optional[str] = None) -> Dict[str, object]:
    """The row written for ``result``: ``result.to_dict()`` and its input's ``file_key`` (``key``: taken
    before the input was read; default: taken now)."""
    row = result.to_dict()
    row["file_key"] = file_key(result.path) if key is None else key
    return row


class ResultWriter:
    """Append results to a JSONL or CSV file, one flushed line per finished input.

    Resuming (``resume=True``, the default) reads an existing file first:

    - a partial last line (a run killed mid-write) is cut off;
    - :meth:`is_done` is true for an input whose latest row has no ``error`` and
      the same ``file_key`` (size and mtime) as the file now: a rerun skips it;
    - :meth:`pending` lists the inputs still to process *and* removes their old
      rows (failed attempts, rows of files changed since) from the file, rewriting
      it atomically, so after a rerun every input has exactly one row: its latest
      outcome. Rows of paths that are not part of the run are kept untouched.

    ``resume=False`` (``--overwrite``) leaves an existing file as it is until :meth:`pending`
    (or the first :meth:`write`) starts it afresh.

    With ``segments=True`` (long recordings split into utterances, ``predict --segment``)
    rows are keyed by ``(path, segment)`` and CSV has the :data:`SEGMENT_FIELDS` too. A file
    is done when it has its ``last`` row and a successful row for every utterance up to it,
    all with its current ``file_key``; otherwise :meth:`pending` keeps the rows of the
    utterances that succeeded, removes the others, and :meth:`done_segments` tells the rerun
    which utterances to skip, so every utterance ends up with exactly one row.

    ``extra_fields``: more CSV columns after those (e.g. the affect stages' ``sentiment``, ``emotion_score``).

    ``redact`` (e.g. :meth:`speech_intent.privacy.Redactor.row`): every row is redacted before it is
    written, and resuming rewrites the rows kept from an earlier run redacted too, so the file never
    holds a raw transcript or personal slot value (rows of other runs included).

    Readers of a file that may have been written without :meth:`pending` (or by an
    interrupted run) should take the last row per ``path`` (per ``(path, segment)`` when
    segmented): rows are only ever appended in processing order, so the last one is the
    latest outcome.
    """

    def __init__(self, path: Optional[str], fmt: Optional[str] = None, *, resume: bool = True,
                 stream: Optional[IO[str]] = None, segments: bool = False,
                 redact: Optional[RedactRow] = None, extra_fields: Sequence[str] = ()) -> None:
        if path and Path(path).is_dir():  # before any model loads: nothing could be written there
            raise ConfigError(f"the output {path!r} is a directory; give a file (e.g. {os.path.join(path, 'results.jsonl')})")
        self.path = path
        self.format = fmt or ("csv" if path and path.lower().endswith(".csv") else "jsonl")
        self.resume = bool(path and resume)
        self.segments = segments
        self.redact = redact
        self.fields = (CSV_FIELDS + SEGMENT_FIELDS if segments else CSV_FIELDS) + list(extra_fields)
        self.done: Dict[str, str] = {}  # path -> file_key, whole-file rows that succeeded
        self._latest: Dict[Key, int] = {}  # (path, segment) -> index of its last row in the file
        self._outcome: Dict[Key, _Outcome] = {}  # (path, segment) -> what its last row says
        self._keys: Dict[str, Set[Key]] = {}  # path -> its keys
        self._rows = self._unparsed = 0
        self._stream = stream
        self._file: Optional[IO[str]] = None
        self._csv: Optional[csv.DictWriter] = None
        if self.resume and Path(path).is_file():  # type: ignore[arg-type]
            _cut_partial_last_line(path)  # type: ignore[arg-type]
            self._scan()

    # ------------------------------------------------------------------ resume
    def _records(self) -> Iterator[Tuple[Optional[dict], str]]:
        """Each row of the existing file as ``(parsed or None, raw line)``."""
        assert self.path is not None
        with open(self.path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            if self.format == "csv":
                reader = csv.DictReader(handle)
                if reader.fieldnames is not None and list(reader.fieldnames) != self.fields:
                    raise DataFormatError(f"cannot resume: its columns {reader.fieldnames} differ from {self.fields} "
                                          "(use a new output file or --overwrite)", source=self.path)
                try:
                    for row in reader:
                        complete = None not in row and all(v is not None for v in row.values())
                        yield (row if complete else None), ""
                except csv.Error as error:
                    raise DataFormatError(f"cannot resume: unreadable CSV ({error})", source=self.path,
                                          line=reader.line_num) from error
            else:
                for line in handle:
                    if line.strip():
                        yield _parse_json_line(line), line

    def _scan(self) -> None:
        """Latest outcome per ``(path, segment)``; ``done`` holds paths whose latest whole-file row succeeded."""
        other = 0  # rows that parse but are not results (no path)
        for index, (row, _) in enumerate(self._records()):
            if row is None:
                self._unparsed += 1
                continue
            path = row.get("path")
            if not isinstance(path, str):
                other += 1
                continue
            self._rows += 1
            key = (path, _segment_of(row))
            self._latest[key] = index
            self._keys.setdefault(path, set()).add(key)
            outcome = _Outcome.of(row)
            self._outcome[key] = outcome
            if outcome.segmented or not outcome.ok:
                self.done.pop(path, None)
            else:
                self.done[path] = str(outcome.file_key)
        if (self._unparsed or other) and not self._rows and self.format == "jsonl":  # someone else's file
            raise DataFormatError("cannot resume: not a JSONL results file (no line is a row with a path; use a "
                                  "new output file or --overwrite)", source=self.path)
        if self._unparsed:
            logger.warning("%s: %d unreadable row(s) ignored", self.path, self._unparsed)

    def is_done(self, path: str) -> bool:
        """True if ``path``'s rows are complete and succeeded and the file has not changed since."""
        if not self.segments:
            return path in self.done and self.done[path] == file_key(path)
        rows = {segment: self._outcome[(p, segment)] for p, segment in self._keys.get(path, ())}
        current = file_key(path)
        if not rows or any(not r.segmented or not r.ok or r.file_key != current for r in rows.values()):
            return False
        numbered = sorted(segment for segment in rows if segment is not None)
        lasts = [segment for segment, r in rows.items() if r.last]
        if None in rows:  # a whole-file row: no speech in it
            return not numbered and lasts == [None]
        return numbered == list(range(len(numbered))) and lasts == numbered[-1:]

    def done_segments(self, path: str) -> Set[int]:
        """The utterances of ``path`` with a successful row for the file as it is now (segmented outputs)."""
        current = file_key(path)
        return {segment for p, segment in self._keys.get(path, ()) if segment is not None
                and (r := self._outcome[(p, segment)]).segmented and r.ok and r.file_key == current}

    def pending(self, files: Iterable[str]) -> List[str]:
        """The inputs still to process; their superseded rows are removed from the output.

        After this, appending the new results leaves exactly one row per input (per utterance
        when segmented: the rows of :meth:`done_segments` are kept, the rerun skips them).
        """
        todo = [f for f in files if not self.is_done(f)]
        drop: Set[Key] = set()
        for path in todo:
            keep = self.done_segments(path) if self.segments else set()
            drop.update(key for key in self._keys.get(path, ()) if key[1] not in keep)
        if self.resume and (drop or self._unparsed or self._rows > len(self._latest)
                            or (self.redact is not None and self._rows)):  # kept rows are rewritten redacted
            self._compact(drop)
        elif self.path and not self.resume:
            self._open()  # --overwrite: start the file afresh now (not before: models that fail to load leave it)
        return todo

    def _compact(self, drop: Set[Key]) -> None:
        """Rewrite the file without the rows of ``drop``, unreadable rows and superseded duplicates (atomic)."""
        assert self.path is not None
        target = os.path.realpath(self.path)  # a symlinked output: rewrite the file it points to, keep the link
        tmp = f"{target}.tmp"
        kept = dropped = 0
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=self.fields) if self.format == "csv" else None
            if writer is not None:
                writer.writeheader()
            for index, (row, line) in enumerate(self._records()):
                path = row.get("path") if row is not None else None
                key = (path, _segment_of(row)) if row is not None else None
                keep = row is not None and (not isinstance(path, str)
                                            or (key not in drop and self._latest.get(key) == index))
                if not keep:
                    dropped += 1
                    continue
                kept += 1
                if self.redact is not None and isinstance(path, str):
                    row = self._redact_stored(row)  # type: ignore[arg-type]
                    line = json.dumps(row, ensure_ascii=False)
                if writer is not None:
                    writer.writerow(row)
                else:
                    out.write(line if line.endswith("\n") else line + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        logger.info("%s: removed %d superseded row(s), kept %d", self.path, dropped, kept)
        for key in drop:
            self._latest.pop(key, None)
            self._outcome.pop(key, None)
            self._keys.get(key[0], set()).discard(key)
            self.done.pop(key[0], None)
        self._rows, self._unparsed = len(self._latest), 0

    # ------------------------------------------------------------------ output
    def _open(self) -> IO[str]:
        if self._file is not None:
            return self._file
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            new = not self.resume or not Path(self.path).exists() or Path(self.path).stat().st_size == 0
            self._file = open(self.path, "a" if self.resume else "w", encoding="utf-8", errors="surrogateescape",
                              newline="")
        else:
            new = True
            self._file = self._stream or sys.stdout
        if self.format == "csv":
            self._csv = csv.DictWriter(self._file, fieldnames=self.fields)
            if new:
                self._csv.writeheader()
        return self._file

    def write(self, result: PipelineResult, key: Optional[str] = None) -> None:
        """Append one result (with its ``file_key``) and flush, so a kill loses at most this line.

        ``key``: the input's :func:`file_key` taken before it was read (default: taken now), so
        that a file changed while it was processed is not marked done as it is now."""
        self.write_row(result_row(result, key))

    def write_row(self, row: Dict[str, object]) -> None:
        """Append one row already made (``PipelineResult.to_dict()`` plus ``file_key``, e.g. by a
        remote worker) and flush. CSV keeps only its columns (:data:`CSV_FIELDS`, plus
        :data:`SEGMENT_FIELDS` when segmented); JSONL keeps every key."""
        if self.redact is not None:
            row = self.redact(row)
        handle = self._open()
        try:
            self._write(handle, row, ensure_ascii=False)
        except UnicodeEncodeError:  # a non-UTF-8 file name, to a stream that refuses it (stdout): escaped
            self._write(handle, row, ensure_ascii=True)
        handle.flush()

    def _write(self, handle: IO[str], row: Dict[str, object], ensure_ascii: bool) -> None:
        if self._csv is not None:
            flat = {k: row.get(k) for k in self.fields}
            flat["slots"] = json.dumps(row["slots"], ensure_ascii=ensure_ascii) if row["slots"] else ""
            if ensure_ascii:  # CSV cannot escape: undecodable bytes become U+FFFD
                flat = {k: _replace_undecodable(v) if isinstance(v, str) else v for k, v in flat.items()}
            self._csv.writerow(flat)
        else:
            handle.write(json.dumps(row, ensure_ascii=ensure_ascii) + "\n")

    def _redact_stored(self, row: Dict[str, object]) -> Dict[str, object]:
        """A row read back from the file, redacted (CSV keeps its slots as JSON text)."""
        assert self.redact is not None
        if self.format != "csv":
            return self.redact(row)
        slots = row.get("slots")
        try:
            parsed = json.loads(slots) if isinstance(slots, str) and slots else {}
        except json.JSONDecodeError:
            parsed = {"slots": slots}
        out = self.redact({**row, "slots": parsed if isinstance(parsed, dict) else {"slots": slots}})
        out["slots"] = json.dumps(out["slots"], ensure_ascii=False) if out.get("slots") else ""
        return out

    def close(self) -> None:
        """Close the output file (a stream given by the caller is left open)."""
        if self.path and self._file is not None:
            self._file.close()
        self._file = None


class _Outcome(NamedTuple):
    """What a row says about its input: whether it is a segmented row, succeeded, is its file's last."""

    segmented: bool
    ok: bool
    last: bool
    file_key: Optional[str]

    @classmethod
    def of(cls, row: dict) -> "_Outcome":
        last = row.get("last")  # JSON: true / false / absent; CSV: "True" / "False" / ""
        key = row.get("file_key") or None
        return cls(last not in (None, ""), not row.get("error") and key is not None,
                   last is True or str(last).lower() == "true", None if key is None else str(key))


def _replace_undecodable(text: str) -> str:
    """``text`` with the bytes a non-UTF-8 file name was decoded with (surrogate escapes) replaced by U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _segment_of(row: dict) -> Optional[int]:
    """A row's utterance number (``None``: a whole-file row)."""
    value = row.get("segment")
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_json_line(line: str) -> Optional[dict]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:  # a line cut short by a crash: ignore it, the file is retried
        return None
    return value if isinstance(value, dict) else None


def _cut_partial_last_line(path: str) -> None:
    """Truncate a last line without its newline: a run killed mid-write left it incomplete."""
    size = os.path.getsize(path)
    if size == 0:
        return
    with open(path, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        end = size
        while end > 0:  # search backwards for the last newline
            start = max(0, end - 65536)
            handle.seek(start)
            block = handle.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        handle.truncate(end)
    logger.warning("%s: removed a partial last line (%d bytes) left by an interrupted run", path, size - end)

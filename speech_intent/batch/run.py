"""The one resumable run loop of a batch job, whichever engine produces the rows.

:func:`run_batch` opens the result file (:class:`~speech_intent.batch.writer.ResultWriter`), starts the
engine (loads the models, reaches the cluster) only when some input is not done yet and before the file
changes, drops the superseded rows of the inputs to redo, then writes each row as the engine hands it
over (flushed: a killed run loses at most that row) and counts what happened. Ctrl-C ends the run
resumably: the rows written stay, and the same command finishes the rest. Once every input has its row,
a JSONL output can also be written as Parquet.

An engine (:class:`Engine`) turns the inputs to do into rows, grouped by input: :class:`LocalEngine`
(this process; ``vad``: each file split into utterances, one row each) and
:class:`~speech_intent.batch.ray_runner.RayEngine` (a pool of Ray actors).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Tuple

from ..errors import ConfigError
from .writer import RedactRow, ResultWriter, file_key, result_row

if TYPE_CHECKING:  # the pipeline (torch, the model libraries) is loaded by the engine only when a run needs it
    from ..pipeline import SpeechIntentPipeline
    from ..vad import VADOptions

#: An input's rows: ``(path as given, its rows)``; one row for a whole file, one per utterance when segmented.
Rows = Tuple[str, Iterable[Dict[str, object]]]


class Engine(Protocol):
    """What runs the inputs of a batch job."""

    def start(self) -> None:
        """Get ready to run (load the models, reach the cluster); called once, only if some input is to do."""

    def results(self, todo: List[str], writer: ResultWriter) -> Iterator[Rows]:
        """Each input of ``todo`` with its rows (``PipelineResult.to_dict()`` plus ``file_key``), as they finish."""

    def stop(self) -> None:
        """Release what :meth:`start` took (called after a started run, however it ended)."""


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        done / failed: inputs processed in this run that succeeded / got an error row (for a segmented
            file: an error row for one of its utterances or for the file).
        skipped: inputs done by an earlier run (unchanged since).
        todo: inputs this run set out to process.
        seconds: wall time from the first input to the last row.
        audio_seconds: audio of the inputs done (of a segmented file: up to its last utterance).
        utterances: rows of utterances written (segmented runs; ``None`` otherwise).
        interrupted: stopped by Ctrl-C; rerunning the same command finishes the rest.
        parquet: the Parquet file written, if any.
    """

    done: int = 0
    skipped: int = 0
    failed: int = 0
    todo: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    utterances: Optional[int] = None
    interrupted: bool = False
    parquet: Optional[str] = None

    @property
    def not_processed(self) -> int:
        """Inputs of ``todo`` without a row (those an interrupted run did not reach)."""
        return self.todo - self.done - self.failed


def format_summary(summary: RunSummary) -> str:
    """``done: N, skipped: N, failed: N[, utterances: N] (S s[, Rx real time])[; parquet: P][; interrupted...]``."""
    rtf = (f", {summary.audio_seconds / summary.seconds:.1f}x real time"
           if summary.seconds > 0 and summary.audio_seconds else "")
    counts = f", utterances: {summary.utterances}" if summary.utterances is not None else ""
    where = f"; parquet: {summary.parquet}" if summary.parquet else ""
    note = (f"; interrupted, {summary.not_processed} not processed: rerun to resume"
            if summary.interrupted else "")
    return (f"done: {summary.done}, skipped: {summary.skipped}, failed: {summary.failed}{counts} "
            f"({summary.seconds:.1f} s{rtf}){where}{note}")


def run_batch(files: Sequence[str], engine: Engine, output: Optional[str], *, fmt: Optional[str] = None,
              overwrite: bool = False, segments: bool = False, parquet: Optional[str] = None,
              redact: Optional[RedactRow] = None, extra_fields: Sequence[str] = ()) -> RunSummary:
    """Run ``files`` with ``engine`` into the resumable result file ``output`` (``None``: stdout).

    ``fmt``: ``"jsonl"`` or ``"csv"`` (default: from the name); ``overwrite``: start the file afresh instead
    of resuming; ``segments``: rows per utterance (``predict --segment``); ``parquet``: also write the
    complete results there (needs a JSONL ``output``), unless the run was interrupted; ``redact``: each row
    redacted before it is written (:class:`~speech_intent.batch.writer.ResultWriter`); ``extra_fields``: more CSV
    columns. Ctrl-C while the
    rows come in returns a summary with ``interrupted`` set (the file is resumable).
    """
    writer = ResultWriter(output, fmt, resume=not overwrite, segments=segments, redact=redact,
                          extra_fields=extra_fields)
    if parquet is not None and (output is None or writer.format != "jsonl"):
        raise ConfigError("Parquet output is written from the JSONL results: give a .jsonl output file")
    summary = RunSummary(utterances=0 if segments else None)
    # the engine first: models that fail to load (a cluster out of reach) leave the output as it was
    started = any(not writer.is_done(f) for f in files)
    if started:
        engine.start()
    begin = time.perf_counter()
    try:
        todo = writer.pending(files)  # drops the rows of inputs about to be redone: one row each in the end
        summary.skipped, summary.todo = len(files) - len(todo), len(todo)
        if todo:
            for _, rows in engine.results(todo, writer):
                _write(summary, rows, writer)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        writer.close()
        if started:
            engine.stop()
    summary.seconds = time.perf_counter() - begin
    if parquet is not None and not summary.interrupted:
        from .parquet import jsonl_to_parquet

        jsonl_to_parquet(output, parquet)  # type: ignore[arg-type]
        summary.parquet = str(parquet)
    return summary


def _write(summary: RunSummary, rows: Iterable[Dict[str, object]], writer: ResultWriter) -> None:
    """Write one input's rows as they come, then count the input."""
    ok, heard = True, 0.0
    for row in rows:
        writer.write_row(row)
        error = bool(row.get("error"))
        ok = ok and not error
        if row.get("last") is None:  # a whole file's row: its audio counts when it succeeded
            heard += 0.0 if error else float(row.get("duration") or 0.0)  # type: ignore[arg-type]
        else:  # a segmented file's row: the file's audio up to its last utterance
            if summary.utterances is not None and row.get("segment") is not None:
                summary.utterances += 1
            heard = max(heard, float(row.get("end") or 0.0))  # type: ignore[arg-type]
    summary.done += ok
    summary.failed += not ok
    summary.audio_seconds += heard


class LocalEngine:
    """This process: the pipeline's :meth:`~speech_intent.pipeline.SpeechIntentPipeline.stream` over the
    files, ``workers`` batches of ``batch_size`` at once; with ``vad``, each file split into utterances
    (:meth:`~speech_intent.pipeline.SpeechIntentPipeline.predict_segments`, one file at a time), the
    utterances done by an earlier run skipped. ``build``: makes the pipeline (called by :meth:`start`)."""

    def __init__(self, build: Callable[[], "SpeechIntentPipeline"], *, batch_size: int = 8, workers: int = 1,
                 vad: Optional["VADOptions"] = None, progress: bool = False) -> None:
        self.build, self.batch_size, self.workers, self.vad, self.progress = build, batch_size, workers, vad, progress
        self.pipe: Optional["SpeechIntentPipeline"] = None

    def start(self) -> None:
        self.pipe = self.build()

    def stop(self) -> None:
        self.pipe = None

    def results(self, todo: List[str], writer: ResultWriter) -> Iterator[Rows]:
        assert self.pipe is not None, "start() first"
        if self.vad is not None:
            yield from self._segments(todo, writer)
            return
        keys: Dict[str, Optional[str]] = {}

        def keyed(paths: List[str]) -> Iterator[str]:
            for path in paths:  # taken as the pipeline takes the file, before it reads it
                keys[path] = file_key(path)
                yield path

        for result in self.pipe.stream(keyed(todo), batch_size=self.batch_size, progress=self.progress,
                                       total=len(todo), workers=self.workers):
            yield result.path, (result_row(result, keys.pop(result.path, None)),)

    def _segments(self, todo: List[str], writer: ResultWriter) -> Iterator[Rows]:
        assert self.pipe is not None and self.vad is not None
        for path in _progress(todo, self.progress):
            key = file_key(path)  # before reading: the rows describe the file as it was read
            results = self.pipe.predict_segments(path, vad=self.vad, batch_size=self.batch_size,
                                                 skip=writer.done_segments(path))
            yield path, (result_row(result, key) for result in results)


def _progress(files: List[str], progress: bool) -> Iterable[str]:
    """The files, with a progress bar when ``progress``."""
    if not progress:
        return files
    from tqdm.auto import tqdm

    return tqdm(files, unit="file")

"""Long recordings: a file read block by block, split into utterances by the VAD, one result per utterance.

:func:`iter_utterances` reads a file (a path or encoded bytes) with :class:`~speech_intent.audio.BlockReader`
and feeds the blocks to :class:`~speech_intent.vad.UtteranceSplitter` (resampled to 16 kHz, Silero VAD,
endpointer), yielding each utterance as soon as it ends: memory is bounded by the utterance and the
block, not by the file. :func:`segment_results` recognises those utterances in batches with any
``recognise`` function (the pipeline, or a server's micro-batcher) and yields one
:class:`~speech_intent.results.PipelineResult` per utterance, with ``segment`` (its number in the
file), ``start`` and ``end`` (seconds of the file) and ``last`` (whether it is the file's last row).

A file without speech gives one row with ``segment=None``, an empty transcript and ``intent=None``; a
file that cannot be read (from the start, or from some point on) gives a row with ``segment=None``
and ``error`` set, after the rows of the utterances before the problem. A rerun can ``skip`` the
utterances it already has: the VAD finds the same utterances again, and only the others are recognised.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Collection, Iterator, List, Optional, Tuple, Union

import numpy as np

from .audio import BlockReader, source_name
from .errors import AudioError, check_int
from .results import IntentPrediction, PipelineResult, Transcript
from .vad import Utterance, UtteranceSplitter, VADOptions

logger = logging.getLogger(__name__)

#: Seconds of the file decoded at a time.
DEFAULT_BLOCK_SECONDS = 10.0

Source = Union[str, Path, bytes, bytearray]
#: Recognises 16 kHz utterances of one file: one result per array, in order, named after the file (e.g.
#: :meth:`SpeechIntentPipeline.recognise <speech_intent.pipeline.SpeechIntentPipeline.recognise>` given the name).
Recognise = Callable[[List[np.ndarray]], List[PipelineResult]]


def _utterances(reader: BlockReader, options: VADOptions) -> Iterator[Utterance]:
    splitter = UtteranceSplitter(options, reader.rate)
    for block in reader:
        yield from (e for e in splitter.feed(block) if isinstance(e, Utterance))
    yield from (e for e in splitter.finish() if isinstance(e, Utterance))


def iter_utterances(source: Source, options: Optional[VADOptions] = None, *, name: Optional[str] = None,
                    block_seconds: float = DEFAULT_BLOCK_SECONDS) -> Iterator[Utterance]:
    """Each utterance of a file (16 kHz audio, start and end), as the file is read.

    Raises:
        AudioError: the file cannot be opened or read (possibly after some utterances were yielded).
    """
    with BlockReader(source, block_seconds=block_seconds, name=name) as reader:
        yield from _utterances(reader, options or VADOptions())


def segment_results(source: Source, recognise: Recognise, *, options: Optional[VADOptions] = None,
                    batch_size: int = 8, skip: Collection[int] = (), name: Optional[str] = None,
                    block_seconds: float = DEFAULT_BLOCK_SECONDS) -> Iterator[PipelineResult]:
    """One result per utterance of a long file, recognised ``batch_size`` utterances at a time.

    Args:
        source: a path or encoded bytes (any length).
        recognise: turns a list of 16 kHz utterances into one result each, named ``name``.
        options: the :class:`~speech_intent.vad.VADOptions` that find the utterances.
        batch_size: utterances per ``recognise`` call.
        skip: utterance numbers not to recognise (already done by an earlier run).
        name: the file's name in the rows (default: its path).

    Never raises for a bad file: its problem is a row with ``error`` (see the module docstring).
    """
    check_int("batch_size", batch_size)
    name = name or source_name(source)
    options = options or VADOptions()
    pending: List[Tuple[int, Utterance]] = []
    count, duration = 0, 0.0
    try:
        with BlockReader(source, block_seconds=block_seconds, name=name) as reader:
            for utterance in _utterances(reader, options):
                index, count = count, count + 1
                if index in skip:
                    continue
                pending.append((index, utterance))
                if len(pending) > batch_size:  # one held back: the file's last row must be known as such
                    yield from _recognised(pending[:batch_size], recognise, None)
                    del pending[:batch_size]
            duration = reader.duration
    except AudioError as error:
        logger.warning("%s", error)
        yield from _recognised(pending, recognise, None)
        yield PipelineResult(path=name, error=str(error), last=True)
        return
    yield from _recognised(pending, recognise, count - 1)
    if count == 0:
        logger.info("%s: no speech found", name)
        yield PipelineResult(path=name, transcription=Transcript("", 0.0, duration=duration),
                             prediction=IntentPrediction("", None, 0.0), start=0.0, end=round(duration, 3),
                             last=True)


def _recognised(batch: List[Tuple[int, Utterance]], recognise: Recognise,
                last: Optional[int]) -> List[PipelineResult]:
    if not batch:
        return []
    results = recognise([utterance.audio for _, utterance in batch])
    for result, (index, utterance) in zip(results, batch):
        result.segment, result.start, result.end = index, round(utterance.start, 3), round(utterance.end, 3)
        result.last = index == last
    return results

"""``SpeechIntentPipeline``: audio -> ASR stage -> intent stage -> typed results.

Inputs are streamed in chunks of ``batch_size``: each chunk is decoded (a bad
file becomes a result with ``error`` set, the rest go on), transcribed in one
batched ASR call and classified in one batched NLU call. Digitally silent
inputs (peak under ``silence_threshold``) skip ASR and get an empty transcript
with ``intent=None``. If a stage raises on a chunk, its inputs are retried one by
one so only the input that fails gets an ``error``. Each result carries the name given for its input
(``names=``; default its path, ``<array #i>`` or ``<bytes #i>``), in its ``path`` and its error text.
:meth:`SpeechIntentPipeline.recognise` takes audio decoded already (16 kHz arrays);
:meth:`SpeechIntentPipeline.predict_segments` takes recordings of any length: one result per utterance
the VAD finds. The ASR stage is never changed by a call (its domain prompt is passed per call), so one
pipeline can serve several threads.
"""
from __future__ import annotations

import itertools
import json
import logging
import numbers
from dataclasses import replace
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .affect import AffectStages, load_affect
from .asr import BACKENDS, ASRStage, FasterWhisperASR, detect_backend, load_asr
from .audio import (
    DEFAULT_MAX_DURATION,
    DEFAULT_MIN_DURATION,
    SAMPLE_RATE,
    SILENCE_PEAK,
    AudioInput,
    is_silent,
    load_audio,
    source_name,
)
from .demo_model import default_intent_model
from .device import DeviceLike, default_workers, set_torch_threads, thread_budget
from .errors import AudioError, ConfigError, ModelLoadError, check_int
from .longform import DEFAULT_BLOCK_SECONDS, Source, segment_results
from .nlu import IntentClassifier
from .nlu.canonical import domain_prompt
from .results import IntentPrediction, PipelineResult, Transcript
from .vad import VADOptions
from .validation import PIPELINE_CONFIG, check_classifier_dir, check_pipeline_config, check_stage_dir, read_json_object

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class SpeechIntentPipeline:
    """Compose any ASR stage with any intent stage.

    Args:
        asr: an ASR stage (:class:`WhisperASR`, :class:`Wav2Vec2ASR`, :class:`FasterWhisperASR`, ...).
        intent: an intent stage (:class:`IntentClassifier`).
        max_duration: longest accepted input in seconds (longer inputs get an error result).
        min_duration: shortest accepted input in seconds (shorter inputs get an error result).
        silence_threshold: peak amplitude under which an input is digital silence: ASR is
            skipped and the result has ``transcript=""``, ``intent=None`` (``None``: never skip).
        top_k: how many labels each result lists.
        domain_prompt: give the ASR a prompt listing the intent model's closed slot values
            (e.g. the coffee grammar's drinks, sizes and roasts) so Whisper spells them the way
            the model was trained: ``None`` (default) = on when the intent stage has closed slot
            values and the ASR takes a prompt that was not set by hand; ``False`` = off.
        workers: chunks of inputs :meth:`stream` and ``__call__`` read and recognise at once unless a call
            says otherwise. ``None``: as many as the ASR stage was loaded for (faster-whisper's
            ``num_workers``), else :func:`~speech_intent.device.default_workers` of its device (2 on a CPU
            with 2 or more threads, as ``speech-intent predict`` runs; 1 on a GPU).
        sentiment / emotion: optional affect stages, a text :class:`~speech_intent.sentiment.SentimentClassifier`
            and an acoustic ``EmotionRecognizer`` (:mod:`speech_intent.affect`; results' ``sentiment``, ``emotion``).
    """

    def __init__(
        self,
        asr: ASRStage,
        intent: IntentClassifier,
        *,
        max_duration: Optional[float] = DEFAULT_MAX_DURATION,
        min_duration: Optional[float] = DEFAULT_MIN_DURATION,
        silence_threshold: Optional[float] = SILENCE_PEAK,
        top_k: int = 3,
        domain_prompt: Optional[bool] = None,
        workers: Optional[int] = None, sentiment: Any = None, emotion: Any = None,
    ) -> None:
        check_int("workers", workers, optional=True)
        self.asr = asr
        self.intent = intent
        self.max_duration = max_duration
        self.min_duration = min_duration
        self.silence_threshold = silence_threshold
        self.top_k = top_k
        self.domain_prompt = domain_prompt
        if workers is None:
            loaded_for = getattr(asr, "num_workers", None)  # faster-whisper: its CTranslate2 workers
            workers = loaded_for if isinstance(loaded_for, int) else default_workers(getattr(asr, "device", None))
        self.workers = workers
        self.affect = AffectStages(sentiment, emotion)

    # ------------------------------------------------------------------ loading
    @classmethod
    def default(cls, device: DeviceLike = None, *, progress: bool = True, asr: Optional[ASRStage] = None,
                intent_options: Optional[Mapping[str, Any]] = None, num_workers: Optional[int] = None,
                **kwargs) -> "SpeechIntentPipeline":
        """The embedded default: bundled Whisper tiny.en (faster-whisper) + the demo-domain intent model.

        Works offline. The intent model is fine-tuned on first use and cached
        (see :func:`speech_intent.demo_model.default_intent_model`). ``intent_options``: keyword
        arguments of :class:`IntentClassifier` (e.g. ``{"runtime": "onnx-int8"}``); ``num_workers``:
        batches it will be called with at once (:meth:`stream`'s ``workers``; default:
        :func:`~speech_intent.device.default_workers`, 2 on a CPU with 2 or more threads).
        """
        # the intent model first: a first-run fine-tune is several times slower on CPU once CTranslate2
        # is loaded (its OpenMP threads compete with torch's)
        intent = default_intent_model(device=device, progress=progress, **(intent_options or {}))
        if asr is None:
            workers = default_workers(device) if num_workers is None else num_workers
            asr = FasterWhisperASR.from_pretrained(None, device=device, num_workers=workers)  # the pipeline's too
        return cls(asr, intent, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], *, device: DeviceLike = None,
                        intent_options: Optional[Mapping[str, Any]] = None, num_workers: Optional[int] = None,
                        **kwargs) -> "SpeechIntentPipeline":
        """Load a pipeline directory written by :meth:`save_pretrained`.

        ``intent_options``: keyword arguments of :class:`IntentClassifier` for its intent stage (e.g.
        ``{"runtime": "onnx-int8"}``); ``num_workers``: batches it will be called with at once, from as
        many threads (:func:`~speech_intent.asr.load_asr`; default: :func:`~speech_intent.device.default_workers`,
        2 on a CPU with 2 or more threads, the pipeline's ``workers``); ``kwargs`` override the saved pipeline
        options.
        """
        directory = Path(directory)
        config_file = directory / PIPELINE_CONFIG
        if not config_file.is_file():
            raise ModelLoadError(directory, f"not a pipeline directory (no {PIPELINE_CONFIG})")
        config = read_json_object(config_file)
        check_pipeline_config(config, directory, config_file, format_version=FORMAT_VERSION, backends=BACKENDS)
        asr_cfg, intent_cfg = config["asr"], config["intent"]
        asr_dir = directory / asr_cfg.get("path", "asr")
        check_stage_dir(asr_dir, asr_cfg.get("backend"))
        check_classifier_dir(directory / intent_cfg.get("path", "intent"))
        backend = asr_cfg.get("backend") or detect_backend(asr_dir)
        try:
            options = BACKENDS[backend].options_class.from_dict(asr_cfg.get("options", {}))
        except ConfigError as error:
            raise ConfigError(f"{config_file}: asr.options: {error}") from error
        workers = default_workers(device) if num_workers is None else num_workers
        asr = load_asr(asr_dir, backend=backend, device=device, options=options, num_workers=workers)
        intent = IntentClassifier.from_pretrained(directory / intent_cfg.get("path", "intent"), device=device,
                                                  **(intent_options or {}))
        keys = ("max_duration", "min_duration", "silence_threshold", "top_k", "domain_prompt")
        options = {k: config[k] for k in keys if k in config}
        options["workers"] = workers
        options.update(load_affect(directory, config, device=device))
        options.update(kwargs)
        return cls(asr, intent, **options)

    def save_pretrained(self, directory: Union[str, Path]) -> None:
        """Write both stages and a small ``pipeline.json`` into one directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.asr.save_pretrained(directory / "asr")
        self.intent.save_pretrained(directory / "intent")
        config = {
            "format_version": FORMAT_VERSION,
            "asr": {"backend": self.asr.backend, "path": "asr", "options": self.asr.options.to_dict()},
            "intent": {"type": "intent-classifier", "path": "intent"},
            "max_duration": self.max_duration,
            "min_duration": self.min_duration,
            "silence_threshold": self.silence_threshold,
            "top_k": self.top_k,
            "domain_prompt": self.domain_prompt,
            **self.affect.save_pretrained(directory),
        }
        (directory / PIPELINE_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    @property
    def prompt_text(self) -> Optional[str]:
        """The domain prompt given to the ASR, or ``None`` (see ``domain_prompt``)."""
        if self.domain_prompt is False:
            return None
        canonicalizer = getattr(self.intent, "canonicalizer", None)
        return domain_prompt(canonicalizer.values) if canonicalizer is not None else None

    def _asr_prompt(self) -> Optional[str]:
        """The prompt passed to each ASR call: the domain prompt when the stage takes a prompt and
        has none of its own (its own ``options.prompt`` then applies), else ``None``."""
        own_prompt = getattr(getattr(self.asr, "options", None), "prompt", None)
        if own_prompt or not getattr(self.asr, "accepts_prompt", False):
            return None
        return self.prompt_text

    # ---------------------------------------------------------------- inference
    def __call__(
        self, inputs: Union[AudioInput, Sequence[AudioInput]], *, names: Optional[Iterable[str]] = None,
        batch_size: int = 8, progress: bool = False, workers: Optional[int] = None,
    ) -> List[PipelineResult]:
        """Process inputs (paths, bytes, arrays); one result per input, in order.

        ``names``: each result's ``path``, the name its error gives, one per input in order (default: a path
        as given, ``<array #i>`` / ``<bytes #i>``); ``workers``: :meth:`stream`.
        """
        # (samples, rate) is one input; any other tuple is a sequence of inputs (two arrays are two inputs)
        single_pair = (isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[1], numbers.Real)
                       and not isinstance(inputs[1], bool))
        if isinstance(inputs, (str, Path, bytes, bytearray)) or single_pair or not isinstance(inputs, Sequence):
            inputs = [inputs]  # type: ignore[list-item]
        return list(self.stream(inputs, names=names, batch_size=batch_size, progress=progress, workers=workers))

    def stream(
        self, inputs: Iterable[AudioInput], *, names: Optional[Iterable[str]] = None, batch_size: int = 8,
        progress: bool = False, total: Optional[int] = None, workers: Optional[int] = None,
    ) -> Iterator[PipelineResult]:
        """Yield results as each chunk of ``batch_size`` inputs finishes, in input order (bounded memory).

        ``names``: as in :meth:`__call__` (any iterable in step with ``inputs``; a count that differs is a
        :class:`ConfigError`). ``workers`` (default: the pipeline's ``workers``) > 1: that many chunks are read and
        recognised at once, each by its
        own thread (torch on its share of :func:`~speech_intent.device.thread_budget`; faster-whisper needs as
        many CTranslate2 workers to run them in parallel: ``num_workers`` when loading). On a CPU, two chunks
        on one thread each outrun one chunk on two threads: each chunk's reading, features and text work
        overlap the other's model time.
        """
        check_int("batch_size", batch_size)
        workers = self.workers if workers is None else workers
        check_int("workers", workers)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total if total is not None else (len(inputs) if hasattr(inputs, "__len__") else None),
                       unit="file")
        try:
            for results in self._chunk_results(_named(inputs, names), batch_size, workers, decoded=False):
                yield from results
                bar and bar.update(len(results))
        finally:
            if bar is not None:
                bar.close()

    def recognise(self, arrays: Sequence[np.ndarray], names: Optional[Iterable[str]] = None, *,
                  batch_size: int = 8) -> List[PipelineResult]:
        """Audio decoded already: 16 kHz mono float arrays -> one result each, in order.

        What :meth:`__call__` does with such arrays, with nothing to read or decode: each array is checked
        (duration limits, finite samples; resampled only for an ASR of another rate), digital silence skips
        the ASR, a stage that fails is retried one input at a time. ``names``: as in :meth:`__call__`
        (default ``<array #i>``). Anything but an array gets an error result.
        """
        check_int("batch_size", batch_size)
        return [result for results in self._chunk_results(_named(arrays, names), batch_size, 1, decoded=True)
                for result in results]

    def _chunk_results(self, named: Iterable[Tuple[AudioInput, str]], batch_size: int, workers: int,
                       decoded: bool) -> Iterator[List[PipelineResult]]:
        """Each chunk's results, in order, with up to ``workers`` chunks in progress at once (a lone chunk
        runs in this thread, on all of its threads)."""
        chunks = _chunks(named, batch_size)
        head = list(itertools.islice(chunks, 2 if workers > 1 else 1))
        if len(head) < 2:  # one worker, or a lone chunk: in this thread, on all of its threads
            for chunk in itertools.chain(head, chunks):
                yield self._process_chunk(chunk, batch_size, decoded)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        threads = max(1, thread_budget() // workers)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="speech-intent-chunk",
                                  initializer=set_torch_threads, initargs=(threads,))
        pending: "deque" = deque()
        try:
            for chunk in itertools.chain(head, chunks):
                pending.append(pool.submit(self._process_chunk, chunk, batch_size, decoded))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, a break, Ctrl-C): chunks not started are dropped
            pool.shutdown(wait=False, cancel_futures=True)

    def predict_segments(self, source: Source, *, vad: Optional[VADOptions] = None, batch_size: int = 8,
                         skip: Collection[int] = (), name: Optional[str] = None,
                         block_seconds: float = DEFAULT_BLOCK_SECONDS) -> Iterator[PipelineResult]:
        """A recording of any length (a path or encoded bytes) -> one result per utterance, as they finish.

        The file is read ``block_seconds`` at a time and split by the Silero VAD (``vad``:
        :class:`~speech_intent.vad.VADOptions`; utterances are cut at ``max_utterance`` seconds), so
        memory is bounded by the utterance, not the file; ``max_duration`` applies to each utterance.
        Utterances are recognised ``batch_size`` at a time. Each result has ``segment`` (its number in
        the file, from 0), ``start`` and ``end`` (seconds of the file) and ``last``; a file without
        speech gives one row with ``segment=None`` and ``intent=None``, an unreadable one a row with
        ``error`` (see :mod:`speech_intent.longform`). ``skip``: utterance numbers not to recognise;
        ``name``: the file's name in the results and their errors (default: its path).
        """
        options = vad or VADOptions()
        if self.max_duration is not None and options.max_utterance > self.max_duration:
            raise ConfigError(f"max_utterance ({options.max_utterance} s) is over the pipeline's "
                              f"max_duration ({self.max_duration} s)")
        name = name or source_name(source)

        def recognise(arrays: list) -> List[PipelineResult]:
            return self.recognise(arrays, [name] * len(arrays), batch_size=max(1, len(arrays)))

        return self.affect.mark(segment_results(source, recognise, options=options, batch_size=batch_size,
                                                skip=skip, name=name, block_seconds=block_seconds))

    def _load(self, item: AudioInput, name: str, decoded: bool) -> np.ndarray:
        """One input as the ASR's samples (``decoded``: a 16 kHz array, nothing else)."""
        if decoded and not isinstance(item, np.ndarray):
            raise AudioError(name, f"expected a decoded sample array, got {type(item).__name__}")
        return load_audio(item, sampling_rate=self.asr.sampling_rate, input_sampling_rate=SAMPLE_RATE if decoded
                          else None, max_duration=self.max_duration, min_duration=self.min_duration, name=name)

    def _process_chunk(self, chunk: List[Tuple[AudioInput, str]], batch_size: int,
                       decoded: bool) -> List[PipelineResult]:
        results = [PipelineResult(path=name) for _, name in chunk]
        arrays, ok = [], []
        for i, (item, name) in enumerate(chunk):
            try:
                audio = self._load(item, name, decoded)
            except AudioError as error:
                results[i].error = str(error)
                logger.warning("skipping %s", error)
                continue
            if self.silence_threshold is not None and is_silent(audio, self.silence_threshold):
                # nothing said, no intent (not an error)
                results[i].transcription = Transcript("", 0.0, duration=len(audio) / self.asr.sampling_rate)
                results[i].prediction = IntentPrediction("", None, 0.0)
                logger.info("%s: digital silence, ASR skipped", name)
                continue
            arrays.append(audio)
            ok.append(i)
        if arrays:
            try:
                self._recognise(arrays, [results[i] for i in ok], batch_size)
            except Exception as error:  # isolate the input that breaks a stage; the others go on
                if len(arrays) == 1:
                    results[ok[0]] = _failed(results[ok[0]].path, error)
                else:
                    logger.warning("a batch of %d failed (%s); retrying its inputs one by one", len(arrays), error)
                    for i, audio in zip(ok, arrays):
                        results[i] = self._process_one(audio, results[i].path)
        return list(self.affect.mark(results))

    def _process_one(self, audio, path: str) -> PipelineResult:
        result = PipelineResult(path=path)
        try:
            self._recognise([audio], [result], 1)
        except Exception as error:
            return _failed(path, error)
        return result

    def _recognise(self, arrays: list, results: List[PipelineResult], batch_size: int) -> None:
        """ASR then NLU on decoded arrays, filling ``results`` in place."""
        prompt = self._asr_prompt()
        transcripts = self.asr.transcribe(arrays, batch_size=batch_size, **({"prompt": prompt} if prompt else {}))
        predictions = self.intent([t.text for t in transcripts], top_k=self.top_k)
        for result, transcript, prediction in zip(results, transcripts, predictions):
            if getattr(transcript, "in_grammar", None) is False:  # speech outside the ASR's grammar: not understood
                prediction = replace(prediction, intent=None, slots={}, slot_spans=[])
            result.transcription, result.prediction = transcript, prediction
        self.affect.annotate(results, [t.text for t in transcripts], arrays)


def _failed(name: str, error: Exception) -> PipelineResult:
    """The result of an input a model stage raised on (logged with its traceback)."""
    logger.error("processing %s failed", name, exc_info=error)
    return PipelineResult.failed(name, error)


_NO_NAME = object()


def _named(inputs: Iterable[AudioInput], names: Optional[Iterable[str]]) -> Iterator[Tuple[AudioInput, str]]:
    """Each input with its result's name: the next of ``names``, else :func:`source_name`."""
    if names is None:
        for index, item in enumerate(inputs):
            yield item, source_name(item, index)
        return
    if isinstance(names, (str, bytes)):
        raise ConfigError("names must be a sequence of names, one per input (not one string)")
    if hasattr(inputs, "__len__") and hasattr(names, "__len__") and len(inputs) != len(names):  # type: ignore
        raise ConfigError(f"{len(names)} names for {len(inputs)} inputs")  # type: ignore[arg-type]
    given = iter(names)
    for item in inputs:
        name = next(given, _NO_NAME)
        if name is _NO_NAME:
            raise ConfigError("fewer names than inputs")
        yield item, str(name)
    if next(given, _NO_NAME) is not _NO_NAME:
        raise ConfigError("more names than inputs")


def _chunks(named: Iterable[Tuple[AudioInput, str]], size: int) -> Iterator[List[Tuple[AudioInput, str]]]:
    """Consecutive chunks of ``size`` (input, name) pairs."""
    chunk: List[Tuple[AudioInput, str]] = []
    for pair in named:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

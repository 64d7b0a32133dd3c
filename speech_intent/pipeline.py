"""``SpeechIntentPipeline``: audio -> ASR stage -> intent stage -> typed results.

Inputs are streamed in chunks of ``batch_size``: each chunk is decoded (a bad
file becomes a result with ``error`` set, the rest go on), transcribed in one
batched ASR call and classified in one batched NLU call.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Union

from .asr import ASRStage, load_asr
from .audio import DEFAULT_MAX_DURATION, AudioInput, load_audio, source_name
from .device import DeviceLike
from .errors import AudioError, ModelLoadError
from .nlu import IntentClassifier
from .results import PipelineResult

logger = logging.getLogger(__name__)

PIPELINE_CONFIG = "pipeline.json"
FORMAT_VERSION = 1


class SpeechIntentPipeline:
    """Compose any ASR stage with any intent stage.

    Args:
        asr: an ASR stage (:class:`WhisperASR`, :class:`Wav2Vec2ASR`, :class:`FasterWhisperASR`, ...).
        intent: an intent stage (:class:`IntentClassifier`).
        max_duration: longest accepted input in seconds (longer inputs get an error result).
        top_k: how many labels each result lists.
    """

    def __init__(
        self,
        asr: ASRStage,
        intent: IntentClassifier,
        *,
        max_duration: Optional[float] = DEFAULT_MAX_DURATION,
        top_k: int = 3,
    ) -> None:
        self.asr = asr
        self.intent = intent
        self.max_duration = max_duration
        self.top_k = top_k

    # ------------------------------------------------------------------ loading
    @classmethod
    def default(cls, device: DeviceLike = None, **kwargs) -> "SpeechIntentPipeline":
        """The embedded default: bundled Whisper tiny.en (faster-whisper) + the demo-domain intent model.

        Works offline. The intent model is fine-tuned on first use and cached
        (see :func:`speech_intent.default.default_intent_model`).
        """
        from .default import default_pipeline

        return default_pipeline(device=device, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], *, device: DeviceLike = None, **kwargs) -> "SpeechIntentPipeline":
        """Load a pipeline directory written by :meth:`save_pretrained`."""
        directory = Path(directory)
        config_file = directory / PIPELINE_CONFIG
        if not config_file.is_file():
            raise ModelLoadError(directory, f"not a pipeline directory (no {PIPELINE_CONFIG})")
        try:
            config = json.loads(config_file.read_text())
            asr_cfg, intent_cfg = config["asr"], config["intent"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ModelLoadError(config_file, f"invalid pipeline config: {error}") from error
        for name, cfg in (("asr", asr_cfg), ("intent", intent_cfg)):
            if not (directory / cfg.get("path", name)).is_dir():
                raise ModelLoadError(directory, f"pipeline is missing its {name} stage ({cfg.get('path', name)}/)")
        asr = load_asr(directory / asr_cfg.get("path", "asr"), backend=asr_cfg.get("backend"), device=device,
                       **asr_cfg.get("options", {}))
        intent = IntentClassifier.from_pretrained(directory / intent_cfg.get("path", "intent"), device=device)
        options = {k: config[k] for k in ("max_duration", "top_k") if k in config}
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
            "asr": {"backend": self.asr.backend, "path": "asr", "options": _asr_options(self.asr)},
            "intent": {"type": "intent-classifier", "path": "intent"},
            "max_duration": self.max_duration,
            "top_k": self.top_k,
        }
        (directory / PIPELINE_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    # ---------------------------------------------------------------- inference
    def __call__(
        self, inputs: Union[AudioInput, Sequence[AudioInput]], *, batch_size: int = 8, progress: bool = False
    ) -> List[PipelineResult]:
        """Process inputs (paths, bytes, arrays); one result per input, in order."""
        if isinstance(inputs, (str, Path, bytes)) or not isinstance(inputs, Sequence):
            inputs = [inputs]  # type: ignore[list-item]
        return list(self.stream(inputs, batch_size=batch_size, progress=progress))

    def stream(
        self, inputs: Iterable[AudioInput], *, batch_size: int = 8, progress: bool = False, total: Optional[int] = None
    ) -> Iterator[PipelineResult]:
        """Yield results as each chunk of ``batch_size`` inputs finishes (bounded memory)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total if total is not None else (len(inputs) if hasattr(inputs, "__len__") else None),
                       unit="file")
        chunk: List[AudioInput] = []
        start = 0
        try:
            for item in inputs:
                chunk.append(item)
                if len(chunk) == batch_size:
                    yield from self._process_chunk(chunk, start, batch_size)
                    bar and bar.update(len(chunk))
                    start += len(chunk)
                    chunk = []
            if chunk:
                yield from self._process_chunk(chunk, start, batch_size)
                bar and bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()

    def _process_chunk(self, chunk: List[AudioInput], offset: int, batch_size: int) -> List[PipelineResult]:
        results = [PipelineResult(path=source_name(x, offset + i)) for i, x in enumerate(chunk)]
        arrays, ok = [], []
        for i, item in enumerate(chunk):
            try:
                arrays.append(load_audio(item, sampling_rate=self.asr.sampling_rate, max_duration=self.max_duration,
                                         name=results[i].path))
                ok.append(i)
            except AudioError as error:
                results[i].error = str(error)
                logger.warning("skipping %s", error)
        if not arrays:
            return results
        transcripts = self.asr.transcribe(arrays, batch_size=batch_size)
        predictions = self.intent([t.text for t in transcripts], top_k=self.top_k)
        for i, transcript, prediction in zip(ok, transcripts, predictions):
            result = results[i]
            result.transcript = transcript.text
            result.transcript_confidence = transcript.confidence
            result.duration = transcript.duration
            result.text = prediction.text
            result.intent = prediction.intent
            result.confidence = prediction.confidence
            result.top_k = prediction.top_k
            result.slots = prediction.slots
        return results


def _asr_options(asr: ASRStage) -> dict:
    """Decoding options worth restoring with the stage (not weights)."""
    keys = ("beam_size", "num_beams", "language", "task", "initial_prompt", "prompt", "max_new_tokens")
    return {k: getattr(asr, k) for k in keys if getattr(asr, k, None) is not None}

"""Whisper through faster-whisper (CTranslate2): the fast CPU backend.

Files are batched through CTranslate2's ``Whisper.generate`` (one encoder and
decoder call per batch), with faster-whisper's feature extractor and tokenizer.
int8 on CPU, float16 on CUDA by default; CPU threads default to the cores this
process may use (CTranslate2's own default, 4, oversubscribes small machines).

Shorter encoder context (``context_margin``, on by default; ``None`` = the 30 s window):
CTranslate2's encoder accepts fewer than 3000 frames, so a batch of short clips is encoded
over its own length plus a margin instead of 30 s. Whisper was trained on 30 s windows, so
clips whose decoding looks unreliable (repetition, low log-probability, the token limit, no
text: :func:`~speech_intent.asr.whisper_common.needs_full_window`) are decoded again on the
full window. ``benchmarks/throughput.py`` and ``benchmarks/coffee.py`` measure both.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, List, Mapping, Optional, Union

import numpy as np

from ..bundled import bundled_whisper_path
from ..device import resolve_device, thread_budget
from ..errors import ModelLoadError
from ..results import Transcript
from .base import BaseASR
from .options import FasterWhisperOptions, merge_options
from .whisper_common import (
    LOGPROB_THRESHOLD,
    context_frames,
    encoder_step,
    grammar_unsupported,
    needs_full_window,
)

logger = logging.getLogger(__name__)

#: Whisper's "no speech" rule: both conditions mean the window held no speech.
NO_SPEECH_THRESHOLD = 0.6
#: Default thread cap: small models stop scaling well beyond a few threads.
MAX_DEFAULT_THREADS = 8


class FasterWhisperASR(BaseASR):
    """Whisper ASR stage on faster-whisper / CTranslate2.

    Args:
        model: a ``faster_whisper.WhisperModel``.
        model_path: the directory it was loaded from (for ``save_pretrained``).
        options: a :class:`~speech_intent.asr.options.FasterWhisperOptions` (or its ``to_dict()``);
            ``None`` = defaults (greedy; ``language=None`` = English on multilingual models).
            Keyword arguments with option names override single fields.
        grammar: not supported here (grammar decoding needs the transformers backend,
            :class:`~speech_intent.asr.WhisperASR`): anything but ``None`` raises ConfigError.

    On CPU the encoder runs on small slices of a batch (``encoder_budget``, clips x
    frames^2 per call, default :data:`~speech_intent.asr.whisper_common.ENCODER_BUDGET`) and
    the decoder on the whole batch: same results, less time than either one call per batch
    or one file at a time. With several CTranslate2 workers (``num_workers`` in
    :meth:`from_pretrained`) a batch is split across them and decoded in parallel.
    """

    backend = "faster-whisper"
    options_class = FasterWhisperOptions
    accepts_prompt = True

    def __init__(
        self,
        model,
        *,
        model_path: Optional[Union[str, Path]] = None,
        options: Union[FasterWhisperOptions, Mapping[str, Any], None] = None,
        grammar: Any = None,
        **overrides: Any,
    ) -> None:
        if grammar is not None:
            raise grammar_unsupported(self.backend)
        self.model = model
        self.model_path = Path(model_path) if model_path else None
        self.num_workers = max(1, int(getattr(model.model, "num_workers", 1)))
        self.sampling_rate = int(model.feature_extractor.sampling_rate)
        self.options = merge_options(FasterWhisperOptions, options, overrides)

    def _apply_options(self, options: FasterWhisperOptions) -> None:  # type: ignore[override]
        """A new tokenizer when the language or task changes (they are part of its prompt)."""
        current = self.__dict__.get("options")
        if current is not None and (current.language, current.task) == (options.language, options.task):
            return
        from faster_whisper.tokenizer import Tokenizer

        multilingual = bool(self.model.model.is_multilingual)
        self.tokenizer = Tokenizer(
            self.model.hf_tokenizer, multilingual, task=options.task if multilingual else None,
            language=(options.language or "en") if multilingual else None,
        )

    @property
    def num_beams(self) -> int:
        """The beam size in use (``options.num_beams``; ``None`` = 1, greedy)."""
        return self.options.num_beams or 1

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, Path, None] = None,
        *,
        device: Optional[str] = None,
        compute_type: Optional[str] = None,
        dtype: Optional[str] = None,
        cpu_threads: Optional[int] = None,
        num_workers: int = 1,
        grammar: Any = None,
        **kwargs,
    ) -> "FasterWhisperASR":
        """Load a CTranslate2 Whisper model: a local dir, a size name (``"small"``) or hub id.

        ``None`` loads the bundled tiny.en. ``compute_type`` (or ``dtype``) defaults to
        int8 on CPU and float16 on CUDA. ``cpu_threads`` (threads per worker) defaults
        to :func:`~speech_intent.device.thread_budget` (at most 8) divided by ``num_workers``; ``num_workers`` > 1 decodes
        parts of a batch in parallel. Other keyword arguments go to the constructor (``options=``,
        option names); a ``grammar`` raises ConfigError before anything is loaded.
        """
        if grammar is not None:
            raise grammar_unsupported(cls.backend)
        from faster_whisper import WhisperModel


        resolved = resolve_device(device)
        compute_type = compute_type or dtype or ("float16" if resolved.type == "cuda" else "int8")
        path = str(name_or_path) if name_or_path is not None else str(bundled_whisper_path())
        if cpu_threads is None:
            cpu_threads = max(1, min(MAX_DEFAULT_THREADS, thread_budget()) // max(1, num_workers))
        logger.info("loading %s on %s (%s, %d worker(s) x %d CPU threads)", path, resolved, compute_type,
                    num_workers, cpu_threads)
        try:
            model = WhisperModel(path, device=resolved.type, device_index=resolved.index or 0,
                                 compute_type=str(compute_type), cpu_threads=cpu_threads, num_workers=num_workers)
        except Exception as error:
            raise ModelLoadError(path, f"cannot load a CTranslate2 Whisper model: {error}") from error
        local = Path(path) if Path(path).is_dir() else None
        return cls(model, model_path=local, **kwargs)

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Copy the CTranslate2 model files (model.bin, config, tokenizer, vocabulary)."""
        if self.model_path is None:
            raise ModelLoadError(None, "this model was loaded by name, not from a directory; nothing to copy")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        for item in self.model_path.iterdir():
            if item.is_file():
                shutil.copy2(item, out / item.name)

    def _prompt(self, prompt: Optional[str]) -> List[int]:
        previous = self.tokenizer.encode(" " + prompt.strip()) if prompt else []
        return self.model.get_prompt(self.tokenizer, previous, without_timestamps=True)

    def _features(self, batch: List[np.ndarray], frames: Optional[int] = None) -> np.ndarray:
        """Log-Mel features zero-padded (as faster-whisper pads them) to ``frames`` (default: 30 s)."""
        extractor = self.model.feature_extractor
        frames = frames or extractor.nb_max_frames
        feats = np.zeros((len(batch), extractor.mel_filters.shape[0], frames), dtype=np.float32)
        for i, audio in enumerate(batch):
            mel = extractor(audio)[:, :frames]
            feats[i, :, : mel.shape[1]] = mel
        return feats

    def _encode(self, features: np.ndarray):
        """Encoder output for ``generate``: on CPU in slices (``encoder_budget``), else the features."""
        import ctranslate2

        whisper = self.model.model
        step = encoder_step(features.shape[-1], self.options.encoder_budget)
        if whisper.device != "cpu" or step >= len(features):
            return ctranslate2.StorageView.from_array(features)  # generate() encodes them itself
        encoded = [np.asarray(whisper.encode(ctranslate2.StorageView.from_array(features[i : i + step])))
                   for i in range(0, len(features), step)]
        return ctranslate2.StorageView.from_array(np.concatenate(encoded))

    def _generate(self, features: np.ndarray, prompt_text: Optional[str]) -> list:
        """Encode, then one ``generate`` call per worker on contiguous slices of the batch."""
        prompt = self._prompt(prompt_text)
        options = dict(
            beam_size=self.num_beams,
            max_length=min(len(prompt) + self.options.max_new_tokens, self.model.max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        parts = np.array_split(np.arange(len(features)), min(self.num_workers, len(features)))
        if len(parts) == 1:
            return self.model.model.generate(self._encode(features), [list(prompt) for _ in features], **options)
        pending = [
            self.model.model.generate(self._encode(np.ascontiguousarray(features[idx])),
                                      [list(prompt) for _ in idx], asynchronous=True, **options)
            for idx in parts
        ]
        return [item.result() for part in pending for item in part]

    def _to_transcript(self, result) -> Transcript:
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
        text = self.tokenizer.decode(tokens).strip()
        # scores are length-normalised cumulative log-probs
        avg_logprob = float(result.scores[0])
        if result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD:
            text, avg_logprob = "", float("-inf")
        return Transcript(text=text, confidence=float(np.exp(avg_logprob)) if text else 0.0)

    def _transcribe_batch(self, batch: List[np.ndarray], prompt: Optional[str] = None) -> List[Transcript]:
        extractor = self.model.feature_extractor
        frames = context_frames([len(a) for a in batch], self.options.context_margin,
                                min_context=self.options.min_context, full=extractor.nb_max_frames,
                                hop=extractor.hop_length)
        results = self._generate(self._features(batch, frames), prompt)
        out = [self._to_transcript(r) for r in results]
        if frames < extractor.nb_max_frames:
            limit = self.options.max_new_tokens
            again = [i for i, (t, r) in enumerate(zip(out, results))
                     if needs_full_window(t.text, t.confidence, len(r.sequences_ids[0]), limit)]
            if again:
                logger.debug("%d of %d clips decoded on %d frames look unreliable; decoding them on 30 s",
                             len(again), len(batch), frames)
                redone = self._generate(self._features([batch[i] for i in again]), prompt)
                for i, result in zip(again, redone):
                    out[i] = self._to_transcript(result)
        return out

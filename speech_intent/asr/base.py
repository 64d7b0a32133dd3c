"""The protocol every ASR stage follows, and the batching and options handling they share.

A stage takes a batch of audio (paths, bytes or arrays) and returns one
:class:`~speech_intent.results.Transcript` per input, in input order.
Inputs are length-sorted into batches so padding is minimal. Its decoding options are one
frozen dataclass, ``stage.options`` (see :mod:`speech_intent.asr.options`); a prompt can be
given per call, so one stage can serve concurrent calls with different prompts.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, List, Optional, Protocol, Sequence, Type, Union, runtime_checkable

import numpy as np

from ..audio import DEFAULT_MAX_DURATION, SAMPLE_RATE, AudioInput, load_audio, source_name
from ..errors import ConfigError, check_int
from ..results import Transcript
from .options import ASROptions

logger = logging.getLogger(__name__)


@runtime_checkable
class ASRStage(Protocol):
    """What the pipeline needs from an ASR stage.

    ``accepts_prompt``: whether ``transcribe`` takes a ``prompt`` (decoder context text);
    ``options``: the stage's decoding options (an :class:`~speech_intent.asr.options.ASROptions`).
    """

    backend: str
    sampling_rate: int
    accepts_prompt: bool
    options: Any

    def transcribe(self, audio: Sequence[np.ndarray], *, batch_size: Optional[int] = None,
                   prompt: Optional[str] = None) -> List[Transcript]:
        """Transcribe decoded mono float32 arrays at ``sampling_rate``; ``prompt`` for this call only."""
        ...

    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write everything needed to load the stage again."""
        ...


class BaseASR(ABC):
    """Shared behaviour: input decoding, length-sorted batching, order restoring, options.

    Option names can also be read and assigned as attributes (``asr.context_margin = 2.0`` is
    ``asr.configure(context_margin=2.0)``).
    """

    backend: ClassVar[str] = "base"
    #: The options dataclass of this backend.
    options_class: ClassVar[Type[ASROptions]] = ASROptions
    #: Whether ``transcribe`` takes a per-call ``prompt`` (and ``_transcribe_batch`` gets it).
    accepts_prompt: ClassVar[bool] = False
    sampling_rate: int = SAMPLE_RATE
    max_duration: Optional[float] = DEFAULT_MAX_DURATION
    options: ASROptions = ASROptions()

    def configure(self, **changes: Any) -> "BaseASR":
        """Replace ``self.options`` by a copy with ``changes`` (checked; unknown names raise
        :class:`~speech_intent.errors.ConfigError`). Returns the stage."""
        self.options = replace(self.options, **self.options_class.checked(changes))
        return self

    def _apply_options(self, options: ASROptions) -> None:
        """Hook run before ``options`` replace ``self.options`` (may raise to refuse them)."""

    @classmethod
    def _option_name(cls, name: str) -> Optional[str]:
        return None if name.startswith("_") else (name if name in cls.options_class.names() else None)

    def __getattr__(self, name: str) -> Any:  # only called when normal lookup fails
        option = self._option_name(name)
        if option is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.options, name) if option == name else getattr(self, option)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "options":
            if not isinstance(value, self.options_class):
                raise ConfigError(f"{type(self).__name__}.options must be a {self.options_class.__name__}, "
                                  f"got {type(value).__name__}")
            self._apply_options(value)
        else:
            option = self._option_name(name)
            if option is not None:
                self.options = replace(self.options, **{option: value})
                return
        object.__setattr__(self, name, value)

    def __call__(self, inputs: Sequence[AudioInput], *, batch_size: Optional[int] = None,
                 prompt: Optional[str] = None) -> List[Transcript]:
        """Decode ``inputs`` (paths, bytes, arrays) and transcribe them.

        Raises:
            AudioError: for the first input that cannot be decoded (the pipeline
                instead reports such inputs per file and goes on).
        """
        if isinstance(inputs, (str, Path, bytes, np.ndarray)):
            inputs = [inputs]  # type: ignore[list-item]
        arrays = [
            load_audio(x, sampling_rate=self.sampling_rate, max_duration=self.max_duration, name=source_name(x, i))
            for i, x in enumerate(inputs)
        ]
        return self.transcribe(arrays, batch_size=batch_size, prompt=prompt)

    def transcribe(self, audio: Sequence[np.ndarray], *, batch_size: Optional[int] = None,
                   prompt: Optional[str] = None) -> List[Transcript]:
        """Transcribe decoded arrays in length-sorted batches; results keep input order.

        ``batch_size``: ``None`` = ``options.batch_size``. ``prompt``: decoder context for this
        call only (``None`` = ``options.prompt``); only stages with ``accepts_prompt`` take one.
        """
        batch_size = self.options.batch_size if batch_size is None else batch_size
        check_int("batch_size", batch_size)
        extra = {}
        if self.accepts_prompt:
            extra["prompt"] = prompt if prompt is not None else getattr(self.options, "prompt", None)
        elif prompt is not None:
            raise ConfigError(f"the {self.backend} ASR stage takes no prompt")
        order = sorted(range(len(audio)), key=lambda i: -len(audio[i]))
        results: List[Optional[Transcript]] = [None] * len(audio)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = [np.asarray(audio[i], dtype=np.float32) for i in idx]
            for i, transcript in zip(idx, self._transcribe_batch(batch, **extra)):
                transcript.duration = len(audio[i]) / self.sampling_rate
                results[i] = transcript
        return results  # type: ignore[return-value]

    @abstractmethod
    def _transcribe_batch(self, batch: List[np.ndarray], prompt: Optional[str] = None) -> List[Transcript]:
        """Run the model once on a batch of arrays (``prompt`` only when ``accepts_prompt``)."""

    @abstractmethod
    def save_pretrained(self, save_directory: Union[str, Path]) -> None:
        """Write the model so that ``from_pretrained(save_directory)`` restores it."""


def mean_logprob_confidence(logprobs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-row exp(mean log-probability) over ``mask``ed positions; 0 where nothing was emitted."""
    counts = mask.sum(axis=1)
    sums = np.where(mask, logprobs, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.exp(np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf))
    return conf.astype(np.float64)

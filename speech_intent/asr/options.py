"""Decoding options of the ASR stages: one frozen dataclass per backend.

The same idea has the same name on every backend (``num_beams``, ``prompt``, ...). A stage
holds its options as ``stage.options``; ``stage.configure(**changes)`` replaces them (checked
again), and ``pipeline.json`` stores ``options.to_dict()``.

==================  =======  ==============  ========  ================================================
field               whisper  faster-whisper  wav2vec2  meaning
==================  =======  ==============  ========  ================================================
batch_size          yes      yes             yes       inputs per model call unless a call gives one
num_beams           yes      yes                       beam size; ``None`` = 1 (4 with a grammar on whisper)
max_new_tokens      yes      yes                       longest transcript in tokens
prompt              yes      yes                       decoder context text when a call gives none
language / task     yes      yes                       for multilingual checkpoints
context_margin      yes      yes                       shorter encoder context (seconds, default 2; ``None`` = 30 s)
min_context         yes      yes                       shortest encoder context with ``context_margin``
encoder_budget      yes      yes                       CPU encoder slicing: clips x frames^2 per call
compile             yes                                static cache + ``torch.compile`` (GPU option)
grammar_rejection   yes                                out-of-grammar margin (``None`` = off)
lowercase                                    yes       lowercase the CTC output
==================  =======  ==============  ========  ================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union

from ..errors import ConfigError, check_int
from .whisper_common import DEFAULT_CONTEXT_MARGIN, ENCODER_BUDGET

__all__ = ["ASROptions", "WhisperCommonOptions", "WhisperOptions", "FasterWhisperOptions", "Wav2Vec2Options",
           "merge_options"]

TASKS = ("transcribe", "translate")

O = TypeVar("O", bound="ASROptions")


@dataclass(frozen=True)
class ASROptions:
    """Options every stage has.

    Attributes:
        batch_size: inputs per model call when a ``transcribe`` call does not give its own.
    """

    batch_size: int = 8

    def __post_init__(self) -> None:
        self._check_int("batch_size", minimum=1)

    # ----------------------------------------------------------- (de)serialising
    def to_dict(self) -> Dict[str, Any]:
        """Every field by name (JSON-serialisable)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls: Type[O], mapping: Mapping[str, Any]) -> O:
        """Options from ``to_dict()`` output; missing fields keep their defaults, unknown names raise
        :class:`ConfigError` naming them."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{cls.__name__} needs a mapping of option names, got {type(mapping).__name__}")
        return cls(**cls.checked(mapping))

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The option names of this backend."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def checked(cls, changes: Mapping[str, Any]) -> Dict[str, Any]:
        """``changes`` as a dict; unknown names raise :class:`ConfigError` naming them all."""
        unknown = [key for key in changes if key not in cls.names()]
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(map(repr, unknown))} "
                              f"(valid: {', '.join(cls.names())})")
        return dict(changes)

    # ---------------------------------------------------------------- validation
    def _fail(self, name: str, expected: str) -> None:
        raise ConfigError(f"{type(self).__name__}.{name} must be {expected}, got {getattr(self, name)!r}")

    def _check_int(self, name: str, *, minimum: int, optional: bool = False) -> None:
        check_int(f"{type(self).__name__}.{name}", getattr(self, name), minimum=minimum, optional=optional)

    def _check_number(self, name: str, *, minimum: float = -math.inf, finite: bool = True, optional: bool = False,
                      strict: bool = False) -> None:
        value = getattr(self, name)
        if optional and value is None:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
        ok = ok and (math.isfinite(value) or not finite) and (value > minimum if strict else value >= minimum)
        if not ok:
            bound = f" {'>' if strict else '>='} {minimum:g}" if minimum > -math.inf else ""
            self._fail(name, f"a{' finite' if finite else ''} number{bound}" + (" or None" if optional else ""))

    def _check_type(self, name: str, kind: type, *, optional: bool = False) -> None:
        value = getattr(self, name)
        if not (isinstance(value, kind) or (optional and value is None)):
            self._fail(name, f"a {kind.__name__}" + (" or None" if optional else ""))


@dataclass(frozen=True)
class WhisperCommonOptions(ASROptions):
    """Options both Whisper backends have (see the module table)."""

    num_beams: Optional[int] = None
    max_new_tokens: int = 128
    prompt: Optional[str] = None
    language: Optional[str] = None
    task: str = "transcribe"
    context_margin: Optional[float] = DEFAULT_CONTEXT_MARGIN
    min_context: float = 10.0
    encoder_budget: float = ENCODER_BUDGET

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_int("num_beams", minimum=1, optional=True)
        self._check_int("max_new_tokens", minimum=1)
        self._check_type("prompt", str, optional=True)
        self._check_type("language", str, optional=True)
        if self.task not in TASKS:
            self._fail("task", f"one of {', '.join(TASKS)}")
        self._check_number("context_margin", minimum=0.0, optional=True)
        self._check_number("min_context", minimum=0.0)
        self._check_number("encoder_budget", minimum=0.0, finite=False, strict=True)


@dataclass(frozen=True)
class FasterWhisperOptions(WhisperCommonOptions):
    """Options of :class:`~speech_intent.asr.FasterWhisperASR` (``num_beams=None`` = greedy)."""


@dataclass(frozen=True)
class WhisperOptions(WhisperCommonOptions):
    """Options of :class:`~speech_intent.asr.WhisperASR` (transformers).

    Attributes:
        compile: static decoder cache + ``torch.compile`` of the forward pass (cannot be undone
            on a loaded stage).
        grammar_rejection: with a grammar, the margin (nats per token) by which a free decoding
            must beat the constrained one for a clip to be out of grammar; ``None`` = no free decoding.
    """

    compile: bool = False
    grammar_rejection: Optional[float] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_type("compile", bool)
        self._check_number("grammar_rejection", finite=False, optional=True)


@dataclass(frozen=True)
class Wav2Vec2Options(ASROptions):
    """Options of :class:`~speech_intent.asr.Wav2Vec2ASR`.

    Attributes:
        lowercase: lowercase the output (CTC vocabularies are often upper case).
    """

    lowercase: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_type("lowercase", bool)


def merge_options(cls: Type[O], options: Union[O, Mapping[str, Any], None] = None,
                  overrides: Optional[Mapping[str, Any]] = None) -> O:
    """``options`` (an instance of ``cls``, a mapping for :meth:`~ASROptions.from_dict`, or ``None`` for
    the defaults) with the keyword ``overrides`` applied (same names)."""
    if options is None:
        base = cls()
    elif isinstance(options, Mapping):
        base = cls.from_dict(options)
    elif isinstance(options, cls):
        base = options
    else:
        raise ConfigError(f"options must be a {cls.__name__} or a mapping, got {type(options).__name__}")
    changes = cls.checked(overrides or {})
    return replace(base, **changes) if changes else base

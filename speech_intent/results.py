"""Typed results of each stage. Every result is a dataclass with ``to_dict()``."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .slots import SlotSpan


@dataclass
class Transcript:
    """Output of an ASR stage for one input.

    Attributes:
        text: the recognised text, stripped.
        confidence: geometric-mean token probability in [0, 1].
        duration: length of the input audio in seconds.
        in_grammar: with grammar-constrained decoding, whether the speech was judged to be a
            sentence of the grammar (``None`` = no grammar in use).
        grammar_margin: with out-of-grammar rejection on, how much better the free decoding
            scored than the constrained one (mean log-probability per token; rejected above
            the stage's ``grammar_rejection``).
    """

    text: str
    confidence: float
    duration: Optional[float] = None
    in_grammar: Optional[bool] = None
    grammar_margin: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def __getattr__(name: str) -> Any:
    """``SlotValue``: a deprecated alias of :class:`~speech_intent.slots.SlotSpan`."""
    if name == "SlotValue":
        warnings.warn(
            "speech_intent.results.SlotValue is deprecated; use speech_intent.slots.SlotSpan. "
            "Its fields are in a different order: SlotSpan(name, start, end, value, raw), "
            "not SlotValue(name, value, start, end, raw); pass them by keyword.",
            DeprecationWarning,
            stacklevel=2,
        )
        return SlotSpan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class IntentPrediction:
    """Output of an intent stage for one text.

    Attributes:
        text: the text that was classified (after normalisation).
        intent: the predicted label, or ``None`` when out of scope / empty.
        confidence: softmax probability of the top label.
        top_k: the best labels with their probabilities, best first.
        slots: slot name -> value (joint models; empty for intent-only models).
        slot_spans: the same slots as :class:`~speech_intent.slots.SlotSpan` with character spans
            into ``text`` (``raw``: the text found there when ``value`` was canonicalised).
    """

    text: str
    intent: Optional[str]
    confidence: float
    top_k: List[Tuple[str, float]] = field(default_factory=list)
    slots: Dict[str, str] = field(default_factory=dict)
    slot_spans: List[SlotSpan] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": self.confidence,
            "top_k": [{"intent": label, "confidence": p} for label, p in self.top_k],
            "slots": dict(self.slots),
            "slot_spans": [s.to_dict() for s in self.slot_spans],
        }


@dataclass
class PipelineResult:
    """One input's end-to-end result. ``error`` is set (and the rest empty) when it failed."""

    path: str
    transcript: Optional[str] = None
    transcript_confidence: Optional[float] = None
    text: Optional[str] = None
    intent: Optional[str] = None
    confidence: Optional[float] = None
    top_k: List[Tuple[str, float]] = field(default_factory=list)
    slots: Dict[str, str] = field(default_factory=dict)
    duration: Optional[float] = None
    error: Optional[str] = None
    in_grammar: Optional[bool] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "transcript": self.transcript,
            "transcript_confidence": self.transcript_confidence,
            "text": self.text,
            "intent": self.intent,
            "confidence": self.confidence,
            "top_k": [{"intent": label, "confidence": p} for label, p in self.top_k],
            "slots": dict(self.slots),
            "duration": self.duration,
            "error": self.error,
            "in_grammar": self.in_grammar,
        }

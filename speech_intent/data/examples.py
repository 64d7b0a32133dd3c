"""The labelled-utterance type shared by every data loader.

Slot spans are :class:`speech_intent.slots.SlotSpan` (re-exported here with
``span_from_dict`` and ``spans_from_values``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import DataFormatError
from ..slots import SlotSpan, span_from_dict, spans_from_values

logger = logging.getLogger(__name__)

__all__ = ["DataFormatError", "Example", "SlotSpan", "span_from_dict", "spans_from_values"]


@dataclass(frozen=True)
class Example:
    """One utterance with its intent (``None`` when unlabelled) and slot spans sorted by start."""

    text: str
    intent: str | None
    slots: tuple[SlotSpan, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"text must be a string, got {type(self.text).__name__}")
        if self.intent is not None and not isinstance(self.intent, str):
            raise ValueError(f"intent must be a string or None, got {self.intent!r}")
        bad = [span for span in self.slots if not isinstance(span, SlotSpan)]
        if bad:
            raise ValueError(f"slots must be SlotSpan objects, got {bad[0]!r}")
        slots = tuple(sorted(self.slots, key=lambda s: (s.start, s.end)))
        object.__setattr__(self, "slots", slots)
        previous: SlotSpan | None = None
        for span in slots:
            if span.end > len(self.text):
                raise ValueError(
                    f"slot {span.name!r} [{span.start}, {span.end}) lies outside the text "
                    f"(length {len(self.text)})"
                )
            if self.text[span.start : span.end] != span.value:
                raise ValueError(
                    f"slot {span.name!r}: value {span.value!r} != text "
                    f"{self.text[span.start:span.end]!r} at [{span.start}, {span.end})"
                )
            if previous is not None and span.start < previous.end:
                raise ValueError(
                    f"slots {previous.name!r} [{previous.start}, {previous.end}) and "
                    f"{span.name!r} [{span.start}, {span.end}) overlap"
                )
            previous = span

    def slot_dict(self) -> dict[str, list[str]]:
        """Slot name -> values in text order (a name may occur more than once)."""
        out: dict[str, list[str]] = {}
        for span in self.slots:
            out.setdefault(span.name, []).append(span.value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping: text, intent and a list of slot dicts."""
        return {
            "text": self.text,
            "intent": self.intent,
            "slots": [_span_dict(span) for span in self.slots],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Example":
        """Inverse of :meth:`to_dict`; slot ``value`` may be omitted (it is read from the text).

        Raises ``ValueError`` (not DataFormatError: there is no file here) when invalid.
        """
        if not isinstance(d, Mapping) or "text" not in d:
            raise ValueError(f"expected a mapping with a 'text' key, got {d!r}")
        text = d["text"]
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {text!r}")
        spans = tuple(span_from_dict(text, raw) for raw in d.get("slots") or ())
        return cls(text, d.get("intent"), spans)


def _span_dict(span: SlotSpan) -> dict[str, Any]:
    """``span.to_dict()`` without ``raw`` when it is unset (data files keep name, start, end, value)."""
    out = span.to_dict()
    if out.get("raw") is None:
        out.pop("raw", None)
    return out

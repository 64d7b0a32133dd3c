"""Core labelled-utterance types shared by every data loader."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import DataFormatError

logger = logging.getLogger(__name__)

__all__ = ["DataFormatError", "Example", "SlotSpan", "span_from_dict", "spans_from_values"]


@dataclass(frozen=True)
class SlotSpan:
    """A slot filler: ``name`` covering ``text[start:end] == value`` of its Example."""

    name: str
    start: int
    end: int
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"slot name must be a non-empty string, got {self.name!r}")
        for attr in ("start", "end"):
            val = getattr(self, attr)
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"slot {self.name!r}: {attr} must be an int, got {val!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"slot {self.name!r}: bad offsets [{self.start}, {self.end})")
        if not isinstance(self.value, str) or len(self.value) != self.end - self.start:
            raise ValueError(
                f"slot {self.name!r}: value {self.value!r} does not fit [{self.start}, {self.end})"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping with name, start, end and value."""
        return {"name": self.name, "start": self.start, "end": self.end, "value": self.value}


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
            "slots": [span.to_dict() for span in self.slots],
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


def span_from_dict(text: str, raw: Any) -> SlotSpan:
    """SlotSpan from ``{"name", "start", "end"[, "value"]}``; a missing value is read from text."""
    if not isinstance(raw, Mapping) or not {"name", "start", "end"} <= raw.keys():
        raise ValueError(f"slot must have name, start and end: {raw!r}")
    start, end = raw["start"], raw["end"]
    if isinstance(start, bool) or isinstance(end, bool) or not (
        isinstance(start, int) and isinstance(end, int)
    ):
        raise ValueError(f"slot offsets must be ints: {raw!r}")
    value = raw.get("value", text[start:end] if 0 <= start <= end else "")
    return SlotSpan(str(raw["name"]), start, end, value)


def _word_bounded(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is not glued to a word character on either side."""
    left_ok = start == 0 or not text[start - 1].isalnum() or not text[start].isalnum()
    right_ok = end == len(text) or not text[end].isalnum() or not text[end - 1].isalnum()
    return left_ok and right_ok


def spans_from_values(text: str, pairs: Iterable[tuple[str, str]]) -> tuple[SlotSpan, ...]:
    """Locate each ``(name, value)`` in ``text`` and return non-overlapping spans.

    Longer values are placed first; for each value the earliest free occurrence on word
    boundaries wins, falling back to the earliest free occurrence anywhere.
    Raises ``ValueError`` when a value cannot be placed.
    """
    items = [(str(name), str(value)) for name, value in pairs]
    order = sorted(range(len(items)), key=lambda i: -len(items[i][1]))
    taken: list[tuple[int, int]] = []
    spans: list[SlotSpan] = []
    for i in order:
        name, value = items[i]
        if not value:
            raise ValueError(f"slot {name!r} has an empty value")
        free = [
            m.start()
            for m in re.finditer(f"(?={re.escape(value)})", text)
            if all(m.start() + len(value) <= s or m.start() >= e for s, e in taken)
        ]
        if not free:
            raise ValueError(f"slot {name!r}: value {value!r} not found in text {text!r}")
        bounded = [p for p in free if _word_bounded(text, p, p + len(value))]
        start = (bounded or free)[0]
        taken.append((start, start + len(value)))
        spans.append(SlotSpan(name, start, start + len(value), value))
    return tuple(spans)

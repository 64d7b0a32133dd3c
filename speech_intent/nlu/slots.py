"""Slot labels: character spans <-> word-level BIO tags <-> first-sub-word labels.

A *word* is a whitespace-separated token of the normalised text. Training
spans are moved into normalised text by :func:`normalize_example` (the text
is normalised piece by piece, so every span lands on whole words); each word
gets one BIO tag (:func:`word_tags`); the first sub-word of each word carries
that tag and every other position ``-100`` (:func:`align_labels`, using the
fast tokenizer's character offsets). Inference reverses the last two steps
(:func:`decode_tags`).
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..results import SlotValue

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
OUTSIDE = "O"
_WORD = re.compile(r"\S+")

Span = Tuple[int, int]


@dataclass
class NormalizedExample:
    """An example moved into normalised text: ``text[s.start:s.end] == s.value`` for each slot.

    ``SlotValue.raw`` keeps the slot's value as written in the source text.
    """

    text: str
    intent: Optional[str]
    slots: List[SlotValue] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def normalize_example(example: Any, normalizer: Optional[Callable[[str], str]] = None) -> NormalizedExample:
    """Apply ``normalizer`` to an :class:`~speech_intent.data.Example` and rebuild its slot spans.

    The text is cut at the slot boundaries, each piece (the text between slots and
    each slot value) is normalised on its own, and the non-empty pieces are joined
    with single spaces; so a slot always covers whole words of the result. This can
    differ from normalising the whole text when a slot is glued to its neighbour
    (``[john](name)'s`` gives ``john s``), which is rare in assistant data. A slot
    whose value normalises to nothing is dropped. ``normalizer=None`` only
    collapses whitespace. ``(text, intent)`` pairs are accepted too (no slots).
    """
    norm = normalizer or _collapse
    if hasattr(example, "text"):
        text, intent, spans = example.text, example.intent, tuple(getattr(example, "slots", ()) or ())
    else:
        text, intent, spans = example[0], example[1], ()
    pieces: List[str] = []
    slots: List[SlotValue] = []
    length = 0

    def add(segment: str) -> Optional[Span]:
        nonlocal length
        piece = _collapse(norm(segment))
        if not piece:
            return None
        if pieces:
            length += 1
        start = length
        pieces.append(piece)
        length += len(piece)
        return start, length

    cursor = 0
    for span in sorted(spans, key=lambda s: s.start):
        add(text[cursor : span.start])
        placed = add(span.value)
        if placed is None:
            logger.debug("slot %s=%r is empty after normalisation; dropped", span.name, span.value)
        else:
            slots.append(SlotValue(span.name, pieces[-1], placed[0], placed[1], raw=span.value))
        cursor = span.end
    add(text[cursor:])
    return NormalizedExample(" ".join(pieces), intent, slots)


def word_bounds(text: str) -> List[Span]:
    """``(start, end)`` of every whitespace-separated word of ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def word_tags(text: str, slots: Sequence[SlotValue]) -> List[str]:
    """One BIO tag per word: ``B-name`` on a slot's first word, ``I-name`` on the rest, else ``O``."""
    tags = [OUTSIDE] * len(word_bounds(text))
    for i, (start, end) in enumerate(word_bounds(text)):
        for slot in slots:
            if start < slot.end and slot.start < end:
                tags[i] = ("B-" if start <= slot.start else "I-") + slot.name
                break
    return tags


def first_subwords(offsets: Sequence[Span], text: str) -> List[int]:
    """For each token: the index of the word it starts, or ``-1`` (special token, later sub-word).

    ``offsets`` are the fast tokenizer's ``offset_mapping`` for ``text``; the first
    token whose characters lie inside a word stands for that word.
    """
    char_word = [-1] * len(text)
    for w, (start, end) in enumerate(word_bounds(text)):
        char_word[start:end] = [w] * (end - start)
    seen = set()
    out: List[int] = []
    for start, end in offsets:
        word = char_word[start] if end > start and start < len(text) else -1
        if word < 0 or word in seen:
            out.append(-1)
        else:
            seen.add(word)
            out.append(word)
    return out


def align_labels(offsets: Sequence[Span], text: str, word_label_ids: Sequence[int]) -> List[int]:
    """Token-level label ids: the word's id on its first sub-word, ``-100`` everywhere else."""
    return [word_label_ids[w] if w >= 0 else IGNORE_INDEX for w in first_subwords(offsets, text)]


def tags_to_slots(text: str, tags: Sequence[str]) -> List[SlotValue]:
    """Decode word-level BIO tags into character spans of ``text`` (in text order).

    Lenient like conlleval: an ``I-x`` that does not continue an ``x`` span starts one.
    """
    bounds = word_bounds(text)
    slots: List[SlotValue] = []
    current: Optional[List[Any]] = None  # [name, start, end]

    def close() -> None:
        if current is not None:
            slots.append(SlotValue(current[0], text[current[1] : current[2]], current[1], current[2]))

    for (start, end), tag in zip(bounds, tags):
        prefix, _, name = tag.partition("-")
        if prefix == "I" and current is not None and current[0] == name:
            current[2] = end
            continue
        close()
        current = [name, start, end] if prefix in ("B", "I") and name else None
    close()
    return slots


def decode_tags(offsets: Sequence[Span], text: str, token_tag_ids: Sequence[int], labels: Sequence[str]) -> List[str]:
    """Word-level tags from per-token predictions: each word takes its first sub-word's tag.

    Words with no token (cut off by truncation) are tagged ``O``.
    """
    tags = [OUTSIDE] * len(word_bounds(text))
    for word, tag_id in zip(first_subwords(offsets, text), token_tag_ids):
        if word >= 0:
            tags[word] = labels[int(tag_id)]
    return tags


def slot_dict(slots: Sequence[SlotValue]) -> Dict[str, str]:
    """Slot name -> value; when a name occurs more than once the first (leftmost) occurrence wins."""
    out: Dict[str, str] = {}
    for slot in slots:
        out.setdefault(slot.name, slot.value)
    return out

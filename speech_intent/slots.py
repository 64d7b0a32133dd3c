"""Slots in one place: the span type, word-level BIO tags, normalisation, and slot scores.

A slot is a :class:`SlotSpan`: a name over the characters ``text[start:end]`` of some text.
A *word* is a whitespace-separated token (:func:`word_bounds`). Spans become one BIO tag per
word with :func:`word_tags` and come back with :func:`tags_to_slots`. :func:`normalize_spans`
carries spans through a text normaliser (the text is normalised piece by piece, so each span
lands on whole words of the result).

What "slot F1" means, everywhere in this library (training metrics, ``evaluate``, the SNIPS
benchmark): entity-level micro F1 over word-level BIO tags of the *normalised* text, computed by
seqeval in its default (conlleval-style) mode; an entity counts as found only when its name and
its exact word span both match. One rule covers the empty case: when neither gold nor prediction
has any slot entity at all, precision = recall = F1 = 1.0 (nothing to find, nothing wrongly
found); otherwise a 0/0 ratio is 0. See :func:`slot_scores`.

Audio input has no shared token sequence (the transcript differs from the reference), so there
slots are scored by value instead: :func:`value_scores` over ``(name, normalised value)`` pairs.

This is the lowest layer: it imports only the standard library and (lazily) seqeval.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

__all__ = [
    "SlotSpan", "NormalizedExample", "SlotScores", "span_from_dict", "spans_from_values", "locate_values",
    "word_bounds", "word_tags", "tags_to_slots", "normalize_spans", "normalize_example", "slot_dict",
    "project_spans", "aligned_bio", "slot_scores", "value_scores", "slots_accepted",
]

Normalize = Callable[[str], str]
Pairs = Sequence[Tuple[str, str]]
OUTSIDE = "O"
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class SlotSpan:
    """A slot filler: ``name`` over ``text[start:end]`` of the text it belongs to.

    ``value`` is that text, unless it was rewritten; then ``raw`` keeps the value as found before
    (the text as extracted, before canonicalisation to a listed value; or, from
    :func:`normalize_example`, the value as written in the source text before normalisation).
    Either ``value`` or ``raw`` has the span's length.
    """

    name: str
    start: int
    end: int
    value: str
    raw: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"slot name must be a non-empty string, got {self.name!r}")
        for attr in ("start", "end"):
            val = getattr(self, attr)
            if isinstance(val, bool) or not isinstance(val, int):
                raise ValueError(f"slot {self.name!r}: {attr} must be an int, got {val!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(f"slot {self.name!r}: bad offsets [{self.start}, {self.end})")
        if self.raw is not None and not isinstance(self.raw, str):
            raise ValueError(f"slot {self.name!r}: raw must be a string or None, got {self.raw!r}")
        fits = [v for v in (self.value, self.raw) if isinstance(v, str) and len(v) == self.end - self.start]
        if not isinstance(self.value, str) or not self.value or not fits:
            raise ValueError(
                f"slot {self.name!r}: value {self.value!r} does not fit [{self.start}, {self.end})"
            )

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready mapping with name, start, end, value and raw."""
        return {"name": self.name, "start": self.start, "end": self.end, "value": self.value, "raw": self.raw}


@dataclass
class NormalizedExample:
    """An example moved into normalised text: ``text[s.start:s.end] == s.value`` for each slot.

    ``SlotSpan.raw`` keeps each slot's value as written in the source text.
    """

    text: str
    intent: Optional[str]
    slots: List[SlotSpan] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class SlotScores(NamedTuple):
    """Entity-level micro precision, recall and F1 (see the module docstring)."""

    precision: float
    recall: float
    f1: float


# ------------------------------------------------------------------ building spans
def span_from_dict(text: str, raw: Any) -> SlotSpan:
    """SlotSpan from ``{"name", "start", "end"[, "value", "raw"]}``; a missing value is read from text."""
    if not isinstance(raw, Mapping) or not {"name", "start", "end"} <= raw.keys():
        raise ValueError(f"slot must have name, start and end: {raw!r}")
    start, end = raw["start"], raw["end"]
    if isinstance(start, bool) or isinstance(end, bool) or not (
        isinstance(start, int) and isinstance(end, int)
    ):
        raise ValueError(f"slot offsets must be ints: {raw!r}")
    value = raw.get("value", text[start:end] if 0 <= start <= end else "")
    return SlotSpan(str(raw["name"]), start, end, value, raw.get("raw"))


def _word_bounded(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is not glued to a word character on either side."""
    left_ok = start == 0 or not text[start - 1].isalnum() or not text[start].isalnum()
    right_ok = end == len(text) or not text[end].isalnum() or not text[end - 1].isalnum()
    return left_ok and right_ok


def _free(start: int, end: int, taken: Sequence[Tuple[int, int]]) -> bool:
    return all(end <= s or start >= e for s, e in taken)


def spans_from_values(text: str, pairs: Iterable[Tuple[str, str]]) -> Tuple[SlotSpan, ...]:
    """Locate each ``(name, value)`` in ``text`` and return non-overlapping spans.

    Longer values are placed first; for each value the earliest free occurrence on word
    boundaries wins, falling back to the earliest free occurrence anywhere.
    Raises ``ValueError`` when a value cannot be placed.
    """
    items = [(str(name), str(value)) for name, value in pairs]
    order = sorted(range(len(items)), key=lambda i: -len(items[i][1]))
    taken: List[Tuple[int, int]] = []
    spans: List[SlotSpan] = []
    for i in order:
        name, value = items[i]
        if not value:
            raise ValueError(f"slot {name!r} has an empty value")
        free = [m.start() for m in re.finditer(f"(?={re.escape(value)})", text)
                if _free(m.start(), m.start() + len(value), taken)]
        if not free:
            raise ValueError(f"slot {name!r}: value {value!r} not found in text {text!r}")
        bounded = [p for p in free if _word_bounded(text, p, p + len(value))]
        start = (bounded or free)[0]
        taken.append((start, start + len(value)))
        spans.append(SlotSpan(name, start, start + len(value), value))
    return tuple(spans)


def locate_values(text: str, slots: Mapping[str, str], normalize: Optional[Normalize] = None) -> List[SlotSpan]:
    """Spans of each slot value (after ``normalize``) in ``text``: whole words, first free occurrence.

    For predictions that list slot values without offsets; values not found are skipped.
    """
    found: List[SlotSpan] = []
    taken: List[Tuple[int, int]] = []
    for name, value in sorted(slots.items(), key=lambda kv: -len(kv[1])):
        value = normalize(value) if normalize else value
        if not value:
            continue
        for match in re.finditer(rf"(?<!\S){re.escape(value)}(?!\S)", text):
            if _free(match.start(), match.end(), taken):
                taken.append(match.span())
                found.append(SlotSpan(name, match.start(), match.end(), match.group()))
                break
        else:
            logger.debug("slot %s=%r not found in %r", name, value, text)
    return sorted(found, key=lambda s: s.start)


# ------------------------------------------------------------------ words and BIO tags
def word_bounds(text: str) -> List[Tuple[int, int]]:
    """``(start, end)`` of every whitespace-separated word of ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def word_tags(text: str, spans: Iterable[Any]) -> List[str]:
    """One BIO tag per word of ``text``: a word overlapping a span takes its tag.

    The first such word of each span gets ``B-name``, the rest ``I-name``, other words ``O``;
    a word overlapping two spans takes the leftmost. ``spans`` need ``name``, ``start``, ``end``.
    """
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    tags: List[str] = []
    k, opened = 0, -1  # opened: the span that already has its B- word
    for start, end in word_bounds(text):
        while k < len(ordered) and ordered[k].end <= start:
            k += 1
        if k < len(ordered) and ordered[k].start < end:
            tags.append(("I-" if opened == k else "B-") + ordered[k].name)
            opened = k
        else:
            tags.append(OUTSIDE)
    return tags


def tags_to_slots(text: str, tags: Sequence[str]) -> List[SlotSpan]:
    """Decode one BIO tag per word of ``text`` into spans (in text order).

    Lenient like conlleval: an ``I-x`` that does not continue an ``x`` span starts one.
    Tags other than ``B-x`` / ``I-x`` count as outside.
    """
    slots: List[SlotSpan] = []
    current: Optional[List[Any]] = None  # [name, start, end]

    def close() -> None:
        if current is not None:
            slots.append(SlotSpan(current[0], current[1], current[2], text[current[1] : current[2]]))

    for (start, end), tag in zip(word_bounds(text), tags):
        prefix, _, name = tag.partition("-")
        if prefix == "I" and current is not None and current[0] == name:
            current[2] = end
            continue
        close()
        current = [name, start, end] if prefix in ("B", "I") and name else None
    close()
    return slots


# ------------------------------------------------------------------ normalisation
def _collapse(text: str) -> str:
    return " ".join(text.split())


def normalize_spans(
    text: str, spans: Iterable[Any], normalizer: Optional[Normalize] = None
) -> Tuple[str, List[SlotSpan]]:
    """``text`` after ``normalizer`` and the ``spans`` moved into it (see :func:`normalize_example`).

    A normaliser with a ``normalize_pieces`` method (:class:`~speech_intent.normalize.TextNormalizer`)
    gets all the pieces at once, so its context rules see across the cuts ("dr [smith](name)").
    """
    norm = normalizer or _collapse
    segments: List[str] = []
    owners: List[Any] = []  # the span each segment is, or None for the text between spans
    cursor = 0
    for span in sorted(spans, key=lambda s: s.start):
        segments += [text[cursor : span.start], text[span.start : span.end]]
        owners += [None, span]
        cursor = span.end
    segments.append(text[cursor:])
    owners.append(None)
    together = getattr(norm, "normalize_pieces", None)
    normalized = together(segments) if together is not None else [norm(segment) for segment in segments]

    pieces: List[str] = []
    moved: List[SlotSpan] = []
    length = 0
    for segment, piece, span in zip(segments, normalized, owners):
        piece = _collapse(piece)
        if not piece:
            if span is not None:
                logger.debug("slot %s=%r is empty after normalisation; dropped", span.name, segment)
            continue
        length += 1 if pieces else 0
        pieces.append(piece)
        if span is not None:
            moved.append(SlotSpan(span.name, length, length + len(piece), piece, raw=segment))
        length += len(piece)
    return " ".join(pieces), moved


def normalize_example(example: Any, normalizer: Optional[Normalize] = None) -> NormalizedExample:
    """Apply ``normalizer`` to an :class:`~speech_intent.data.Example` and rebuild its slot spans.

    The text is cut at the slot boundaries, each piece (the text between slots and
    each slot value) is normalised on its own, and the non-empty pieces are joined
    with single spaces; so a slot always covers whole words of the result. This can
    differ from normalising the whole text when a slot is glued to its neighbour
    (``[john](name)'s`` gives ``john s``), which is rare in assistant data; a
    :class:`~speech_intent.normalize.TextNormalizer`'s context rules (a unit after a
    number, a title before a name) still see across the cuts. A slot whose value
    normalises to nothing is dropped. ``normalizer=None`` only collapses whitespace.
    ``(text, intent)`` pairs are accepted too (no slots).
    """
    if hasattr(example, "text"):
        text, intent, spans = example.text, example.intent, tuple(getattr(example, "slots", ()) or ())
    else:
        text, intent, spans = example[0], example[1], ()
    normalized, moved = normalize_spans(text, spans, normalizer)
    return NormalizedExample(normalized, intent, moved)


def slot_dict(spans: Iterable[SlotSpan]) -> Dict[str, str]:
    """Slot name -> value; when a name occurs more than once the first (leftmost) occurrence wins."""
    out: Dict[str, str] = {}
    for span in sorted(spans, key=lambda s: s.start):
        out.setdefault(span.name, span.value)
    return out


# ------------------------------------------------------------------ BIO scoring
def project_spans(gold_tokens: Sequence[str], text: str, spans: Iterable[Any]) -> List[str]:
    """Predicted spans (offsets into ``text``) as BIO tags over ``gold_tokens``.

    Each span's words are matched to the first free run of equal gold tokens; a span that
    cannot be placed adds a trailing ``B-name`` tag (the caller pads gold with ``O``), so it
    still counts as a false positive.
    """
    tags = [OUTSIDE] * len(gold_tokens)
    unplaced: List[str] = []
    for span in sorted(spans, key=lambda s: s.start):
        words = text[span.start : span.end].split()
        n = len(words)
        for i in range(len(gold_tokens) - n + 1 if n else 0):
            if list(gold_tokens[i : i + n]) == words and all(t == OUTSIDE for t in tags[i : i + n]):
                tags[i : i + n] = ["B-" + span.name] + ["I-" + span.name] * (n - 1)
                break
        else:
            unplaced.append("B-" + span.name)
    return tags + unplaced


def aligned_bio(
    gold_text: str, gold_spans: Iterable[Any], pred_text: str, pred_spans: Iterable[Any], normalize: Normalize
) -> Tuple[List[str], List[str]]:
    """Gold and predicted word-level BIO tags of equal length for one utterance.

    The gold spans are moved into normalised text with :func:`normalize_spans`; predicted spans
    point into ``pred_text`` (the classifier's normalised text). When the two texts have other
    words (whole-text and piecewise normalisation differ), predictions are placed with
    :func:`project_spans`.
    """
    gold_norm, gold_moved = normalize_spans(gold_text, gold_spans, normalize)
    gold_tokens, gold_tags = gold_norm.split(), word_tags(gold_norm, gold_moved)
    pred_spans = list(pred_spans)
    if pred_text.split() == gold_tokens:
        pred_tags = word_tags(pred_text, pred_spans)
    else:
        pred_tags = project_spans(gold_tokens, pred_text, pred_spans)
    return gold_tags + [OUTSIDE] * (len(pred_tags) - len(gold_tags)), pred_tags


def slot_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> SlotScores:
    """THE slot precision / recall / F1: seqeval entity-level micro scores over BIO tag lists.

    One list of word tags per utterance, gold and predicted of the same lengths. Default
    (conlleval-style) seqeval mode, ``zero_division=0``; when neither side has any entity,
    all three are 1.0 (see the module docstring).
    """
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold tag lists but {len(pred)} predicted")
    gold_l, pred_l = [list(g) for g in gold], [list(p) for p in pred]
    for i, (g, p) in enumerate(zip(gold_l, pred_l)):
        if len(g) != len(p):
            raise ValueError(f"utterance {i}: {len(g)} gold tags but {len(p)} predicted")
    if not any(get_entities(g) for g in gold_l) and not any(get_entities(p) for p in pred_l):
        return SlotScores(1.0, 1.0, 1.0)
    return SlotScores(float(precision_score(gold_l, pred_l, zero_division=0)),
                      float(recall_score(gold_l, pred_l, zero_division=0)),
                      float(f1_score(gold_l, pred_l, zero_division=0)))


# ------------------------------------------------------------------ value scoring (audio)
def value_scores(gold: Sequence[Pairs], pred: Sequence[Pairs], normalize: Normalize) -> Dict[str, float]:
    """Micro precision / recall / F1 over ``(name, normalised value)`` pairs, plus the counts."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gc = Counter((name, normalize(value)) for name, value in g)
        pc = Counter((name, normalize(value)) for name, value in p)
        tp += sum((gc & pc).values())
        n_gold += sum(gc.values())
        n_pred += sum(pc.values())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true_positives": tp, "gold": n_gold,
            "predicted": n_pred}


def slots_accepted(gold: Pairs, predicted: Mapping[str, str], normalize: Normalize) -> bool:
    """True when every gold slot is predicted with exactly its value (after ``normalize``).

    Extra predicted slots do not count against. A slot name labelled twice needs both values,
    which a one-value-per-name prediction can only satisfy when they are equal.
    """
    have = {name: normalize(value) for name, value in predicted.items()}
    return all(have.get(name) == normalize(value) for name, value in gold)

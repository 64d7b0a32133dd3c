"""Slot values: closed value lists, canonicalisation, and the ASR domain prompt.

A slot with a closed value list (from a grammar, or inferred from training
data) maps whatever span the model extracted to the nearest listed value with
a fuzzy + phonetic match ("light rose" -> "light roast"); below the threshold
the raw span is kept, and so is a span that names a number no listed value names. The same lists give Whisper a domain prompt so it spells
the domain's words the way the intent model was trained on.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

logger = logging.getLogger(__name__)

#: A slot is "closed" when training data gives it at most this many distinct values...
MAX_CLOSED_VALUES = 60
#: ...and each value occurs this many times on average (open slots such as song names rarely repeat).
MIN_MEAN_OCCURRENCES = 3.0
#: Words that name a number: a span and a listed value that name different numbers do not match
#: ("thirty" is not a misheard "three", though it sounds and looks close)...
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million billion".split())
#: ...except the pairs speech recognisers confuse ("sixty ounce" is a misheard "sixteen ounce").
CONFUSABLE_NUMBERS = frozenset(frozenset(pair) for pair in (
    ("thirteen", "thirty"), ("fourteen", "forty"), ("fifteen", "fifty"), ("sixteen", "sixty"),
    ("seventeen", "seventy"), ("eighteen", "eighty"), ("nineteen", "ninety")))


def _numbers(text: str) -> List[str]:
    """The number words and digit groups of ``text``, in order."""
    return [word for word in text.split() if word in NUMBER_WORDS or word.isdigit()]


def _may_be_heard_as(said: List[str], heard: List[str]) -> bool:
    """Whether numbers ``said`` could have been recognised as ``heard`` (equal, or teen/ty confusions)."""
    return len(said) == len(heard) and all(a == b or frozenset((a, b)) in CONFUSABLE_NUMBERS
                                           for a, b in zip(said, heard))


def _phonetic(text: str) -> str:
    import jellyfish

    return " ".join(jellyfish.metaphone(word) for word in text.split())


def infer_closed_values(examples: Iterable, normalizer=None) -> Dict[str, List[str]]:
    """Closed value lists per slot name, inferred from labelled examples.

    A slot counts as closed when it has few distinct values that each repeat
    (see :data:`MAX_CLOSED_VALUES`, :data:`MIN_MEAN_OCCURRENCES`); values are
    normalised with ``normalizer`` when given. Open slots are left out.
    """
    counts: Dict[str, Counter] = defaultdict(Counter)
    for example in examples:
        for span in getattr(example, "slots", ()):
            value = normalizer(span.value) if normalizer else span.value.strip().lower()
            if value:
                counts[span.name][value] += 1
    closed = {}
    for name, counter in counts.items():
        mean = sum(counter.values()) / len(counter)
        if len(counter) <= MAX_CLOSED_VALUES and mean >= MIN_MEAN_OCCURRENCES:
            closed[name] = sorted(counter)
    return closed


@dataclass
class SlotCanonicalizer:
    """Map extracted slot spans to canonical values of closed slots.

    Attributes:
        values: slot name -> canonical values (normalised text).
        threshold: minimum similarity in [0, 1] to replace a span by a listed value.
    """

    values: Dict[str, List[str]] = field(default_factory=dict)
    threshold: float = 0.7

    def __post_init__(self) -> None:
        self._phonetic = {name: [_phonetic(v) for v in vals] for name, vals in self.values.items()}
        self._numbers = {name: [_numbers(v) for v in vals] for name, vals in self.values.items()}

    def match(self, name: str, raw: str) -> Tuple[str, float]:
        """Best canonical value for ``raw`` in slot ``name`` and its similarity (raw itself if open)."""
        from rapidfuzz import fuzz

        candidates = self.values.get(name)
        if not candidates:
            return raw, 1.0
        if raw in candidates:
            return raw, 1.0
        raw_phonetic = _phonetic(raw)
        raw_numbers = _numbers(raw)
        best, best_score = raw, 0.0
        for value, phonetic, numbers in zip(candidates, self._phonetic[name], self._numbers[name]):
            if raw_numbers and not _may_be_heard_as(numbers, raw_numbers):  # another number
                continue
            score = max(fuzz.ratio(raw, value), fuzz.ratio(raw_phonetic, phonetic)) / 100.0
            if score > best_score:
                best, best_score = value, score
        return (best, best_score) if best_score >= self.threshold else (raw, best_score)

    def __call__(self, slots: Dict[str, str]) -> Dict[str, str]:
        return {name: self.match(name, value)[0] for name, value in slots.items()}

    def to_dict(self) -> dict:
        return {"values": self.values, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: Optional[dict]) -> Optional["SlotCanonicalizer"]:
        if not data or not data.get("values"):
            return None
        return cls(values={k: list(v) for k, v in data["values"].items()}, threshold=float(data.get("threshold", 0.7)))


def domain_prompt(values: Dict[str, List[str]], max_chars: int = 600) -> Optional[str]:
    """A Whisper prompt listing the domain's closed slot values, one group per slot.

    Returns ``None`` when there is nothing to list. Long lists are cut at
    ``max_chars`` (Whisper's prompt window is 224 tokens).
    """
    groups, seen = [], set()
    for name in sorted(values, key=lambda n: len(values[n])):
        vals = sorted({v for v in values[name] if v}, key=lambda v: (len(v.split()), v))
        keep = []
        for value in vals:
            words = set(value.split())
            # short lists are kept whole; long ones only where a value brings a new word
            if len(vals) <= 12 or not words <= seen:
                keep.append(value)
                seen |= words
        if keep:
            groups.append(", ".join(keep))
    if not groups:
        return None
    prompt = "; ".join(groups) + "."
    if len(prompt) > max_chars:
        prompt = prompt[:max_chars].rsplit(",", 1)[0] + "."
    return prompt

"""Slot scoring: word-level BIO with seqeval (text input) and value-level pairs (audio input).

Text input: the classifier's prediction text is the *normalised* gold text, and its slot
spans point into it. The gold spans are carried into the same normalised form by normalising
the text piece by piece (outside / inside each span), so both sides are tagged on one token
sequence. Predicted spans whose tokens cannot be placed on the gold tokens count as false
positives.

Audio input: the recognised text differs from the reference, so there is no shared token
sequence; slots are scored as multisets of ``(name, normalised value)`` pairs instead.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..data.examples import SlotSpan

logger = logging.getLogger(__name__)

Normalize = Callable[[str], str]
Pairs = Sequence[Tuple[str, str]]
#: A span as ``(name, start, end)`` character offsets.
CharSpan = Tuple[str, int, int]
_TOKEN = re.compile(r"\S+")


def gold_bio(text: str, spans: Sequence[SlotSpan], normalize: Normalize) -> Tuple[List[str], List[str]]:
    """Normalised tokens of ``text`` and their BIO tags from the gold ``spans``.

    Each stretch outside a span and each span's value is normalised on its own, so span
    boundaries survive normalisation (``"7:30"`` -> ``"seven thirty"`` keeps both words tagged).
    """
    tokens: List[str] = []
    tags: List[str] = []
    position = 0
    for span in sorted(spans, key=lambda s: s.start):
        outside = normalize(text[position : span.start]).split()
        tokens += outside
        tags += ["O"] * len(outside)
        inside = normalize(span.value).split()
        tokens += inside
        tags += [("B-" if i == 0 else "I-") + span.name for i in range(len(inside))]
        position = span.end
    rest = normalize(text[position:]).split()
    return tokens + rest, tags + ["O"] * len(rest)


def locate_values(text: str, slots: Mapping[str, str], normalize: Optional[Normalize] = None) -> List[CharSpan]:
    """Character spans of each slot value in ``text`` (word-bounded, first free occurrence).

    Used when a prediction lists slot values without offsets; values not found are skipped.
    """
    found: List[CharSpan] = []
    taken: List[Tuple[int, int]] = []
    for name, value in sorted(slots.items(), key=lambda kv: -len(kv[1])):
        value = normalize(value) if normalize else value
        if not value:
            continue
        for match in re.finditer(rf"(?<!\S){re.escape(value)}(?!\S)", text):
            if all(match.end() <= s or match.start() >= e for s, e in taken):
                taken.append(match.span())
                found.append((name, match.start(), match.end()))
                break
        else:
            logger.debug("slot %s=%r not found in %r", name, value, text)
    return sorted(found, key=lambda s: s[1])


def tag_tokens(text: str, spans: Iterable[CharSpan]) -> Tuple[List[str], List[str]]:
    """Whitespace tokens of ``text`` with BIO tags; a token overlapping a span takes its tag."""
    ordered = sorted(spans, key=lambda s: s[1])
    tokens: List[str] = []
    tags: List[str] = []
    k, opened = 0, -1
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        while k < len(ordered) and ordered[k][2] <= start:
            k += 1
        tokens.append(match.group())
        if k < len(ordered) and ordered[k][1] < end:
            tags.append(("I-" if opened == k else "B-") + ordered[k][0])
            opened = k
        else:
            tags.append("O")
    return tokens, tags


def project_spans(gold_tokens: Sequence[str], text: str, spans: Iterable[CharSpan]) -> List[str]:
    """Predicted spans (offsets into ``text``) as BIO tags over ``gold_tokens``.

    Each span's words are matched to the first free run of equal gold tokens; a span that
    cannot be placed adds a trailing ``B-name`` tag (the caller pads gold with ``O``), so it
    still counts as a false positive.
    """
    tags = ["O"] * len(gold_tokens)
    unplaced: List[str] = []
    for name, start, end in sorted(spans, key=lambda s: s[1]):
        words = text[start:end].split()
        n = len(words)
        for i in range(len(gold_tokens) - n + 1 if n else 0):
            if list(gold_tokens[i : i + n]) == words and all(t == "O" for t in tags[i : i + n]):
                tags[i : i + n] = ["B-" + name] + ["I-" + name] * (n - 1)
                break
        else:
            unplaced.append("B-" + name)
    return tags + unplaced


def aligned_bio(
    gold_text: str,
    gold_spans: Sequence[SlotSpan],
    pred_text: str,
    pred_spans: Sequence[CharSpan],
    normalize: Normalize,
) -> Tuple[List[str], List[str]]:
    """Gold and predicted BIO tag sequences of equal length for one utterance."""
    gold_tokens, gold_tags = gold_bio(gold_text, gold_spans, normalize)
    pred_tokens, pred_tags = tag_tokens(pred_text, pred_spans)
    if pred_tokens != gold_tokens:
        pred_tags = project_spans(gold_tokens, pred_text, pred_spans)
    gold_tags = gold_tags + ["O"] * (len(pred_tags) - len(gold_tags))
    return gold_tags, pred_tags


def bio_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Tuple[float, float, float]:
    """Entity-level (precision, recall, F1) over BIO sequences, with seqeval (conlleval style)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold_l, pred_l = [list(g) for g in gold], [list(p) for p in pred]
    return (float(precision_score(gold_l, pred_l, zero_division=0)),
            float(recall_score(gold_l, pred_l, zero_division=0)),
            float(f1_score(gold_l, pred_l, zero_division=0)))


def value_pairs(slots: Iterable[Tuple[str, str]], normalize: Normalize) -> Counter:
    """Multiset of ``(name, normalised value)`` pairs."""
    return Counter((name, normalize(value)) for name, value in slots)


def value_scores(gold: Sequence[Pairs], pred: Sequence[Pairs], normalize: Normalize) -> Dict[str, float]:
    """Micro precision / recall / F1 over ``(name, normalised value)`` pairs, plus the counts."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gc, pc = value_pairs(g, normalize), value_pairs(p, normalize)
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

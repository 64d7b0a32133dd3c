"""Word-level BIO tags <-> first-sub-word labels of the transformer.

A *word* is a whitespace-separated token of the normalised text. Training
spans are moved into normalised text by :func:`~speech_intent.slots.normalize_example`
and each word gets one BIO tag (:func:`~speech_intent.slots.word_tags`); here the
first sub-word of each word carries that tag and every other position ``-100``
(:func:`align_labels`, using the fast tokenizer's character offsets). Inference
reverses this (:func:`decode_tags`), then :func:`~speech_intent.slots.tags_to_slots`.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from ..slots import OUTSIDE, word_bounds

__all__ = ["IGNORE_INDEX", "OUTSIDE", "first_subwords", "align_labels", "decode_tags", "first_subword_tags"]

IGNORE_INDEX = -100

Span = Tuple[int, int]


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


def decode_tags(offsets: Sequence[Span], text: str, token_tag_ids: Sequence[int], labels: Sequence[str]) -> List[str]:
    """Word-level tags from per-token predictions: each word takes its first sub-word's tag.

    Words with no token (cut off by truncation) are tagged ``O``.
    """
    return first_subword_tags(first_subwords(offsets, text), text, token_tag_ids, labels)


def first_subword_tags(first: Sequence[int], text: str, token_tag_ids: Sequence[int],
                       labels: Sequence[str]) -> List[str]:
    """:func:`decode_tags` from :func:`first_subwords` already computed for ``text``."""
    tags = [OUTSIDE] * len(word_bounds(text))
    for word, tag_id in zip(first, token_tag_ids):
        if word >= 0:
            tags[word] = labels[int(tag_id)]
    return tags

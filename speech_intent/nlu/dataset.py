"""Training examples -> normalised, labelled, tokenised datasets for the ``Trainer``.

Examples with ``intent=None`` become the explicit out-of-scope class
:data:`~speech_intent.nlu.classifier.OOS_LABEL` (predicted back as ``intent=None``).
Slot spans are moved into the normalised text with
:func:`~speech_intent.slots.normalize_example` and labelled on the first
sub-word of each word.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import torch

from ..slots import OUTSIDE, NormalizedExample, normalize_example, word_tags
from .classifier import OOS_LABEL
from .subwords import IGNORE_INDEX, align_labels

logger = logging.getLogger(__name__)


def prepare_examples(
    examples: Iterable[Any], normalizer: Optional[Callable[[str], str]]
) -> List[NormalizedExample]:
    """Normalise ``Example`` objects or ``(text, intent)`` pairs; ``intent=None`` -> ``__oos__``.

    Examples whose text normalises to nothing are skipped (with a warning).
    """
    prepared: List[NormalizedExample] = []
    skipped = 0
    for example in examples:
        item = normalize_example(example, normalizer)
        if not item.text:
            skipped += 1
            continue
        item.intent = OOS_LABEL if item.intent is None else str(item.intent)
        prepared.append(item)
    if skipped:
        logger.warning("skipped %d examples with empty text", skipped)
    return prepared


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenised examples with an intent label and (joint models) per-token slot labels."""

    def __init__(self, encodings: Dict[str, List[Any]], labels: List[int],
                 slot_labels: Optional[List[List[int]]] = None) -> None:
        self.encodings = encodings
        self.labels = labels
        self.slot_labels = slot_labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = self.labels[i]
        if self.slot_labels is not None:
            item["slot_labels"] = self.slot_labels[i]
        return item


def encode(
    tokenizer: Any,
    examples: Sequence[NormalizedExample],
    label2id: Dict[str, int],
    *,
    slot_labels: Optional[Sequence[str]] = None,
    max_length: int = 64,
) -> EncodedDataset:
    """Tokenise ``examples`` (truncated to ``max_length``); slot tags only when ``slot_labels`` is given.

    Slot names that ``slot_labels`` does not know (e.g. only in dev data) are tagged ``O``.
    """
    texts = [ex.text for ex in examples]
    encodings = dict(tokenizer(texts, truncation=True, max_length=max_length,
                               return_offsets_mapping=slot_labels is not None))
    labels = [label2id[ex.intent] for ex in examples]
    if slot_labels is None:
        return EncodedDataset(encodings, labels)
    tag2id = {tag: i for i, tag in enumerate(slot_labels)}
    offsets = encodings.pop("offset_mapping")
    unknown = set()
    token_labels = []
    for ex, offs in zip(examples, offsets):
        tags = word_tags(ex.text, ex.slots)
        unknown.update(t for t in tags if t not in tag2id)
        ids = [tag2id.get(t, tag2id[OUTSIDE]) for t in tags]
        token_labels.append(align_labels(offs, ex.text, ids))
    if unknown:
        logger.warning("slot tags not in the label set, tagged O: %s", sorted(unknown))
    return EncodedDataset(encodings, labels, token_labels)


class JointCollator:
    """Pads a batch with the tokenizer and pads ``slot_labels`` with ``-100`` to the same length."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        slots = [f["slot_labels"] for f in features] if "slot_labels" in features[0] else None
        rest = [{k: v for k, v in f.items() if k != "slot_labels"} for f in features]
        batch = self.tokenizer.pad(rest, padding=True, return_tensors="pt")
        if slots is not None:
            length = batch["input_ids"].shape[1]
            left = self.tokenizer.padding_side == "left"
            padded = []
            for labels in slots:
                fill = [IGNORE_INDEX] * (length - len(labels))
                padded.append(fill + list(labels) if left else list(labels) + fill)
            batch["slot_labels"] = torch.tensor(padded, dtype=torch.long)
        return batch

"""JointBERT/ATIS folder format: ``seq.in`` tokens, ``seq.out`` BIO tags, ``label`` intents."""

from __future__ import annotations

import logging
from pathlib import Path

from ..slots import tags_to_slots, word_bounds, word_tags
from .examples import DataFormatError, Example

logger = logging.getLogger(__name__)

__all__ = ["read_bio", "to_bio", "bio_to_example"]

_FILES = ("seq.in", "seq.out", "label")


def bio_to_example(tokens: list[str], tags: list[str], intent: str | None) -> Example:
    """Build an Example (tokens joined by single spaces) with character spans from BIO tags.

    An ``I-x`` tag that does not continue an ``x`` span starts a new one (lenient, like conlleval).
    Raises ``ValueError`` on a length mismatch or a tag that is not ``O``, ``B-x`` or ``I-x``.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    for token, tag in zip(tokens, tags):
        if tag != "O" and not (len(tag) > 2 and tag[:2] in ("B-", "I-")):
            raise ValueError(f"bad BIO tag {tag!r} on token {token!r}")
    text = " ".join(tokens)
    if len(word_bounds(text)) != len(tokens):
        raise ValueError(f"tokens must be non-empty and without whitespace: {tokens!r}")
    return Example(text, intent, tuple(tags_to_slots(text, tags)))


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file without line terminators."""
    if not path.is_file():
        raise DataFormatError(f"missing file {path.name!r}", source=path.parent)
    return path.read_text(encoding="utf-8-sig").splitlines()


def read_bio(directory: str | Path) -> list[Example]:
    """Read a JointBERT-style folder (e.g. ``snips/train``) into Examples with character spans."""
    directory = Path(directory)
    seq_in, seq_out, labels = (_read_lines(directory / name) for name in _FILES)
    if not len(seq_in) == len(seq_out) == len(labels):
        raise DataFormatError(
            f"line counts differ: seq.in {len(seq_in)}, seq.out {len(seq_out)}, label {len(labels)}",
            source=directory,
        )
    examples: list[Example] = []
    for lineno, (tokens, tags, label) in enumerate(zip(seq_in, seq_out, labels), start=1):
        intent = label.strip() or None
        try:
            examples.append(bio_to_example(tokens.split(), tags.split(), intent))
        except ValueError as exc:
            raise DataFormatError(str(exc), source=directory / "seq.out", line=lineno) from exc
    logger.info("read %d examples from %s", len(examples), directory)
    return examples


def to_bio(example: Example) -> tuple[list[str], list[str]]:
    """Split the text on whitespace and tag each token ``O``/``B-slot``/``I-slot``.

    A token overlapping a span gets that span's tag: ``B-`` for the first such token
    (:func:`speech_intent.slots.word_tags`).
    """
    return example.text.split(), word_tags(example.text, example.slots)

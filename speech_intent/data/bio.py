"""JointBERT/ATIS folder format: ``seq.in`` tokens, ``seq.out`` BIO tags, ``label`` intents."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .examples import DataFormatError, Example, SlotSpan

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
    spans: list[SlotSpan] = []
    text = " ".join(tokens)
    pos = 0
    current: tuple[str, int, int] | None = None  # (name, start, end)
    for token, tag in zip(tokens, tags):
        start, end = pos, pos + len(token)
        pos = end + 1
        if tag == "O":
            prefix, name = "O", ""
        elif len(tag) > 2 and tag[:2] in ("B-", "I-"):
            prefix, name = tag[0], tag[2:]
        else:
            raise ValueError(f"bad BIO tag {tag!r} on token {token!r}")
        if prefix == "I" and current is not None and current[0] == name:
            current = (name, current[1], end)
            continue
        if current is not None:
            spans.append(SlotSpan(current[0], current[1], current[2], text[current[1] : current[2]]))
            current = None
        if prefix != "O":
            current = (name, start, end)
    if current is not None:
        spans.append(SlotSpan(current[0], current[1], current[2], text[current[1] : current[2]]))
    return Example(text, intent, tuple(spans))


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file without line terminators."""
    if not path.is_file():
        raise DataFormatError(f"missing file {path.name!r}", source=path.parent)
    return path.read_text(encoding="utf-8").splitlines()


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

    A token overlapping a span gets that span's tag: ``B-`` for the first such token.
    """
    tokens: list[str] = []
    tags: list[str] = []
    spans = example.slots
    k = 0
    opened = -1  # index of the span that already has its B- token
    for match in re.finditer(r"\S+", example.text):
        start, end = match.span()
        while k < len(spans) and spans[k].end <= start:
            k += 1
        tokens.append(match.group())
        if k < len(spans) and spans[k].start < end:
            tags.append(("I-" if opened == k else "B-") + spans[k].name)
            opened = k
        else:
            tags.append("O")
    return tokens, tags

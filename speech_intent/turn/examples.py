"""Training texts of the end-of-turn model: the domain's sentences and their truncations.

Every sentence of the domain is a finished turn (``1``); each of its truncations at a word boundary
is an unfinished one (``0``), unless the truncation is itself a sentence of the domain (``"get me a
latte"`` of ``"get me a latte with milk"``): then it counts as finished. ASR-noisy versions of both
(a word before the last dropped or replaced by another word of the domain, or the last word misspelt,
so the label stays true) teach the model what a live transcript looks like; transcripts of speech (the
speech-in-the-loop tools, :mod:`speech_intent.speech_in_the_loop`) can be added as more sentences.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Set, Tuple

from ..errors import ConfigError

COMPLETE, INCOMPLETE = "complete", "incomplete"
LABELS = (INCOMPLETE, COMPLETE)  # index = the model's class id


@dataclass(frozen=True)
class TurnExample:
    """One training text and whether the turn is finished there (``label``: 1 complete, 0 not)."""

    text: str
    label: int


def truncations(words: Sequence[str]) -> List[str]:
    """Every proper prefix of ``words`` (1 .. n-1 words), joined by spaces."""
    return [" ".join(words[:k]) for k in range(1, len(words))]


def _misspelt(word: str, rng: random.Random) -> str:
    """``word`` with one character dropped, doubled or replaced (a misheard spelling)."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word))
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + rng.choice("aeiou") + word[i + 1:]


def _noisy(words: List[str], vocabulary: Sequence[str], rng: random.Random) -> List[str]:
    """``words`` with one word before the last dropped or replaced by a random vocabulary word, or the
    last word misspelt (the label stays true: the words still end where they ended)."""
    roll = rng.random()
    if roll < 0.3 or len(words) < 2:
        return words[:-1] + [_misspelt(words[-1], rng)]
    k = rng.randrange(len(words) - 1)
    if roll < 0.65:
        return words[:k] + words[k + 1:]
    return words[:k] + [rng.choice(vocabulary)] + words[k + 1:]


def turn_examples(sentences: Iterable[str], *, normalizer: Callable[[str], str] = str.lower,
                  is_sentence: Optional[Callable[[str], bool]] = None, noise: float = 0.5,
                  max_sentences: Optional[int] = 5000, seed: int = 0) -> List[TurnExample]:
    """Labelled texts from the domain's sentences (see the module notes).

    Args:
        sentences: the domain's commands (training texts, grammar expansions, ASR transcripts).
        normalizer: applied to every sentence first (the model's text normaliser).
        is_sentence: whether a text is a whole sentence of the domain beyond the ones given (a
            grammar's :meth:`~speech_intent.turn.completeness.GrammarCompleteness.is_sentence`).
        noise: share of the texts that also get an ASR-noisy copy (0: none).
        max_sentences: sentences used at most (a random sample; ``None``: all).
        seed: sampling and noise seed.
    """
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"noise must be between 0 and 1, got {noise!r}")
    rng = random.Random(seed)
    texts = list(dict.fromkeys(" ".join(normalizer(s).split()) for s in sentences))
    texts = [t for t in texts if t]
    if not texts:
        raise ConfigError("the end-of-turn model needs at least one non-empty sentence")
    known: Set[str] = set(texts)
    if max_sentences is not None and len(texts) > max_sentences:
        texts = rng.sample(texts, max_sentences)
    vocabulary = sorted({w for t in texts for w in t.split()})

    def finished(text: str) -> bool:
        return text in known or (is_sentence is not None and is_sentence(text))

    found: dict = {}
    for text in texts:
        words = text.split()
        rows: List[Tuple[List[str], int]] = [(words, 1)]
        rows += [(words[:k], int(finished(" ".join(words[:k])))) for k in range(1, len(words))]
        for row_words, label in rows:
            found.setdefault(" ".join(row_words), label)
            if noise and rng.random() < noise:
                found.setdefault(" ".join(_noisy(row_words, vocabulary, rng)), label)
    examples = [TurnExample(text, label) for text, label in found.items()]
    rng.shuffle(examples)
    return examples


__all__ = ["COMPLETE", "INCOMPLETE", "LABELS", "TurnExample", "truncations", "turn_examples"]

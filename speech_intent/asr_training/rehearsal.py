"""Rehearsal for Whisper fine-tuning: a seeded sample of other training data's sentences.

Mixed into a one-domain training set, they keep the model from forgetting other speech
(:func:`sample_rehearsal`); without other data the sample is drawn from the library's own
general-English sentences (:func:`bundled_rehearsal_path`). Sentences that are evaluation
transcripts (:class:`~.heldout.EvaluationData`) are never drawn.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from ..data import Example
from ..data.manifest import is_audio_manifest
from ..errors import ConfigError, DataNotFoundError, check_int
from .heldout import EvaluationData
from .material import ASRExample, data_examples, spoken_example

logger = logging.getLogger(__name__)

__all__ = ["RehearsalSample", "bundled_rehearsal_path", "sample_rehearsal"]

PathLike = Union[str, Path]
#: Sentences a grammar gives to draw a rehearsal sample from (its even-by-intent sampler).
REHEARSAL_GRAMMAR_POOL = 20000
#: The library's rehearsal sentences (``speech_intent/resources``): 400 general-English sentences on
#: everyday topics, written for this library (no voice-assistant commands), topic as the intent column.
REHEARSAL_DATA = "rehearsal_en.csv"


def bundled_rehearsal_path() -> Path:
    """The rehearsal data :func:`~speech_intent.asr_training.fine_tune_asr` uses when given none."""
    return Path(str(resources.files("speech_intent") / "resources" / REHEARSAL_DATA))


@dataclass(frozen=True)
class RehearsalSample:
    """Sentences of other training data, sampled by :func:`sample_rehearsal`.

    Attributes:
        examples: the sampled sentences, synthesised :class:`ASRExample`\\ s (``source``: their file).
        requested: the sample size asked for (more than the sources hold gives all of them).
        sources: each source path and how many of the sampled sentences it gave.
        available: non-empty sentences the sources hold.
        dropped: of those, equal to an evaluation or dev transcript (normalised), never sampled.
        intents: sampled sentences per intent (``"-"``: unlabelled).
    """

    examples: Tuple[ASRExample, ...]
    requested: int
    sources: Dict[str, int]
    available: int
    dropped: int
    intents: Dict[str, int]

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready; ``sentences`` is the sample size."""
        return {"sentences": len(self.examples), "requested": self.requested, "sources": dict(self.sources),
                "available": self.available, "dropped_as_evaluation": self.dropped, "intents": dict(self.intents)}


def sample_rehearsal(paths: Union[PathLike, Iterable[PathLike]], n: int, *, seed: int = 0,
                     evaluation: Optional[EvaluationData] = None, text_format: str = "sentence") -> RehearsalSample:
    """A seeded sample of ``n`` sentences of other training data, to mix into a one-domain training set.

    ``paths`` are training-data files or folders :func:`speech_intent.data.load_examples` reads
    (grammar, Rasa, CSV, JSONL, BIO), read as :func:`~.material.collect_examples` reads them (a BIO folder's
    tokenised text written naturally by :func:`~.text.detokenize`; a grammar expanded to at most
    ``REHEARSAL_GRAMMAR_POOL`` sentences). Their sentences are pooled; those equal to an
    ``evaluation`` transcript (normalised) are dropped; then ``n`` are drawn without replacement
    (``numpy.random.default_rng(seed)``, kept in pool order), spoken by random voices.

    Raises :class:`~speech_intent.errors.ConfigError` for a source that is, holds or lies inside an
    ``evaluation`` path, an audio manifest (recordings belong in the training data itself), an
    ``n`` below 1, or sources with no usable sentence; :class:`~speech_intent.errors.DataNotFoundError`
    for a missing path.
    """
    check_int("rehearsal sample size", n)
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    pool, dropped = _pool(paths, seed, evaluation)
    if not pool:
        raise ConfigError(f"no rehearsal sentences in {', '.join(str(p) for p in paths)}"
                          + (f" ({dropped} are evaluation transcripts)" if dropped else ""))
    if len(pool) < n:
        logger.warning("rehearsal: %d sentences requested, the sources have %d; using all", n, len(pool))
    keep = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    chosen = [pool[i] for i in sorted(keep)]
    voices = np.random.default_rng([seed, 13])
    return RehearsalSample(
        examples=tuple(spoken_example(ex.text, source, voices, text_format) for ex, source in chosen), requested=n,
        sources={str(p): sum(source == str(p) for _, source in chosen) for p in paths},
        available=len(pool) + dropped, dropped=dropped,
        intents=dict(sorted(Counter(ex.intent or "-" for ex, _ in chosen).items())))


def _pool(paths: List[PathLike], seed: int, evaluation: Optional[EvaluationData]) -> Tuple[List[Tuple[Example, str]],
                                                                                         int]:
    """The sentences of the rehearsal sources with their source path, and how many were dropped as evaluation
    transcripts; refuses a missing path, a source overlapping ``evaluation`` and an audio manifest."""
    pool: List[Tuple[Example, str]] = []
    dropped = 0
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise DataNotFoundError("no such rehearsal data file or directory", source=path)
        inside = evaluation.overlaps(path) if evaluation is not None else None
        if inside is not None:
            raise ConfigError(f"rehearsal source {path} overlaps the excluded evaluation data {inside}; "
                              "evaluation data is never trained on")
        if is_audio_manifest(path):
            raise ConfigError(f"rehearsal source {path} is an audio manifest; rehearsal samples the sentences of "
                              "training data (put recordings in the training data itself)")
        for example in data_examples(path, None, seed, grammar_max=REHEARSAL_GRAMMAR_POOL):
            if evaluation is not None and evaluation.contains_text(example.text):
                dropped += 1
            else:
                pool.append((example, str(path)))
    return pool, dropped

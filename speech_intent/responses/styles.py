"""Style conditioning data: the same response with an apology first when the user is upset.

:func:`with_apologies` adds, for a seeded fraction of the examples, a copy whose input carries
``sentiment="negative"`` and whose response starts with an apology; the generator learns to apologise
when the sentiment stage says the user is upset, and only then.
"""
from __future__ import annotations

import random
from dataclasses import replace
from typing import List, Sequence

from ..errors import ConfigError
from .acts import ResponseExample

__all__ = ["APOLOGIES", "NEGATIVE", "with_apologies"]

#: The sentiment label that asks for an apology.
NEGATIVE = "negative"
#: Apologies put before the response (one chosen per example, seeded).
APOLOGIES = ("I'm sorry about that.", "Sorry for the trouble.", "I apologise for the trouble.")


def with_apologies(examples: Sequence[ResponseExample], *, fraction: float = 0.1, seed: int = 0,
                   apologies: Sequence[str] = APOLOGIES, sentiment: str = NEGATIVE) -> List[ResponseExample]:
    """``examples`` plus, for ``fraction`` of them, a ``sentiment`` copy whose response starts with an apology."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"fraction must be in [0, 1], got {fraction}")
    if not apologies:
        raise ConfigError("at least one apology is needed")
    rng = random.Random(seed)
    out = list(examples)
    for example in examples:
        if rng.random() < fraction:
            item = replace(example.input, sentiment=sentiment)
            out.append(replace(example, input=item, response=f"{rng.choice(list(apologies))} {example.response}"))
    rng.shuffle(out)
    return out

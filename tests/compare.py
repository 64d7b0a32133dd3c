"""Comparing model outputs of two runs that differ in threads, workers, batch sizes, backends or processes.

Float reductions depend on the thread count, the batch shape and the CPU's kernels (Intel and AMD differ), so
two such runs agree on scores only to a tolerance, and a tiny random model's near-ties (two tokens or two
intents within rounding of each other) can flip a token, and with it the rest of a greedy transcript. What must
be equal is compared exactly: the order, the paths, the errors, the durations, the keys of every row. Scores are
compared within ``atol``. Texts and labels must be equal except for at most ``max_flips`` items (default: a
quarter, at least one), and the scores of an item are compared only where its text is the same: a flipped
token changes what the scores measure.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

#: Row keys that do not depend on float arithmetic: equal in every run.
EXACT_KEYS = ("path", "error", "duration", "segment", "start", "end", "last", "file_key")
#: Row keys that hold scores: equal within a tolerance when the row's text and labels are.
SCORE_KEYS = ("confidence", "transcript_confidence")
#: Row keys that hold model decisions: equal but for a bounded number of near-tie flips.
DECISION_KEYS = ("transcript", "text", "intent", "slots", "in_grammar")


def _row(item: Any) -> Dict[str, Any]:
    return item if isinstance(item, dict) else item.to_dict()


def _default_flips(n: int) -> int:
    return max(1, n // 4)


def _close(a: Optional[float], b: Optional[float], atol: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.0, abs_tol=atol)


def assert_rows_match(first: Sequence[Any], second: Sequence[Any], *, atol: float = 1e-3,
                      max_flips: Optional[int] = None, ignore: Sequence[str] = ()) -> None:
    """Two runs' results (``PipelineResult``\\ s or their ``to_dict()`` rows) describe the same inputs in
    the same order with the same outcome (see the module docstring for what is exact and what is not)."""
    a, b = [_row(x) for x in first], [_row(x) for x in second]
    assert len(a) == len(b), f"{len(a)} rows vs {len(b)}"
    flips: List[int] = []
    for i, (x, y) in enumerate(zip(a, b)):
        assert set(x) - set(ignore) == set(y) - set(ignore), f"row {i}: keys differ: {sorted(set(x) ^ set(y))}"
        for key in EXACT_KEYS:
            if key in x and key not in ignore:
                assert x[key] == y[key], f"row {i}: {key} {x[key]!r} != {y[key]!r}"
        if any(x.get(key) != y.get(key) for key in DECISION_KEYS if key in x and key not in ignore):
            flips.append(i)
            continue
        for key in SCORE_KEYS:
            if key in x and key not in ignore:
                assert _close(x[key], y[key], atol), f"row {i}: {key} {x[key]!r} vs {y[key]!r} (atol {atol})"
    limit = _default_flips(len(a)) if max_flips is None else max_flips
    assert len(flips) <= limit, f"rows {flips} differ in transcript or intent (at most {limit} near-tie flips)"


def assert_transcripts_match(first: Sequence[Any], second: Sequence[Any], *, atol: float = 1e-3,
                             max_flips: Optional[int] = None) -> None:
    """Two runs' :class:`~speech_intent.results.Transcript` lists (or strings / ``None``): same length, durations
    equal, texts equal but for ``max_flips`` near-tie flips, confidences within ``atol`` where texts agree."""
    assert len(first) == len(second), f"{len(first)} transcripts vs {len(second)}"
    flips = []
    for i, (x, y) in enumerate(zip(first, second)):
        if not hasattr(x, "text") or not hasattr(y, "text"):  # plain strings (or None for a failed input)
            if x != y:
                flips.append(i)
            continue
        assert x.duration == y.duration, f"item {i}: duration {x.duration} != {y.duration}"
        if x.text != y.text:
            flips.append(i)
        else:
            assert _close(x.confidence, y.confidence, atol), f"item {i}: confidence {x.confidence} vs {y.confidence}"
    limit = _default_flips(len(first)) if max_flips is None else max_flips
    assert len(flips) <= limit, f"items {flips} differ in text (at most {limit} near-tie flips)"

"""Fuzz ``load_audio`` (bytes and arrays) and ``TextNormalizer`` with hypothesis; count untyped exceptions.

    python -m benchmarks.fuzz                 # 10,000 inputs per target
    python -m benchmarks.fuzz --inputs 50000 --seed 1 --target bytes

Inputs come from ``tests/strategies.py`` (random bytes, mutated real wav/flac/ogg/aiff files,
synthetic WAV headers; arrays of any dtype/shape with NaN/Inf; any unicode text and
number/unit/time fragments). For ``load_audio`` only :class:`AudioError` is allowed to
escape; for the normaliser nothing may escape and its output must be idempotent, lower
case and free of punctuation except apostrophes. Not part of CI. Exit status 1 if any
untyped exception or property violation was found.
"""
from __future__ import annotations

import collections
import logging
import sys
import time
import traceback
import unicodedata
from typing import Callable, Dict, List

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from speech_intent.audio import load_audio
from speech_intent.errors import AudioError
from speech_intent.normalize import TextNormalizer
from tests.strategies import audio_bytes, sample_arrays, sampling_rates, texts

from .common import benchmark_parser


class Tally:
    """Counts of outcomes and the first few failures of one target."""

    def __init__(self) -> None:
        self.outcomes: Dict[str, int] = collections.Counter()
        self.failures: List[str] = []

    def failure(self, kind: str, detail: str) -> None:
        self.outcomes[kind] += 1
        if len(self.failures) < 5:
            self.failures.append(detail)


def _audio_call(tally: Tally, call: Callable[[], object], shown: str) -> None:
    try:
        call()
        tally.outcomes["decoded"] += 1
    except AudioError:
        tally.outcomes["AudioError"] += 1
    except Exception as error:  # the thing we hunt for
        tally.failure("UNTYPED", f"{type(error).__name__}: {error} on {shown}\n{traceback.format_exc(limit=4)}")


def fuzz_bytes(n: int, tally: Tally) -> None:
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(audio_bytes())
    def run(data: bytes) -> None:
        _audio_call(tally, lambda: load_audio(data, name="<fuzz>"), f"{len(data)} bytes {data[:48]!r}")

    run()


def fuzz_arrays(n: int, tally: Tally) -> None:
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(sample_arrays(), sampling_rates(), st.booleans())
    def run(array, rate, as_tuple: bool) -> None:
        _audio_call(tally, lambda: load_audio((array, rate) if as_tuple else array),
                    f"array {array.dtype} {array.shape} rate={rate!r} tuple={as_tuple}")

    run()


def fuzz_normalizer(n: int, tally: Tally) -> None:
    normalize = TextNormalizer()

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(texts())
    def run(text: str) -> None:
        try:
            once = normalize(text)
        except Exception as error:
            tally.failure("UNTYPED", f"{type(error).__name__}: {error} on {text!r}")
            return
        if normalize(once) != once:
            tally.failure("not idempotent", f"{text!r} -> {once!r} -> {normalize(once)!r}")
        elif once != once.lower() or any(c != "'" and unicodedata.category(c)[0] in "PS" for c in once):
            tally.failure("case/punctuation left", f"{text!r} -> {once!r}")
        else:
            tally.outcomes["ok"] += 1

    run()


TARGETS = {"bytes": fuzz_bytes, "arrays": fuzz_arrays, "normalizer": fuzz_normalizer}


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per target (default 10,000)")
    parser.add_argument("--target", choices=sorted(TARGETS), action="append", help="default: all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    bad = 0
    for name in args.target or list(TARGETS):
        tally = Tally()
        start = time.perf_counter()
        seed(args.seed)(TARGETS[name])(args.inputs, tally)
        tried = sum(tally.outcomes.values())
        untyped = sum(v for k, v in tally.outcomes.items() if k not in ("decoded", "AudioError", "ok"))
        bad += untyped
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items()))
        print(f"{name:11s} inputs tried: {tried:6d}  untyped/violations: {untyped}  ({detail}; "
              f"{time.perf_counter() - start:.0f} s)", flush=True)
        for failure in tally.failures:
            print("   ", failure.replace("\n", "\n    "))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

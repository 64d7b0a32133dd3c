"""The guard: a generated response that drops a value it was given, or states one it was not given, is
replaced by the template response, so the assistant never says a wrong value.

Values are compared normalised (:func:`normalize_text`): case, punctuation, number words as digits
("two" -> "2", "twenty five" -> "25"), thousands separators, ``o'clock`` and ``:00``. A response
*states* a value it was not given when it has

- a number (digits, or number words) that is not in the request's values, template text or user turn;
- a capitalised word inside a sentence (a name) that is in none of them.

:class:`GuardedResponses` wraps a generator and a template generator behind the
:class:`~speech_intent.responses.base.ResponseGenerator` protocol.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ..errors import ConfigError
from .acts import GenerationInput, input_from_request
from .base import ResponseGenerator, ResponseRequest

__all__ = ["GuardVerdict", "GuardedResponse", "GuardedResponses", "check_response", "guard_responses",
           "normalize_text"]

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10}
_NUMBER = re.compile(r"\d+(?:[.:]\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z'&-]*")
#: Capitalised words a response may say without them being a value.
_COMMON = frozenset("""i i'm i'll i've i'd ok okay sure yes no sorry great alright please thanks thank hello hi
    mr mrs ms dr am pm a.m p.m monday tuesday wednesday thursday friday saturday sunday january february march
    april may june july august september october november december""".split())


def _words_to_digits(words: List[str], *, one: bool = True) -> List[str]:
    out: List[str] = []
    total: Optional[int] = None
    for word in words:
        if word == "one" and not one and not (total is not None and total >= 20 and total % 10 == 0):
            if total is not None:
                out.append(str(total))
                total = None
            out.append(word)
        elif word in _TENS:
            total = (total or 0) + _TENS[word] if total is None or total % 100 == 0 else None
            if total is None:
                total = _TENS[word]
        elif word in _UNITS:
            if total is not None and total >= 20 and total % 10 == 0:
                total += _UNITS[word]
            else:
                if total is not None:
                    out.append(str(total))
                total = _UNITS[word]
        elif word == "hundred" and total is not None:
            total *= 100
        else:
            if total is not None:
                out.append(str(total))
                total = None
            out.append(word)
    if total is not None:
        out.append(str(total))
    return out


def normalize_text(text: str, *, one: bool = True) -> str:
    """Lower case, number words as digits, ``1,200`` -> ``1200``, ``5:00``/``5 o'clock`` -> ``5``, punctuation
    other than inside numbers removed, single spaces; ``one=False`` keeps the word "one" (a pronoun as often
    as a number)."""
    text = str(text).lower().replace("o'clock", "").replace("o’clock", "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=\d):00\b", "", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", r"\1", text)
    tokens = re.findall(r"\d+(?:[.:]\d+)?|[a-z]+(?:'[a-z]+)?|[$%#@&]", text)
    tokens = [str(_ORDINALS[t]) if t in _ORDINALS else t for t in tokens]
    return " ".join(_words_to_digits(tokens, one=one))


def _contains(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(rf"(?<![\w.:]){re.escape(needle)}(?![\w:]|\.\d)", haystack) is not None


@dataclass(frozen=True)
class GuardVerdict:
    """Whether a response is safe to say: ``missing`` values it drops, ``unexpected`` values it made up."""

    missing: Tuple[str, ...] = ()
    unexpected: Tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def to_dict(self) -> Dict[str, Any]:
        return {"ok": self.ok, "missing": list(self.missing), "unexpected": list(self.unexpected)}


def _capitalised_inside(text: str) -> List[str]:
    names: List[str] = []
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", text):
        words = _WORD.findall(sentence)
        for position, word in enumerate(words):
            if position > 0 and word[0].isupper() and word.lower() not in _COMMON:
                names.append(word)
    return names


def check_response(response: str, values: Iterable[str], context: Iterable[str] = ()) -> GuardVerdict:
    """Check ``response`` against the ``values`` it must state; ``context`` (template text, user turn) holds
    what else it may repeat."""
    values = [str(v) for v in values if str(v).strip()]
    said = normalize_text(response)
    missing = tuple(v for v in values if not _contains(said, normalize_text(v)))
    known = " ".join(normalize_text(t) for t in [*values, *context])
    known_words: Set[str] = set(known.split())
    unexpected: List[str] = []
    for number in _NUMBER.findall(normalize_text(response, one=False)):
        if number not in known_words and not _contains(known, number):
            unexpected.append(number)
    for name in _capitalised_inside(response):
        if name.lower() not in known_words and not set(normalize_text(name).split()) <= known_words:
            unexpected.append(name)
    return GuardVerdict(missing, tuple(dict.fromkeys(unexpected)))


@dataclass(frozen=True)
class GuardedResponse:
    """A response after the guard: the ``text`` said, whether the template ``replaced`` the generated one."""

    text: str
    generated: str
    replaced: bool
    verdict: GuardVerdict

    def to_dict(self) -> Dict[str, Any]:
        return {"text": self.text, "generated": self.generated, "replaced": self.replaced,
                "verdict": self.verdict.to_dict()}


def guard_responses(generated: Sequence[str], inputs: Sequence[GenerationInput],
                    fallbacks: Optional[Sequence[str]] = None) -> List[GuardedResponse]:
    """Each generated response checked against its input; a failing (or empty) one replaced by its fallback
    (default: the input's template text)."""
    if len(generated) != len(inputs) or (fallbacks is not None and len(fallbacks) != len(inputs)):
        raise ConfigError(f"{len(generated)} responses for {len(inputs)} inputs")
    out: List[GuardedResponse] = []
    for i, (text, item) in enumerate(zip(generated, inputs)):
        fallback = fallbacks[i] if fallbacks is not None else item.template
        verdict = check_response(text, item.values, (item.template, item.user_text))
        if not text.strip() and verdict.ok:
            verdict = GuardVerdict(missing=("<empty response>",))
        replaced = not verdict.ok and bool(fallback.strip())
        out.append(GuardedResponse(fallback if replaced else text, text, replaced, verdict))
    return out


class GuardedResponses:
    """A :class:`ResponseGenerator`: ``generator`` (an LM) writes, ``templates`` supply the template text it is
    given and the response said instead when the guard rejects the generated one."""

    def __init__(self, generator: Any, templates: ResponseGenerator) -> None:
        if not hasattr(generator, "generate_inputs"):
            raise ConfigError("the guarded generator needs generate_inputs(inputs) (an LMResponseGenerator)")
        self.generator, self.templates = generator, templates
        self.last: List[GuardedResponse] = []

    def generate_guarded(self, requests: Sequence[ResponseRequest]) -> List[GuardedResponse]:
        """The guarded responses with their verdicts."""
        templates = list(self.templates.generate(requests))
        inputs = [input_from_request(r, t) for r, t in zip(requests, templates)]
        return guard_responses(self.generator.generate_inputs(inputs), inputs, templates)

    def generate(self, requests: Sequence[ResponseRequest]) -> List[str]:
        self.last = self.generate_guarded(requests)
        return [r.text for r in self.last]

"""Detection of personal data in transcripts: phone numbers, e-mail addresses, card numbers, names.

Detection runs on the written form of the text (:func:`~speech_intent.privacy.spoken.written_view`:
"four one five ..." -> "415...", "john dot smith at gmail dot com" -> "john.smith@gmail.com") and each
hit is mapped back to the words that were said. Two backends find the written forms:

- ``"patterns"`` (default): the libraries Microsoft Presidio's pattern recognisers are built on,
  without Presidio: phone numbers by ``phonenumbers`` (valid numbers of :attr:`PiiOptions.regions`),
  e-mail addresses by Presidio's address pattern with the domain checked against the public suffix
  list shipped with ``tldextract`` (offline), card numbers by a 13-19 digit pattern and the Luhn check.
- ``"presidio"``: Presidio's own ``PhoneRecognizer``, ``EmailRecognizer`` (its domain check made
  offline) and ``CreditCardRecognizer``, called directly (no spaCy model: none can be installed offline;
  importing Presidio loads spaCy, about 15 s and 900 MB; ``pip install 'speech-intent[presidio]'``).

Both add two rules: a run of :attr:`PiiOptions.long_numbers` or more digits that no recogniser took is a
``PHONE_NUMBER`` (13 digits or more: a ``CREDIT_CARD``), since the normaliser writes "0132" as "one hundred
and thirty two" and "fifty one hundred" may be 50|100 or 51|00: such numbers no longer validate; and ``PERSON`` is a given name of :data:`~.names.COMMON_GIVEN_NAMES`
or of :attr:`PiiOptions.names` (a list, not a named-entity model: other names are missed).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Dict, List, Tuple

from ..errors import ConfigError
from .names import COMMON_GIVEN_NAMES
from .spoken import is_known_domain, written_view

__all__ = ["ENTITIES", "PiiOptions", "PiiHit", "PiiDetector", "luhn_ok"]

#: The entity types the detector finds.
ENTITIES = ("PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "PERSON")
BACKENDS = ("patterns", "presidio")

# Presidio's EmailRecognizer pattern (presidio-analyzer 2.2)
_EMAIL = re.compile(r"\b((([!#$%&'*+\-/=?^_`{|}~\w])|([!#$%&'*+\-/=?^_`{|}~\w][!#$%&'*+\-/=?^_`{|}~\.\w]{0,}"
                    r"[!#$%&'*+\-/=?^_`{|}~\w]))[@]\w+(?:-+\w+)*(?:\.\w+(?:-+\w+)*)+)\b")
_CARD = re.compile(r"(?<![\d+])\d(?:[ -]?\d){12,18}(?!\d)")
_DIGITS = re.compile(r"\+?\d+")
_SCORES = {"CREDIT_CARD": 1.0, "EMAIL_ADDRESS": 1.0, "PHONE_NUMBER": 0.75, "PERSON": 0.5}
_LONG_NUMBER_SCORE = 0.3
_CARD_DIGITS = 13  # a long number of this many digits or more is taken for a card number, shorter for a phone number


def luhn_ok(digits: str) -> bool:
    """Whether the digit string passes the Luhn check (card numbers do)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class PiiOptions:
    """What the detector looks for.

    Attributes:
        entities: the types to find (of :data:`ENTITIES`).
        backend: ``"patterns"`` or ``"presidio"`` (see the module).
        regions: the countries whose phone number formats are valid (ISO codes, ``phonenumbers``'s).
        long_numbers: digits from which a number no recogniser took is a ``PHONE_NUMBER`` (from 13 digits a
            ``CREDIT_CARD``; 0: off).
        names: given names (or whole names) found as ``PERSON`` besides the built-in list.
        builtin_names: whether :data:`~.names.COMMON_GIVEN_NAMES` is used.
    """

    entities: Tuple[str, ...] = ENTITIES
    backend: str = "patterns"
    regions: Tuple[str, ...] = ("US", "GB", "CA", "AU", "IE", "DE", "FR", "IN")
    long_numbers: int = 7
    names: Tuple[str, ...] = ()
    builtin_names: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "names", tuple(self.names))
        unknown = [e for e in self.entities if e not in ENTITIES]
        if unknown:
            raise ConfigError(f"unknown PII entity type(s) {unknown}; known: {', '.join(ENTITIES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"PII backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if isinstance(self.long_numbers, bool) or not isinstance(self.long_numbers, int) or self.long_numbers < 0:
            raise ConfigError(f"long_numbers must be a whole number of digits (0: off), got {self.long_numbers!r}")
        if any(not isinstance(n, str) or not n.strip() for n in self.names):
            raise ConfigError(f"names must be non-empty strings, got {list(self.names)!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PiiHit:
    """One piece of personal data: ``entity`` over ``text[start:end]`` of the text searched."""

    entity: str
    start: int
    end: int
    score: float
    text: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class PiiDetector:
    """Find phone numbers, e-mail addresses, card numbers and names in (spoken) text: :meth:`detect`."""

    def __init__(self, options: PiiOptions | None = None) -> None:
        self.options = options or PiiOptions()
        if {"PHONE_NUMBER", "EMAIL_ADDRESS"} & set(self.options.entities):
            try:
                import phonenumbers  # noqa: F401
                import tldextract  # noqa: F401
            except ImportError as error:
                raise ConfigError(f"detecting phone numbers and e-mail addresses needs phonenumbers and tldextract "
                                  f"({error}): pip install 'speech-intent[privacy]'") from error
        names = set(COMMON_GIVEN_NAMES) if self.options.builtin_names else set()
        names.update(n.strip().lower() for n in self.options.names)
        alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        self._names = (re.compile(rf"(?<![\w'])(?:{alternatives})(?=$|[^\w']|'s\b)", re.IGNORECASE)  # "kate's", not "don't"
                       if names and "PERSON" in self.options.entities else None)
        self._presidio = _presidio_recognizers(self.options.regions) if self.options.backend == "presidio" else None

    def detect(self, text: str) -> List[PiiHit]:
        """The personal data in ``text``, sorted by position, none overlapping (a card before a phone
        number, a longer hit before a shorter one of the same score)."""
        if not isinstance(text, str):
            raise TypeError(f"PiiDetector.detect takes a string, got {type(text).__name__}")
        if not text.strip():
            return []
        view = written_view(text)
        wanted = self.options.entities
        found: List[Tuple[str, int, int, float]] = []  # on the written view
        if self._presidio is not None:
            for recognizer in self._presidio:
                for hit in recognizer.analyze(view.text, entities=list(recognizer.supported_entities)):
                    if hit.entity_type in wanted:
                        found.append((hit.entity_type, hit.start, hit.end, _SCORES[hit.entity_type]))
        else:
            found.extend(self._patterns(view.text))
        if self.options.long_numbers:
            for match in _DIGITS.finditer(view.text):
                digits = len(match.group().lstrip("+"))
                entity = "CREDIT_CARD" if digits >= _CARD_DIGITS else "PHONE_NUMBER"
                if digits >= self.options.long_numbers and entity in wanted:
                    found.append((entity, match.start(), match.end(), _LONG_NUMBER_SCORE))
        hits = [PiiHit(entity, *view.source_span(start, end), score, "") for entity, start, end, score in found]
        if self._names is not None:
            hits.extend(PiiHit("PERSON", m.start(), m.end(), _SCORES["PERSON"], "") for m in self._names.finditer(text))
        chosen: List[PiiHit] = []
        for hit in sorted(hits, key=lambda h: (-h.score, h.start - h.end, h.start)):
            if all(hit.end <= c.start or hit.start >= c.end for c in chosen):
                chosen.append(PiiHit(hit.entity, hit.start, hit.end, hit.score, text[hit.start:hit.end]))
        return sorted(chosen, key=lambda h: h.start)

    def _patterns(self, text: str) -> List[Tuple[str, int, int, float]]:
        wanted = self.options.entities
        found: List[Tuple[str, int, int, float]] = []
        if "EMAIL_ADDRESS" in wanted:
            for match in _EMAIL.finditer(text):
                if is_known_domain(match.group().rsplit("@", 1)[1]):
                    found.append(("EMAIL_ADDRESS", match.start(), match.end(), _SCORES["EMAIL_ADDRESS"]))
        if "CREDIT_CARD" in wanted:
            for match in _CARD.finditer(text):
                if luhn_ok(re.sub(r"\D", "", match.group())):
                    found.append(("CREDIT_CARD", match.start(), match.end(), _SCORES["CREDIT_CARD"]))
        if "PHONE_NUMBER" in wanted:
            import phonenumbers

            for region in self.options.regions:
                for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
                    found.append(("PHONE_NUMBER", match.start, match.end, _SCORES["PHONE_NUMBER"]))
        return found


@lru_cache(maxsize=8)
def _presidio_recognizers(regions: Tuple[str, ...]) -> tuple:
    """Presidio's phone, e-mail (offline domain check) and card recognisers."""
    try:
        from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, PhoneRecognizer
    except ImportError as error:
        raise ConfigError(f"the presidio PII backend needs presidio-analyzer ({error}): "
                          "pip install 'speech-intent[presidio]'") from error

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recogniser with its domain check on the shipped suffix list (no download)."""

        def validate_result(self, pattern_text: str) -> bool:
            return is_known_domain(pattern_text.rsplit("@", 1)[-1])

    return (PhoneRecognizer(supported_regions=regions), OfflineEmailRecognizer(), CreditCardRecognizer())

"""One text normaliser shared by training and inference (saved with the pipeline).

ASR output and training text differ in surface form ("12-ounce Latte?" vs
"twelve ounce latte"); the normaliser maps both to one form: lower case,
no punctuation, hyphens split, numerals / times / units spelled as words.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Dict

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?!\d)")  # also "5:00pm"
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)(?!\d)")  # also "1.5oz"
_NUMBER = re.compile(r"\d+")
_AMPM = re.compile(r"(?<!')\b([ap])\.?\s?m\b(?!')\.?", re.IGNORECASE)  # not inside "pm'th", "x'am"
_PUNCT = re.compile(r"[^\w\s']|_")  # "_" is a word character to re, punctuation to us
_SPACE = re.compile(r"\s+")
_PREFIX_SYMBOLS = ("$", "\u20ac", "\u00a3", "\u00a5")  # currency symbols written before the amount

#: Abbreviations and symbols spelled out (applied after lower-casing).
DEFAULT_UNITS: Dict[str, str] = {
    "%": " percent ", "&": " and ", "+": " plus ", "°": " degrees ", "$": " dollars ",
    "oz": "ounce", "ozs": "ounces", "lb": "pound", "lbs": "pounds", "km": "kilometers",
    "hr": "hour", "hrs": "hours", "min": "minute", "mins": "minutes", "sec": "second", "secs": "seconds",
    "mr": "mister", "mrs": "missus", "dr": "doctor", "st": "street",
}

#: Contractions expanded when ``expand_contractions`` is on.
CONTRACTIONS: Dict[str, str] = {
    "i'd": "i would", "i'm": "i am", "i'll": "i will", "i've": "i have", "can't": "cannot",
    "won't": "will not", "don't": "do not", "it's": "it is", "what's": "what is", "let's": "let us",
    "that's": "that is", "there's": "there is", "you're": "you are", "we're": "we are",
    "isn't": "is not", "doesn't": "does not", "didn't": "did not", "wanna": "want to", "gonna": "going to",
}


def _words(number: int, ordinal: bool = False) -> str:
    from num2words import num2words

    text = num2words(number, to="ordinal" if ordinal else "cardinal")
    return text.replace("-", " ").replace(",", "")


def _year_like(number: str) -> bool:
    return len(number) == 4 and number[:2] in ("19", "20")


@dataclass
class TextNormalizer:
    """Configurable text normaliser; ``__call__(text) -> normalised text``.

    Attributes:
        lowercase: lower-case everything.
        numbers_to_words: "12" -> "twelve", "7:30" -> "seven thirty", "3rd" -> "third".
        split_hyphens: "12-ounce" -> "12 ounce" (before number spelling).
        strip_punctuation: drop punctuation except in-word apostrophes.
        expand_contractions: "i'd" -> "i would" (off by default: both forms are common in speech data).
        units: abbreviation/symbol -> words.
    """

    lowercase: bool = True
    numbers_to_words: bool = True
    split_hyphens: bool = True
    strip_punctuation: bool = True
    expand_contractions: bool = False
    units: Dict[str, str] = field(default_factory=lambda: dict(DEFAULT_UNITS))

    def __call__(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES)
        if self.lowercase:
            text = text.lower()
        text = _AMPM.sub(lambda m: f" {m.group(1).lower()}m ", text)
        if self.split_hyphens:
            text = re.sub(r"(?<=\w)-(?=\w)", " ", text)
        for symbol, words in self.units.items():
            if not symbol.isalnum():
                if symbol in _PREFIX_SYMBOLS:  # "$5" is said "five dollars"
                    amount = re.escape(symbol) + r"\s?(\d+(?:[.,]\d+)*)"
                    text = re.sub(amount, lambda m: f" {m.group(1)} {words} ", text)
                text = text.replace(symbol, words)
        if self.numbers_to_words:
            text = self._spell_numbers(text)
        if self.strip_punctuation:
            text = _PUNCT.sub(" ", text)
            text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
        tokens = []
        for token in _SPACE.split(text.strip()):
            if not token:
                continue
            token = self.units.get(token, token) if token.isalnum() else token
            if self.expand_contractions:
                token = CONTRACTIONS.get(token, token)
            tokens.append(token)
        # spelled-out numbers and stripped symbols can leave "a m" ("7A.M." -> "seven a m"): join it
        # here too, so that normalising twice gives the same text
        return _AMPM.sub(lambda m: f"{m.group(1).lower()}m", " ".join(tokens))

    def _spell_numbers(self, text: str) -> str:
        def time(m: re.Match) -> str:
            hours, minutes = int(m.group(1)), int(m.group(2))
            if minutes == 0:
                return f" {_words(hours)} "
            minute_words = _words(minutes) if minutes >= 10 else f"oh {_words(minutes)}"
            return f" {_words(hours)} {minute_words} "

        text = re.sub(r"(?<![\w.-])-(?=\d)", " minus ", text)  # "-5" (not "5-10", split or not)
        text = _TIME.sub(time, text)
        text = _ORDINAL.sub(lambda m: f" {_words(int(m.group(1)), ordinal=True)} ", text)
        text = _DECIMAL.sub(lambda m: f" {_words(int(m.group(1)))} point {' '.join(_words(int(d)) for d in m.group(2))} ", text)
        text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)

        def number(m: re.Match) -> str:
            digits = m.group(0)
            if _year_like(digits):
                last = digits[2:]
                last = "hundred" if last == "00" else f"oh {_words(int(last))}" if last[0] == "0" else _words(int(last))
                return f" {_words(int(digits[:2]))} {last} "
            if len(digits) > 12:
                return " " + " ".join(_words(int(d)) for d in digits) + " "
            return f" {_words(int(digits))} "

        return _NUMBER.sub(number, text)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TextNormalizer":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

"""One text normaliser shared by training and inference (saved with the pipeline).

ASR output and training text differ in surface form ("12-ounce Latte?" vs
"twelve ounce latte"); the normaliser maps both to one form: lower case,
no punctuation, hyphens split, numerals / times / decades spelled as words.

Abbreviations are read the way a person says them, which depends on their neighbours:
a unit ("oz", "min", "sec") is spelled out only right after a number ("12 oz" -> "twelve
ounce", "wizard in oz" keeps "oz"), a title ("dr") only before a word ("dr smith" ->
"doctor smith"), and "st" is "saint" before a word capitalised in the original text
("St. Louis"; in text without case, all lower or all upper, before any word: "st. louis")
and "street" otherwise ("elm st", "Elm St is closed").
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Dict, List, Sequence, Tuple

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?!\d)")  # also "5:00pm"
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)(?!\d)")  # also "1.5oz"
_DECADE = re.compile(r"\b([1-9]\d*0) ?'?s\b")  # "80s", "80's", "1980s", "2000s"; tokenised "80 s"
_NUMBER = re.compile(r"\d+")
_NUMERAL = re.compile(r"\d+(?:[.,]\d+)*")  # a number token when numbers are not spelled out
_AMPM = re.compile(r"(?<!')\b([ap])\.?\s?m\b(?!')\.?", re.IGNORECASE)  # not inside "pm'th", "x'am"
_PUNCT = re.compile(r"[^\w\s']|_")  # "_" is a word character to re, punctuation to us
_SPACE = re.compile(r"\s+")
_PREFIX_SYMBOLS = ("$", "\u20ac", "\u00a3", "\u00a5")  # currency symbols written before the amount
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million billion trillion".split())

#: Symbols and words spelled out wherever they occur ("st" where it is not "saint", see ``CASED_TITLES``).
DEFAULT_UNITS: Dict[str, str] = {
    "%": " percent ", "&": " and ", "+": " plus ", "°": " degrees ", "$": " dollars ", "st": "street",
}

#: Unit abbreviations spelled out only right after a number ("12 oz", "twelve oz", "1.5oz").
NUMBER_UNITS: Dict[str, str] = {
    "oz": "ounce", "ozs": "ounces", "lb": "pound", "lbs": "pounds", "km": "kilometers",
    "hr": "hour", "hrs": "hours", "min": "minute", "mins": "minutes", "sec": "second", "secs": "seconds",
}

#: Titles spelled out only when another word follows ("dr smith"; a lone "dr" stays).
TITLES: Dict[str, str] = {"mr": "mister", "mrs": "missus", "dr": "doctor"}

#: Titles spelled out only before a word capitalised in the original text ("St. Louis", not "elm st").
#: Text without case (all lower or all upper: "st louis", "ST LOUIS") spells them out before any word.
CASED_TITLES: Dict[str, str] = {"st": "saint"}

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
    return len(number) == 4 and number[:2] in ("19", "20") and number != "2000"  # "two thousand"


def _read_year(digits: str) -> str:
    """Four digits in pairs: "1907" -> "nineteen oh seven", "1900" -> "nineteen hundred"."""
    last = digits[2:]
    last = "hundred" if last == "00" else f"oh {_words(int(last))}" if last[0] == "0" else _words(int(last))
    return f"{_words(int(digits[:2]))} {last}"


def _read_number(digits: str) -> str:
    """Digits as spoken: years in pairs, long runs digit by digit, other numbers as cardinals."""
    if _year_like(digits):
        return _read_year(digits)
    if len(digits) > 12:
        return " ".join(_words(int(d)) for d in digits)
    return _words(int(digits))


def _read_decade(digits: str) -> str:
    """The plural a person says for "80s" ("eighties"), "1980s" ("nineteen eighties"), "2000s"
    ("two thousands"); four digits from 1100 to 1990 are years ("1800s": "eighteen hundreds")."""
    years = len(digits) == 4 and "11" <= digits[:2] <= "19"
    words = _read_year(digits) if years else _read_number(digits)
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}" if head else last


def _is_number(token: str) -> bool:
    return token in _NUMBER_WORDS or _NUMERAL.fullmatch(token) is not None


@lru_cache(maxsize=8)
def _title_pattern(titles: Tuple[str, ...]) -> "re.Pattern[str]":
    """A title as a whole word, then a period, a space or the end ("St. Louis", "St.Louis", "St Louis")."""
    alternatives = "|".join(re.escape(t) for t in sorted(titles, key=len, reverse=True))
    return re.compile(rf"(?<![\w'])({alternatives})(?:\.|(?=\s)|$)", re.IGNORECASE)


@dataclass
class TextNormalizer:
    """Configurable text normaliser; ``__call__(text) -> normalised text``.

    Attributes:
        lowercase: lower-case everything.
        numbers_to_words: "12" -> "twelve", "7:30" -> "seven thirty", "3rd" -> "third",
            "the 80s" -> "the eighties", "1980s" -> "nineteen eighties", "2000" -> "two thousand".
        split_hyphens: "12-ounce" -> "12 ounce" (before number spelling).
        strip_punctuation: drop punctuation except in-word apostrophes.
        expand_contractions: "i'd" -> "i would" (off by default: both forms are common in speech data).
        units: symbol or word -> words, spelled out wherever it occurs (``DEFAULT_UNITS``).
        number_units: word -> words, spelled out only right after a number, in digits or words
            (``NUMBER_UNITS``: "12 oz" / "twelve oz" -> "twelve ounce"; "wizard in oz" keeps "oz").
        titles: word -> words, spelled out only when another word follows (``TITLES``: "dr smith"
            -> "doctor smith"; "see the dr" keeps "dr").
        cased_titles: word -> words, spelled out only when the next word starts with a capital
            letter in the original text (``CASED_TITLES``: "St. Louis" -> "saint louis"; "elm st"
            and "Elm St is closed" fall through to ``units``, "street"). Text without case (all
            lower or all upper, e.g. a lower-cased corpus) cannot show that, so there they are
            spelled out before any word ("st. louis" -> "saint louis"). Give each a fallback in
            ``units`` so that normalised (lower-case) text reads the same again.

    A word that misses its context falls back to ``units`` when listed there. Dicts saved before
    ``number_units`` / ``titles`` / ``cased_titles`` existed list every abbreviation in ``units``,
    so they load with the defaults here and keep spelling those abbreviations out everywhere.
    The context rules look at single words; keys of the three context dicts are lower-case words.
    """

    lowercase: bool = True
    numbers_to_words: bool = True
    split_hyphens: bool = True
    strip_punctuation: bool = True
    expand_contractions: bool = False
    units: Dict[str, str] = field(default_factory=lambda: dict(DEFAULT_UNITS))
    number_units: Dict[str, str] = field(default_factory=lambda: dict(NUMBER_UNITS))
    titles: Dict[str, str] = field(default_factory=lambda: dict(TITLES))
    cased_titles: Dict[str, str] = field(default_factory=lambda: dict(CASED_TITLES))

    def __call__(self, text: str) -> str:
        return self.normalize_pieces([text])[0]

    def normalize_pieces(self, pieces: Sequence[str]) -> List[str]:
        """Consecutive pieces of one text (text around and inside slot spans), each normalised on
        its own, while the context rules see across the cuts: ``call dr | smith`` reads ``doctor``
        as the whole text does, so training text cut at its slots matches ASR output read whole.
        """
        pieces = [piece or "" for piece in pieces]
        whole = "".join(pieces)
        uncased = whole == whole.lower() or whole == whole.upper()
        tokens = [self._tokens(piece, "".join(pieces[i + 1:]), uncased) for i, piece in enumerate(pieces)]
        words = iter(self._expand([token for piece in tokens for token in piece]))
        # spelled-out numbers and stripped symbols can leave "a m" ("7A.M." -> "seven a m"): join it
        # here too, so that normalising twice gives the same text
        return [_AMPM.sub(lambda m: f"{m.group(1).lower()}m", " ".join(next(words) for _ in piece))
                for piece in tokens]

    def _tokens(self, text: str, after: str, uncased: bool) -> List[str]:
        """``text`` rewritten and split into words; ``after`` is the raw text that follows it."""
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
        text = self._spell_cased_titles(text, after, uncased)  # needs the original capitals
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
        return [token for token in _SPACE.split(text.strip()) if token]

    def _expand(self, tokens: List[str]) -> List[str]:
        """Abbreviations spelled out by their neighbours (the words before expansion), then contractions."""
        out = []
        for i, token in enumerate(tokens):
            if token in self.number_units and i > 0 and _is_number(tokens[i - 1]):
                token = self.number_units[token]
            elif token in self.titles and i + 1 < len(tokens) and tokens[i + 1][:1].isalpha():
                token = self.titles[token]
            elif token.isalnum():
                token = self.units.get(token, token)
            if self.expand_contractions:
                token = CONTRACTIONS.get(token, token)
            out.append(token)
        return out

    def _spell_cased_titles(self, text: str, after: str, uncased: bool) -> str:
        if not self.cased_titles:
            return text
        titles = {key.lower(): words for key, words in self.cased_titles.items()}

        def title(m: re.Match) -> str:
            following = text[m.end():]
            following = following if following.strip() else after
            words, initial = titles.get(m.group(1).lower()), following.lstrip()[:1]
            return f" {words} " if words and (initial.isupper() or uncased and initial.isalpha()) else m.group(0)

        return _title_pattern(tuple(titles)).sub(title, text)

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
        text = _DECADE.sub(lambda m: f" {_read_decade(m.group(1))} ", text)
        return _NUMBER.sub(lambda m: f" {_read_number(m.group(0))} ", text)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TextNormalizer":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

"""The written form of spoken numbers and e-mail addresses, with a map back to the spoken text.

A speech recogniser (and the library's text normaliser) writes what a detector of phone numbers,
e-mail addresses and card numbers looks for in words: "four one five five five five zero one three
two", "four hundred and fifteen five hundred and fifty five ...", "john dot smith at gmail dot com".
:func:`written_view` rewrites such runs as digits and addresses ("4155550132",
"john.smith@gmail.com") and keeps, for every character of the rewritten text, the stretch of the
original text it came from, so what is found in the written form is redacted in the spoken one.

Numbers: a run of number words and numerals (separated by spaces, commas or hyphens) becomes the
concatenation of its groups: digit words one digit each ("four one five" -> "415"), "oh" a zero inside
a run, "double five" -> "55", compound numbers as their value ("four hundred and fifteen" -> "415",
"four billion one hundred and fifty five million ..." -> "4155...", "thirty two" -> "32"), numerals
as written ("555-0132" -> "5550132"). Leading zeros of a group said as a number ("one hundred and
thirty two" for "0132") cannot be recovered.

E-mail addresses: ``LOCAL at DOMAIN`` where the parts are words joined by spoken "dot", "underscore",
"dash" / "hyphen" (or written ``.``, ``_``, ``-``) and the domain ends in a known top-level domain
(the public suffix list shipped with tldextract; nothing is downloaded).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

__all__ = ["WrittenView", "written_view", "spoken_digits", "is_known_domain"]

_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_TEENS = {w: 10 + i for i, w in enumerate(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
_ZERO_WORDS = {"oh", "o"}
_REPEATS = {"double": 2, "triple": 3}
_NUMERAL = re.compile(r"^\+?\(?\d[\d()\-.]*$")
_STRIP = ",;:!?\"'"
_SEP = {"dot": ".", "period": ".", "point": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
_WORD = r"[a-z0-9](?:[a-z0-9._+-]*[a-z0-9])?"
_SPOKEN_SEP = r"\s+(?:dot|period|point|underscore|dash|hyphen)\s+"
_EMAIL = re.compile(
    rf"(?<![\w.@])(?P<local>{_WORD}(?:{_SPOKEN_SEP}{_WORD})*)\s+(?:at|@)\s+(?P<domain>{_WORD}(?:{_SPOKEN_SEP}{_WORD})*)"
    r"(?![\w@])", re.IGNORECASE)
_WORDS = re.compile(r"\S+")


@lru_cache(maxsize=1)
def _tld_extract():
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # the bundled snapshot: offline


def is_known_domain(domain: str) -> bool:
    """Whether ``domain`` (``gmail.com``) has a name and a public suffix (offline list)."""
    parts = _tld_extract()(domain)
    return bool(parts.domain and parts.suffix)


@dataclass(frozen=True)
class WrittenView:
    """A text with its spoken numbers and e-mail addresses written out.

    Attributes:
        text: the rewritten text.
        starts, ends: for each character of ``text``, the span of the original text it stands for.
    """

    text: str
    starts: Tuple[int, ...]
    ends: Tuple[int, ...]

    def source_span(self, start: int, end: int) -> Tuple[int, int]:
        """The span of the original text behind ``text[start:end]`` (every rewritten run it touches, whole)."""
        return min(self.starts[start:end]), max(self.ends[start:end])


def _strip(token: str) -> str:
    return token.strip(_STRIP).rstrip(".)").lower()


def _kind(word: str) -> Optional[str]:
    if word in _UNITS:
        return "unit"
    if word in _TEENS:
        return "teen"
    if word in _TENS:
        return "tens"
    if word == "hundred":
        return "hundred"
    if word in _SCALES:
        return "scale"
    return None


def spoken_digits(words: Sequence[str]) -> str:
    """The digit string a run of number words and numerals stands for (see the module's rules).

    ``words`` are lower-case tokens without surrounding punctuation; each must be a number word,
    a numeral, "oh", "double" / "triple", "and" or "plus" (as :func:`written_view` finds runs).
    """
    out: List[str] = []
    total = current = 0
    last: Optional[str] = None  # kind of the last word of the open group (None: no group open)

    def flush() -> None:
        nonlocal total, current, last
        if last is not None:
            out.append(str(total + current))
        total = current = 0
        last = None

    i = 0
    while i < len(words):
        word = words[i]
        kind = _kind(word)
        if word == "plus":
            flush()
            out.append("+")
        elif word == "and":
            pass
        elif word in _REPEATS:
            flush()
            nxt = words[i + 1] if i + 1 < len(words) else ""
            digit = str(_UNITS[nxt]) if nxt in _UNITS else "0" if nxt in _ZERO_WORDS else ""
            out.append(digit * _REPEATS[word])
            i += 1
        elif word in _ZERO_WORDS or word == "zero":
            flush()
            out.append("0")
        elif _NUMERAL.match(word):
            flush()
            out.append(re.sub(r"\D", "", word))
        elif kind == "unit":
            if last in ("tens", "hundred", "scale") and current % 10 == 0:
                current += _UNITS[word]
                last = "unit"
            else:
                flush()
                current, last = _UNITS[word], "unit"
        elif kind in ("teen", "tens"):
            value = _TEENS.get(word) or _TENS[word]
            if last in ("hundred", "scale") and current % 100 == 0:
                current += value
            else:
                flush()
                current = value
            last = kind
        elif kind == "hundred":
            if last in ("unit", "teen", "tens") and current < 100:
                current *= 100
            elif last is None:
                current = 100
            else:
                flush()
                current = 100
            last = "hundred"
        elif kind == "scale":
            scale = _SCALES[word]
            if last is None:
                current = 1
            if total and total < scale * max(current, 1):  # "one thousand two million": a new group
                flush()
                current = 1 if current == 0 else current
            total += max(current, 1) * scale
            current, last = 0, "scale"
        i += 1
    flush()
    return "".join(out)


def _number_token(tokens: List[str], i: int, in_run: bool) -> bool:
    """Whether ``tokens[i]`` continues (or starts) a run of number tokens."""
    word = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if _kind(word) or _NUMERAL.match(word):
        return True
    starts_digits = _kind(nxt) == "unit" or nxt in _ZERO_WORDS or nxt in _REPEATS or bool(_NUMERAL.match(nxt))
    if word in _ZERO_WORDS:
        return in_run or starts_digits
    if word in _REPEATS:
        return nxt in _UNITS or nxt in _ZERO_WORDS
    if word == "and":
        return in_run and bool(_kind(nxt)) and i > 0 and _kind(tokens[i - 1]) in ("hundred", "scale")
    if word == "plus":
        return not in_run and (starts_digits or bool(_kind(nxt)))
    return False


def _emails(text: str) -> List[Tuple[int, int, str]]:
    """``(start, end, address)`` of each spoken or written-with-words e-mail address in ``text``."""
    found: List[Tuple[int, int, str]] = []
    pos = 0
    while True:
        match = _EMAIL.search(text, pos)
        if match is None:
            return found
        local = _join(match.group("local"))
        domain = _join(match.group("domain"))
        if "." in domain and is_known_domain(domain):
            found.append((match.start(), match.end(), f"{local}@{domain}"))
            pos = match.end()
        else:  # "me at john dot smith": try again from the next word
            nxt = re.search(r"\s\S", text[match.start():])
            if nxt is None:
                return found
            pos = match.start() + nxt.end() - 1


def _join(spoken: str) -> str:
    words = spoken.split()
    return "".join(_SEP.get(w.lower(), w.lower()) if i % 2 else w.lower() for i, w in enumerate(words))


def written_view(text: str) -> WrittenView:
    """``text`` with spoken e-mail addresses and number runs written out, mapped back to ``text``."""
    pieces: List[Tuple[str, int, int]] = []  # (written text, source start, source end); unchanged text 1:1
    emails = _emails(text)
    tokens = [(m.start(), m.end(), _strip(m.group())) for m in _WORDS.finditer(text)]
    words = [t[2] for t in tokens]
    runs: List[Tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        if not words[i] or not _number_token(words, i, False) or _inside(tokens[i], emails):
            i += 1
            continue
        j = i + 1
        while j < len(tokens) and words[j] and _number_token(words, j, True) and not _inside(tokens[j], emails):
            j += 1
        start, end = tokens[i][0], tokens[j - 1][1]
        end = start + len(text[start:end].rstrip(_STRIP + ".)"))
        digits = spoken_digits(words[i:j])
        if digits and text[start:end] != digits:
            runs.append((start, end, digits))
        i = j
    spans = sorted(emails + runs)
    last = 0
    for start, end, written in spans:
        pieces.extend((c, k, k + 1) for k, c in enumerate(text[last:start], last))
        pieces.append((written, start, end))
        last = end
    pieces.extend((c, k, k + 1) for k, c in enumerate(text[last:], last))
    out, starts, ends = [], [], []
    for written, start, end in pieces:
        out.append(written)
        starts.extend([start] * len(written))
        ends.extend([end] * len(written))
    return WrittenView("".join(out), tuple(starts), tuple(ends))


def _inside(token: Tuple[int, int, str], spans: List[Tuple[int, int, str]]) -> bool:
    return any(start <= token[0] < end for start, end, _ in spans)

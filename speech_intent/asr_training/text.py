"""Tokenised text written naturally, and targets written the way Whisper writes.

- :func:`detokenize`: JointBERT / BIO ``seq.in`` and Penn Treebank tokens (``what s``, ``do n't``,
  ``i d like``) joined back into natural text (``what's``, ``don't``, ``I'd like``).
- :func:`format_sentence`: first letter upper case, a final full stop.
"""
from __future__ import annotations

import re
from typing import List, Optional

__all__ = ["detokenize", "format_sentence"]

_PRONOUNS = frozenset("i you he she it we they that there who what where how".split())
#: Which words a JointBERT-split clitic (the apostrophe dropped: ``what s``, ``i m``, ``don t``) joins.
_CLITIC_HOSTS = {
    "m": frozenset({"i"}),
    "d": _PRONOUNS,
    "ll": _PRONOUNS,
    "re": frozenset("you we they who what where how there why when".split()),
    "ve": frozenset("i you we they who what where how could would should might must".split()),
    "t": frozenset("don doesn didn isn aren wasn weren haven hasn hadn won wouldn couldn shouldn can ain mustn "
                   "needn mightn shan".split()),
}
_PTB_CLITIC = re.compile(r"^(?:['’](?:s|m|d|ll|re|ve)|n['’]t)$", re.I)  # Penn Treebank: do n't, it 's
_CLOSING = re.compile(r"^[.,!?;:%)\]}…]+$")
_OPENING = re.compile(r"^[(\[{]+$")
_DECADE = re.compile(r"^\d*0$")
_PRONOUN_I = re.compile(r"^i(?:['’][a-z]+)?[.,!?;:)…]*$")  # "i", "i'm", "i,"; not "i-lander"


def _letter(token: Optional[str]) -> bool:
    """A single letter that is not a word (``a`` and ``i`` are words): part of a spelled-out name."""
    return token is not None and len(token) == 1 and token.isalpha() and token.lower() not in ("a", "i")


def _joins(host: str, part: str, following: Optional[str]) -> bool:
    """Whether the token ``part`` is the split-off end of ``host`` (see :func:`detokenize`)."""
    if _PTB_CLITIC.match(part):
        return True
    if _letter(following):  # "play s t r e e t": spelled letters, not a contraction
        return False
    word, low = part.lower(), host.lower()
    if word == "s":
        return (host.isalpha() and len(host) >= 2) or bool(_DECADE.match(host))
    return low in _CLITIC_HOSTS.get(word, ())


def detokenize(text: str) -> str:
    """Tokenised text (JointBERT / BIO ``seq.in``, Penn Treebank) written as natural text.

    The rule, token by token (case kept):

    - a split contraction is joined with an apostrophe: ``s`` after a word of two or more letters
      (``what s`` -> ``what's``, ``let s``, ``lincoln s``); ``m`` after ``i``; ``d`` / ``ll`` after a
      pronoun (``i``, ``you``, ``he``, ``she``, ``it``, ``we``, ``they``, ``that``, ``there``,
      ``who``, ``what``, ``where``, ``how``); ``re`` after ``you``/``we``/``they``/``who``/
      ``what``/``where``/``how``/``there``/``why``/``when``; ``ve`` after ``i``/``you``/``we``/
      ``they``/``who``/``what``/``where``/``how`` or a modal (``could ve``); ``t`` after a negated
      auxiliary (``don``, ``isn``, ``can``, ``won``, ...). ``s`` after a decade joins without one
      (``80 s`` -> ``80s``). Penn Treebank clitics (``'s``, ``n't``, ...) join their word.
    - Not joined: a part after any other word (``add d flame``, ``james d conrey``, ``tenacious d``,
      ``at t``, ``u s a``, ``7 a m``) or followed by another single letter other than ``a``/``i``
      (spelled out: ``play s t r e e t`` keeps its ``s``).
    - Closing punctuation tokens (``, . ! ? ; : % ) ] } …``) join the word before, opening brackets
      the word after.
    - The pronoun ``i`` is written ``I`` (also in ``I'm``, ``I'd``), except among spelled-out letters
      (``w i t c h``).

    Text that is already natural comes back unchanged (single-spaced).
    """
    tokens = text.split()
    out: List[str] = []
    opening = ""
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if out and not opening and (_CLOSING.match(token) or _joins(out[-1], token, following)):
            apostrophe = "" if _CLOSING.match(token) or _PTB_CLITIC.match(token) or _DECADE.match(out[-1]) else "'"
            out[-1] += apostrophe + token
        elif _OPENING.match(token) and following is not None:
            opening += token
        else:
            out.append(opening + token)
            opening = ""
    if opening:
        out.append(opening)
    for index, token in enumerate(out):
        if _PRONOUN_I.match(token) and not (_letter(out[index - 1] if index else None)
                                                   or _letter(out[index + 1] if index + 1 < len(out) else None)):
            out[index] = "I" + token[1:]
    return " ".join(out)


def format_sentence(text: str) -> str:
    """``text`` written the way Whisper writes a sentence: single spaces, first letter upper case,
    a full stop at the end unless it ends with punctuation already."""
    text = " ".join(text.split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."

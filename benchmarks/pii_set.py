"""A labelled set of personal data as a speech recogniser writes it, generated (deterministic per seed).

Each item: ``{"text", "form", "spans": [{"entity", "start", "end"}]}``. The sentences are lower-case
voice-assistant requests; the personal data in them comes in the forms a recogniser (and the library's
text normaliser) produces:

- ``PHONE_NUMBER``: written ("415-555-0132", "(415) 555-0132", "415 555 0132", "+44 20 7946 0958"),
  spoken digit by digit ("four one five five five five zero one three two", with "oh", "double five",
  pauses as commas), and as the normaliser writes numerals ("four hundred and fifteen five hundred and
  fifty five one hundred and thirty two"); US and UK numbers.
- ``EMAIL_ADDRESS``: written ("john.smith@gmail.com"), spoken ("john dot smith at gmail dot com",
  "underscore", "dash"), and mixed ("john.smith at gmail.com").
- ``CREDIT_CARD``: Visa / Mastercard / Amex numbers with a valid Luhn digit, written in groups, spoken
  digit by digit, and as the normaliser writes them.
- ``PERSON``: the demo domain's contacts that are given names ("text john that ..."), and names in
  carrier sentences, some not in the redactor's built-in list ("priya", "okafor"), to show what is missed.
- the demo domain's utterances: its contacts that are given names are ``PERSON``, a contact of 7 or more
  digits a ``PHONE_NUMBER``; the rest are negatives (times, durations, volumes, door codes: numbers
  that are not personal data), lower-cased.

``python -m benchmarks.pii_set OUT.jsonl [--seed N]`` writes the set; :func:`build` returns it.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from benchmarks.common import benchmark_parser
from speech_intent.data import read_rasa
from speech_intent.normalize import TextNormalizer
from speech_intent.privacy.pii import luhn_ok
from speech_intent.privacy.redact import demo_domain

DIGIT_WORDS = "zero one two three four five six seven eight nine".split()
US_AREAS = ["212", "213", "305", "312", "415", "503", "512", "617", "646", "702", "718", "206", "404", "713", "919"]
FIRST = ["john", "sarah", "mike", "emma", "david", "lisa", "tom", "anna", "peter", "kate", "raj", "mei", "olu", "ines"]
LAST = ["smith", "jones", "lee", "brown", "garcia", "patel", "nguyen", "kim", "okafor", "novak"]
DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.co.uk", "example.org", "icloud.com", "company.net",
           "proton.me", "mail.de", "uni.edu"]
EXTRA_NAMES = ["priya", "okafor", "siobhan", "mateo", "aisha", "dmitri", "yuki", "chidi"]  # not in the built-in list
LISTED_NAMES = ["james", "olivia", "michael", "sophia", "daniel", "hannah", "robert", "natalie"]

PHONE_TEMPLATES = ["call me back on {}", "my number is {}", "dial {} please", "text {} that i'm running late",
                   "can you call {}", "save {} as a new contact", "ring {} for me", "my phone is {} thanks"]
EMAIL_TEMPLATES = ["send it to {}", "my email is {}", "email {} the report", "share the list with {}",
                   "my address is {} thanks", "forward this to {} please"]
CARD_TEMPLATES = ["pay with card {}", "my card number is {}", "use {} for the order", "charge it to {} please",
                  "the card is {} and it expires in april"]
NAME_TEMPLATES = ["text {} that dinner is ready", "call {}", "send {} a message saying see you soon",
                  "remind me to phone {} tomorrow", "what's the weather where {} lives"]

Span = Dict[str, object]


def _spoken_digits(digits: str, rng: random.Random) -> str:
    """Digit by digit, "oh" for some zeros, "double" for some pairs, commas at some group breaks."""
    words: List[str] = []
    i = 0
    zero = rng.choice(["zero", "oh"])
    while i < len(digits):
        d = digits[i]
        if d == "+":
            words.append("plus")
            i += 1
            continue
        word = zero if d == "0" else DIGIT_WORDS[int(d)]
        if i + 1 < len(digits) and digits[i + 1] == d and rng.random() < 0.4:
            words.append(f"double {word}")
            i += 2
        else:
            words.append(word)
            i += 1
    return " ".join(words)


def _grouped_spoken(groups: List[str], rng: random.Random) -> str:
    sep = rng.choice([" ", ", "])
    return sep.join(_spoken_digits(g, rng) for g in groups)


def _phone(rng: random.Random, normalize) -> Tuple[str, str]:
    if rng.random() < 0.7:  # US
        area, exchange, line = rng.choice(US_AREAS), f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}", f"{rng.randint(0, 9999):04d}"
        groups = [area, exchange, line]
        written = rng.choice([f"{area}-{exchange}-{line}", f"({area}) {exchange}-{line}", f"{area} {exchange} {line}",
                              f"{area}{exchange}{line}"])
    else:  # UK mobile or London
        if rng.random() < 0.5:
            groups = ["07700", f"{rng.randint(900000, 900999)}"]
            written = " ".join(groups)
        else:
            groups = ["+44", "20", "7946", f"{rng.randint(0, 9999):04d}"]
            written = " ".join(groups)
    form = rng.choice(["written", "spoken", "spoken", "normalised"])
    if form == "written":
        return written, form
    if form == "spoken":
        return _grouped_spoken(groups, rng), form
    return normalize(written), form


def _email(rng: random.Random) -> Tuple[str, str]:
    first, last, domain = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    sep = rng.choice([".", "_", "-", ""])
    local = rng.choice([f"{first}{sep}{last}", first, f"{first[0]}{last}", f"{first}{sep}{last}{rng.randint(1, 99)}"])
    written = f"{local}@{domain}"
    form = rng.choice(["written", "spoken", "spoken", "mixed"])
    if form == "written":
        return written, form
    spoken_sep = {".": " dot ", "_": " underscore ", "-": " dash ", "": ""}
    spoken_local = "".join(spoken_sep.get(c, c) for c in local)
    if form == "mixed":
        return f"{local} at {domain}", form
    return f"{spoken_local} at {domain.replace('.', ' dot ')}", form


def _card_number(rng: random.Random) -> Tuple[str, List[int]]:
    kind = rng.choice(["visa", "mastercard", "amex"])
    prefix, length, groups = {"visa": ("4", 16, [4, 4, 4, 4]), "mastercard": (str(rng.randint(51, 55)), 16, [4, 4, 4, 4]),
                              "amex": (rng.choice(["34", "37"]), 15, [4, 6, 5])}[kind]
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    check = next(str(d) for d in range(10) if luhn_ok(body + str(d)))
    return body + check, groups


def _card(rng: random.Random, normalize) -> Tuple[str, str]:
    number, sizes = _card_number(rng)
    groups, pos = [], 0
    for size in sizes:
        groups.append(number[pos:pos + size])
        pos += size
    written = rng.choice([" ".join(groups), "-".join(groups), number])
    form = rng.choice(["written", "spoken", "spoken", "normalised"])
    if form == "written":
        return written, form
    if form == "spoken":
        return _grouped_spoken(groups, rng), form
    return normalize(" ".join(groups)), form


def _item(template: str, value: str, entity: str, form: str) -> Dict[str, object]:
    start = template.index("{}")
    text = template.format(value)
    return {"text": text, "form": form, "spans": [{"entity": entity, "start": start, "end": start + len(value)}]}


def build(seed: int = 0, per_entity: int = 200) -> List[Dict[str, object]]:
    """The labelled set: ``per_entity`` phone numbers, e-mail addresses and card numbers, names, negatives."""
    rng = random.Random(seed)
    normalize = TextNormalizer()
    items: List[Dict[str, object]] = []
    for _ in range(per_entity):
        items.append(_with_form(rng.choice(PHONE_TEMPLATES), _phone(rng, normalize), "PHONE_NUMBER"))
        items.append(_with_form(rng.choice(EMAIL_TEMPLATES), _email(rng), "EMAIL_ADDRESS"))
        items.append(_with_form(rng.choice(CARD_TEMPLATES), _card(rng, normalize), "CREDIT_CARD"))
    for name in EXTRA_NAMES + LISTED_NAMES:
        items.append(_with_form(rng.choice(NAME_TEMPLATES), (name, "carrier"), "PERSON"))
    for example in read_rasa(demo_domain()):
        text = example.text.lower()
        spans: List[Span] = [{"entity": "PERSON", "start": s.start, "end": s.end} for s in example.slots
                             if s.name == "contact" and _given_name(s.value)]
        spans += [{"entity": "PHONE_NUMBER", "start": s.start, "end": s.end} for s in example.slots
                  if s.name == "contact" and sum(c.isdigit() for c in s.value) >= 7]  # "dial [0 2 0 7 9 4 6](contact)"
        items.append({"text": text, "form": "demo", "spans": spans})
    return items


def _with_form(template: str, value_form: Tuple[str, str], entity: str) -> Dict[str, object]:
    value, form = value_form
    return _item(template, value, entity, form)


def _given_name(value: str) -> bool:
    """A contact that is a person's given name (capitalised, one word, not a family word)."""
    return value[:1].isupper() and " " not in value and value.lower() not in {"mom", "dad", "mum", "grandma"}


def main(argv: Optional[List[str]] = None) -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("out", type=Path, help="the JSONL file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-entity", type=int, default=200)
    args = parser.parse_args(argv)
    items = build(args.seed, args.per_entity)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    print(f"{len(items)} items -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

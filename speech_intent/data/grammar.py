"""Rhino-style context grammars (``context: {expressions, slots}``) expanded into Examples.

Expression syntax: plain words, ``[a, b c]`` alternatives, ``(optional words)`` or
``(a, b)`` optional alternatives (nestable), and ``$slotType:slotName`` references
(``$slotType`` alone uses the type as the name). Rendered text joins words with single spaces.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple, Union

import yaml

from ..errors import ConfigError, DataFormatError
from ..slots import SlotSpan
from .examples import Example

logger = logging.getLogger(__name__)

__all__ = ["Choice", "Expression", "Grammar", "Node", "SlotRef", "Word", "expand_grammar", "grammar_slot_values",
           "grammar_vocabulary", "parse_grammar"]


# The parsed grammar (public: grammar-constrained decoding walks it too). An Expression is a
# tuple of nodes; a Choice's options are Expressions.


class Word(NamedTuple):
    """A literal word (or punctuation) of an expression."""

    text: str


class SlotRef(NamedTuple):
    """``$type:name``: one value of slot type ``type``, labelled as slot ``name``."""

    type: str
    name: str


class Choice(NamedTuple):
    """``[a, b]`` (one of the options) or ``(a, b)`` (optional: one of them or nothing)."""

    options: tuple
    optional: bool


Node = Union[Word, SlotRef, Choice]
Expression = tuple[Node, ...]
_Piece = tuple[str, Union[str, None]]  # (text, slot name or None)

_SLOT_REF = re.compile(r"\$([A-Za-z_][\w-]*)(?::([A-Za-z_][\w-]*))?")
_WORD = re.compile(r"[^\s\[\]()$]+")
_WORD_IN_CHOICE = re.compile(r"[^\s\[\]()$,]+")


class _GrammarLoader(yaml.SafeLoader):
    """SafeLoader that reads plain scalars as written: ``on`` stays "on", ``7:30`` "7:30" (only null is resolved)."""


_GrammarLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Parser:
    """Recursive-descent parser for one expression string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Expression:
        seq = self._seq(stop="")
        if self.pos < len(self.text):  # only a stray closer stops the top level early
            raise ValueError(f"unbalanced {self.text[self.pos]!r} at column {self.pos + 1}")
        return seq

    def _seq(self, stop: str) -> Expression:
        nodes: list[Node] = []
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c.isspace():
                self.pos += 1
            elif c in stop or c in "])":
                break
            elif c in "[(":
                nodes.append(self._choice(c))
            elif c == "$":
                match = _SLOT_REF.match(text, self.pos)
                if match is None:
                    raise ValueError(f"bad slot reference at column {self.pos + 1}")
                nodes.append(SlotRef(match.group(1), match.group(2) or match.group(1)))
                self.pos = match.end()
            else:  # a comma is literal text outside brackets
                match = (_WORD_IN_CHOICE if stop else _WORD).match(text, self.pos)
                nodes.append(Word(match.group()))
                self.pos = match.end()
        return tuple(nodes)

    def _choice(self, opener: str) -> Choice:
        closer = "]" if opener == "[" else ")"
        column = self.pos + 1
        self.pos += 1
        options: list[Expression] = []
        while True:
            options.append(self._seq(stop="," + closer))
            if self.pos >= len(self.text):
                raise ValueError(f"unclosed {opener!r} opened at column {column}")
            found = self.text[self.pos]
            self.pos += 1
            if found == closer:
                break
            if found != ",":
                raise ValueError(f"{found!r} at column {self.pos} closes {opener!r} from column {column}")
        if any(not option for option in options):
            raise ValueError(f"empty alternative in {opener}...{closer} at column {column}")
        return Choice(tuple(options), optional=opener == "(")


# intents: intent -> parsed expressions; slot_values: slot type -> normalised values;
# data: the mapping it was read from (so a consumer can save it without reading the file again)
class Grammar(NamedTuple):
    """A parsed grammar: ``intents`` (intent -> its expressions), ``slot_values`` (slot type -> values),
    ``data`` (the YAML mapping) and ``source`` (where it came from)."""

    source: str
    intents: dict
    slot_values: dict
    data: dict


def _walk(seq: Expression) -> Iterator[Word | SlotRef]:
    """Every word and slot reference in ``seq``, including inside alternatives."""
    for node in seq:
        if isinstance(node, Choice):
            for option in node.options:
                yield from _walk(option)
        else:
            yield node


def _strings(value: Any, what: str) -> list[str]:
    """Validate a YAML list of scalars and return them as strings."""
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return [str(v) for v in value]


def _load(path_or_dict: str | Path | Mapping[str, Any]) -> Grammar:
    """Read, validate and parse a grammar file or already-loaded mapping."""
    if isinstance(path_or_dict, Mapping):
        source, data = "<grammar dict>", path_or_dict
    else:
        source = str(path_or_dict)
        try:
            data = yaml.load(Path(path_or_dict).read_text(encoding="utf-8"), Loader=_GrammarLoader)
        except yaml.YAMLError as exc:
            raise DataFormatError.from_yaml(exc, source) from exc
    context = data.get("context", data) if isinstance(data, Mapping) else None
    if not isinstance(context, Mapping) or not isinstance(context.get("expressions"), Mapping):
        raise DataFormatError("expected 'context:' with an 'expressions:' mapping", source=source)
    slot_values: dict[str, list[str]] = {}
    intents: dict[str, list[Expression]] = {}
    try:
        for slot_type, values in (context.get("slots") or {}).items():
            normalised = [" ".join(v.split()) for v in _strings(values, f"slot type {slot_type!r}")]
            if not normalised or "" in normalised:
                raise ValueError(f"slot type {slot_type!r} has an empty value list or value")
            slot_values[str(slot_type)] = list(dict.fromkeys(normalised))
        expression_lists = {
            str(intent): _strings(expressions, f"expressions of intent {intent!r}")
            for intent, expressions in context["expressions"].items()
        }
    except (ValueError, AttributeError) as exc:
        raise DataFormatError(str(exc), source=source) from exc
    for intent, expressions in expression_lists.items():
        parsed: list[Expression] = []
        for number, expression in enumerate(expressions, start=1):
            try:
                seq = _Parser(expression).parse()
                if not seq:
                    raise ValueError("empty expression")
                for node in _walk(seq):
                    if isinstance(node, SlotRef) and node.type not in slot_values:
                        raise ValueError(f"unknown slot type {node.type!r}")
            except ValueError as exc:
                raise DataFormatError(
                    f"intent {intent!r}, expression {expression!r}: {exc}", source=source, record=number
                ) from exc
            parsed.append(seq)
        intents[intent] = parsed
    return Grammar(source, intents, slot_values, dict(data))


def parse_grammar(path_or_dict: str | Path | Mapping[str, Any]) -> Grammar:
    """The parsed grammar: ``intents`` (intent -> expression trees of ``Word`` / ``SlotRef`` /
    ``Choice`` nodes) and ``slot_values`` (slot type -> values), for consumers that walk it
    (e.g. the ASR grammar constraint in :mod:`speech_intent.asr.grammar`)."""
    return _load(path_or_dict)


def _count(seq: Expression, values: Mapping[str, list[str]]) -> int:
    """Number of expansion paths of ``seq`` (an upper bound on distinct texts)."""
    total = 1
    for node in seq:
        if isinstance(node, SlotRef):
            total *= len(values[node.type])
        elif isinstance(node, Choice):
            total *= sum(_count(o, values) for o in node.options) + int(node.optional)
    return total


def _expand(seq: Expression, values: Mapping[str, list[str]]) -> Iterator[tuple[_Piece, ...]]:
    """Every expansion of ``seq`` as a tuple of pieces, in grammar order."""
    def node_options(node: Node) -> list[tuple[_Piece, ...]]:
        if isinstance(node, Word):
            return [((node.text, None),)]
        if isinstance(node, SlotRef):
            return [((value, node.name),) for value in values[node.type]]
        options = [p for option in node.options for p in _expand(option, values)]
        return options + [()] if node.optional else options

    for combo in itertools.product(*(node_options(node) for node in seq)):
        yield tuple(piece for part in combo for piece in part)


def _sample(seq: Expression, values: Mapping[str, list[str]], rng: random.Random) -> list[_Piece]:
    """One random expansion: uniform over each choice's options and each slot's values."""
    pieces: list[_Piece] = []
    for node in seq:
        if isinstance(node, Word):
            pieces.append((node.text, None))
        elif isinstance(node, SlotRef):
            pieces.append((rng.choice(values[node.type]), node.name))
        else:
            k = rng.randrange(len(node.options) + int(node.optional))
            if k < len(node.options):
                pieces.extend(_sample(node.options[k], values, rng))
    return pieces


def _render(pieces: tuple[_Piece, ...] | list[_Piece], intent: str) -> Example:
    """Join pieces with single spaces, recording slot spans."""
    parts: list[str] = []
    spans: list[SlotSpan] = []
    pos = 0
    for text, slot in pieces:
        if parts:
            pos += 1
        if slot is not None:
            spans.append(SlotSpan(slot, pos, pos + len(text), text))
        parts.append(text)
        pos += len(text)
    return Example(" ".join(parts), intent, tuple(spans))


def _allocate(budget: int, capacities: list[int]) -> list[int]:
    """Split ``budget`` as evenly as possible without exceeding any capacity (water filling)."""
    quotas = [0] * len(capacities)
    remaining = budget
    order = sorted(range(len(capacities)), key=lambda i: capacities[i])
    for k, i in enumerate(order):
        quotas[i] = min(capacities[i], remaining // (len(order) - k))
        remaining -= quotas[i]
    return quotas


def _examples_for(seq: Expression, intent: str, quota: int, capacity: int,
                  values: Mapping[str, list[str]], rng: random.Random) -> list[Example]:
    """Up to ``quota`` distinct examples of one expression (all of them when it is small)."""
    if capacity <= 4 * quota:
        every = list(dict.fromkeys(_render(p, intent) for p in _expand(seq, values)))
        return every if len(every) <= quota else rng.sample(every, quota)
    found: dict[Example, None] = {}
    for _ in range(20 * quota):
        found[_render(_sample(seq, values, rng), intent)] = None
        if len(found) >= quota:
            break
    return list(found)


def expand_grammar(path_or_dict: str | Path | Mapping[str, Any], *,
                   max_examples: int | None = 20000, seed: int = 0) -> list[Example]:
    """Expand a grammar into labelled Examples with exact slot spans.

    With ``max_examples`` set, the budget is split evenly across intents, then across each
    intent's expressions (small ones are fully enumerated, their leftover goes to the rest);
    large expressions are sampled with random alternatives and slot values. The result is
    deduplicated, shuffled and deterministic for a given ``seed``. ``None`` expands everything.
    """
    if max_examples is not None and max_examples <= 0:
        raise ConfigError(f"max_examples must be positive or None, got {max_examples}")
    grammar = _load(path_or_dict)
    rng = random.Random(seed)
    values = grammar.slot_values
    capacity = {i: [_count(s, values) for s in seqs] for i, seqs in grammar.intents.items()}
    if max_examples is None:
        intent_quota = {i: sum(c) for i, c in capacity.items()}
    else:
        names = list(capacity)
        intent_quota = dict(zip(names, _allocate(max_examples, [sum(capacity[i]) for i in names])))
    found: dict[Example, None] = {}
    for intent, seqs in grammar.intents.items():
        quotas = _allocate(intent_quota[intent], capacity[intent])
        for seq, quota, cap in zip(seqs, quotas, capacity[intent]):
            if quota:
                found.update(dict.fromkeys(_examples_for(seq, intent, quota, cap, values, rng)))
    examples = list(found)
    rng.shuffle(examples)
    logger.info(
        "%s: %d expressions (%s expansion paths) -> %d examples",
        grammar.source, sum(len(s) for s in grammar.intents.values()),
        f"{sum(sum(c) for c in capacity.values()):.3g}", len(examples),
    )
    return examples


def grammar_slot_values(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, list[str]]:
    """Closed value list of each slot *name* used in the expressions (types resolved)."""
    grammar = _load(path_or_dict)
    out: dict[str, list[str]] = {}
    for seqs in grammar.intents.values():
        for seq in seqs:
            for node in _walk(seq):
                if isinstance(node, SlotRef):
                    merged = out.get(node.name, []) + grammar.slot_values[node.type]
                    out[node.name] = list(dict.fromkeys(merged))
    return out


def grammar_vocabulary(path_or_dict: str | Path | Mapping[str, Any]) -> set[str]:
    """Every whitespace-separated word in the expressions and slot values (case kept)."""
    grammar = _load(path_or_dict)
    words = {word for values in grammar.slot_values.values() for v in values for word in v.split()}
    for seqs in grammar.intents.values():
        for seq in seqs:
            words.update(node.text for node in _walk(seq) if isinstance(node, Word))
    return words

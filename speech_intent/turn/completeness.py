"""Completeness from the domain: what a grammar or the required slots say about a partial command.

:class:`GrammarCompleteness` compiles a Rhino-style grammar (:mod:`speech_intent.data.grammar`) into a
word graph (slot values expanded to their words) and reads a normalised partial transcript through
it: whether the words so far are a whole sentence of the grammar (``complete``), whether some longer
sentence starts with them (``can_continue``) and whether they are inside the grammar at all.

:class:`SlotCompleteness` knows, per intent, the slots a command needs (``{"orderDrink":
["coffeeDrink"]}``): given the intent and slots the NLU found, whether all are filled.

Both answer :class:`DomainState`, which :func:`combine` folds into the end-of-turn model's probability.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple, Union

from ..data.grammar import Choice, Grammar, SlotRef, Word, parse_grammar
from ..errors import ConfigError

GrammarSource = Union[str, Path, Mapping[str, Any], Grammar]

#: How far domain evidence moves the model's probability (see :func:`combine`).
DOMAIN_WEIGHT = 0.9


@dataclass(frozen=True)
class DomainState:
    """What the domain says about the words so far.

    Attributes:
        known: whether the domain could judge them (inside the grammar; an intent with required slots).
        complete: they form a whole command (a grammar sentence; every required slot filled).
        can_continue: a longer command of the domain starts with them.
    """

    known: bool
    complete: bool = False
    can_continue: bool = True

    def to_dict(self) -> Dict[str, bool]:
        return {"known": self.known, "complete": self.complete, "can_continue": self.can_continue}


UNKNOWN = DomainState(known=False)


def words_of(text: str) -> List[str]:
    """Grammar text as graph words: lower case, outer punctuation stripped, hyphens split."""
    words = (w.strip(",.?!;:\"()").lower() for w in text.replace("-", " ").split())
    return [w for w in words if w]


class GrammarCompleteness:
    """A grammar's word graph, read a partial transcript at a time.

    Args:
        grammar: a grammar file, its mapping, or a parsed :class:`~speech_intent.data.grammar.Grammar`.
        normalizer: applied to the grammar's words (and so it must be to the texts given to
            :meth:`state`): the end-of-turn model's text normaliser, so "two shots" in a grammar and
            "2 shots" in a transcript meet.
    """

    def __init__(self, grammar: GrammarSource, normalizer=None) -> None:
        self.grammar = grammar if isinstance(grammar, Grammar) else parse_grammar(grammar)
        self._norm = normalizer or (lambda text: text)
        self._edges: List[Dict[str, List[int]]] = [{}]
        self._epsilon: Dict[int, List[int]] = {}
        finals = [self._compile(seq, 0) for seqs in self.grammar.intents.values() for seq in seqs]
        self._closure_of = [self._closure({n}) for n in range(len(self._edges))]
        self._final = frozenset(n for n in range(len(self._edges)) if self._closure_of[n] & set(finals))
        self.start = self._closure_of[0]
        self._cache: Dict[Tuple[FrozenSet[int], str], FrozenSet[int]] = {}

    # ---------------------------------------------------------------- building
    def _new(self) -> int:
        self._edges.append({})
        return len(self._edges) - 1

    def _chain(self, text: str, u: int, v: int) -> None:
        words = words_of(self._norm(text))
        if not words:
            self._epsilon.setdefault(u, []).append(v)
            return
        for i, word in enumerate(words):
            w = v if i == len(words) - 1 else self._new()
            self._edges[u].setdefault(word, []).append(w)
            u = w

    def _compile(self, seq, u: int) -> int:
        for node in seq:
            v = self._new()
            if isinstance(node, Word):
                self._chain(node.text, u, v)
            elif isinstance(node, SlotRef):
                for value in self.grammar.slot_values[node.type]:
                    self._chain(value, u, v)
            elif isinstance(node, Choice):
                for option in node.options:
                    self._epsilon.setdefault(self._compile(option, u), []).append(v)
                if node.optional:
                    self._epsilon.setdefault(u, []).append(v)
            u = v
        return u

    def _closure(self, nodes) -> FrozenSet[int]:
        seen, todo = set(nodes), list(nodes)
        while todo:
            for nxt in self._epsilon.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    # ---------------------------------------------------------------- reading
    def step(self, states: FrozenSet[int], word: str) -> FrozenSet[int]:
        """Graph nodes after reading ``word`` from ``states`` (empty: outside the grammar)."""
        key = (states, word)
        found = self._cache.get(key)
        if found is None:
            found = frozenset(m for n in states for v in self._edges[n].get(word, ()) for m in self._closure_of[v])
            if len(self._cache) < 200_000:
                self._cache[key] = found
        return found

    def state(self, text: str) -> DomainState:
        """What the grammar says about ``text`` (already normalised like the grammar's words)."""
        states = self.start
        words = words_of(text)
        if not words:
            return UNKNOWN
        for word in words:
            states = self.step(states, word)
            if not states:
                return UNKNOWN
        return DomainState(known=True, complete=bool(states & self._final),
                           can_continue=any(self._edges[n] for n in states))

    def is_sentence(self, text: str) -> bool:
        """Whether ``text`` is a whole sentence of the grammar."""
        state = self.state(text)
        return state.known and state.complete

    def to_dict(self) -> Dict[str, Any]:
        """The grammar's mapping (what :class:`GrammarCompleteness` is rebuilt from)."""
        return dict(self.grammar.data)


class SlotCompleteness:
    """Required slots per intent: a command is complete when its intent's slots are all filled.

    ``required``: intent -> the slot names it needs (an intent not named needs none, and is complete
    as soon as it is recognised).
    """

    def __init__(self, required: Mapping[str, Sequence[str]]) -> None:
        if not isinstance(required, Mapping) or any(isinstance(v, str) or not all(isinstance(s, str) for s in v)
                                                    for v in required.values()):
            raise ConfigError(f"required slots must map each intent to a list of slot names, got {required!r}")
        self.required = {str(k): tuple(v) for k, v in required.items()}

    def state(self, intent: Optional[str], slots: Optional[Mapping[str, Any]]) -> DomainState:
        """Whether the command the NLU found is complete (unknown without an intent)."""
        if not intent:
            return UNKNOWN
        missing = [s for s in self.required.get(intent, ()) if not (slots or {}).get(s)]
        return DomainState(known=True, complete=not missing, can_continue=bool(missing))

    def to_dict(self) -> Dict[str, List[str]]:
        return {k: list(v) for k, v in self.required.items()}


def combine(probability: float, *states: DomainState, weight: float = DOMAIN_WEIGHT) -> float:
    """The model's P(complete) moved by the domain's evidence.

    Words that cannot end a command yet (a grammar prefix, a required slot missing) keep only
    ``1 - weight`` of the probability; a whole command nothing can continue moves it ``weight`` of
    the way to 1; a whole command a longer one could continue ("a large latte" before "with milk")
    and anything the domain cannot judge leave it to the model.
    """
    for state in states:
        if not state.known:
            continue
        if not state.complete:
            probability *= 1.0 - weight
        elif not state.can_continue:
            probability += weight * (1.0 - probability)
    return float(min(1.0, max(0.0, probability)))


__all__ = ["DomainState", "GrammarCompleteness", "SlotCompleteness", "UNKNOWN", "combine", "words_of"]

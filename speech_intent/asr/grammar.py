"""Grammar-constrained Whisper decoding (what Picovoice Rhino does implicitly).

A Rhino-style grammar (``speech_intent.data.grammar``) is compiled into a word graph,
read as a character automaton over normalised text (lower case, words separated by
single spaces; punctuation allowed after a word; a hyphen counts as a space). A
:class:`GrammarLogitsProcessor` walks Whisper's vocabulary as a character trie
together with that automaton, so at every decoding step only tokens that keep the
transcript a prefix of some grammar sentence survive, and end-of-text is allowed only
where a sentence is complete. Casing is free, so Whisper keeps its usual style
("Can I have an iced mocha?").

Out-of-grammar speech is rejected by comparing scores: the constrained transcript's
mean token log-probability against the free transcript's, both scored by the same
teacher-forced forward pass (see :class:`~speech_intent.asr.whisper.WhisperASR`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..data.grammar import Choice, SlotRef, Word, parse_grammar
from ..errors import DataFormatError

logger = logging.getLogger(__name__)

PUNCTUATION = frozenset(",.?!;:")
_SPACE = " "
States = FrozenSet[int]


class GrammarAutomaton:
    """Character-level automaton of every sentence a grammar can say.

    States are ints: ``3n`` = at the boundary after a word at graph node ``n`` (a space,
    one punctuation mark or the end may follow), ``3n + 1`` = after that space (a word
    starts), ``3n + 2`` = after the punctuation mark, and ids from ``3 * nodes`` on =
    inside a word.
    """

    def __init__(self, edges: List[Tuple[int, str, int]], epsilon: Dict[int, List[int]], start: int,
                 finals: Sequence[int], nodes: int) -> None:
        self.nodes = nodes
        closure = [self._closure(n, epsilon) for n in range(nodes)]
        final_set = set(finals)
        self._accepting = {3 * n + k for n in range(nodes) if closure[n] & final_set for k in (0, 2)}
        # transitions: state -> {char: [next states]}; each word edge is a chain of inner states
        self._next: Dict[int, Dict[str, List[int]]] = {}
        entries: Dict[int, List[Tuple[str, int]]] = {}  # graph node -> (first char, state after it)
        inner = 3 * nodes
        for u, word, v in edges:
            state = 3 * v  # after the word's last character
            for char in reversed(word[1:]):  # built back to front
                self._next[inner] = {char: [state]}
                state, inner = inner, inner + 1
            entries.setdefault(u, []).append((word[0], state))
        for n in range(nodes):
            self._next[3 * n] = {_SPACE: [3 * n + 1], "-": [3 * n + 1], **{p: [3 * n + 2] for p in PUNCTUATION}}
            self._next[3 * n + 2] = {_SPACE: [3 * n + 1]}
            starts: Dict[str, List[int]] = {}
            for m in closure[n]:
                for char, state in entries.get(m, []):
                    starts.setdefault(char, []).append(state)
            self._next[3 * n + 1] = starts
        self.start: States = frozenset({3 * start, 3 * start + 1})
        self._cache: Dict[Tuple[States, str], States] = {}
        #: the grammar mapping it was compiled from (set by :meth:`from_grammar`; saved with a stage)
        self.source: Optional[Dict[str, Any]] = None

    @staticmethod
    def _closure(node: int, epsilon: Dict[int, List[int]]) -> set:
        seen, todo = {node}, [node]
        while todo:
            for nxt in epsilon.get(todo.pop(), []):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    @classmethod
    def from_grammar(cls, path_or_dict: Union[str, Path, Mapping[str, Any]]) -> "GrammarAutomaton":
        """Compile every intent's expressions (slots expanded to their values) into one automaton."""
        grammar = parse_grammar(path_or_dict)
        edges: List[Tuple[int, str, int]] = []
        epsilon: Dict[int, List[int]] = {}
        count = [1]  # node 0 is the start

        def new() -> int:
            count[0] += 1
            return count[0] - 1

        def chain(words: Sequence[str], u: int, v: int) -> None:
            for i, word in enumerate(words):
                w = v if i == len(words) - 1 else new()
                edges.append((u, word, w))
                u = w

        def compile_seq(seq, u: int) -> int:
            for node in seq:
                v = new()
                if isinstance(node, Word) and _words(node.text):
                    chain(_words(node.text), u, v)
                elif isinstance(node, Word):  # punctuation only
                    epsilon.setdefault(u, []).append(v)
                elif isinstance(node, SlotRef):
                    for value in grammar.slot_values[node.type]:
                        chain(_words(value), u, v)
                elif isinstance(node, Choice):
                    for option in node.options:
                        epsilon.setdefault(compile_seq(option, u), []).append(v)
                    if node.optional:
                        epsilon.setdefault(u, []).append(v)
                u = v
            return u

        finals = [compile_seq(seq, 0) for seqs in grammar.intents.values() for seq in seqs]
        if not finals:
            raise DataFormatError("the grammar has no expressions to constrain decoding to", source=grammar.source)
        automaton = cls(edges, epsilon, 0, finals, count[0])
        automaton.source = grammar.data
        logger.info("grammar automaton: %d nodes, %d word edges, %d states", count[0], len(edges),
                    len(automaton._next))
        return automaton

    def step(self, states: States, text: str) -> States:
        """States after reading ``text`` (lower-cased) from ``states``; empty = impossible."""
        for char in text.lower():
            key = (states, char)
            nxt = self._cache.get(key)
            if nxt is None:
                nxt = frozenset(t for s in states for t in self._next.get(s, {}).get(char, ()))
                self._cache[key] = nxt
            states = nxt
            if not states:
                break
        return states

    def accepts(self, states: States) -> bool:
        """True when a whole sentence has been read."""
        return any(s in self._accepting for s in states)

    def matches(self, text: str) -> bool:
        """True when ``text`` (any casing, punctuation after words) is a sentence of the grammar."""
        return self.accepts(self.step(self.start, text.strip()))


def _words(text: str) -> List[str]:
    """Grammar text as automaton words: lower case, outer punctuation stripped, hyphens split."""
    words = (w.strip(",.?!;:\"()").lower() for w in text.replace("-", " ").split())
    return [w for w in words if w]


class _TokenTrie:
    """Whisper's text tokens as a character trie: node = (children, token ids ending here)."""

    def __init__(self, tokens: Mapping[int, str]) -> None:
        self.root: Tuple[dict, list] = ({}, [])
        for token_id, text in tokens.items():
            node = self.root
            for char in text:
                node = node[0].setdefault(char, ({}, []))
            node[1].append(token_id)


class GrammarLogitsProcessor:
    """A transformers ``LogitsProcessor`` keeping Whisper's decoder inside a grammar.

    Args:
        automaton: the compiled grammar.
        tokenizer: the Whisper tokenizer (its text tokens are matched as strings).
        eos_token_id: end of text (allowed only after a complete sentence); Whisper's
            special tokens are the ids from here on.
        start_token_id: ``<|startoftranscript|>``; the text after it and the special
            tokens that follow it (language, task, ``<|notimestamps|>``) is what is constrained.
    """

    def __init__(self, automaton: GrammarAutomaton, tokenizer, eos_token_id: int, start_token_id: int) -> None:
        self.automaton = automaton
        self.eos_token_id = int(eos_token_id)
        self.start_token_id = int(start_token_id)
        self.token_text = _text_tokens(tokenizer, self.eos_token_id, automaton)
        self.trie = _TokenTrie(self.token_text)
        # states of the prefixes of the last step (and their parents), so the cache stays bounded
        self._states: Dict[Tuple[int, ...], States] = {(): automaton.start}
        self._allowed: Dict[States, torch.Tensor] = {}

    def states(self, generated: Tuple[int, ...]) -> States:
        """Automaton states after the generated tokens (cached per prefix)."""
        known = self._states.get(generated)
        if known is None:
            before = self.states(generated[:-1])
            text = self.token_text.get(generated[-1])
            known = self.automaton.step(before, text) if text is not None and before else frozenset()
            self._states[generated] = known
        return known

    def allowed(self, states: States) -> torch.Tensor:
        """Token ids that keep the text inside the grammar from ``states``."""
        cached = self._allowed.get(states)
        if cached is not None:
            return cached
        found: List[int] = [self.eos_token_id] if self.automaton.accepts(states) else []
        todo = [(self.trie.root, states)]
        while todo:
            (children, _), current = todo.pop()
            for char, child in children.items():
                nxt = self.automaton.step(current, char)
                if nxt:
                    found.extend(child[1])
                    todo.append((child, nxt))
        if not found:  # cannot happen for a grammar whose every prefix completes; end rather than loop
            found = [self.eos_token_id]
        result = torch.tensor(sorted(found), dtype=torch.long)
        self._allowed[states] = result
        return result

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        current: Dict[Tuple[int, ...], States] = {(): self.automaton.start}
        rows, columns = [], []
        for row, ids in enumerate(input_ids.tolist()):
            start = text_start(ids, self.start_token_id, self.eos_token_id)
            prefix = tuple(ids[start:])
            current[prefix] = self.states(prefix)
            allowed = self.allowed(current[prefix])
            columns.append(allowed)
            rows.append(torch.full_like(allowed, row))
        self._states = current  # the next step extends these prefixes by one token
        mask = torch.full_like(scores, float("-inf"))
        mask[torch.cat(rows).to(scores.device), torch.cat(columns).to(scores.device)] = 0.0  # one scatter
        return scores + mask


def text_start(ids: Sequence[int], start_token_id: int, eos_token_id: int) -> int:
    """Index of the first transcript token of a Whisper decoder sequence: after the last
    ``<|startoftranscript|>`` and the special tokens right after it (a prompt before it is skipped)."""
    start = len(ids) - ids[::-1].index(start_token_id) if start_token_id in ids else 0
    while start < len(ids) and ids[start] > eos_token_id:
        start += 1
    return start


def _text_tokens(tokenizer, eos_token_id: int, automaton: GrammarAutomaton) -> Dict[int, str]:
    """Text tokens below end-of-text whose characters the grammar can ever read, lower-cased."""
    alphabet = {c for by_char in automaton._next.values() for c in by_char}
    tokens: Dict[int, str] = {}
    for token_id in range(eos_token_id):
        text = tokenizer.decode([token_id]).lower()
        if text and set(text) <= alphabet and "\ufffd" not in text:
            tokens[token_id] = text
    return tokens


def load_constraint(grammar: Union[str, Path, Mapping[str, Any], GrammarAutomaton]) -> GrammarAutomaton:
    """A compiled automaton from a grammar path / mapping (or one already compiled)."""
    return grammar if isinstance(grammar, GrammarAutomaton) else GrammarAutomaton.from_grammar(grammar)


__all__ = ["GrammarAutomaton", "GrammarLogitsProcessor", "load_constraint", "text_start", "PUNCTUATION"]

"""``Policy``: one user turn (an NLU prediction) + the session's state -> what to do next.

Rules, in order (every turn gets exactly one decision; the state is updated in place):

1. an empty turn -> ``fallback``;
2. a confirmation pending: yes -> act; no -> ``cancel``; no + a value (``"no, to Ben"``) -> correct and confirm
   again; a confident new request -> that request; anything else -> ask again;
3. a correction (``"no, London"``, ``"actually make it eight"``) of the request in progress or of the last one
   acted on: the named slot (or, after ``actually`` / ``I meant`` / ``make it``, the latest filled slot) changes
   and the request goes on (a request acted on already runs again);
4. the cancel intent -> ``cancel`` (the request in progress is dropped; with none, the cancel handler acts);
5. a slot asked for: the NLU's value of it, else (a ``from_text`` slot) the bare answer fills it; a confident
   new request with its own slots replaces the request (not while a ``free_text`` slot such as a message body is
   asked for: "see you at eight" is the message); else ask again (twice at most, then ``fallback``);
6. a follow-up (``"and tomorrow?"``, ``"what about London"``): slots that belong to the last request, with a
   follow-up word or no confident intent of their own -> the last request with those slots changed;
7. an intent under ``min_confidence`` -> ``fallback`` (a re-prompt, never a guess); half or more words the domain never
   uses -> ``out_of_scope``;
8. a new request: its slots (plus ``carry_over`` slots of a related last request), then the form: ask for the
   first missing required slot (``utter_ask_<intent>_<slot>``), confirm (``confirm_<intent>``), or act (``<intent>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Set

from ..data.dialogue_domain import Domain, words
from ..errors import ConfigError
from .state import DialogueState

__all__ = ["Policy", "PolicyOptions", "Decision", "is_affirm", "is_deny"]

_AFFIRM_FIRST = {"yes", "yeah", "yep", "yup", "sure", "ok", "okay", "correct", "absolutely", "definitely",
                 "affirmative", "confirm", "confirmed", "right", "alright", "please"}
_AFFIRM_PHRASES = ("go ahead", "do it", "send it", "call them", "call him", "call her", "that's right",
                   "that is right", "please do", "of course", "sounds good")
_DENY_FIRST = {"no", "nope", "nah", "negative", "don't", "dont", "not"}
_CORRECT_PREFIX = re.compile(r"^(?:(?:no|nope|nah)\s+)?(?:(?:actually|i meant|i mean|make it|make that|change it to|"
                             r"rather|sorry)\b\s*)+(?:it's|it is|to|in|at|for)?\s*")
_DENY_PREFIX = re.compile(r"^(?:no|nope|nah)\b\s*(?:it's|it is|to|in|at|for|i said)?\s*")
_FOLLOW_UP = re.compile(r"^(?:and|what about|how about|also|same for|and what about|and how about)\b")
_FILLERS = re.compile(r"^(?:(?:um|uh|er|erm|well|so|oh|it's|it is|its|say|saying|tell (?:him|her|them) "
                      r"|the message is|to|for|at|in|that)\b\s*)+", re.IGNORECASE)
_STOP = frozenset("a an the to of in on at for me my i you it is be by and or please can could would will "
                  "what what's whats how is are do does with this that there some any up".split())


def is_affirm(text: str) -> bool:
    """Whether a (normalised) turn says yes."""
    tokens = words(text)
    if not tokens:
        return False
    plain = " ".join(tokens)
    return (tokens[0] in _AFFIRM_FIRST and not (set(tokens) & _DENY_FIRST)) or any(
        plain.startswith(phrase) for phrase in _AFFIRM_PHRASES)


def is_deny(text: str) -> bool:
    """Whether a (normalised) turn starts with no."""
    tokens = words(text)
    return bool(tokens) and tokens[0] in _DENY_FIRST


@dataclass(frozen=True)
class PolicyOptions:
    """Thresholds of the :class:`Policy`.

    Attributes:
        min_confidence: an intent under it is not understood (``fallback``).
        switch_confidence: an intent at or over it interrupts a question with a new request.
        max_unknown: a turn with at least this fraction of its content words (slot values and common words left
            out) unused by every training example of the domain is ``out_of_scope`` (``None``: never).
        max_reasks: how many times a slot question is repeated before the request is dropped.
    """

    min_confidence: float = 0.7
    switch_confidence: float = 0.9
    max_unknown: Optional[float] = 0.5
    max_reasks: int = 2

    def __post_init__(self) -> None:
        for name in ("min_confidence", "switch_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if self.max_reasks < 0:
            raise ConfigError(f"max_reasks must be >= 0, got {self.max_reasks!r}")


@dataclass
class Decision:
    """What the assistant does with one turn.

    Attributes:
        act: the response act (an intent acted on, ``utter_ask_<intent>_<slot>``, ``confirm_<intent>``,
            ``cancel``, ``fallback``, ``out_of_scope``).
        execute: the intent whose handler runs now, else None.
        slots: the slot values the response (and the handler) get.
        reason: why (``new request``, ``bare answer``, ``follow-up``, ``correction``, ``confirmed``, ...).
    """

    act: str
    execute: Optional[str] = None
    slots: Dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {"act": self.act, "execute": self.execute, "slots": dict(self.slots), "reason": self.reason}


class Policy:
    """The dialogue rules of the module docstring over a :class:`~speech_intent.data.dialogue_domain.Domain`."""

    def __init__(self, domain: Domain, options: Optional[PolicyOptions] = None) -> None:
        self.domain = domain
        self.options = options or PolicyOptions()

    # ------------------------------------------------------------------ entry point
    def step(self, state: DialogueState, prediction: Any) -> Decision:
        """Decide on one turn; ``prediction`` has ``text``, ``intent``, ``confidence``, ``slots``."""
        said = (getattr(prediction, "text", "") or "").strip()
        text = said.lower()  # the rules read lower case; values taken from the text keep the user's case
        if len(text) != len(said):
            said = text
        intent = getattr(prediction, "intent", None)
        confidence = float(getattr(prediction, "confidence", 0.0) or 0.0)
        found = {name: str(value).strip() for name, value in (getattr(prediction, "slots", {}) or {}).items()}
        entities = self.domain.entity_slots({name: value for name, value in found.items() if value})
        state.turns += 1
        if not words(text):
            return self._fallback(state, "empty turn")
        if state.active_intent and state.confirming:
            decision = self._confirming(state, text, intent, confidence, entities)
        else:
            decision = (self._correction(state, text, entities, said)
                        or self._cancel(state, text, intent, confidence, entities)
                        or self._answer(state, text, intent, confidence, entities, said)
                        or self._follow_up(state, text, intent, confidence, entities)
                        or self._request(state, text, intent, confidence, entities))
        if decision.act not in ("fallback", "out_of_scope") and not decision.act.startswith("utter_ask_"):
            state.failures = 0
        return decision

    # ------------------------------------------------------------------ rules
    def _confirming(self, state, text, intent, confidence, entities) -> Decision:
        target = state.active_intent
        given = self._own(target, entities)
        if is_affirm(text) and not given:
            return self._act(state, "confirmed")
        if is_deny(text) or _CORRECT_PREFIX.match(text):
            if given:
                state.fill(given)
                state.confirming = False
                return self._advance(state, "correction")
            return self._cancel_active(state, "denied")
        if intent == self.domain.cancel_intent and confidence >= self.options.min_confidence:
            return self._cancel_active(state, "cancel")
        if intent and intent != target and confidence >= self.options.switch_confidence and not self._unknown(text, entities):
            return self._request(state, text, intent, confidence, entities)
        if given:  # "to Ben" while confirming: a correction without the "no"
            state.fill(given)
            state.confirming = False
            return self._advance(state, "correction")
        return Decision(f"confirm_{target}", slots=dict(state.slots), reason="confirm again")

    def _correction(self, state, text, entities, said) -> Optional[Decision]:
        target = state.active_intent or state.last_intent
        marker = _CORRECT_PREFIX.match(text)
        if target is None or not (marker or is_deny(text)):
            return None
        given = self._own(target, entities)
        if not given and marker and state.filled:
            remainder = _clean(said[marker.end():])
            if remainder:
                given = {state.filled[-1]: remainder}
        if not given:
            return None
        if not state.active_intent:  # the last request, acted on already: run it again with the change
            state.active_intent = target
            state.slots = dict(state.last_slots)
        state.fill(given)
        return self._advance(state, "correction")

    def _cancel(self, state, text, intent, confidence, entities) -> Optional[Decision]:
        if intent != self.domain.cancel_intent or confidence < self.options.min_confidence or is_affirm(text):
            return None
        if state.active_intent:
            return self._cancel_active(state, "cancel")
        own = self._own(self.domain.cancel_intent, entities)
        return Decision("cancel", execute=self.domain.cancel_intent, slots=own, reason="cancel request")

    def _answer(self, state, text, intent, confidence, entities, said) -> Optional[Decision]:
        slot = state.requested_slot
        if not state.active_intent or slot is None:
            return None
        own = self._own(state.active_intent, entities)
        if slot in own:
            state.fill(own)
            return self._advance(state, "answer")
        if (slot not in self.domain.free_text and intent and intent != state.active_intent
                and confidence >= self.options.switch_confidence and self._own(intent, entities)
                and not self._unknown(text, entities)):
            return self._request(state, text, intent, confidence, entities)
        spec = self.domain.slot(slot)
        bare = _clean(said)
        if spec.values:
            bare = next((v for v in spec.values if v.lower() == bare.lower()), "")
        elif not spec.from_text:
            bare = ""
        if bare:
            state.fill({**own, slot: bare})
            return self._advance(state, "bare answer")
        state.failures += 1
        if state.failures > self.options.max_reasks:
            state.clear_active()
            return Decision("fallback", reason="no answer")
        return Decision(f"utter_ask_{state.active_intent}_{slot}", slots=dict(state.slots), reason="ask again")

    def _follow_up(self, state, text, intent, confidence, entities) -> Optional[Decision]:
        base = state.active_intent or state.last_intent
        if base is None or not entities or not set(entities) <= self.domain.slots_of(base):
            return None
        confident_own = (intent not in (None, self.domain.cancel_intent) and confidence >= self.options.min_confidence
                         and set(entities) <= self.domain.slots_of(intent))
        if confident_own and not _FOLLOW_UP.match(text):
            return None
        if not state.active_intent:
            state.active_intent = base
            state.slots = dict(state.last_slots)
        state.fill(entities)
        return self._advance(state, "follow-up")

    def _request(self, state, text, intent, confidence, entities) -> Decision:
        if intent is None or confidence < self.options.min_confidence:
            return self._fallback(state, "low confidence")
        if self._unknown(text, entities):
            return self._fallback(state, "out of scope", act="out_of_scope")
        given = self._own(intent, entities)
        if self.domain.is_related(intent, state.last_intent):
            for name in self.domain.carry_over & self.domain.slots_of(intent):
                if name not in given and name in state.last_slots:
                    given[name] = state.last_slots[name]
        state.clear_active()
        state.active_intent = intent
        state.filled = []
        state.fill(given)
        return self._advance(state, "new request")

    # ------------------------------------------------------------------ helpers
    def _advance(self, state: DialogueState, reason: str) -> Decision:
        """The form: ask for the first missing required slot, confirm, or act."""
        intent = state.active_intent
        missing = [name for name in self.domain.required_slots(intent) if name not in state.slots]
        if missing:
            state.requested_slot = missing[0]
            state.confirming = False
            return Decision(f"utter_ask_{intent}_{missing[0]}", slots=dict(state.slots), reason=reason)
        state.requested_slot = None
        if intent in self.domain.confirm and not state.confirming:
            state.confirming = True
            return Decision(f"confirm_{intent}", slots=dict(state.slots), reason=reason)
        return self._act(state, reason)

    def _act(self, state: DialogueState, reason: str) -> Decision:
        intent, slots = state.active_intent, dict(state.slots)
        state.last_intent, state.last_slots = intent, dict(slots)
        state.clear_active()
        return Decision(intent, execute=intent, slots=slots, reason=reason)

    def _cancel_active(self, state: DialogueState, reason: str) -> Decision:
        state.clear_active()
        return Decision("cancel", reason=reason)

    def _fallback(self, state: DialogueState, reason: str, act: str = "fallback") -> Decision:
        state.failures += 1
        return Decision(act, slots=dict(state.slots), reason=reason)

    def _own(self, intent: Optional[str], entities: Mapping[str, str]) -> Dict[str, str]:
        allowed = self.domain.slots_of(intent)
        return {name: value for name, value in entities.items() if name in allowed}

    def _unknown(self, text: str, entities: Optional[Mapping[str, str]] = None) -> bool:
        """Whether most content words of ``text`` (slot values left out) are words the domain never uses."""
        if self.options.max_unknown is None or not self.domain.vocabulary:
            return False
        value_words: Set[str] = set()
        for value in (entities or {}).values():
            value_words.update(words(value))
        content = [w for w in words(text) if w not in _STOP and w not in value_words]
        if not content:
            return False
        unknown = sum(w not in self.domain.vocabulary for w in content)
        return unknown / len(content) >= self.options.max_unknown


def _clean(text: str) -> str:
    """A bare answer without its leading fillers (``"it's"``, ``"to"``, ``"say"``, ...) and end punctuation."""
    return _FILLERS.sub("", text.strip()).strip(" .,!?")

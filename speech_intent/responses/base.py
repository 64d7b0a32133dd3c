"""The response interface: what the dialogue policy asks for (a ResponseRequest) and who answers it.

A ``ResponseGenerator`` turns a batch of requests into response texts, one per request, in order. The
template responses of a domain file (``TemplateResponses``) are the default implementation; a fine-tuned
language model implements the same protocol. A synthesiser (speech out) is any object with
``synthesize(text) -> (np.ndarray, sample_rate)``; the assistant takes one optionally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

__all__ = ["ResponseRequest", "ResponseGenerator", "SpeechSynthesizer"]


@dataclass(frozen=True)
class ResponseRequest:
    """One thing the assistant has to say.

    ``act`` is an intent name (``"set_alarm"``: the handler acted, say so), or a dialogue act /
    response name: ``"utter_ask_time"`` (ask for a slot), ``"confirm_send_message"`` (ask yes/no before
    acting), ``"fallback"``, ``"out_of_scope"``, ``"cancel"``. ``slots`` are the slot values the response may
    state (and a guard checks against); ``facts`` are what the handler returned (strings are usable as
    ``{name}`` in templates too); ``user_text`` is the user's turn being answered; ``sentiment`` the user's
    sentiment label when a sentiment stage ran (``"negative"`` ...), else None.
    """

    act: str
    slots: Dict[str, str] = field(default_factory=dict)
    facts: Dict[str, Any] = field(default_factory=dict)
    user_text: str = ""
    sentiment: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "act": self.act,
            "slots": dict(self.slots),
            "facts": dict(self.facts),
            "user_text": self.user_text,
            "sentiment": self.sentiment,
        }


@runtime_checkable
class ResponseGenerator(Protocol):
    """Turns requests into response texts: one string per request, in the same order (batched)."""

    def generate(self, requests: Sequence[ResponseRequest]) -> List[str]: ...


@runtime_checkable
class SpeechSynthesizer(Protocol):
    """Speech out: one text -> (mono float32 samples, sample rate)."""

    def synthesize(self, text: str) -> Tuple[np.ndarray, int]: ...

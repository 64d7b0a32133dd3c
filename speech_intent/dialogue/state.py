"""``DialogueState``: what one session's conversation has so far, as plain JSON-able data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ..errors import ConfigError

__all__ = ["DialogueState", "HISTORY_LIMIT"]

#: Turns kept in :attr:`DialogueState.history` (the oldest are dropped).
HISTORY_LIMIT = 20


@dataclass
class DialogueState:
    """One session's dialogue.

    Attributes:
        active_intent: the request being completed (slots still missing, or a confirmation pending), else None.
        slots: the active request's filled slots.
        filled: the active (or last) request's slot names in the order they were filled (corrections change
            the latest one when the correction does not name its slot).
        requested_slot: the slot the assistant just asked for (a bare answer fills it), else None.
        confirming: whether the assistant asked yes/no before acting on the active request.
        last_intent, last_slots: the last request acted on (follow-ups and corrections start from it).
        failures: the consecutive turns the assistant did not understand.
        turns: how many user turns the session has had.
        history: the latest turns (``user``, ``intent``, ``confidence``, ``action``, ``response``), oldest first.
    """

    active_intent: Optional[str] = None
    slots: Dict[str, str] = field(default_factory=dict)
    filled: List[str] = field(default_factory=list)
    requested_slot: Optional[str] = None
    confirming: bool = False
    last_intent: Optional[str] = None
    last_slots: Dict[str, str] = field(default_factory=dict)
    failures: int = 0
    turns: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)

    def clear_active(self) -> None:
        """Forget the request in progress (not the last one acted on)."""
        self.active_intent = None
        self.slots = {}
        self.requested_slot = None
        self.confirming = False

    def fill(self, slots: Mapping[str, str]) -> None:
        for name, value in slots.items():
            self.slots[name] = value
            if name in self.filled:
                self.filled.remove(name)
            self.filled.append(name)

    def record(self, entry: Dict[str, Any]) -> None:
        self.history.append(entry)
        del self.history[:-HISTORY_LIMIT]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DialogueState":
        if not isinstance(data, Mapping):
            raise ConfigError(f"a dialogue state is a mapping, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown dialogue state keys: {', '.join(sorted(unknown))}")
        state = cls(**{k: v for k, v in data.items()})
        state.slots = {str(k): str(v) for k, v in (state.slots or {}).items()}
        state.last_slots = {str(k): str(v) for k, v in (state.last_slots or {}).items()}
        state.filled = [str(name) for name in (state.filled or [])]
        state.history = [dict(entry) for entry in (state.history or [])]
        return state

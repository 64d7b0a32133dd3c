"""Dialogue: per-session state, the policy that asks for missing slots, and the Assistant that answers."""

from .assistant import Action, Assistant, Handler, Turn
from .policy import Decision, Policy, PolicyOptions, is_affirm, is_deny
from .state import DialogueState
from .stores import MemoryStore, RedisStore, SessionStore

__all__ = ["Action", "Assistant", "Handler", "Turn", "Decision", "Policy", "PolicyOptions", "is_affirm", "is_deny",
           "DialogueState", "MemoryStore", "RedisStore", "SessionStore"]

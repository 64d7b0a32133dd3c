"""Template responses: the domain file's ``responses:`` filled with slot values and facts (no model).

A request's act names the response: ``"utter_ask_time"`` as it is; an intent ``"set_alarm"`` -> ``utter_set_alarm``;
``"confirm_send_message"`` -> ``utter_confirm_send_message``; ``"fallback"`` -> ``utter_default``;
``"out_of_scope"`` / ``"cancel"`` / ``"error"`` -> ``utter_<act>``; ``"utter_ask_<intent>_<slot>"`` falls back to
``utter_ask_<slot>``. Among a response's variants, those whose every ``{name}`` has a value (a slot, or a
string / number fact) are usable; of those, the ones stating the most values are kept (a response never drops a
slot it could state), and one is picked: the first (``seed=None``, deterministic) or by a seeded random
generator. A request with no response in the domain gets ``utter_default`` (or a built-in sentence).
"""

from __future__ import annotations

import random
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..data.dialogue_domain import Domain, load_domain, template_fields
from .base import ResponseRequest

__all__ = ["TemplateResponses", "response_names"]

_DEFAULT = "Sorry, I didn't get that."


def response_names(act: str) -> Tuple[str, ...]:
    """The response names tried for an act, best first."""
    if act.startswith("utter_"):
        names = [act]
        match = re.match(r"utter_ask_(.+)", act)
        if match:  # utter_ask_<form>_<slot> -> utter_ask_<slot>: try every suffix
            parts = match.group(1).split("_")
            names += [f"utter_ask_{'_'.join(parts[i:])}" for i in range(1, len(parts))]
        return tuple(names)
    if act == "fallback":
        return ("utter_default",)
    return (f"utter_{act}", "utter_default")


class TemplateResponses:
    """The default :class:`~speech_intent.responses.base.ResponseGenerator`: Rasa-style templates.

    Args:
        responses: a :class:`~speech_intent.data.dialogue_domain.Domain`, a domain file path, or a mapping
            response name -> variant texts.
        seed: ``None`` picks the first usable variant (deterministic); an int seeds a random choice.
    """

    def __init__(self, responses: Union[Domain, str, Path, Mapping[str, Sequence[str]]], *,
                 seed: Optional[int] = None) -> None:
        if isinstance(responses, (str, Path)):
            responses = load_domain(responses)
        if isinstance(responses, Domain):
            responses = responses.responses
        self.responses: Dict[str, Tuple[str, ...]] = {k: tuple(v) for k, v in responses.items()}
        self.seed = seed
        self._rng = random.Random(seed) if seed is not None else None
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[ResponseRequest]) -> List[str]:
        """One response text per request, in order."""
        return [self.render(request) for request in requests]

    def render(self, request: ResponseRequest) -> str:
        values = _values(request)
        for name in response_names(request.act):
            variants = self.responses.get(name)
            if not variants:
                continue
            usable = [text for text in variants if all(ref in values for ref in template_fields(text))]
            if not usable:
                continue
            most = max(len(set(template_fields(text))) for text in usable)
            best = [text for text in usable if len(set(template_fields(text))) == most]
            if self._rng is None:
                text = best[0]
            else:
                with self._lock:
                    text = self._rng.choice(best)
            return _fill(text, values)
        return _DEFAULT

    def __repr__(self) -> str:
        return f"TemplateResponses({len(self.responses)} responses, seed={self.seed})"


def _values(request: ResponseRequest) -> Dict[str, str]:
    values: Dict[str, str] = {}
    for key, value in request.facts.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            values[str(key)] = str(value)
    for key, value in request.slots.items():  # a slot wins over a fact of the same name
        if value is not None and str(value).strip():
            values[str(key)] = str(value)
    return values


def _fill(text: str, values: Mapping[str, Any]) -> str:
    filled = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), text)
    return re.sub(r"\s+([.,?!:])", r"\1", re.sub(r"\s{2,}", " ", filled)).strip()

"""Dialogue acts and the text a response generator reads: a compact linearisation of what to say.

A :class:`GenerationInput` holds the dialogue acts of one system turn (``INFORM(phone_number=408-247-8880)``,
``NOTIFY_SUCCESS``, ...), optionally the template text of those acts (template-guided generation, Kale &
Rastogi 2020: the model rewrites the concatenated templates naturally), the user's turn being answered and
the user's sentiment. :func:`linearize` writes it as one short prompt; :class:`InputFormat` says which
parts go in (saved with a model so training and inference read the same).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError
from .base import ResponseRequest

__all__ = ["DialogueAct", "GenerationInput", "InputFormat", "PROMPT_END", "ResponseExample", "acts_from_dicts",
           "input_from_request", "linearize"]

#: Values a response says in words of its own (or not at all), never verbatim.
_UNSTATED = frozenset({"True", "False", "dontcare"})
#: Ends every prompt; the response follows it.
PROMPT_END = "\nresponse:"


@dataclass(frozen=True)
class DialogueAct:
    """One dialogue act: ``act`` (``INFORM``, ``REQUEST``, ``utter_ask_time``...), an optional slot and its values."""

    act: str
    slot: str = ""
    values: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.act, str) or not self.act.strip():
            raise ConfigError(f"a dialogue act needs a non-empty act name, got {self.act!r}")
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))

    def to_text(self) -> str:
        """``act``, ``act(slot)`` or ``act(slot=v1|v2)``."""
        if not self.slot:
            return self.act.lower() if not self.values else f"{self.act.lower()}({'|'.join(self.values)})"
        if not self.values:
            return f"{self.act.lower()}({self.slot})"
        return f"{self.act.lower()}({self.slot}={'|'.join(self.values)})"

    def to_dict(self) -> Dict[str, Any]:
        return {"act": self.act, "slot": self.slot, "values": list(self.values)}


@dataclass(frozen=True)
class GenerationInput:
    """What one response is generated from; ``template`` is the template text of the acts ("" when none)."""

    acts: Tuple[DialogueAct, ...]
    template: str = ""
    user_text: str = ""
    sentiment: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "acts", tuple(self.acts))

    @property
    def values(self) -> Tuple[str, ...]:
        """The slot values a response must state, in order, without repeats: every value of the acts but
        booleans (``True`` / ``False``), ``dontcare`` and the intent an ``OFFER_INTENT`` offers."""
        seen: Dict[str, None] = {}
        for act in self.acts:
            if act.act.upper() == "OFFER_INTENT":
                continue
            for value in act.values:
                if value.strip() and value not in _UNSTATED:
                    seen.setdefault(value, None)
        return tuple(seen)

    def to_dict(self) -> Dict[str, Any]:
        return {"acts": [a.to_dict() for a in self.acts], "template": self.template, "user_text": self.user_text,
                "sentiment": self.sentiment}


@dataclass(frozen=True)
class InputFormat:
    """Which parts of a :class:`GenerationInput` the prompt holds (saved with the model).

    By default the template text alone (T2G2's best input, and half the tokens of acts + template); the acts
    go in whenever an input has no template text. ``separator``: ``"newline"`` ends the prompt with
    ``response:`` and a line break and the response starts a line (no bare-space first token);
    ``"space"`` (models saved without the field) ends it with ``response:`` and the response starts with a space.
    """

    acts: bool = False
    template: bool = True
    user_text: bool = False
    sentiment: bool = True
    max_user_chars: int = 200
    separator: str = "newline"

    def __post_init__(self) -> None:
        if not (self.acts or self.template):
            raise ConfigError("the input format needs the acts, the template text or both")
        if self.separator not in ("newline", "space"):
            raise ConfigError(f"separator must be 'newline' or 'space', got {self.separator!r}")

    def target(self, response: str) -> str:
        """The text a model is trained to write after the prompt."""
        text = " ".join(response.split())
        return " " + text if self.separator == "space" else text

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputFormat":
        known = set(cls.__dataclass_fields__)
        return cls(**{"separator": "space", **{k: v for k, v in data.items() if k in known}})


def linearize(item: GenerationInput, fmt: InputFormat = InputFormat()) -> str:
    """The prompt: one line per part (``acts:``, ``template:``, ``user:``, ``mood:``), then ``response:``."""
    lines: List[str] = []
    if fmt.acts or not (fmt.template and item.template):
        lines.append("acts: " + " ".join(a.to_text() for a in item.acts))
    if fmt.template and item.template:
        lines.append("template: " + " ".join(item.template.split()))
    if fmt.user_text and item.user_text:
        lines.append("user: " + " ".join(item.user_text.split())[: fmt.max_user_chars])
    if fmt.sentiment and item.sentiment:
        lines.append(f"mood: {item.sentiment}")
    return "\n".join(lines) + PROMPT_END + ("\n" if fmt.separator == "newline" else "")


def input_from_request(request: ResponseRequest, template: str = "") -> GenerationInput:
    """A domain :class:`ResponseRequest` as acts: ``act(slot=value)`` per slot and per string fact, else ``act``."""
    if not isinstance(request, ResponseRequest):
        raise ConfigError(f"expected a ResponseRequest, got {type(request).__name__}")
    acts = [DialogueAct(request.act, name, (str(value),)) for name, value in request.slots.items()
            if str(value).strip()]
    acts += [DialogueAct(request.act, name, (value,)) for name, value in request.facts.items()
             if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip()
             and name not in request.slots]
    return GenerationInput(tuple(acts) or (DialogueAct(request.act),), template=template,
                           user_text=request.user_text, sentiment=request.sentiment)


def acts_from_dicts(actions: Sequence[Mapping[str, Any]], *, source: str = "<acts>") -> Tuple[DialogueAct, ...]:
    """SGD ``actions`` (``{"act", "slot", "values"}``) as dialogue acts; a malformed one is a ConfigError."""
    acts = []
    for i, action in enumerate(actions):
        try:
            acts.append(DialogueAct(str(action["act"]), str(action.get("slot") or ""),
                                    tuple(action.get("values") or ())))
        except (KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{source}: action {i} is not an {{act, slot, values}} object: {action!r}") from error
    return tuple(acts)


@dataclass
class ResponseExample:
    """One training / evaluation pair: the input, the reference response and the values it must state."""

    input: GenerationInput
    response: str
    service: str = ""
    non_categorical: Tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> Dict[str, Any]:
        return {"input": self.input.to_dict(), "response": self.response, "service": self.service,
                "non_categorical": list(self.non_categorical)}

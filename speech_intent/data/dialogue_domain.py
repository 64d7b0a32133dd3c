"""A dialogue domain: the Rasa-style domain blocks of a YAML file, typed (:class:`Domain`).

Read from the same file as the NLU data (``nlu:``) or from a separate one, in Rasa's shapes where they fit:

- ``slots:`` name -> ``type`` (``text`` / ``categorical`` with ``values``), ``mappings`` (``from_entity`` with
  its ``entity``; ``from_text``: the whole answer fills the slot when the assistant asked for it), and
  ``personal: true`` for values a redaction stage hides (:mod:`speech_intent.data.domain` reads those);
- ``forms:`` intent -> ``required_slots`` (the assistant asks for each one missing before it acts);
- ``responses:`` ``utter_<name>`` -> variants ``- text: "... {slot} ..."``;
- ``dialogue:`` (this library's): ``confirm`` (intents that ask yes/no before acting), ``related`` (groups of
  intents whose shared slots carry over), ``carry_over`` (slots a new request of a related intent inherits),
  ``free_text`` (slots whose answer is taken as said, even when it sounds like a request: a message body),
  ``cancel_intent``.

Intents, the slots each one takes and the domain's vocabulary come from the ``nlu:`` examples when the file
has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import yaml

from ..errors import DataNotFoundError
from .examples import DataFormatError, Example
from .rasa import read_rasa

__all__ = ["Domain", "SlotSpec", "load_domain", "template_fields"]

_FIELD = re.compile(r"\{(\w+)\}")
_SLOT_TYPES = ("text", "categorical", "float", "bool", "any")


def template_fields(text: str) -> Tuple[str, ...]:
    """The ``{name}`` references of a response text, in order."""
    return tuple(_FIELD.findall(text))


@dataclass(frozen=True)
class SlotSpec:
    """One slot of the domain.

    Attributes:
        name: the slot name.
        type: Rasa's slot type (``text``, ``categorical``, ...).
        values: the closed value list of a categorical slot (empty: open).
        entities: the NLU entities that fill it (``from_entity`` mappings).
        from_text: whether the whole user answer fills it when it was the slot asked for.
        personal: whether its values are personal data (a redaction stage hides them).
    """

    name: str
    type: str = "text"
    values: Tuple[str, ...] = ()
    entities: Tuple[str, ...] = ()
    from_text: bool = False
    personal: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "type": self.type, "values": list(self.values), "entities": list(self.entities),
                "from_text": self.from_text, "personal": self.personal}


@dataclass(frozen=True)
class Domain:
    """The dialogue side of a domain file (see the module docstring for the YAML shapes)."""

    intents: Tuple[str, ...] = ()
    slots: Mapping[str, SlotSpec] = field(default_factory=dict)
    intent_slots: Mapping[str, FrozenSet[str]] = field(default_factory=dict)
    forms: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    responses: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)
    confirm: FrozenSet[str] = frozenset()
    related: Tuple[FrozenSet[str], ...] = ()
    carry_over: FrozenSet[str] = frozenset()
    free_text: FrozenSet[str] = frozenset()
    cancel_intent: str = "cancel"
    vocabulary: FrozenSet[str] = frozenset()

    def required_slots(self, intent: Optional[str]) -> Tuple[str, ...]:
        return tuple(self.forms.get(intent, ())) if intent else ()

    def slots_of(self, intent: Optional[str]) -> FrozenSet[str]:
        """The slots an intent takes: those its examples mark and its form requires."""
        if intent is None:
            return frozenset()
        return frozenset(self.intent_slots.get(intent, frozenset())) | frozenset(self.required_slots(intent))

    def is_related(self, first: Optional[str], second: Optional[str]) -> bool:
        """Whether two intents are the same or in one ``related`` group."""
        if first is None or second is None:
            return False
        return first == second or any(first in group and second in group for group in self.related)

    def slot(self, name: str) -> SlotSpec:
        return self.slots.get(name) or SlotSpec(name, entities=(name,))

    def entity_slots(self, entities: Mapping[str, str]) -> Dict[str, str]:
        """NLU entities -> slot values through the ``from_entity`` mappings (an unmapped entity fills its namesake)."""
        out: Dict[str, str] = {}
        for entity, value in entities.items():
            names = [spec.name for spec in self.slots.values() if entity in spec.entities] or [entity]
            for name in names:
                out.setdefault(name, value)
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {
            "intents": list(self.intents),
            "slots": {name: spec.to_dict() for name, spec in self.slots.items()},
            "intent_slots": {k: sorted(v) for k, v in self.intent_slots.items()},
            "forms": {k: list(v) for k, v in self.forms.items()},
            "responses": {k: list(v) for k, v in self.responses.items()},
            "confirm": sorted(self.confirm),
            "related": [sorted(group) for group in self.related],
            "carry_over": sorted(self.carry_over),
            "free_text": sorted(self.free_text),
            "cancel_intent": self.cancel_intent,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], examples: Sequence[Example] = (), source: Any = None) -> "Domain":
        """Build from a parsed domain YAML mapping (``examples``: its NLU examples, for intents and vocabulary)."""
        def fail(problem: str) -> DataFormatError:
            return DataFormatError(problem, source=source)

        slots = {str(name): _slot(str(name), spec, fail) for name, spec in _mapping(data, "slots", fail).items()}
        forms: Dict[str, Tuple[str, ...]] = {}
        for name, spec in _mapping(data, "forms", fail).items():
            required = spec.get("required_slots", []) if isinstance(spec, dict) else None
            if not isinstance(required, list) or not all(isinstance(s, str) for s in required):
                raise fail(f"form {name!r}: 'required_slots' must be a list of slot names")
            forms[str(name)] = tuple(required)
        responses = {str(name): _variants(name, spec, fail) for name, spec in _mapping(data, "responses", fail).items()}
        dialogue = _mapping(data, "dialogue", fail)
        intent_slots: Dict[str, set] = {}
        vocabulary: set = set()
        for example in examples:
            if example.intent is None:
                continue
            intent_slots.setdefault(example.intent, set()).update(span.name for span in example.slots)
            vocabulary.update(words(_without_spans(example)))
        intents = list(intent_slots)
        for name in (data.get("intents") or []):
            if isinstance(name, str) and name not in intents:
                intents.append(name)
                intent_slots.setdefault(name, set())
        for intent in list(forms) + list(dialogue.get("confirm") or []):
            if intent not in intents:
                raise fail(f"{intent!r} is not an intent of the domain ({', '.join(intents) or 'none'})")
        return cls(
            intents=tuple(intents),
            slots=slots,
            intent_slots={k: frozenset(v) for k, v in intent_slots.items()},
            forms=forms,
            responses=responses,
            confirm=frozenset(dialogue.get("confirm") or ()),
            related=tuple(frozenset(group) for group in (dialogue.get("related") or [])),
            carry_over=frozenset(dialogue.get("carry_over") or ()),
            free_text=frozenset(dialogue.get("free_text") or ()),
            cancel_intent=str(dialogue.get("cancel_intent", "cancel")),
            vocabulary=frozenset(vocabulary),
        )


def _mapping(data: Mapping[str, Any], key: str, fail) -> Dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise fail(f"'{key}:' must be a mapping")
    return value


def _slot(name: str, spec: Any, fail) -> SlotSpec:
    spec = spec or {}
    if not isinstance(spec, dict):
        raise fail(f"slot {name!r} must be a mapping")
    kind = str(spec.get("type", "text"))
    if kind not in _SLOT_TYPES:
        raise fail(f"slot {name!r}: unknown type {kind!r}; choose from {', '.join(_SLOT_TYPES)}")
    entities: List[str] = []
    from_text = False
    for mapping in spec.get("mappings") or [{"type": "from_entity", "entity": name}]:
        if not isinstance(mapping, dict) or "type" not in mapping:
            raise fail(f"slot {name!r}: each mapping needs a 'type'")
        if mapping["type"] == "from_entity":
            entities.append(str(mapping.get("entity", name)))
        elif mapping["type"] == "from_text":
            from_text = True
    values = spec.get("values") or ()
    return SlotSpec(name, kind, tuple(str(v) for v in values), tuple(entities), from_text,
                    bool(spec.get("personal", False)))


def _variants(name: str, spec: Any, fail) -> Tuple[str, ...]:
    if not isinstance(spec, list) or not spec:
        raise fail(f"response {name!r} must be a non-empty list of '- text:' variants")
    texts = []
    for variant in spec:
        text = variant.get("text") if isinstance(variant, dict) else variant
        if not isinstance(text, str) or not text.strip():
            raise fail(f"response {name!r}: each variant needs a non-empty 'text'")
        texts.append(text.strip())
    return tuple(texts)


def _without_spans(example: Example) -> str:
    text, last, parts = example.text, 0, []
    for span in sorted(example.slots, key=lambda s: s.start):
        parts.append(text[last:span.start])
        last = span.end
    parts.append(text[last:])
    return " ".join(parts)


def words(text: str) -> List[str]:
    """Lower-case words of ``text`` (letters and apostrophes)."""
    return re.findall(r"[a-z']+", text.lower())


def load_domain(path: str | Path) -> Domain:
    """Read a domain YAML file (its ``nlu:`` examples too, when it has them)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such domain file", source=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataFormatError.from_yaml(exc, path) from exc
    if not isinstance(data, dict):
        raise DataFormatError("a domain file is a mapping at the top level", source=path)
    examples = read_rasa(path) if data.get("nlu") else []
    return Domain.from_dict(data, examples, source=path)

"""Training examples from a domain file's responses (Rasa shape: ``responses: {utter_x: [{text: ...}]}``).

Each response name gives examples whose ``{slot}`` references are filled with values seen in the
domain's NLU examples (``[value](slot)`` markup) or, for facts a handler returns (``{forecast}``,
``{now}``...), with stock values. The input is the request the dialogue policy would send (the act name
and the slot values) with one variant as the template text; the target is a variant using the same
references (a paraphrase, or the template itself). With ``apologies``, an upset-user copy starts with an
apology (:func:`~speech_intent.responses.styles.with_apologies`).
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Set

from ..data import read_rasa
from ..errors import DataFormatError, DataNotFoundError, PathLike
from .acts import DialogueAct, GenerationInput, ResponseExample
from .styles import with_apologies

__all__ = ["act_for_response", "domain_examples", "read_domain_responses"]

_REFERENCE = re.compile(r"\{(\w+)\}")
#: Values for references no NLU example fills (what handlers return).
STOCK_VALUES: Dict[str, Sequence[str]] = {
    "forecast": ("sunny and 21 degrees", "light rain, 14 degrees", "cloudy, 9 degrees"),
    "now": ("7:30 pm", "10:15 am", "noon"),
    "date": ("today", "tomorrow", "on Friday"),
}


def read_domain_responses(path: PathLike) -> Dict[str, List[str]]:
    """``{response name: [variant texts]}`` from a domain YAML's ``responses`` block."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such domain file", source=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise DataFormatError.from_yaml(error, path) from error
    block = data.get("responses") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not block:
        raise DataFormatError("no 'responses' block (name: [{text: ...}, ...])", source=path)
    responses: Dict[str, List[str]] = {}
    for name, variants in block.items():
        texts = [v.get("text") if isinstance(v, dict) else v for v in (variants or [])]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise DataFormatError(f"response {name!r}: expected a list of {{text: ...}}", source=path)
        responses[str(name)] = texts
    return responses


def act_for_response(name: str) -> str:
    """The request act a response answers (as :mod:`.templates` names them): ``utter_set_alarm`` ->
    ``set_alarm``, ``utter_confirm_call_contact`` -> ``confirm_call_contact``, ``utter_default`` -> ``fallback``;
    ``utter_ask_*`` as it is."""
    if name.startswith("utter_ask_") or not name.startswith("utter_"):
        return name
    act = name[len("utter_"):]
    return "fallback" if act == "default" else act


def _slot_values(path: Path) -> Dict[str, List[str]]:
    values: Dict[str, Set[str]] = {}
    try:
        examples = read_rasa(path)
    except DataFormatError:
        return {}
    for example in examples:
        for span in example.slots:
            values.setdefault(span.name, set()).add(span.value)
    return {name: sorted(found) for name, found in values.items()}


def domain_examples(path: PathLike, *, per_response: int = 8, apology_fraction: float = 0.3,
                    seed: int = 0) -> List[ResponseExample]:
    """Up to ``per_response`` examples per response of the domain file at ``path`` (plus apology copies)."""
    path = Path(path)
    responses = read_domain_responses(path)
    values: Mapping[str, Sequence[str]] = {**STOCK_VALUES, **_slot_values(path)}
    rng = random.Random(seed)
    examples: List[ResponseExample] = []
    for name, variants in responses.items():
        act = act_for_response(name)
        for _ in range(per_response):
            template = rng.choice(variants)
            refs = _REFERENCE.findall(template)
            if any(ref not in values for ref in refs):
                continue
            filled = {ref: rng.choice(list(values[ref])) for ref in refs}
            same_refs = [v for v in variants if set(_REFERENCE.findall(v)) == set(refs)]
            target = rng.choice(same_refs)
            acts = tuple(DialogueAct(act, ref, (value,)) for ref, value in filled.items()) or (DialogueAct(act),)
            item = GenerationInput(acts, template=_fill(template, filled))
            examples.append(ResponseExample(item, _fill(target, filled), service="domain",
                                            non_categorical=tuple(filled.values())))
    return with_apologies(examples, fraction=apology_fraction, seed=seed)


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

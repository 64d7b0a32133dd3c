"""Schema-Guided Dialogue (SGD) data for response generation, and the T2G2 templates.

- dialogues: JSON lines (optionally gzipped) or a JSON list of SGD dialogues; every SYSTEM turn gives one
  :class:`~speech_intent.responses.acts.ResponseExample` (its frames' ``actions`` -> its ``utterance``);
  the intent of ``NOTIFY_*`` / ``INFORM_COUNT`` acts is the active intent of the user turn before.
- schema: the SGD schema JSON (services, slots with ``is_categorical``).
- T2G2 templates (Kale & Rastogi 2020): one ``<Service>.tsv`` per service, ``ACT!!slot!!@<TAB>text`` where
  ``@`` stands for a value (``@@``: two or more values, ``True`` / ``False``: a boolean value), ``ACT!!Intent``
  for acts about an intent, and plain ``ACT`` (``GOODBYE``). :class:`T2G2Templates` renders the acts of a
  turn as the concatenation of their templates.
"""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from ..errors import DataFormatError, DataNotFoundError, PathLike
from .acts import DialogueAct, GenerationInput, ResponseExample, acts_from_dicts

__all__ = ["T2G2Templates", "read_sgd_dialogues", "read_sgd_schema", "sgd_examples", "load_sgd_split"]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_sgd_dialogues(path: PathLike) -> Iterator[dict]:
    """SGD dialogues from a ``.jsonl[.gz]`` file (one per line) or a ``.json`` list; names file and line on error."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such SGD dialogue file", source=path)
    with _open_text(path) as handle:
        if path.name.endswith((".json", ".json.gz")):
            try:
                data = json.load(handle)
            except json.JSONDecodeError as error:
                raise DataFormatError(f"not JSON: {error}", source=path) from error
            yield from (data if isinstance(data, list) else [data])
            return
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(f"not JSON: {error}", source=path, line=number) from error


def read_sgd_schema(path: PathLike) -> Dict[str, Set[str]]:
    """Non-categorical slot names per service, from an SGD schema JSON (a list of services)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError("no such SGD schema file", source=path)
    try:
        services = json.loads(path.read_text(encoding="utf-8"))
        return {s["service_name"]: {slot["name"] for slot in s["slots"] if not slot.get("is_categorical")}
                for s in services}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataFormatError(f"not an SGD schema (a list of services with slots): {error}", source=path) from error


class T2G2Templates:
    """The T2G2 templates of every service: ``render(service, acts, intent)`` -> the turn's template text."""

    def __init__(self, templates: Mapping[str, Mapping[str, str]]) -> None:
        self.templates = {service: dict(keys) for service, keys in templates.items()}

    @classmethod
    def load(cls, folder: PathLike) -> "T2G2Templates":
        """Every ``<Service>.tsv`` in ``folder`` (the first template of a key is kept)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataNotFoundError("no such T2G2 template folder", source=folder)
        templates: Dict[str, Dict[str, str]] = {}
        for path in sorted(folder.glob("*.tsv")):
            keys = templates.setdefault(path.stem, {})
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split("\t")
                if len(parts) != 2:
                    raise DataFormatError("expected KEY<TAB>TEMPLATE", source=path, line=number)
                keys.setdefault(parts[0].strip(), parts[1].strip())
        if not templates:
            raise DataNotFoundError("no <Service>.tsv template files", source=folder)
        return cls(templates)

    def render_act(self, service: str, act: DialogueAct, intent: str = "") -> str:
        """One act's template text with its values filled in; a plain fallback when the service has none."""
        keys = self.templates.get(service, {})
        name, slot, values = act.act, act.slot, act.values
        candidates: List[str] = []
        if name == "INFORM_COUNT":
            candidates = [f"{name}!!{intent}!!{slot}!!@"]
        elif name == "OFFER_INTENT" and values:
            candidates = [f"{name}!!{values[0]}"]
            values = ()
        elif not slot:
            candidates = [f"{name}!!{intent}", name]
        elif not values:
            candidates = [f"{name}!!{slot}"]
        elif len(values) == 1:
            candidates = [f"{name}!!{slot}!!{values[0]}", f"{name}!!{slot}!!@"]
        else:
            candidates = [f"{name}!!{slot}!!@@", f"{name}!!{slot}!!@"]
        for key in candidates:
            if key in keys:
                return _fill(keys[key], values)
        return _plain(act)

    def render(self, service: str, acts: Sequence[DialogueAct], intent: str = "") -> str:
        """The turn's template text: the acts' templates, in order, joined by spaces."""
        return " ".join(t for t in (self.render_act(service, a, intent) for a in acts) if t)


def _fill(template: str, values: Sequence[str]) -> str:
    """``@`` markers replaced by the values in order; values beyond the markers join the last one with ``or``."""
    parts = template.split("@")
    markers = len(parts) - 1
    if markers == 0 or not values:
        return template
    values = list(values)
    if len(values) > markers:
        values = values[: markers - 1] + [" or ".join(values[markers - 1:])]
    values += [values[-1]] * (markers - len(values))
    return "".join(p + (values[i] if i < markers else "") for i, p in enumerate(parts))


def _plain(act: DialogueAct) -> str:
    slot = act.slot.replace("_", " ")
    if act.values:
        return f"The {slot} is {' or '.join(act.values)}." if slot else " ".join(act.values) + "."
    return f"What {slot} would you like?" if act.act == "REQUEST" and slot else ""


def sgd_examples(dialogues: Iterator[dict], *, templates: Optional[T2G2Templates] = None,
                 schema: Optional[Mapping[str, Set[str]]] = None, source: str = "<sgd>") -> List[ResponseExample]:
    """One example per SYSTEM turn (its acts, T2G2 template text, the user turn before) -> its utterance."""
    examples: List[ResponseExample] = []
    for dialogue in dialogues:
        user_text, intents = "", {}
        for turn in dialogue.get("turns", []):
            frames = turn.get("frames", [])
            if turn.get("speaker") == "USER":
                user_text = turn.get("utterance", "")
                for frame in frames:
                    active = (frame.get("state") or {}).get("active_intent")
                    if active and active != "NONE":
                        intents[frame.get("service", "")] = active
                continue
            for frame in frames:
                service = frame.get("service", "")
                where = f"{source}: dialogue {dialogue.get('dialogue_id', '?')}"
                acts = acts_from_dicts(frame.get("actions", []), source=where)
                if not acts:
                    continue
                template = templates.render(service, acts, intents.get(service, "")) if templates else ""
                free = (schema or {}).get(service, set())
                values = tuple(dict.fromkeys(v for a in acts if a.slot in free for v in a.values if v.strip()))
                examples.append(ResponseExample(GenerationInput(acts, template=template, user_text=user_text),
                                                turn.get("utterance", ""), service=service, non_categorical=values))
    return examples


def load_sgd_split(data_dir: PathLike, split: str, *, limit: Optional[int] = None, seed: int = 0,
                   with_templates: bool = True) -> Tuple[List[ResponseExample], Dict[str, Set[str]]]:
    """The examples of ``DATA_DIR/<split>.jsonl.gz`` (T2G2 templates from ``DATA_DIR/t2g2_templates``) and the
    split's non-categorical slots; ``limit``: a seeded random sample of that many turns."""
    data_dir = Path(data_dir)
    path = next((p for p in (data_dir / f"{split}.jsonl.gz", data_dir / f"{split}.jsonl", data_dir / f"{split}.json")
                 if p.is_file()), data_dir / f"{split}.jsonl.gz")
    schema_path = data_dir / f"{split}_schema.json"
    schema = read_sgd_schema(schema_path) if schema_path.is_file() else {}
    templates = T2G2Templates.load(data_dir / "t2g2_templates") if with_templates else None
    examples = sgd_examples(read_sgd_dialogues(path), templates=templates, schema=schema, source=str(path))
    if limit is not None and limit < len(examples):
        examples = random.Random(seed).sample(examples, limit)
    return examples, schema

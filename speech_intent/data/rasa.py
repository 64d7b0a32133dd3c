"""Rasa NLU YAML training data (``nlu:`` intents with ``[value](slot)`` entity markup)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Iterator

import yaml

from ..slots import SlotSpan
from .examples import DataFormatError, Example

logger = logging.getLogger(__name__)

__all__ = ["read_rasa", "parse_markup", "to_markup"]

# [value](slot) / [value](slot:synonym)  or  [value]{"entity": "slot", ...}
_MARKUP = re.compile(r"\[(?P<value>[^\[\]]+)\](?:\((?P<paren>[^()]+)\)|(?P<json>\{[^{}]*\}))")


def _entity_name(match: re.Match[str]) -> str:
    """The slot name of one markup match; raises ValueError when it has none."""
    if match.group("paren") is not None:
        name = match.group("paren").split(":", 1)[0].strip()
    else:
        try:
            meta = json.loads(match.group("json"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"bad entity JSON {match.group('json')!r}: {exc.msg}") from exc
        name = meta.get("entity") if isinstance(meta, dict) else None
        if not isinstance(name, str):
            raise ValueError(f"entity JSON {match.group('json')!r} has no string 'entity'")
        name = name.strip()
    if not name:
        raise ValueError(f"empty entity name in {match.group(0)!r}")
    return name


def parse_markup(line: str, intent: str | None = None) -> Example:
    """Strip Rasa entity markup from ``line``; spans point into the plain text.

    Square brackets not followed by ``(...)`` or ``{...}`` are kept as literal text.
    """
    parts: list[str] = []
    spans: list[SlotSpan] = []
    length = 0
    last = 0
    for match in _MARKUP.finditer(line):
        before = line[last : match.start()]
        parts.append(before)
        length += len(before)
        value = match.group("value")
        spans.append(SlotSpan(_entity_name(match), length, length + len(value), value))
        parts.append(value)
        length += len(value)
        last = match.end()
    parts.append(line[last:])
    return Example("".join(parts), intent, tuple(spans))


def to_markup(example: Example) -> str:
    """Render an Example as one Rasa training line ``text with [value](slot)``."""
    out: list[str] = []
    last = 0
    for span in example.slots:
        out.append(example.text[last : span.start])
        out.append(f"[{span.value}]({span.name})")
        last = span.end
    out.append(example.text[last:])
    return "".join(out)


def _get(node: yaml.Node, key: str) -> yaml.Node | None:
    """Value node for ``key`` in a YAML mapping node (None when absent or not a mapping)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node
    return None


def _example_lines(node: yaml.Node) -> Iterator[tuple[int, str]]:
    """Yield (1-based line, raw example text) for an ``examples`` node (block string or list)."""
    if isinstance(node, yaml.ScalarNode):
        literal = node.style == "|"
        for i, raw in enumerate(node.value.split("\n")):
            stripped = raw.strip()
            if not stripped:
                continue
            lineno = node.start_mark.line + (2 + i if literal else 1)
            if not stripped.startswith("-"):
                raise DataFormatError(f"example must start with '- ': {stripped!r}", line=lineno)
            yield lineno, stripped[1:].strip()
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            text_node = _get(item, "text") if isinstance(item, yaml.MappingNode) else item
            if not isinstance(text_node, yaml.ScalarNode):
                raise DataFormatError("example needs a 'text' string", line=item.start_mark.line + 1)
            yield text_node.start_mark.line + 1, text_node.value.strip()
    else:
        raise DataFormatError("'examples' must be a string or list", line=node.start_mark.line + 1)


def read_rasa(path: str | Path) -> list[Example]:
    """Read the ``nlu:`` intents of a Rasa YAML file; synonym/regex/lookup entries are skipped."""
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise DataFormatError.from_yaml(exc, path) from exc
    nlu = _get(root, "nlu") if root is not None else None
    if not isinstance(nlu, yaml.SequenceNode):
        raise DataFormatError("no 'nlu:' list at the top level", source=path)
    examples: list[Example] = []
    for item in nlu.value:
        intent_node = _get(item, "intent")
        if intent_node is None:
            continue
        line = item.start_mark.line + 1
        examples_node = _get(item, "examples")
        if not isinstance(intent_node, yaml.ScalarNode) or not intent_node.value.strip():
            raise DataFormatError("intent name must be a non-empty string", source=path, line=line)
        if examples_node is None:
            raise DataFormatError(f"intent {intent_node.value!r} has no 'examples'", source=path, line=line)
        intent = intent_node.value.strip()
        try:
            for line, text in _example_lines(examples_node):
                examples.append(parse_markup(text, intent))
        except DataFormatError as exc:  # from _example_lines: knows its line, not the file
            raise DataFormatError(f"intent {intent!r}: {exc.problem}", source=path, line=exc.line) from exc
        except ValueError as exc:
            raise DataFormatError(f"intent {intent!r}: {exc}", source=path, line=line) from exc
    logger.info("read %d examples from %s", len(examples), path)
    return examples

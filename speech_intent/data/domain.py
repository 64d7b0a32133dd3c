"""The ``slots:`` section of a domain YAML (Rasa style): each slot's settings, and which slots are personal.

::

    slots:
      contact: {type: text, personal: true}
      message: {type: text, personal: true}

``personal: true`` marks a slot whose values are personal data (names, message bodies, ...):
redaction (:mod:`speech_intent.privacy`) replaces them by placeholders. A domain without a
``slots:`` section has no personal slots. Only this section is read (no validation of the rest), so any
domain file, with or without the dialogue blocks :func:`speech_intent.data.dialogue_domain.load_domain`
reads, gives its personal slots.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import yaml

from .examples import DataFormatError

__all__ = ["read_domain_slots", "personal_slots"]


def read_domain_slots(path: str | Path) -> Dict[str, Dict[str, Any]]:
    """Slot name -> its settings from the ``slots:`` mapping of the domain YAML at ``path`` (empty without one)."""
    path = Path(path)
    try:
        root = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataFormatError.from_yaml(exc, path) from exc
    except OSError as exc:
        raise DataFormatError(f"cannot read the domain ({exc.strerror or exc})", source=path) from exc
    slots = root.get("slots") if isinstance(root, dict) else None
    if slots is None:
        return {}
    if not isinstance(slots, dict):
        raise DataFormatError("'slots:' must be a mapping of slot name -> settings", source=path)
    out: Dict[str, Dict[str, Any]] = {}
    for name, settings in slots.items():
        if not isinstance(name, str) or not name.strip():
            raise DataFormatError(f"slot name must be a non-empty string, got {name!r}", source=path)
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise DataFormatError(f"slot {name!r}: settings must be a mapping, got {settings!r}", source=path)
        personal = settings.get("personal", False)
        if not isinstance(personal, bool):
            raise DataFormatError(f"slot {name!r}: 'personal' must be true or false, got {personal!r}", source=path)
        out[name.strip()] = dict(settings)
    return out


def personal_slots(path: str | Path) -> Tuple[str, ...]:
    """The names of the slots the domain at ``path`` marks ``personal: true``, in file order."""
    return tuple(name for name, settings in read_domain_slots(path).items() if settings.get("personal", False))

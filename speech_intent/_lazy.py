"""Lazy package attributes (PEP 562): a package's public names import their module on first use.

Importing :mod:`speech_intent` (or the CLI, or the Ray driver) then costs no torch / transformers /
CTranslate2 import; the first use of a name that needs them (``speech_intent.WhisperASR``) imports them.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Dict, List, Mapping, Tuple


def lazy_attributes(package: str, exports: Mapping[str, str],
                    namespace: Dict[str, Any]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public name to the module
    (relative to ``package``, e.g. ``".whisper"``) that defines it; ``namespace`` is the package's
    ``globals()`` (a resolved name is cached there). Submodules not imported yet resolve as attributes too,
    as they did when the package imported them eagerly."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module, package), name)
            namespace[name] = value
            return value
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

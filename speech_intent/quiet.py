"""Third-party output a user cannot act on, silenced where it arises and only there.

:func:`quiet_transformers` goes around this library's ``from_pretrained`` / ``save_pretrained``
calls and its ``Trainer`` runs: transformers' "LOAD REPORT" tables (the pooler an intent model
drops, the heads a fine-tune adds anyway) and its "Loading weights" / "Writing model shards" bars.
Nothing is changed on import; transformers' verbosity and bar hook are put back as they were when
the last block open (in any thread) ends. Hub download bars (``huggingface_hub``'s own) are kept.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

_lock = threading.Lock()
#: blocks open: all of them, those that silence the warnings too; what the first one found
_open = {"all": 0, "reports": 0}
_saved: Dict[str, Any] = {}


@contextmanager
def quiet_transformers(*, reports: bool = True) -> Iterator[None]:
    """transformers' loading bars off inside the block, and its warnings (load reports) too unless
    ``reports=False`` (where a report can matter: a checkpoint without the head a stage needs).
    A verbosity of info or debug (``TRANSFORMERS_VERBOSITY``, ``set_verbosity_info()``) keeps
    everything: someone asked to see it. Blocks may nest and overlap across threads."""
    from transformers.utils import logging as hf_logging

    with _lock:
        if _open["all"] == 0:
            _saved["verbosity"] = hf_logging.get_verbosity()
            _saved["active"] = _saved["verbosity"] >= logging.WARNING
            _saved["hook"] = _set_hook(hf_logging, _no_bar) if _saved["active"] else None
        _open["all"] += 1
        if reports:
            _open["reports"] += 1
            if _saved["active"]:
                hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        with _lock:
            _open["all"] -= 1
            if reports:
                _open["reports"] -= 1
                if _open["reports"] == 0:
                    hf_logging.set_verbosity(_saved["verbosity"])
            if _open["all"] == 0 and _saved["active"]:
                _set_hook(hf_logging, _saved["hook"])


def _set_hook(hf_logging: Any, hook: Optional[Callable[..., Any]]) -> Optional[Callable[..., Any]]:
    """Install transformers' tqdm hook (5.x; older versions have none): the previous one."""
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    return set_hook(hook) if set_hook is not None else None


def _no_bar(factory: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """A transformers tqdm hook: a bar that draws nothing."""
    from transformers.utils.logging import EmptyTqdm

    return EmptyTqdm(*args, **kwargs)

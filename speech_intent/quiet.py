"""Third-party output a user cannot act on, silenced where it arises and only there.

:func:`quiet_transformers` goes around this library's ``from_pretrained`` / ``save_pretrained``
calls: transformers' "LOAD REPORT" tables (the pooler an intent model drops, the heads a fine-tune
adds anyway) and its "Loading weights" / "Writing model shards" bars. Nothing is changed on import; transformers' verbosity and bar hook are put
back as they were when the block ends. Hub download bars (``huggingface_hub``'s own) are kept.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Tuple


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and loading bars off inside the block; a verbosity of info or debug
    (``TRANSFORMERS_VERBOSITY``, ``set_verbosity_info()``) is kept: someone asked to see them."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # transformers >= 5.x
    if verbosity < logging.WARNING:
        yield
        return
    hf_logging.set_verbosity_error()
    previous_hook = set_hook(_no_bar) if set_hook is not None else None
    try:
        yield
    finally:
        if set_hook is not None:
            set_hook(previous_hook)
        hf_logging.set_verbosity(verbosity)


def _no_bar(factory: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """A transformers tqdm hook: a bar that draws nothing."""
    from transformers.utils.logging import EmptyTqdm

    return EmptyTqdm(*args, **kwargs)

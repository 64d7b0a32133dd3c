"""The one progress bar of a fine-tune, in place of the ``Trainer``'s own.

The ``Trainer``'s bar adds a bar per evaluation and prints each epoch's log as a dict on stdout
(where ``speech-intent predict`` writes its results); :class:`TrainingBar` draws one bar on stderr
for the whole run, the last epoch's training loss and dev score beside it. The scores are kept in
the ``Trainer``'s ``log_history`` either way.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Optional

from tqdm.auto import tqdm
from transformers import TrainerCallback

#: log keys shown beside the bar -> their short names
_SHOWN = {"loss": "loss", "eval_score": "dev"}


class TrainingBar(TrainerCallback):
    """One bar over the training steps on stderr; evaluations draw none and print nothing."""

    def __init__(self, description: Optional[str] = None) -> None:
        self.description = description
        self.bar: Optional[Any] = None
        self.shown: Dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        if state.is_world_process_zero:
            self.bar = tqdm(total=state.max_steps, desc=self.description, dynamic_ncols=True, file=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs: Optional[Dict[str, Any]] = None, **kwargs) -> None:
        if self.bar is None or not logs:
            return
        for key, name in _SHOWN.items():
            if isinstance(logs.get(key), (int, float)):
                self.shown[name] = f"{logs[key]:.4g}"
        if self.shown:
            self.bar.set_postfix(self.shown, refresh=True)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

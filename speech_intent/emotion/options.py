"""The emotion stage's options (no torch import: the CLI parser reads their defaults).

- :class:`HeadConfig`: the head's shape (:mod:`~speech_intent.emotion.head`).
- :class:`EmotionTrainingOptions`: how the head is trained (:mod:`~speech_intent.emotion.training`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Tuple

from ..errors import ConfigError, check_int

__all__ = ["DEFAULT_CONTEXT_MARGIN", "EmotionTrainingOptions", "HeadConfig", "LAYER_MODES", "POOLING_MODES"]

#: Default encoder window: the clip + this many seconds (rounded up to whole seconds).
DEFAULT_CONTEXT_MARGIN = 1.0
LAYER_MODES = ("weighted", "last")
POOLING_MODES = ("attentive", "mean")


@dataclass(frozen=True)
class HeadConfig:
    """The head's shape: ``hidden`` projection units, ``dropout``, ``layers`` (``weighted``: softmax
    weights over every hidden state; ``last``: the encoder's output only), ``pooling`` (``attentive``
    statistics pooling, or the plain ``mean`` and standard deviation) and ``frame_pool`` (consecutive
    encoder frames averaged before the head: 2 = 25 frames a second)."""

    hidden: int = 256
    dropout: float = 0.2
    layers: str = "weighted"
    pooling: str = "attentive"
    frame_pool: int = 2

    def __post_init__(self) -> None:
        check_int("hidden", self.hidden, minimum=2)
        check_int("frame_pool", self.frame_pool)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.layers not in LAYER_MODES:
            raise ConfigError(f"layers must be one of {LAYER_MODES}, got {self.layers!r}")
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EmotionTrainingOptions:
    """How the head is trained: ``epochs`` over the cached states, ``learning_rate`` (AdamW peak, cosine
    decay), ``weight_decay``, ``batch_size``, ``dev_fraction`` of the speakers held out (0: none),
    ``patience`` epochs without a better dev UAR before stopping (0: never), ``class_weights``
    (inverse-frequency loss weights), ``seed``, the ``head``'s shape, and ``speeds``: training copies of
    the training speakers' clips played at these speed factors (Kaldi-style speed perturbation, pitch
    shifted too; each copy costs one more encoder pass per clip)."""

    epochs: int = 60
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 32
    dev_fraction: float = 0.2
    patience: int = 0
    class_weights: bool = True
    seed: int = 0
    head: HeadConfig = field(default_factory=HeadConfig)
    speeds: Tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs)
        if any(not 0.5 <= speed <= 2.0 for speed in self.speeds):
            raise ConfigError(f"speeds must be factors from 0.5 to 2, got {self.speeds!r}")
        check_int("batch_size", self.batch_size)
        check_int("patience", self.patience, minimum=0)
        if not 0.0 <= self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction must be in [0, 1), got {self.dev_fraction!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

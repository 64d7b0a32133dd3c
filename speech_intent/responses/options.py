"""The settings of response-generator training (no torch import: the CLI parser reads its defaults)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

from ..errors import ConfigError, check_int
from .acts import InputFormat

__all__ = ["BUNDLED", "ResponseTrainingOptions"]

#: The name that loads the bundled SmolLM2-135M-Instruct.
BUNDLED = "bundled"


@dataclass(frozen=True)
class ResponseTrainingOptions:
    """LoRA fine-tuning settings; ``max_steps`` (when set) overrides ``epochs``; ``train_limit`` trains on a
    seeded random sample of that many examples; ``max_minutes`` stops training (and saves) after that long;
    ``save_steps`` also saves a loadable checkpoint that often (``OUTPUT/checkpoints/``)."""

    base_model: str = BUNDLED
    max_steps: Optional[int] = None
    epochs: float = 1.0
    learning_rate: float = 1e-3
    batch_size: int = 8
    gradient_accumulation: int = 1
    max_length: int = 128
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lora_rank: int = 16
    lora_alpha: Optional[float] = None
    lora_dropout: float = 0.05
    lora_targets: Tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    train_limit: Optional[int] = None
    seed: int = 0
    dtype: str = "auto"
    logging_steps: int = 10
    save_steps: Optional[int] = None
    max_minutes: Optional[float] = None
    input_format: InputFormat = field(default_factory=InputFormat)

    def __post_init__(self) -> None:
        check_int("max_steps", self.max_steps, optional=True)
        check_int("batch_size", self.batch_size)
        check_int("gradient_accumulation", self.gradient_accumulation)
        check_int("max_length", self.max_length, minimum=8)
        check_int("lora_rank", self.lora_rank)
        check_int("train_limit", self.train_limit, optional=True)
        check_int("save_steps", self.save_steps, optional=True)
        if not self.learning_rate > 0 or not self.epochs > 0:
            raise ConfigError(f"learning_rate and epochs must be > 0, got {self.learning_rate}, {self.epochs}")

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["input_format"] = self.input_format.to_dict()
        return data

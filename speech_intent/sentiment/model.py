"""The sentiment / emotion model: one BERT-style encoder, a sentiment head and an emotion head.

- The text's vector is the mean of its token states (the pooling all-MiniLM-L6-v2 was trained with).
- Each head is dropout + linear over it; a head exists when its label list is not empty.
- A head is single-label (softmax, cross-entropy against the row's labels spread evenly) or
  multi-label (sigmoid, binary cross-entropy per label), as its ``*_multi_label`` flag says.
- Rows carry multi-hot targets per head and a mask saying whether the row has labels for that head
  at all, so data with only sentiment or only emotion labels trains the other head on nothing.

:class:`SentimentConfig` has its own ``model_type`` (``"speech-intent-sentiment"``) and both classes are
registered with ``AutoConfig`` / ``AutoModel`` when this module is imported, so a saved checkpoint loads
with ``from_pretrained`` and never needs remote code.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from ..errors import ConfigError
from ..text_encoder import build_encoder

logger = logging.getLogger(__name__)

MODEL_TYPE = "speech-intent-sentiment"
#: The two heads, in the order of the model's outputs.
HEADS = ("sentiment", "emotion")


class SentimentConfig(PreTrainedConfig):
    """Configuration of :class:`SentimentModel`.

    Attributes:
        encoder: the encoder's own config (any ``AutoModel`` encoder; default BERT).
        sentiment_labels / emotion_labels: each head's labels (empty: no such head).
        sentiment_multi_label / emotion_multi_label: sigmoid per label instead of one softmax.
        classifier_dropout: dropout before the heads.
        sentiment_pos_weight / emotion_pos_weight: multi-label heads: the binary cross-entropy weight of each
            label's positive rows (rare labels weigh more; ``None``: 1 for all).
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: Union[PreTrainedConfig, dict, None] = None
    sentiment_labels: Optional[List[str]] = None
    emotion_labels: Optional[List[str]] = None
    sentiment_multi_label: bool = False
    emotion_multi_label: bool = False
    classifier_dropout: float = 0.1
    sentiment_pos_weight: Optional[List[float]] = None
    emotion_pos_weight: Optional[List[float]] = None

    def labels_of(self, head: str) -> List[str]:
        return list(getattr(self, f"{head}_labels") or [])

    def multi_label(self, head: str) -> bool:
        return bool(getattr(self, f"{head}_multi_label"))

    @property
    def initializer_range(self) -> float:
        return float(getattr(self.encoder, "initializer_range", 0.02) or 0.02)


@dataclass
class SentimentOutput(ModelOutput):
    """Forward output: ``loss`` (when targets are given) and each head's logits (``None``: no such head)."""

    loss: Optional[torch.Tensor] = None
    sentiment_logits: Optional[torch.Tensor] = None
    emotion_logits: Optional[torch.Tensor] = None


class SentimentModel(PreTrainedModel):
    """BERT-style encoder, mean pooling, a sentiment head and an emotion head."""

    config_class = SentimentConfig
    config: SentimentConfig
    base_model_prefix = "sentiment"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: SentimentConfig) -> None:
        super().__init__(config)
        if not (config.labels_of("sentiment") or config.labels_of("emotion")):
            raise ConfigError("a sentiment model needs sentiment labels, emotion labels or both")
        self.encoder = build_encoder(config.encoder)
        hidden = config.encoder.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.heads = nn.ModuleDict({head: nn.Linear(hidden, len(config.labels_of(head)))
                                    for head in HEADS if config.labels_of(head)})
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, encoder initializer_range) for the heads; the encoder initialises itself."""
        if isinstance(module, nn.Linear) and any(module is head for head in self.heads.values()):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @classmethod
    def from_encoder(cls, name_or_path: Union[str, Path], *, sentiment_labels: Sequence[str] = (),
                     emotion_labels: Sequence[str] = (), sentiment_multi_label: bool = False,
                     emotion_multi_label: bool = False, classifier_dropout: float = 0.1,
                     pos_weight: Optional[Dict[str, List[float]]] = None) -> "SentimentModel":
        """New heads on a pretrained encoder checkpoint (safetensors, e.g. the bundled MiniLM)."""
        base_config = AutoConfig.from_pretrained(str(name_or_path))
        if isinstance(base_config, SentimentConfig):  # continue from a sentiment checkpoint's encoder
            pretrained = cls.from_pretrained(str(name_or_path), use_safetensors=True).encoder
        else:
            pretrained = build_encoder(base_config, name_or_path)
        encoder_config = pretrained.config.to_dict()
        for key in ("id2label", "label2id", "architectures", "_name_or_path"):
            encoder_config.pop(key, None)
        config = SentimentConfig(
            encoder=encoder_config, sentiment_labels=list(sentiment_labels), emotion_labels=list(emotion_labels),
            sentiment_multi_label=sentiment_multi_label, emotion_multi_label=emotion_multi_label,
            classifier_dropout=classifier_dropout,
            sentiment_pos_weight=(pos_weight or {}).get("sentiment"), emotion_pos_weight=(pos_weight or {}).get("emotion"),
        )
        model = cls(config)
        model.encoder.load_state_dict(pretrained.state_dict())
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        sentiment_targets: Optional[torch.Tensor] = None,
        sentiment_mask: Optional[torch.Tensor] = None,
        emotion_targets: Optional[torch.Tensor] = None,
        emotion_mask: Optional[torch.Tensor] = None,
    ) -> SentimentOutput:
        """Each head's logits ``(batch, labels)``; with targets (multi-hot, ``(batch, labels)``) the loss:
        the heads' losses added, each over the rows its mask (``(batch,)``, 1 = labelled) keeps."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs, return_dict=True).last_hidden_state
        mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1)
        pooled = (hidden * mask.to(hidden.dtype)).sum(1) / mask.sum(1).clamp(min=1).to(hidden.dtype)
        pooled = self.dropout(pooled)
        logits: Dict[str, torch.Tensor] = {head: layer(pooled) for head, layer in self.heads.items()}
        targets = {"sentiment": (sentiment_targets, sentiment_mask), "emotion": (emotion_targets, emotion_mask)}
        loss = None
        for head, (target, keep) in targets.items():
            if target is None or head not in logits:
                continue
            head_loss = self._head_loss(head, logits[head].float(), target.float(), keep)
            loss = head_loss if loss is None else loss + head_loss
        return SentimentOutput(loss=loss, sentiment_logits=logits.get("sentiment"),
                               emotion_logits=logits.get("emotion"))

    def _head_loss(self, head: str, logits: torch.Tensor, target: torch.Tensor,
                   keep: Optional[torch.Tensor]) -> torch.Tensor:
        """BCE (multi-label) or soft-target cross-entropy of one head over its labelled rows."""
        keep = (target.sum(-1) > 0) if keep is None else keep.bool() & (target.sum(-1) > 0)
        if not keep.any():
            return logits.sum() * 0.0  # keeps the graph connected for a batch without this head's labels
        logits, target = logits[keep], target[keep]
        if self.config.multi_label(head):
            weight = getattr(self.config, f"{head}_pos_weight", None)
            weight = torch.tensor(weight, dtype=logits.dtype, device=logits.device) if weight else None
            return nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
        return nn.functional.cross_entropy(logits, target / target.sum(-1, keepdim=True))

    def probabilities(self, head: str, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid (multi-label head) or softmax of a head's logits, float32."""
        logits = logits.float()
        return torch.sigmoid(logits) if self.config.multi_label(head) else torch.softmax(logits, dim=-1)


def is_sentiment_config(config: object) -> bool:
    """True for a :class:`SentimentConfig` (or a config dict/object with its model type)."""
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    return model_type == MODEL_TYPE


AutoConfig.register(MODEL_TYPE, SentimentConfig, exist_ok=True)
AutoModel.register(SentimentConfig, SentimentModel, exist_ok=True)

"""Joint intent + slot model: one BERT-style encoder, two heads.

- intent head: dropout + linear on the first ([CLS]) token's hidden state;
- slot head: dropout + linear on every token (BIO tags; trained on the first
  sub-word of each word only, every other position carries label ``-100``).

The loss is intent cross-entropy + slot cross-entropy. :class:`JointIntentSlotConfig`
has its own ``model_type`` (``"speech-intent-joint"``) and both classes are
registered with ``AutoConfig`` / ``AutoModel`` when this module is imported, so
a saved checkpoint loads with ``from_pretrained`` and never needs remote code.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from ..errors import ConfigError
from .subwords import IGNORE_INDEX, OUTSIDE

logger = logging.getLogger(__name__)

MODEL_TYPE = "speech-intent-joint"


class JointIntentSlotConfig(PreTrainedConfig):
    """Configuration of :class:`JointIntentSlotModel`.

    Attributes:
        encoder: the encoder's own config (any ``AutoModel`` encoder; default BERT).
        id2label / label2id: the intent labels (the usual classification fields, so
            ``num_labels`` is the number of intents).
        slot_labels: the BIO tag list; ``slot_labels[0]`` is ``"O"``.
        classifier_dropout: dropout before both heads.
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: Union[PreTrainedConfig, dict, None] = None
    slot_labels: Optional[List[str]] = None
    classifier_dropout: float = 0.1

    @property
    def num_slot_labels(self) -> int:
        return len(self.slot_labels or [OUTSIDE])

    @property
    def initializer_range(self) -> float:
        return float(getattr(self.encoder, "initializer_range", 0.02) or 0.02)


@dataclass
class JointIntentSlotOutput(ModelOutput):
    """Forward output: ``loss`` (when labels are given), intent and slot logits."""

    loss: Optional[torch.Tensor] = None
    intent_logits: Optional[torch.Tensor] = None
    slot_logits: Optional[torch.Tensor] = None


def _build_encoder(config: PreTrainedConfig, name_or_path: Union[str, Path, None] = None) -> PreTrainedModel:
    """The encoder without a pooler when the architecture allows it (the heads use token states)."""
    for kwargs in ({"add_pooling_layer": False}, {}):
        try:
            if name_or_path is None:
                return AutoModel.from_config(config, **kwargs)
            return AutoModel.from_pretrained(str(name_or_path), config=config, use_safetensors=True, **kwargs)
        except TypeError:  # this encoder class takes no add_pooling_layer
            continue
    raise AssertionError("unreachable")


class JointIntentSlotModel(PreTrainedModel):
    """BERT-style encoder with an intent head and a token-level BIO slot head."""

    config_class = JointIntentSlotConfig
    config: JointIntentSlotConfig
    base_model_prefix = "joint"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: JointIntentSlotConfig) -> None:
        super().__init__(config)
        self.encoder = _build_encoder(config.encoder)
        hidden = config.encoder.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.intent_head = nn.Linear(hidden, config.num_labels)
        self.slot_head = nn.Linear(hidden, config.num_slot_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, encoder initializer_range) for the heads; the encoder initialises itself."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @classmethod
    def from_encoder(
        cls,
        name_or_path: Union[str, Path],
        intent_labels: Sequence[str],
        slot_labels: Sequence[str],
        *,
        classifier_dropout: float = 0.1,
    ) -> "JointIntentSlotModel":
        """New heads on a pretrained encoder checkpoint (safetensors, e.g. the bundled MiniLM)."""
        if not slot_labels or slot_labels[0] != OUTSIDE:
            raise ConfigError(f"slot_labels must start with {OUTSIDE!r}")
        base_config = AutoConfig.from_pretrained(str(name_or_path))
        if isinstance(base_config, JointIntentSlotConfig):  # continue from a joint checkpoint's encoder
            pretrained = cls.from_pretrained(str(name_or_path), use_safetensors=True).encoder
        else:
            pretrained = _build_encoder(base_config, name_or_path)
        encoder_config = pretrained.config.to_dict()
        for key in ("id2label", "label2id", "architectures", "_name_or_path"):  # the base's own head, not ours
            encoder_config.pop(key, None)
        config = JointIntentSlotConfig(
            encoder=encoder_config,
            id2label=dict(enumerate(intent_labels)),
            label2id={label: i for i, label in enumerate(intent_labels)},
            slot_labels=list(slot_labels),
            classifier_dropout=classifier_dropout,
        )
        model = cls(config)  # the encoder is built from its config, then gets the pretrained weights
        model.encoder.load_state_dict(pretrained.state_dict())
        logger.info("joint model on %s: %d intents, %d slot tags", name_or_path, len(intent_labels), len(slot_labels))
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        slot_labels: Optional[torch.Tensor] = None,
    ) -> JointIntentSlotOutput:
        """Intent logits ``(batch, intents)`` and slot logits ``(batch, tokens, tags)``.

        ``labels`` are intent ids, ``slot_labels`` BIO tag ids per token (``-100`` = ignored);
        when both are given the loss is their two cross-entropies added.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs, return_dict=True).last_hidden_state
        hidden = self.dropout(hidden)
        intent_logits = self.intent_head(hidden[:, 0])
        slot_logits = self.slot_head(hidden)
        loss = None
        if labels is not None or slot_labels is not None:
            loss = hidden.new_zeros(())
            if labels is not None:
                loss = loss + nn.functional.cross_entropy(intent_logits.float(), labels.view(-1))
            if slot_labels is not None:
                loss = loss + nn.functional.cross_entropy(
                    slot_logits.float().reshape(-1, slot_logits.shape[-1]), slot_labels.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                )
        return JointIntentSlotOutput(loss=loss, intent_logits=intent_logits, slot_logits=slot_logits)


def is_joint_config(config: object) -> bool:
    """True for a :class:`JointIntentSlotConfig` (or a config dict/object with its model type)."""
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    return model_type == MODEL_TYPE


def slot_label_list(slot_names: Sequence[str]) -> List[str]:
    """``["O", "B-a", "I-a", "B-b", "I-b", ...]`` for the sorted distinct slot names."""
    tags = [OUTSIDE]
    for name in sorted(set(slot_names)):
        tags += [f"B-{name}", f"I-{name}"]
    return tags


AutoConfig.register(MODEL_TYPE, JointIntentSlotConfig, exist_ok=True)
AutoModel.register(JointIntentSlotConfig, JointIntentSlotModel, exist_ok=True)

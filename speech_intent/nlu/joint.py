"""Joint intent + slot model: one BERT-style encoder, two heads.

- intent head: dropout + linear on the first ([CLS]) token's hidden state;
- slot head: dropout + linear on every token (BIO tags; trained on the first
  sub-word of each word only, every other position carries label ``-100``).
  With ``slot_decoder="crf"`` a linear-chain CRF (:mod:`~speech_intent.nlu.crf`) sits on
  the slot scores of those positions: trained by its log-likelihood, decoded by Viterbi
  (``bio_constrained``: ``I-x`` only after ``B-x`` / ``I-x``).

The loss is intent cross-entropy + slot cross-entropy (CRF: the negative
log-likelihood per tagged word, on the same scale). :class:`JointIntentSlotConfig`
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
from ..text_encoder import build_encoder
from .crf import CRF, bio_allowed
from .subwords import IGNORE_INDEX, OUTSIDE

logger = logging.getLogger(__name__)

MODEL_TYPE = "speech-intent-joint"
SLOT_DECODERS = ("softmax", "crf")


class JointIntentSlotConfig(PreTrainedConfig):
    """Configuration of :class:`JointIntentSlotModel`.

    Attributes:
        encoder: the encoder's own config (any ``AutoModel`` encoder; default BERT).
        id2label / label2id: the intent labels (the usual classification fields, so
            ``num_labels`` is the number of intents).
        slot_labels: the BIO tag list; ``slot_labels[0]`` is ``"O"``.
        classifier_dropout: dropout before both heads.
        slot_decoder: ``"softmax"`` (each word's tag on its own) or ``"crf"`` (CRF + Viterbi).
        bio_constrained: CRF decoding never puts ``I-x`` first or after anything but ``B-x`` / ``I-x``.
    """

    model_type = MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: Union[PreTrainedConfig, dict, None] = None
    slot_labels: Optional[List[str]] = None
    classifier_dropout: float = 0.1
    slot_decoder: str = "softmax"
    bio_constrained: bool = True

    @property
    def num_slot_labels(self) -> int:
        return len(self.slot_labels or [OUTSIDE])

    @property
    def initializer_range(self) -> float:
        return float(getattr(self.encoder, "initializer_range", 0.02) or 0.02)


@dataclass
class JointIntentSlotOutput(ModelOutput):
    """Forward output: ``loss`` (when labels are given), intent and slot logits.

    ``slot_tags``: CRF models in eval mode, given which positions are tagged: the Viterbi
    tag ids (0 at untagged positions).
    """

    loss: Optional[torch.Tensor] = None
    intent_logits: Optional[torch.Tensor] = None
    slot_logits: Optional[torch.Tensor] = None
    slot_tags: Optional[torch.Tensor] = None


class JointIntentSlotModel(PreTrainedModel):
    """BERT-style encoder with an intent head and a token-level BIO slot head."""

    config_class = JointIntentSlotConfig
    config: JointIntentSlotConfig
    base_model_prefix = "joint"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: JointIntentSlotConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(config.encoder)
        hidden = config.encoder.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.intent_head = nn.Linear(hidden, config.num_labels)
        self.slot_head = nn.Linear(hidden, config.num_slot_labels)
        if config.slot_decoder not in SLOT_DECODERS:
            raise ConfigError(f"slot_decoder must be one of {SLOT_DECODERS}, not {config.slot_decoder!r}")
        self.crf = CRF(config.num_slot_labels) if config.slot_decoder == "crf" else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, encoder initializer_range) for the heads, zeros for the CRF; the encoder initialises itself."""
        if isinstance(module, CRF):
            module.reset_parameters()
        elif isinstance(module, nn.Linear):
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
        slot_decoder: str = "softmax",
        bio_constrained: bool = True,
    ) -> "JointIntentSlotModel":
        """New heads on a pretrained encoder checkpoint (safetensors, e.g. the bundled MiniLM)."""
        if not slot_labels or slot_labels[0] != OUTSIDE:
            raise ConfigError(f"slot_labels must start with {OUTSIDE!r}")
        base_config = AutoConfig.from_pretrained(str(name_or_path))
        if isinstance(base_config, JointIntentSlotConfig):  # continue from a joint checkpoint's encoder
            pretrained = cls.from_pretrained(str(name_or_path), use_safetensors=True).encoder
        else:
            pretrained = build_encoder(base_config, name_or_path)
        encoder_config = pretrained.config.to_dict()
        for key in ("id2label", "label2id", "architectures", "_name_or_path"):  # the base's own head, not ours
            encoder_config.pop(key, None)
        config = JointIntentSlotConfig(
            encoder=encoder_config,
            id2label=dict(enumerate(intent_labels)),
            label2id={label: i for i, label in enumerate(intent_labels)},
            slot_labels=list(slot_labels),
            classifier_dropout=classifier_dropout,
            slot_decoder=slot_decoder,
            bio_constrained=bio_constrained,
        )
        model = cls(config)  # the encoder is built from its config, then gets the pretrained weights
        model.encoder.load_state_dict(pretrained.state_dict())
        logger.info("joint model on %s: %d intents, %d slot tags (%s)", name_or_path, len(intent_labels),
                    len(slot_labels), slot_decoder)
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
        slot_mask: Optional[torch.Tensor] = None,
    ) -> JointIntentSlotOutput:
        """Intent logits ``(batch, intents)`` and slot logits ``(batch, tokens, tags)``.

        ``labels`` are intent ids, ``slot_labels`` BIO tag ids per token (``-100`` = ignored);
        when both are given the loss is their two cross-entropies added (CRF: intent
        cross-entropy + the slot negative log-likelihood per tagged word). ``slot_mask``
        marks the tagged positions (each word's first sub-word; default: where ``slot_labels``
        is not ``-100``); a CRF model in eval mode then also returns ``slot_tags``.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs, return_dict=True).last_hidden_state
        hidden = self.dropout(hidden)
        intent_logits = self.intent_head(hidden[:, 0])
        slot_logits = self.slot_head(hidden)
        if slot_mask is None and slot_labels is not None:
            slot_mask = slot_labels != IGNORE_INDEX
        loss = None
        if labels is not None or slot_labels is not None:
            loss = hidden.new_zeros(())
            if labels is not None:
                loss = loss + nn.functional.cross_entropy(intent_logits.float(), labels.view(-1))
            if slot_labels is not None and self.crf is not None:
                log_likelihood = self.crf.log_likelihood(slot_logits, slot_labels, slot_mask)
                loss = loss - log_likelihood.sum() / slot_mask.sum().clamp(min=1)
            elif slot_labels is not None:
                loss = loss + nn.functional.cross_entropy(
                    slot_logits.float().reshape(-1, slot_logits.shape[-1]), slot_labels.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                )
        slot_tags = None
        if self.crf is not None and slot_mask is not None and not self.training:
            slot_tags = self.decode_slots(slot_logits, slot_mask)
        return JointIntentSlotOutput(loss=loss, intent_logits=intent_logits, slot_logits=slot_logits,
                                     slot_tags=slot_tags)

    def decode_slots(self, slot_logits: torch.Tensor, slot_mask: torch.Tensor) -> torch.Tensor:
        """Slot tag ids ``(batch, tokens)``: per-token argmax, or CRF Viterbi over the ``slot_mask`` positions.

        Only the ``slot_mask`` positions (each word's first sub-word) are meaningful.
        """
        if self.crf is None:
            return slot_logits.argmax(dim=-1)
        allowed = bio_allowed(self.config.slot_labels or [OUTSIDE]) if self.config.bio_constrained else None
        return self.crf.decode(slot_logits, slot_mask, allowed)


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

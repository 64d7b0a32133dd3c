"""The pretrained text encoder under the text heads (the joint intent + slot model, the sentiment model):
building it, and padding its tokenizer's rows into a batch."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Sequence, Union

import numpy as np
import torch
from transformers import AutoModel, PreTrainedConfig, PreTrainedModel


def build_encoder(config: PreTrainedConfig, name_or_path: Union[str, Path, None] = None) -> PreTrainedModel:
    """The encoder of ``config`` (random weights, or loaded from ``name_or_path`` as safetensors), without a pooler
    when the architecture allows it (the heads pool the token states themselves)."""
    for kwargs in ({"add_pooling_layer": False}, {}):
        try:
            if name_or_path is None:
                return AutoModel.from_config(config, **kwargs)
            return AutoModel.from_pretrained(str(name_or_path), config=config, use_safetensors=True, **kwargs)
        except TypeError:  # this encoder class takes no add_pooling_layer
            continue
    raise AssertionError("unreachable")


def pad_rows(enc: Any, idx: Sequence[int], names: Sequence[str], tokenizer: Any,
             device: torch.device) -> Dict[str, torch.Tensor]:
    """The rows ``idx`` of an unpadded encoding (``tokenizer(texts)`` without padding) as tensors on ``device``,
    right-padded to the longest of them with the tokenizer's pad values."""
    width = max(len(enc["input_ids"][i]) for i in idx)
    fill = {"input_ids": tokenizer.pad_token_id or 0, "attention_mask": 0,
            "token_type_ids": getattr(tokenizer, "pad_token_type_id", 0)}
    batch = {}
    for name in names:
        array = np.full((len(idx), width), fill[name], dtype=np.int64)
        for row, i in enumerate(idx):
            values = enc[name][i]
            array[row, : len(values)] = values
        batch[name] = torch.from_numpy(array).to(device)
    return batch

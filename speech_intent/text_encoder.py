"""The pretrained text encoder under the text heads (the joint intent + slot model, the sentiment model)."""
from __future__ import annotations

from pathlib import Path
from typing import Union

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

"""transformers ``generate`` helpers of the Whisper stage that change its cost, never its output.

- :func:`beam_search_cache`: beam search with the cross-attention keys/values projected once
  per clip and never reordered.
- :func:`suppressors`: Whisper's token suppression (``suppress_tokens``, ``begin_suppress_tokens``)
  with the vocabulary mask built once. transformers' processors rebuild it with ``torch.isin``
  over the whole vocabulary at every decoding step, a measurable share of CPU decoding time.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from transformers.generation.logits_process import (
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
)


def beam_search_cache(model=None, hidden: Optional[torch.Tensor] = None, num_beams: int = 1):
    """An encoder-decoder KV cache for beam search that computes and keeps the cross-attention
    part once per clip.

    Beam search reorders the cache after every step, but only within each clip's beams, and
    the cross-attention keys/values of a clip's beams are identical copies (one encoder output,
    expanded per beam): reordering them is a copy that changes nothing, and computing them for
    every beam repeats the same projections ``num_beams`` times. transformers does both, a large
    share of constrained beam-search time on CPU. Given ``model`` and the (not yet expanded)
    encoder output ``hidden``, the cross-attention keys/values are projected once per clip here
    and repeated per beam; the decoder layers then reuse them as they would their own.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    class _BeamSearchCache(EncoderDecoderCache):
        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self.self_attention_cache.reorder_cache(beam_idx)

    cache = _BeamSearchCache(DynamicCache(), DynamicCache())
    if model is None or hidden is None:
        return cache
    for index, layer in enumerate(model.get_decoder().layers):
        attention = layer.encoder_attn
        shape = (len(hidden), -1, attention.num_heads, attention.head_dim)
        keys = attention.k_proj(hidden).view(shape).transpose(1, 2).repeat_interleave(num_beams, dim=0)
        values = attention.v_proj(hidden).view(shape).transpose(1, 2).repeat_interleave(num_beams, dim=0)
        cache.cross_attention_cache.update(keys.contiguous(), values.contiguous(), index)
        cache.is_updated[index] = True
    return cache


def cache_argument(model) -> str:
    """The name ``generate`` takes a cache under (``cache`` in recent transformers)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class _MaskCache:
    """Boolean vocabulary masks of a token list, one per (vocabulary size, device)."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens
        self.masks: Dict[Tuple[int, torch.device], torch.Tensor] = {}

    def mask(self, scores: torch.Tensor) -> torch.Tensor:
        key = (scores.shape[-1], scores.device)
        mask = self.masks.get(key)
        if mask is None:
            mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            tokens = self.tokens.to(scores.device)
            mask[tokens[(tokens >= 0) & (tokens < scores.shape[-1])]] = True
            self.masks[key] = mask
        return mask


class CachedSuppressTokens(SuppressTokensLogitsProcessor):
    """transformers' ``SuppressTokensLogitsProcessor`` (same output) with the mask built once."""

    def __init__(self, suppress_tokens, device: str = "cpu") -> None:
        super().__init__(suppress_tokens, device=device)
        self._cache = _MaskCache(self.suppress_tokens)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(self._cache.mask(scores), -float("inf"))


class CachedSuppressAtBegin(SuppressTokensAtBeginLogitsProcessor):
    """transformers' ``SuppressTokensAtBeginLogitsProcessor`` (same output) with the mask built once;
    ``generate`` sets its ``begin_index`` as it does for its own."""

    def __init__(self, begin_suppress_tokens, begin_index: int = 0, device: str = "cpu") -> None:
        super().__init__(begin_suppress_tokens, begin_index, device=device)
        self._cache = _MaskCache(self.begin_suppress_tokens)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != self.begin_index:
            return scores
        return scores.masked_fill(self._cache.mask(scores), -float("inf"))


def suppressors(generation_config) -> Tuple[List, Dict[str, None]]:
    """Cached-mask processors for a Whisper generation config's suppression lists, and the
    ``generate`` arguments that switch transformers' own ones off (``{}`` when there are none)."""
    processors: List = []
    off: Dict[str, Optional[list]] = {}
    begin = getattr(generation_config, "begin_suppress_tokens", None)
    if begin:
        processors.append(CachedSuppressAtBegin(begin))
        off["begin_suppress_tokens"] = None
    suppress = getattr(generation_config, "suppress_tokens", None)
    if suppress:
        processors.append(CachedSuppressTokens(suppress))
        off["suppress_tokens"] = None
    return processors, off


__all__ = ["CachedSuppressAtBegin", "CachedSuppressTokens", "beam_search_cache", "cache_argument", "suppressors"]

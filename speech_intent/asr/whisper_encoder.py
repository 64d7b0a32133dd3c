"""The transformers Whisper encoder run by :class:`~speech_intent.asr.whisper.WhisperASR`: shorter windows
and CPU slices.

Shorter encoder context: transformers' ``WhisperEncoder`` refuses anything but 3000 frames, so for
shorter windows :func:`encode_short` runs the encoder's own sub-modules (convolutions, the first
positions of the sinusoidal position table, layers, final norm) itself; the result goes to
``generate`` as ``encoder_outputs`` -- no patching of transformers. On CPU the encoder runs on slices
of a batch (:func:`~speech_intent.asr.whisper_common.encoder_step`, ``encoder_budget``): identical
results, less time (``benchmarks/throughput.py`` measures it).
"""
from __future__ import annotations

import torch

from .whisper_common import encoder_step

__all__ = ["clips_per_call", "encode", "encode_short"]


def encode_short(encoder: torch.nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """``encoder`` (a transformers ``WhisperEncoder``) on fewer than 3000 frames: its own modules,
    positions sliced to the input."""
    hidden = torch.nn.functional.gelu(encoder.conv1(input_features))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype)
    for layer in encoder.layers:
        hidden = layer(hidden, None)
    return encoder.layer_norm(hidden)


def clips_per_call(device: torch.device, input_features: torch.Tensor, budget: float) -> int:
    """Clips per encoder call: slices of ``budget`` (clips x frames^2) on CPU, the whole batch elsewhere."""
    if device.type != "cpu":
        return len(input_features)
    return encoder_step(input_features.shape[-1], budget)


def encode(encoder: torch.nn.Module, input_features: torch.Tensor, *, full: bool, step: int) -> torch.Tensor:
    """Encoder output of a batch, ``step`` clips per call: the encoder itself on the full window
    (``full``), :func:`encode_short` on a shorter one."""
    parts = []
    for i in range(0, len(input_features), step):
        piece = input_features[i : i + step]
        parts.append(encoder(piece).last_hidden_state if full else encode_short(encoder, piece))
    return torch.cat(parts)

"""The frozen Whisper encoder of the emotion stage: every layer's hidden states over a clip's real frames.

Whisper's encoder was trained on 30 s windows; like the ASR stage's shorter context, the emotion stage
runs it on the clip plus ``context_margin`` seconds of padding (rounded up to whole seconds, so that
clips of similar length share one encoder call), or on the full 30 s window with ``context_margin=None``.
A clip's features never depend on the other clips of its batch: clips are grouped by their window
length and each group is one encoder call. Of the encoder's output frames (50 per second) only those
that cover the clip itself are kept -- the head pools over the real speech, never over padding.

The states are those transformers' ``output_hidden_states`` gives: the input embeddings (convolutions +
positions), the output of each layer but the last, and the last after the final layer norm.

Reusing the ASR stage's encoder pass: when the ASR runs the same encoder weights
(:func:`encoder_fingerprint` equal), its pass can give these states instead of a second pass. The
transformers backend computes every layer's output anyway (its shorter-context encoder is the same
loop as :func:`hidden_states`): keeping them (``(layers + 1) x frames x d_model`` floats a clip, 2 MB for
tiny.en on a 5 s window) and cutting them with :func:`crop_states` leaves the emotion stage only its
head. Its window (the batch's longest clip + 2 s) differs from this stage's (each clip + 1 s, whole
seconds), and Whisper's encoder has no padding mask, so the states differ slightly from those the head
was trained on unless it is trained on the ASR's windows. CTranslate2 (faster-whisper, the default
backend) returns only the last layer from ``encode`` (of its int8 weights): no layer weighting there,
so the default pipeline pays this stage's own encoder pass (``benchmarks/ravdess.py --cost``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import ModelLoadError

__all__ = ["FRAMES_PER_SECOND", "crop_states", "encoder_fingerprint", "encoder_states", "hidden_states",
           "load_whisper_encoder", "real_frames", "window_frames"]

#: Log-Mel hop at 16 kHz (samples) and the encoder's downsampling (its second convolution's stride).
MEL_HOP = 160
ENCODER_STRIDE = 2
#: Encoder output frames per second of audio.
FRAMES_PER_SECOND = 16_000 // MEL_HOP // ENCODER_STRIDE


def real_frames(num_samples: int) -> int:
    """Encoder output frames that cover ``num_samples`` samples of 16 kHz audio (at least 1)."""
    return max(1, math.ceil(num_samples / MEL_HOP / ENCODER_STRIDE))


def window_frames(num_samples: int, margin: Optional[float], full: int = 3000) -> int:
    """Log-Mel frames of a clip's encoder window: the clip + ``margin`` seconds rounded up to whole
    seconds (100 frames) and capped at ``full``; ``margin=None`` gives ``full`` (30 s)."""
    if margin is None:
        return full
    frames = num_samples / MEL_HOP + margin * 100
    return int(min(full, max(100, math.ceil(frames / 100) * 100)))


def load_whisper_encoder(name_or_path: Union[str, Path]) -> Tuple[torch.nn.Module, Any]:
    """The encoder and feature extractor of a transformers Whisper checkpoint (a hub name or a folder
    of ``WhisperForConditionalGeneration`` / ``WhisperModel`` weights, safetensors only).

    Raises :class:`~speech_intent.errors.ModelLoadError` when it cannot be loaded."""
    from transformers import WhisperFeatureExtractor, WhisperModel

    try:
        extractor = WhisperFeatureExtractor.from_pretrained(str(name_or_path))
        model = WhisperModel.from_pretrained(str(name_or_path), use_safetensors=True)
    except (OSError, ValueError) as error:
        raise ModelLoadError(name_or_path, f"cannot load a Whisper checkpoint with safetensors weights: {error}") \
            from error
    return model.get_encoder(), extractor


def build_encoder(config: Dict[str, Any]) -> torch.nn.Module:
    """A ``WhisperEncoder`` of a saved ``WhisperConfig`` dict (weights loaded by the caller)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    return WhisperEncoder(WhisperConfig.from_dict(config))


def hidden_states(encoder: torch.nn.Module, input_features: torch.Tensor) -> torch.Tensor:
    """``(batch, layers + 1, frames, d_model)``: every hidden state of ``encoder`` (a transformers
    ``WhisperEncoder``) on log-Mel ``input_features`` of at most 3000 frames (positions sliced to them)."""
    hidden = torch.nn.functional.gelu(encoder.conv1(input_features))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype)
    states = [hidden]
    for layer in encoder.layers:
        hidden = layer(hidden, None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        states.append(hidden)
    states[-1] = encoder.layer_norm(hidden)
    return torch.stack(states, dim=1)


def crop_states(states: torch.Tensor, num_samples: Sequence[int]) -> List[torch.Tensor]:
    """Per clip, ``(layers + 1, real frames, d_model)`` float32 CPU tensors cut from a batch of
    :func:`hidden_states` (``(batch, layers + 1, frames, d_model)``) computed on clips of ``num_samples``
    samples: how another pass of the same encoder (the ASR stage's) hands its states to the emotion head."""
    return [states[row, :, : real_frames(n)].float().cpu().clone() for row, n in enumerate(num_samples)]


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """A SHA-256 of the encoder's weights (float32): equal fingerprints mean another stage's pass of its
    encoder gives the very states the emotion head was trained on (a fine-tuned ASR encoder does not)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encoder_states(encoder: torch.nn.Module, extractor: Any, audios: Sequence[np.ndarray], *,
                   margin: Optional[float], device: torch.device, dtype: torch.dtype,
                   batch_size: int = 16) -> List[torch.Tensor]:
    """Per clip, ``(layers + 1, real frames, d_model)`` float32 CPU tensors: the encoder's hidden states
    over the clip's own frames (module docstring: windows grouped by length, ``batch_size`` clips a call)."""
    full = int(extractor.nb_max_frames)
    groups: Dict[int, List[int]] = {}
    for index, audio in enumerate(audios):
        groups.setdefault(window_frames(len(audio), margin, full), []).append(index)
    out: List[Optional[torch.Tensor]] = [None] * len(audios)
    with torch.inference_mode():
        for frames, indices in sorted(groups.items()):
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                features = extractor([audios[i] for i in chunk], sampling_rate=extractor.sampling_rate,
                                     return_tensors="pt", padding="max_length", max_length=frames * MEL_HOP,
                                     truncation=True).input_features
                states = hidden_states(encoder, features.to(device, dtype=dtype)).float().cpu()
                for row, i in enumerate(chunk):
                    out[i] = states[row, :, : real_frames(len(audios[i]))].clone()
    return out  # type: ignore[return-value]

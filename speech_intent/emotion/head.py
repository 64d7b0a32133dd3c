"""The emotion head: layer-weighted pooling over the encoder's hidden states, attentive statistics
pooling over time, then a linear classifier.

- Layers: each hidden state is layer-normalised per frame (no affine; the encoder's states differ in
  scale from layer to layer), then mixed with softmax weights learned with the head (``layers="weighted"``;
  ``"last"`` takes the encoder's output only).
- Frames: the layer-normalised states of ``frame_pool`` consecutive frames are averaged (a clip's own
  frames only). This fixed part is :meth:`EmotionHead.prepare`, run once per clip (training runs it once
  on the cached states, not every epoch); :meth:`EmotionHead.forward` takes prepared states.
- Time: a projection to ``hidden`` units, then attentive statistics pooling (an attention score per
  frame, softmax over the clip's real frames only, the weighted mean and standard deviation;
  ``pooling="mean"``: the plain mean and standard deviation over the real frames).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from .options import HeadConfig

__all__ = ["EmotionHead", "layer_weight_list", "pad_states"]

class EmotionHead(nn.Module):
    """Logits over ``num_labels`` emotions from ``(batch, num_states, frames, d_model)`` hidden states
    and a ``(batch, frames)`` mask of the real frames."""

    def __init__(self, num_states: int, d_model: int, num_labels: int, config: HeadConfig = HeadConfig()) -> None:
        super().__init__()
        self.config, self.num_states, self.d_model = config, num_states, d_model
        self.layer_logits = nn.Parameter(torch.zeros(num_states))
        self.project = nn.Sequential(nn.Linear(d_model, config.hidden), nn.GELU(), nn.Dropout(config.dropout))
        self.attention = nn.Sequential(nn.Linear(config.hidden, config.hidden // 2), nn.Tanh(),
                                       nn.Linear(config.hidden // 2, 1))
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * config.hidden, num_labels))

    def layer_weights(self) -> torch.Tensor:
        """The softmax weight of each hidden state (``layers="last"``: 1 on the last)."""
        if self.config.layers == "last":
            return nn.functional.one_hot(torch.tensor(self.num_states - 1), self.num_states).float()
        return torch.softmax(self.layer_logits, dim=0)

    def prepare(self, states: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Per clip, its ``(num_states, frames, d_model)`` states layer-normalised per frame and averaged
        over ``frame_pool`` consecutive frames (the last group may be shorter): what :meth:`forward` reads."""
        pool, out = self.config.frame_pool, []
        for clip in states:
            clip = nn.functional.layer_norm(clip.float(), (clip.shape[-1],))
            if pool > 1:
                frames = clip.shape[1]
                whole = frames // pool * pool
                pooled = clip[:, :whole].reshape(clip.shape[0], -1, pool, clip.shape[2]).mean(2)
                if whole < frames:
                    pooled = torch.cat([pooled, clip[:, whole:].mean(1, keepdim=True)], dim=1)
                clip = pooled
            out.append(clip)
        return out

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`prepare`'d states padded into a batch (:func:`pad_states`) and their mask."""
        weights = self.layer_weights().to(states.device, states.dtype)
        hidden = self.project(torch.einsum("s,bstd->btd", weights, states))
        mask = mask.to(hidden.device)
        if self.config.pooling == "attentive":
            scores = self.attention(hidden).squeeze(-1).masked_fill(~mask, float("-inf"))
            alpha = torch.softmax(scores, dim=-1).unsqueeze(-1)
        else:
            alpha = (mask.float() / mask.sum(-1, keepdim=True).clamp_min(1)).unsqueeze(-1)
        mean = (alpha * hidden).sum(1)
        variance = (alpha * (hidden - mean.unsqueeze(1)) ** 2).sum(1)
        return self.classifier(torch.cat([mean, variance.clamp_min(1e-6).sqrt()], dim=-1))


def pad_states(states: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(batch, num_states, longest, d_model)`` zero-padded states and the ``(batch, longest)`` mask
    of the real frames, from per-clip ``(num_states, frames, d_model)`` tensors."""
    longest = max(s.shape[1] for s in states)
    num_states, d_model = states[0].shape[0], states[0].shape[2]
    batch = torch.zeros(len(states), num_states, longest, d_model, dtype=torch.float32)
    mask = torch.zeros(len(states), longest, dtype=torch.bool)
    for row, clip in enumerate(states):
        batch[row, :, : clip.shape[1]] = clip.float()
        mask[row, : clip.shape[1]] = True
    return batch, mask


def layer_weight_list(head: EmotionHead) -> List[float]:
    """The head's layer weights as plain floats (for reports)."""
    with torch.no_grad():
        return [round(float(w), 4) for w in head.layer_weights()]

"""Beam search for the Whisper stage: transformers' algorithm, with the decoder stepped here.

The search is the one ``generate(num_beams=K)`` runs (top ``2K`` continuations per clip, the
``K`` best finished hypotheses scored by ``sum log p / length ** length_penalty``, transformers'
early-stopping heuristic, logits processors applied to the log-softmax), so it picks the same
hypotheses; tests compare the two. What differs is the cost of each step on a CPU:

- the decoder prefix (``<|startofprev|>`` prompt, ``<|startoftranscript|>``, ``<|notimestamps|>``)
  runs once per clip, not once per beam, and only its last position goes through the
  vocabulary projection (transformers projects every prompt position of every beam);
- the cross-attention keys/values are projected once per clip and never copied per beam: a
  clip's beams are folded into the query axis of one attention call;
- the self-attention keys/values live in a buffer allocated once (no concatenation per step);
- a hypothesis's score is its summed log-probability under the full vocabulary (processors
  only mask), so its confidence needs no second teacher-forced pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .grammar import text_start

_NEG = -1.0e9  # transformers' "impossible" score
_BLOCK = 16  # decoder positions added to the key/value buffers at a time


@dataclass(frozen=True)
class BeamSearchOutput:
    """Best hypothesis per clip: its generated tokens (end-of-text removed) and the mean
    log-probability of those tokens and the end-of-text (``-inf`` when none was finished)."""

    tokens: List[List[int]]
    mean_logprob: np.ndarray


class _Decoder:
    """Whisper's decoder for ``clips x beams`` hypotheses, one token per step.

    ``hidden``: encoder output ``[clips, frames, d_model]``; ``capacity``: the longest decoder
    sequence (prefix + generated tokens) this search may reach.
    """

    def __init__(self, model, hidden: torch.Tensor, beams: int, capacity: int) -> None:
        self.decoder = model.get_decoder()
        self.projection = model.proj_out
        self.clips, self.beams = hidden.shape[0], beams
        attention = self.decoder.layers[0].self_attn
        self.heads, self.head_dim = attention.num_heads, attention.head_dim
        self.cross = [(self._split(layer.encoder_attn.k_proj(hidden)), self._split(layer.encoder_attn.v_proj(hidden)))
                      for layer in self.decoder.layers]
        self.capacity = capacity
        self.keys: List[torch.Tensor] = []
        self.values: List[torch.Tensor] = []
        self.length = 0

    def _split(self, states: torch.Tensor) -> torch.Tensor:
        """``[clips, n, d_model]`` -> ``[clips, heads, n, head_dim]``."""
        return states.view(states.shape[0], -1, self.heads, self.head_dim).transpose(1, 2)

    def prefill(self, prefix: torch.Tensor) -> torch.Tensor:
        """Run the prefix (token ids ``[P]``, the same for every clip) once per clip; its
        keys/values are copied to every beam. Returns the last position's logits ``[clips, vocab]``."""
        ids = prefix.to(self.cross[0][0].device).expand(self.clips, -1)
        return self._forward(ids, 0, prefill=True)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """One new token per hypothesis (``[clips * beams]``) -> logits ``[clips * beams, vocab]``."""
        return self._forward(tokens[:, None], self.length, prefill=False)

    def reorder(self, rows: torch.Tensor) -> None:
        """Hypothesis ``i`` continues hypothesis ``rows[i]`` (always one of the same clip's beams):
        one contiguous row gather per buffer (buffers grow in blocks, so little of it is unused)."""
        if torch.equal(rows, torch.arange(len(rows), device=rows.device)):
            return
        self.keys = [cache.index_select(0, rows) for cache in self.keys]
        self.values = [cache.index_select(0, rows) for cache in self.values]

    def _reserve(self, end: int) -> None:
        """Room for positions below ``end`` in every buffer (a block of ``_BLOCK`` more at a time)."""
        size = self.keys[0].shape[2]
        if end <= size:
            return
        grow = min(max(end - size, _BLOCK), self.capacity - size)
        extend = lambda cache: torch.cat([cache, cache.new_empty(*cache.shape[:2], grow, cache.shape[3])], dim=2)  # noqa: E731
        self.keys = [extend(cache) for cache in self.keys]
        self.values = [extend(cache) for cache in self.values]

    def _forward(self, ids: torch.Tensor, start: int, prefill: bool) -> torch.Tensor:
        decoder = self.decoder
        end = start + ids.shape[1]
        if not prefill:
            self._reserve(end)
        x = decoder.embed_tokens(ids) + decoder.embed_positions.weight[start:end].to(self.cross[0][0].dtype)
        rows, length, width = x.shape
        for index, layer in enumerate(decoder.layers):
            attention = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            query = (attention.q_proj(h) * attention.scaling).view(rows, length, self.heads, -1).transpose(1, 2)
            key = attention.k_proj(h).view(rows, length, self.heads, -1).transpose(1, 2)
            value = attention.v_proj(h).view(rows, length, self.heads, -1).transpose(1, 2)
            if prefill:
                out = F.scaled_dot_product_attention(query, key, value, is_causal=length > 1, scale=1.0)
                room = min(end + _BLOCK, self.capacity) - end
                for caches, states in ((self.keys, key), (self.values, value)):
                    states = F.pad(states.repeat_interleave(self.beams, dim=0), (0, 0, 0, room))
                    caches.append(states.contiguous())
            else:
                self.keys[index][:, :, start:end] = key
                self.values[index][:, :, start:end] = value
                out = F.scaled_dot_product_attention(query, self.keys[index][:, :, :end],
                                                     self.values[index][:, :, :end], scale=1.0)
            x = x + attention.out_proj(out.transpose(1, 2).reshape(rows, length, width))
            cross = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            # a clip's hypotheses (beams, or prefix positions) are one query block against its states
            query = self._split((cross.q_proj(h) * cross.scaling).reshape(self.clips, -1, width))
            out = F.scaled_dot_product_attention(query, *self.cross[index], scale=1.0)
            x = x + cross.out_proj(out.transpose(1, 2).reshape(rows, length, width))
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        self.length = end
        return self.projection(decoder.layer_norm(x[:, -1]))


@torch.inference_mode()
def beam_search(model, hidden: torch.Tensor, prefix: Sequence[int], *, num_beams: int, max_new_tokens: int,
                eos_token_id: int, processors: Sequence[Any] = (), length_penalty: float = 1.0) -> BeamSearchOutput:
    """Beam search from encoder states ``hidden`` ``[clips, frames, d_model]``.

    Args:
        model: a ``WhisperForConditionalGeneration`` (its decoder and projection are used).
        prefix: decoder ids before the first generated token (prompt, start of transcript, ...).
        num_beams / max_new_tokens / length_penalty: as in ``generate``.
        eos_token_id: end of text.
        processors: transformers logits processors, called with the full sequences
            ``[clips * beams, len(prefix) + generated]`` and the log-softmax scores.
    """
    clips, beams = hidden.shape[0], num_beams
    device = hidden.device
    prefix_ids = torch.as_tensor(list(prefix), dtype=torch.long, device=device)
    decoder = _Decoder(model, hidden, beams, len(prefix_ids) + max_new_tokens)
    logits = decoder.prefill(prefix_ids).repeat_interleave(beams, dim=0)
    keep = 2 * beams
    clip_rows = torch.arange(clips, device=device)[:, None]
    offsets = clip_rows * beams
    rank_ok = torch.arange(keep, device=device)[None, :] < beams
    generated = torch.empty(clips * beams, 0, dtype=torch.long, device=device)
    running = torch.zeros(clips, beams, device=device)
    running[:, 1:] = _NEG
    finished = torch.full((clips, beams), _NEG, device=device)  # normalised scores
    finished_sum = torch.full((clips, beams), float("-inf"), device=device)
    finished_len = torch.ones(clips, beams, dtype=torch.long, device=device)
    finished_done = torch.zeros(clips, beams, dtype=torch.bool, device=device)
    finished_tokens = torch.full((clips, beams, max_new_tokens), eos_token_id, dtype=torch.long, device=device)
    open_ = torch.ones(clips, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        scores = F.log_softmax(logits.float(), dim=-1)
        if processors:
            sequences = torch.cat([prefix_ids.expand(clips * beams, -1), generated], dim=1)
            for processor in processors:
                scores = processor(sequences, scores)
        vocab = scores.shape[-1]
        total = (scores.view(clips, beams, vocab) + running[:, :, None]).view(clips, beams * vocab)
        top, index = total.topk(keep, dim=1)
        source = index // vocab + offsets  # [clips, 2K] rows of the hypotheses continued
        token = index % vocab
        candidates = torch.cat([generated[source.view(-1)].view(clips, keep, step), token[..., None]], dim=2)
        ended = (token == eos_token_id) | (step + 1 >= max_new_tokens)

        # the K best finished hypotheses so far (transformers' _update_finished_beams)
        new = top / ((step + 1) ** length_penalty)
        new = new + (~open_[:, None]).float() * _NEG + (~(ended & rank_ok)).float() * _NEG
        padded = F.pad(candidates, (0, max_new_tokens - step - 1), value=eos_token_id)
        merged = torch.cat([finished, new], dim=1)
        order = merged.topk(beams, dim=1).indices
        finished = merged.gather(1, order)
        finished_sum = torch.cat([finished_sum, top], dim=1).gather(1, order)
        lengths = torch.full_like(token, step + 1)
        finished_len = torch.cat([finished_len, lengths], dim=1).gather(1, order)
        finished_done = torch.cat([finished_done, ended & rank_ok], dim=1).gather(1, order)
        finished_tokens = torch.cat([finished_tokens, padded], dim=1)[clip_rows, order]

        # the K best unfinished continuations run on
        alive = top + ended.float() * _NEG
        chosen = alive.topk(beams, dim=1).indices
        running = alive.gather(1, chosen)
        rows = source.gather(1, chosen).view(-1)
        generated = candidates[clip_rows, chosen].view(clips * beams, step + 1)

        best_possible = running[:, 0] / ((step + 1) ** length_penalty)
        worst = torch.where(finished_done, finished.min(dim=1, keepdim=True).values, torch.full_like(finished, _NEG))
        open_ = open_ & (best_possible[:, None] > worst).any(dim=1)
        if not bool(open_.any()) or bool(ended.all()):
            break
        decoder.reorder(rows)
        logits = decoder.step(generated[:, -1])

    tokens, means = [], np.full(clips, float("-inf"))
    for clip in range(clips):
        length = int(finished_len[clip, 0])
        ids = finished_tokens[clip, 0, :length].tolist()
        tokens.append(ids[:-1] if ids and ids[-1] == eos_token_id else ids)
        if bool(finished_done[clip, 0]):
            means[clip] = float(finished_sum[clip, 0]) / length
    return BeamSearchOutput(tokens=tokens, mean_logprob=means)


def teacher_forced_logprobs(model, hidden: torch.Tensor, sequences: torch.Tensor) -> np.ndarray:
    """Mean log-probability of each decoder sequence's text tokens and end-of-text (teacher
    forced; the prompt and special tokens before the transcript are not scored)."""
    config = model.generation_config
    eos, sot = int(config.eos_token_id), int(config.decoder_start_token_id)
    if len(hidden) != len(sequences):
        raise ValueError(f"{len(sequences)} sequences for {len(hidden)} encoder outputs")
    sequences = sequences.to(hidden.device)
    logits = model(encoder_outputs=(hidden,), decoder_input_ids=sequences[:, :-1]).logits
    # log-softmax of the chosen tokens only (no [batch, length, vocabulary] fp32 copy)
    chosen = logits.gather(-1, sequences[:, 1:, None])[..., 0].float()
    logprobs = (chosen - torch.logsumexp(logits.float(), dim=-1)).cpu()
    means = np.zeros(len(sequences))
    for row, ids in enumerate(sequences.tolist()):
        start = max(1, text_start(ids, sot, eos))
        end = ids.index(eos, start) + 1 if eos in ids[start:] else len(ids)
        values = logprobs[row, start - 1 : end - 1]
        means[row] = float(values.mean()) if len(values) else float("-inf")
    return means


__all__ = ["BeamSearchOutput", "beam_search", "teacher_forced_logprobs"]

"""Linear-chain CRF over slot tags: log-likelihood for training, Viterbi for decoding.

The joint model tags only each word's first sub-word, so the tagged positions of a
sequence are scattered among the tokens (``mask``). Both the likelihood and the
decoder first move the tagged positions of every row to the left, in order
(:func:`pack`); the chain then runs over words, never over [CLS], later sub-words
or padding. Everything is vectorised over the batch; the loop runs over positions.

Scores: ``start_transitions[y_1] + sum_t emissions[t, y_t] + sum_t transitions[y_t, y_{t+1}]
+ end_transitions[y_n]``. :func:`bio_allowed` gives the BIO structure (``I-x`` only after
``B-x`` / ``I-x``) that :meth:`CRF.decode` can enforce at decoding time.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ["CRF", "bio_allowed", "pack"]

Allowed = Tuple[torch.Tensor, torch.Tensor]


def pack(mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices that move each row's masked positions to the left, in order.

    Returns ``(order, lengths, packed_mask)``: ``order`` ``(batch, n)`` indexes the original
    positions (``n`` = the longest row's count), ``lengths`` ``(batch,)`` counts masked positions,
    ``packed_mask[b, t]`` is ``t < lengths[b]``.
    """
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    n = int(lengths.max()) if mask.numel() else 0
    order = torch.sort((~mask).int(), dim=1, stable=True).indices[:, :n]
    packed_mask = torch.arange(n, device=mask.device)[None, :] < lengths[:, None]
    return order, lengths, packed_mask


@lru_cache(maxsize=16)
def _bio_allowed(labels: Tuple[str, ...]) -> Allowed:
    start = torch.ones(len(labels), dtype=torch.bool)
    trans = torch.ones(len(labels), len(labels), dtype=torch.bool)
    for j, tag in enumerate(labels):
        if tag.startswith("I-"):
            start[j] = False
            trans[:, j] = torch.tensor([prev in (f"B-{tag[2:]}", tag) for prev in labels])
    return start, trans


def bio_allowed(labels: Sequence[str]) -> Allowed:
    """``(start, transitions)`` masks of allowed BIO tags: ``I-x`` never first, only after ``B-x`` or ``I-x``."""
    start, trans = _bio_allowed(tuple(labels))
    return start.clone(), trans.clone()


class CRF(nn.Module):
    """Transition scores between ``num_tags`` tags (``transitions[i, j]``: tag i then tag j).

    All scores start at zero, where the CRF equals independent softmax tagging.
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))
        self.start_transitions = nn.Parameter(torch.zeros(num_tags))
        self.end_transitions = nn.Parameter(torch.zeros(num_tags))

    def reset_parameters(self) -> None:
        for param in (self.transitions, self.start_transitions, self.end_transitions):
            nn.init.zeros_(param)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``log p(tags | emissions)`` per row, over the masked positions; ``(batch,)``, 0 for empty rows.

        ``emissions`` ``(batch, length, tags)``, ``tags`` ``(batch, length)`` (ignored outside ``mask``).
        """
        order, lengths, m = pack(mask)
        em = emissions.float().gather(1, order[:, :, None].expand(-1, -1, self.num_tags))
        y = tags.gather(1, order).masked_fill(~m, 0)
        if em.shape[1] == 0:
            return em.new_zeros(em.shape[0])
        nonempty = lengths > 0
        # score of the given path
        score = (em.gather(2, y[:, :, None]).squeeze(2) * m).sum(1)
        score = score + self.start_transitions[y[:, 0]] * nonempty
        score = score + (self.transitions[y[:, :-1], y[:, 1:]] * m[:, 1:]).sum(1)
        last = y.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
        score = score + self.end_transitions[last] * nonempty
        # log partition function (forward algorithm)
        alpha = self.start_transitions + em[:, 0]
        for t in range(1, em.shape[1]):
            step = torch.logsumexp(alpha[:, :, None] + self.transitions[None] + em[:, t, None, :], dim=1)
            alpha = torch.where(m[:, t, None], step, alpha)
        log_z = torch.logsumexp(alpha + self.end_transitions, dim=1)
        return torch.where(nonempty, score - log_z, torch.zeros_like(score))

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor, allowed: Optional[Allowed] = None) -> torch.Tensor:
        """Viterbi: the best tag sequence over each row's masked positions.

        Returns tag ids ``(batch, length)`` at the positions of ``mask`` (0 elsewhere).
        ``allowed``: ``(start, transitions)`` boolean masks (:func:`bio_allowed`); forbidden
        starts and transitions are never chosen.
        """
        order, lengths, m = pack(mask)
        out = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
        if order.shape[1] == 0:
            return out
        em = emissions.float().gather(1, order[:, :, None].expand(-1, -1, self.num_tags))
        start, trans = self.start_transitions.float(), self.transitions.float()
        if allowed is not None:
            start = start.masked_fill(~allowed[0].to(start.device), float("-inf"))
            trans = trans.masked_fill(~allowed[1].to(trans.device), float("-inf"))
        score = start + em[:, 0]
        pointers = []
        for t in range(1, em.shape[1]):
            best, pointer = (score[:, :, None] + trans[None]).max(dim=1)
            score = torch.where(m[:, t, None], best + em[:, t], score)
            pointers.append(pointer)
        last = (score + self.end_transitions.float()).argmax(dim=1)
        path = torch.zeros_like(order)
        for t in range(em.shape[1] - 1, -1, -1):
            tag = last
            if t < em.shape[1] - 1:
                tag = torch.where(t == lengths - 1, last, pointers[t].gather(1, path[:, t + 1, None]).squeeze(1))
            path[:, t] = tag
        return out.scatter_(1, order, path.masked_fill(~m, 0))

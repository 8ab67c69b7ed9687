"""Bahdanau (additive) attention.

The caller projects the keys once per source batch with :meth:`project_keys`
and passes them to every step; the module keeps no state between calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AttentionOutput:
    """context: (B, Dv) weighted sum of values; weights: (B, S), zero on padding."""

    context: torch.Tensor
    weights: torch.Tensor


class BahdanauAttention(nn.Module):
    """score(q, k) = v^T tanh(W_q q + W_k k)."""

    def __init__(self, *, query_dim: int, key_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(key_dim, attention_dim, bias=False)
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
        self.energy = nn.Linear(attention_dim, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys: (B, S, Dk) -> (B, S, A)."""
        return self.key_proj(keys)

    def forward(
        self, query: torch.Tensor, proj_keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> AttentionOutput:
        """query: (B, Dq); proj_keys: (B, S, A); values: (B, S, Dv); mask: (B, S), True on real tokens."""
        scores = self.energy(torch.tanh(proj_keys + self.query_proj(query).unsqueeze(1))).squeeze(-1)
        # -inf before the softmax gives padding exactly zero weight, not merely a small one.
        weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1).to(values.dtype)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)
        return AttentionOutput(context=context, weights=weights)
